"""A release publishes the complete set or nothing: exactly one wheel for each
build identifier cibuildwheel lists for each runner of the wheels job, no other
wheel, and one sdist. The wheels workflow's complete-set job runs this on the
artifacts the publish job then uploads; `make check-dist` runs it on a dry list.

usage: check_artifacts.py DIR | --dry LIST   (LIST: one file name a line)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import yaml
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

REPO = Path(__file__).resolve().parent.parent
WHEELS_WORKFLOW = REPO / ".github/workflows/wheels.yml"
# cibuildwheel's platform and architecture for each runner the workflow names
# (archs = "native" in pyproject.toml: a runner builds for its own only).
RUNNERS = {"macos-15": ("macos", "arm64"), "macos-15-intel": ("macos", "x86_64"),
           "ubuntu-24.04": ("linux", "x86_64"), "ubuntu-24.04-arm": ("linux", "aarch64")}


def fail(message: str) -> NoReturn:
    print(f"{Path(sys.argv[0]).stem}: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def load_workflow(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        fail(f"{path}: {' '.join(str(error).split())}")


def runner(name: str) -> tuple[str, str]:
    if name not in RUNNERS:
        fail(f"runner {name} is not in RUNNERS ({__file__}): say what it builds for")
    return RUNNERS[name]


def built_identifiers(workflow: dict) -> dict[str, list[str]]:
    """runner -> the identifiers the wheels job's cibuildwheel builds there."""
    built = {}
    for name in workflow["jobs"]["wheels"]["strategy"]["matrix"]["os"]:
        platform, arch = runner(name)
        listed = subprocess.run(
            [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers",
             "--platform", platform, "--archs", arch],
            cwd=REPO, capture_output=True, text=True)
        if listed.returncode:
            fail(f"cibuildwheel --print-build-identifiers --platform {platform}: "
                 f"{(listed.stderr.strip().splitlines() or ['no output'])[-1]}")
        built[name] = listed.stdout.split()
    return built


def serves(tags: frozenset[Tag], identifier: str) -> bool:
    """Whether a wheel with these tags installs on the identifier's interpreter
    and platform (cp314t-manylinux_x86_64: a cp314t ABI, manylinux_*_x86_64)."""
    python, platform = identifier.split("-", 1)
    family, arch = platform.split("_", 1)
    return any(
        tag.platform.startswith(family) and tag.platform.endswith(f"_{arch}")
        and (tag.abi == python or (tag.abi == "abi3" and not python.endswith("t")
             and int(tag.interpreter[2:]) <= int(python[2:])))
        for tag in tags)


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "--dry":
        lines = Path(argv[1]).read_text().splitlines()
        names = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    elif len(argv) == 1 and Path(argv[0]).is_dir():
        names = [path.name for path in Path(argv[0]).iterdir()]
    else:
        fail("usage: check_artifacts.py DIR | --dry LIST")
    sdists = [name for name in names if name.endswith(".tar.gz")]
    wheels = {}
    for name in names:
        if name.endswith(".whl"):
            try:
                wheels[name] = parse_wheel_filename(name)[3]
            except InvalidWheelFilename as error:
                fail(str(error))
    if stray := sorted(set(names) - set(wheels) - set(sdists)):
        fail(f"neither wheel nor sdist: {', '.join(stray)}")
    if len(sdists) != 1:
        fail(f"expected one sdist, found {len(sdists)}: {', '.join(sdists)}")
    identifiers = [i for ids in built_identifiers(load_workflow(WHEELS_WORKFLOW)).values()
                   for i in ids]
    serving = {i: [name for name, tags in wheels.items() if serves(tags, i)] for i in identifiers}
    if missing := [i for i, found in serving.items() if not found]:
        fail(f"a partial set: no wheel for {', '.join(missing)}")
    if ambiguous := [i for i, found in serving.items() if len(found) > 1]:
        fail(f"more than one wheel for {', '.join(ambiguous)}")
    if unasked := sorted(set(wheels) - {name for found in serving.values() for name in found}):
        fail(f"wheels no build identifier asks for: {', '.join(unasked)}")
    print(f"check_artifacts: complete: {len(wheels)} wheels for {len(identifiers)} build "
          f"identifiers, and {sdists[0]}")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (KeyError, TypeError, AttributeError) as error:
        fail(f"{WHEELS_WORKFLOW.name} not shaped as expected: {error!r}")
