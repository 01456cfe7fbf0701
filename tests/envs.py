"""Real wheels and fresh virtual environments, for the tests and the benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# PEP 829: from Python 3.15 a <name>.start file next to <name>.pth disables the
# .pth's import lines and site calls its entry points instead.
# OBJCPREFORK_SIMULATE_START=1 (make wheel-test) does that on older Pythons.
START_FILES = sys.version_info >= (3, 15) or os.environ.get("OBJCPREFORK_SIMULATE_START") == "1"
ACTIVATED_AT_START = "start" if START_FILES else "pth"


def simulate_start_files(site: Path) -> None:
    """What site does on 3.15 for objcprefork.start, as an import line that
    calls each 'module:callable' entry with no arguments."""
    start = site / "objcprefork.start"
    (site / "objcprefork.pth").write_text(
        "import sys; [getattr(__import__('importlib').import_module(m), f)() for m, f in "
        f"(e.split(':') for e in open({str(start)!r}).read().split())]\n")


@dataclass
class Venv:
    python: Path
    site_packages: Path
    bin: Path


def make_venv(path: Path, wheel: Path | None = None) -> Venv:
    """A venv without pip; with the wheel (and its dependencies) installed if given."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True).stdout.strip()
    if wheel is not None:  # dependencies too: tomli on 3.10
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                        str(wheel)], check=True)
        if START_FILES and sys.version_info < (3, 15):
            simulate_start_files(Path(site))
    return Venv(python, Path(site), path / "bin")


def build_wheel(out: Path) -> Path:
    """A real wheel of this tree (not editable: the .pth needs a real install)."""
    given = os.environ.get("OBJCPREFORK_TEST_WHEEL")  # cibuildwheel passes the wheel under test
    if given:
        return Path(given)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(out), str(REPO)],
                   check=True, env={**os.environ, "OBJCPREFORK_REQUIRE_NATIVE": "1"})
    (found,) = out.glob("objcprefork-*.whl")
    return found
