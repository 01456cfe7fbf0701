"""Builds the Objective-C fixtures once per session and runs scenarios in fresh
interpreters, so the emulation's sticky state never leaks between tests.

With OBJCPREFORK_REQUIRE_OBJC=1 (set by .ci/run) a missing compiler, runtime or
GNUstep fails the run instead of skipping."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS / "objc"))
from build import FixtureBuildError, build  # noqa: E402

REQUIRED = os.environ.get("OBJCPREFORK_REQUIRE_OBJC") == "1"


def missing(what: str) -> None:
    if REQUIRED:
        pytest.fail(f"OBJCPREFORK_REQUIRE_OBJC=1 but {what}", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if sys.platform != "linux":
        missing("the Objective-C fixtures are built for Linux with GCC's libobjc")
    out = tmp_path_factory.mktemp("objc")
    try:
        build(out)
    except FixtureBuildError as exc:
        missing(str(exc))
    return out


@pytest.fixture(scope="session")
def gnustep(fixtures: Path) -> str:
    library = ctypes.util.find_library("gnustep-base")
    if library is None:
        missing("GNUstep Foundation is not installed (apt-get install libgnustep-base-dev)")
    return library


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def facts(self) -> dict[str, object]:
        merged: dict[str, object] = {}
        for line in self.stdout.splitlines():
            if line.startswith("{"):
                merged.update(json.loads(line))
        return merged


@pytest.fixture
def run_python(fixtures: Path, tmp_path: Path):
    """Run a scenario in a fresh interpreter; fail on a non-zero exit unless check=False."""

    def run(code: str, *, env: dict[str, str] | None = None, check: bool = True,
            args: tuple[str, ...] = ()) -> Run:
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("OBJCPREFORK", "OBJC_"))}
        full_env.update(OBJCPREFORK_FIXTURES=str(fixtures), PYTHONPATH=str(TESTS),
                        **(env or {}))
        script = "from forkprobe import *\n" + textwrap.dedent(code)
        # cwd is a scratch directory: the source tree must not shadow the installed package.
        done = subprocess.run([sys.executable, *args, "-c", script], cwd=tmp_path, env=full_env,
                              capture_output=True, text=True, timeout=120)
        result = Run(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            pytest.fail(f"scenario failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return result

    return run
