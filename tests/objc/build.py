"""Build the Objective-C test fixtures with GCC's Objective-C front end (gobjc)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIBRARIES = {"forksafety": "forksafety.m", "fixtures": "fixtures.m", "late": "late.m"}


class FixtureBuildError(RuntimeError):
    pass


def compiler() -> str:
    return os.environ.get("OBJC", "gcc")


def build(outdir: Path) -> dict[str, Path]:
    """Compile every fixture library into outdir; return name -> path of the .so."""
    cc = shutil.which(compiler())
    if cc is None:
        raise FixtureBuildError(f"no C compiler {compiler()!r} on PATH")
    outdir.mkdir(parents=True, exist_ok=True)
    built = {}
    for name, source in LIBRARIES.items():
        target = outdir / f"lib{name}.so"
        cmd = [cc, "-x", "objective-c", "-shared", "-fPIC", "-O1", "-Wall", "-Werror",
               "-o", str(target), str(HERE / source), "-lobjc", "-lpthread"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise FixtureBuildError(
                f"cannot build {source} ({' '.join(cmd)}):\n{result.stderr.strip()}\n"
                "(GCC's Objective-C compiler and runtime come with: apt-get install gobjc)")
        built[name] = target
    return built


if __name__ == "__main__":
    import sys
    import tempfile

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    for name, path in build(out).items():
        print(name, path)
