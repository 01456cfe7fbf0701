"""Assertions of `make check-dist` that no off-the-shelf tool makes: what the
wheel built from the sdist holds, and which wheels cibuildwheel would build."""

from __future__ import annotations

import glob
import subprocess
import sys
import tarfile
import zipfile

PYTHONS = ("cp310", "cp311", "cp312", "cp313", "cp314", "cp315", "cp314t", "cp315t")
EXPECTED_IDENTIFIERS = {
    "macos": {f"{py}-macosx_{arch}" for py in PYTHONS for arch in ("arm64", "x86_64")},
    "linux": {f"{py}-{libc}_{arch}" for py in PYTHONS
              for libc in ("manylinux", "musllinux") for arch in ("x86_64", "aarch64")},
}
ARCHS = {"macos": "arm64,x86_64", "linux": "x86_64,aarch64"}


def fail(message: str) -> None:
    print(f"check-dist: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def main(dist: str) -> None:
    (sdist,) = glob.glob(f"{dist}/objcprefork-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for needed in ("objcprefork.pth", "objcprefork.start", "_objcprefork_start.py",
                   "src/_objcprefork.c", "setup.py", "MANIFEST.in", "tests/objc/forksafety.m"):
        if needed not in names:
            fail(f"the sdist lacks {needed}")
    wheels = glob.glob(f"{dist}/objcprefork-*-cp310-abi3-*.whl")
    if len(wheels) != 1:
        fail(f"expected one abi3 wheel built from the sdist, found {wheels}")
    content = set(zipfile.ZipFile(wheels[0]).namelist())
    for needed in ("objcprefork.pth", "objcprefork.start", "_objcprefork_start.py",
                   "objcprefork/_objcprefork.abi3.so", "objcprefork/py.typed",
                   "objcprefork/data/classes.csv", "objcprefork/_bootstrap/sitecustomize.py"):
        if needed not in content:
            fail(f"the wheel built from the sdist lacks {needed}")
    for platform, expected in EXPECTED_IDENTIFIERS.items():
        listed = subprocess.run(
            [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform",
             platform, "--archs", ARCHS[platform]],
            check=True, capture_output=True, text=True).stdout.split()
        if set(listed) != expected:
            fail(f"cibuildwheel would build {sorted(listed)} for {platform}, "
                 f"expected {sorted(expected)}")
    print(f"check-dist: {sdist} and {wheels[0]} hold what they must; "
          "cibuildwheel identifiers as expected")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "dist")
