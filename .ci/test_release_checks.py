"""make check-dist: each mistake the release checks exist for, planted, fails
them with one line; what the workflow really does passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CI = Path(__file__).resolve().parent
WHEELS_WORKFLOW = CI.parent / ".github/workflows/wheels.yml"
DRY_LIST = CI / "release-files.txt"
RELEASE = [line for line in DRY_LIST.read_text().splitlines() if line and line[0] != "#"]


def run(script: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, CI / script, *map(str, args)],
                          capture_output=True, text=True)


def assert_fails(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.count("\n") == 1, done.stderr  # one line: no traceback
    for word in words:
        assert word in done.stderr


def planted(tmp_path: Path, old: str, new: str) -> Path:
    """The real wheels workflow with one mistake planted."""
    text = WHEELS_WORKFLOW.read_text()
    assert text.count(old) == 1, f"{old!r} is no longer in the workflow: update this test"
    path = tmp_path / "wheels.yml"
    path.write_text(text.replace(old, new))
    return path


def workflow_with_step(tmp_path: Path, step: dict[str, str]) -> Path:
    path = tmp_path / "workflow.yml"
    path.write_text(yaml.safe_dump(
        {"on": "push", "jobs": {"build": {"runs-on": "ubuntu-24.04", "steps": [step]}}}))
    return path


PIPED = "make 2>&1 | tee build.log"


@pytest.mark.parametrize("step", [
    {"run": PIPED},
    {"run": PIPED, "shell": "sh"},
    {"run": f"echo \"status=$({PIPED})\" >> \"$GITHUB_OUTPUT\""},
    {"run": f"set -e\n{PIPED}"},
])
def test_a_pipe_without_pipefail_fails(tmp_path, step):
    assert_fails(run("check_workflows.py", workflow_with_step(tmp_path, step)),
                 "pipes without pipefail", "job build")


@pytest.mark.parametrize("step", [
    {"run": PIPED, "shell": "bash"},
    {"run": f"# why\nset -euo pipefail\n{PIPED}"},
    {"run": "grep -E 'passed|failed' build.log || true"},  # a quoted bar, an or
])
def test_a_pipe_with_pipefail_or_no_pipe_passes(tmp_path, step):
    done = run("check_workflows.py", workflow_with_step(tmp_path, step))
    assert done.returncode == 0, done.stderr


def test_the_wheels_workflow_without_its_default_shell_fails(tmp_path):
    workflow = planted(tmp_path, "\n    shell: bash\n", "\n")
    assert_fails(run("check_workflows.py", workflow), "step 'Build and test the wheels'")


@pytest.mark.parametrize("old, new, untested", [
    (', "3.15", "3.15t"]', "]", "cp315-manylinux_x86_64, cp315t-manylinux_x86_64"),
    ('"3.14", "3.14t"', '"3.14"', "cp314t-manylinux_aarch64"),
    ("os: [ubuntu-24.04, ubuntu-24.04-arm]", "os: [ubuntu-24.04]", "cp310-manylinux_aarch64"),
])
def test_a_built_identifier_with_no_test_fails(tmp_path, old, new, untested):
    assert_fails(run("check_workflows.py", planted(tmp_path, old, new)),
                 "built, never tested", untested)


def test_the_full_release_in_a_directory_passes(tmp_path):
    for name in RELEASE:
        (tmp_path / name).touch()
    done = run("check_artifacts.py", tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{len(RELEASE) - 1} wheels for 48 build identifiers" in done.stdout


@pytest.mark.parametrize("left_out, missing", [
    ("cp310-abi3-manylinux_2_28_aarch64", "no wheel for cp310-manylinux_aarch64, cp311-"),
    ("cp315-cp315t-musllinux_1_2_x86_64", "no wheel for cp315t-musllinux_x86_64"),
    ("cp314-cp314t-macosx_10_13_x86_64", "no wheel for cp314t-macosx_x86_64"),
    (".tar.gz", "expected one sdist, found 0"),
])
def test_a_partial_set_fails(tmp_path, left_out, missing):
    partial = tmp_path / "partial.txt"
    partial.write_text("\n".join(name for name in RELEASE if left_out not in name))
    assert_fails(run("check_artifacts.py", "--dry", partial), missing)


@pytest.mark.parametrize("extra, error", [
    ("objcprefork-0.0.0-cp311-abi3-macosx_11_0_arm64.whl", "more than one wheel for cp311-"),
    ("objcprefork-0.0.0-cp310-abi3-win_amd64.whl", "no build identifier asks for"),
    ("cibuildwheel.log", "neither wheel nor sdist: cibuildwheel.log"),
])
def test_a_set_with_more_than_asked_fails(tmp_path, extra, error):
    padded = tmp_path / "padded.txt"
    padded.write_text("\n".join([*RELEASE, extra]))
    assert_fails(run("check_artifacts.py", "--dry", padded), error)
