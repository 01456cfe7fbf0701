"""make wheel-test: a local dry run of the wheels workflow's test step.

Builds the wheel the way cibuildwheel does (build-frontend "build"), then, on
every CPython 3.10+ on this machine (cibuildwheel reuses the one abi3 wheel
for each), installs it with the test extras in a fresh venv and runs
cibuildwheel's exact test-command, read from pyproject.toml, from a temporary
directory. Then once more with OBJCPREFORK_SIMULATE_START=1: the .start entry
point called the way Python 3.15's site calls it (PEP 829), so the start-up
tests pass as they must on 3.15."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START_UP_TESTS = ("test_startup.py", "test_diagnostics.py", "test_reach.py", "test_learn.py")


def interpreters() -> dict[str, str]:
    """version -> interpreter path, one per minor version, CPython 3.10+ (GIL builds)."""
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


def test_command() -> str:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    with open(REPO / "pyproject.toml", "rb") as f:
        return str(tomllib.load(f)["tool"]["cibuildwheel"]["test-command"])


def main() -> int:
    found = interpreters()
    if not found:
        print("wheel-test: FAILED: no CPython 3.10+ interpreter found", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="objcprefork-wheel-test-"))
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(work), str(REPO)],
                   check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "OBJCPREFORK_REQUIRE_NATIVE": "1"})
    (wheel,) = work.glob("objcprefork-*-cp310-abi3-*.whl")
    command = test_command().replace("{project}", str(REPO)).replace("{wheel}", str(wheel))
    print(f"wheel-test: {wheel.name} on {', '.join(found)}; test-command: {command}", flush=True)
    runs = [(version, python, {}, "") for version, python in found.items()]
    oldest = next(iter(found.items()))
    # With .start files only the start-up behaviour changes: run what tests it.
    runs.append((f"{oldest[0]} with .start files", oldest[1], {"OBJCPREFORK_SIMULATE_START": "1"},
                 " ".join(f"{REPO}/tests/{name}" for name in START_UP_TESTS)))
    failed = []
    for label, python, extra, only in runs:
        venv = work / f"venv-{label.split()[0]}"
        if not venv.exists():
            subprocess.run([python, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                            f"{wheel}[test]"], check=True)
        print(f"wheel-test: CPython {label}", flush=True)
        scratch = Path(tempfile.mkdtemp(dir=work))  # cibuildwheel runs tests from elsewhere
        env = {**os.environ, **extra, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
               "VIRTUAL_ENV": str(venv)}
        # The same command; with .start files, on the start-up test files only.
        run_command = command.replace(f"{REPO}/tests", only) if only else command
        if subprocess.run(["bash", "-c", run_command], cwd=scratch, env=env).returncode:
            failed.append(label)
    shutil.rmtree(work, ignore_errors=True)
    print(f"wheel-test: {len(runs) - len(failed)} passed, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
