"""The documentation says what the code does: generated files are current,
every key `doctor --json` prints is documented, and links lead somewhere."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_generated_files_are_current():
    # The default list module, docs/classes.md and docs/cli.md's reference.
    done = subprocess.run([sys.executable, REPO / "docs" / "generate.py", "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_doctor_json_key_is_documented(run_command):
    # Switched on, so that the default classes are listed with every key a class has.
    report = json.loads(run_command([sys.executable, "-m", "objcprefork", "doctor", "--json"],
                                    env={"OBJCPREFORK": "1"}, check=False).stdout)
    section = (REPO / "docs" / "cli.md").read_text().split("### `doctor --json`")[1]
    documented = set(re.findall(r"\w+", " ".join(re.findall(r"`([^`]+)`",
                                                           section.split("\n### ")[0]))))
    keys = set(report) | {key for listed in report["classes"] for key in listed}
    assert keys <= documented, keys - documented


def anchors(page):
    """GitHub's ids for the headings of page."""
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_lead_somewhere(page):
    for target, anchor in re.findall(r"\]\(([^)#:]*)(?:#([^)]*))?\)", page.read_text()):
        linked = page.parent / target if target else page
        assert linked.exists(), f"{page.name}: {target}"
        assert not anchor or anchor in anchors(linked), f"{page.name}: {target}#{anchor}"


def test_the_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 200
