"""make test-matrix: build the abi3 wheel once, then install it and run the
suite on every CPython 3.10+ found on this machine (pyenv's and PATH's)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def interpreters() -> dict[str, str]:
    """version -> interpreter path, one per minor version, CPython 3.10+."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(f"{root}/versions/*/bin/python3"))
    candidates += [p for v in range(10, 20) if (p := shutil.which(f"python3.{v}"))]
    found: dict[str, str] = {}
    for path in candidates:
        probe = subprocess.run(
            [path, "-c", "import sys, sysconfig; print(sys.implementation.name, "
             "'%d.%d' % sys.version_info[:2], bool(sysconfig.get_config_var('Py_GIL_DISABLED')))"],
            capture_output=True, text=True)
        if probe.returncode:
            continue
        name, version, free_threaded = probe.stdout.split()
        major, minor = map(int, version.split("."))
        if name == "cpython" and (major, minor) >= (3, 10) and free_threaded == "False":
            found.setdefault(version, path)
    return dict(sorted(found.items(), key=lambda item: tuple(map(int, item[0].split(".")))))


def main() -> int:
    found = interpreters()
    if not found:
        print("test-matrix: FAILED: no CPython 3.10+ interpreter found", file=sys.stderr)
        return 1
    print("test-matrix: interpreters found: "
          + ", ".join(f"{v} ({p})" for v, p in found.items()), flush=True)
    work = Path(tempfile.mkdtemp(prefix="objcprefork-matrix-"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work),
                    str(REPO)], check=True, env={**os.environ, "OBJCPREFORK_REQUIRE_NATIVE": "1"})
    (wheel,) = work.glob("objcprefork-*-cp310-abi3-*.whl")
    print(f"test-matrix: one wheel for all: {wheel.name}", flush=True)
    failed = []
    for version, python in found.items():
        venv = work / f"venv-{version}"
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, f"{wheel}[test]"], check=True)
        print(f"test-matrix: CPython {version}", flush=True)
        result = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(REPO / "tests")],
            cwd=work, env={**os.environ, "OBJCPREFORK_TEST_WHEEL": str(wheel)})
        if result.returncode:
            failed.append(version)
    shutil.rmtree(work, ignore_errors=True)
    print(f"test-matrix: {len(found) - len(failed)} passed, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
