"""Build the Objective-C test fixtures: on Linux with GCC's Objective-C front end
(gobjc) against GCC's libobjc, with the emulation of Apple's check; on macOS
with the system's clang against Apple's libobjc, which enforces the check
itself (the emulation is Linux-only). On both, the libraries are named
lib*.so: dlopen() on macOS takes any file name, and the tests stay the same."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = {"fixtures": "fixtures.m", "late": "late.m", "many": "many.m"}
EMULATION = {"forksafety": "forksafety.m"}  # Apple's check, copied onto GCC's runtime
MANY_CLASSES = 200  # for the benchmarks: FXMany000 ... FXMany199


def many_class_names(count: int = MANY_CLASSES) -> list[str]:
    return [f"FXMany{i:03d}" for i in range(count)]


def write_many(outdir: Path) -> Path:
    """Generate many.m: a root class and MANY_CLASSES classes with their own +initialize."""
    classes = "\n".join(f"@interface {name} : FXManyRoot @end\n"
                         f"@implementation {name} + (void)initialize {{ }} @end"
                         for name in many_class_names())
    source = outdir / "many.m"
    source.write_text(
        "#include <objc/runtime.h>\n"
        "__attribute__((objc_root_class))\n"
        "@interface FXManyRoot { Class isa; } + (void)initialize; - (id)self; @end\n"
        "@implementation FXManyRoot + (void)initialize { } - (id)self { return self; } @end\n"
        + classes + "\n")
    return source


class FixtureBuildError(RuntimeError):
    pass


def compiler() -> str:
    return os.environ.get("OBJC", "cc" if sys.platform == "darwin" else "gcc")


# The one source of the fixtures' flags: build() uses them, and .ci/check_macos.py
# compiles the fixtures for macOS with Zig's clang and the same flags.
COMPILE_FLAGS = ["-x", "objective-c", "-O1", "-Wall", "-Werror"]
LINK_FLAGS = {"darwin": ["-dynamiclib", "-lobjc"],
              "linux": ["-shared", "-fPIC", "-lobjc", "-lpthread"]}
HINT = {"darwin": "(clang comes with the Xcode command line tools: xcode-select --install)",
        "linux": "(GCC's Objective-C compiler and runtime come with: apt-get install gobjc)"}


def libraries(platform: str = sys.platform) -> dict[str, str]:
    """name -> source of the libraries built on this platform."""
    return FIXTURES if platform == "darwin" else {**EMULATION, **FIXTURES}


def build(outdir: Path) -> dict[str, Path]:
    """Compile every library of this platform into outdir; return name -> path."""
    platform = "darwin" if sys.platform == "darwin" else "linux"
    cc = shutil.which(compiler())
    if cc is None:
        raise FixtureBuildError(f"no C compiler {compiler()!r} on PATH {HINT[platform]}")
    outdir.mkdir(parents=True, exist_ok=True)
    generated = {"many.m": write_many(outdir)}
    built = {}
    for name, source in libraries(platform).items():
        target = outdir / f"lib{name}.so"
        cmd = [cc, *COMPILE_FLAGS, "-o", str(target), str(generated.get(source, HERE / source)),
               *LINK_FLAGS[platform]]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise FixtureBuildError(f"cannot build {source} ({' '.join(cmd)}):\n"
                                    f"{result.stderr.strip()}\n{HINT[platform]}")
        built[name] = target
    return built


VENDORED_LIBOBJC2 = HERE.parents[2] / "shared" / "vendor"  # ../shared/vendor of the checkout


def build_libobjc2(outdir: Path, tarball: Path | None = None, *,
                   fixtures_dir: Path | None = None) -> tuple[Path, Path]:
    """Build GNUstep's libobjc2 from its source tarball into outdir (about
    10 s; kept there, per tarball, and reused), then the fixtures against it
    with clang into fixtures_dir; return (runtime, fixtures) paths."""
    if tarball is None:
        found = sorted(VENDORED_LIBOBJC2.glob("libobjc2-*.tar.gz"))
        if not found:
            raise FixtureBuildError(f"no libobjc2-*.tar.gz in {VENDORED_LIBOBJC2.resolve()} "
                                    "(set OBJCPREFORK_LIBOBJC2_TARBALL; docs/testing.md says where "
                                    "to get it)")
        tarball = found[-1]
    for tool in ("cmake", "ninja", "clang", "clang++"):
        if shutil.which(tool) is None:
            raise FixtureBuildError(f"building libobjc2 needs {tool} (apt-get install cmake "
                                    "ninja-build clang robin-map-dev)")
    outdir = outdir / tarball.name.removesuffix(".tar.gz")
    fixtures_dir = fixtures_dir or outdir
    source, build_dir, prefix = outdir / "src", outdir / "build", outdir / "prefix"
    source.mkdir(parents=True, exist_ok=True)
    built = sorted((prefix / "lib").glob("libobjc.so.4.*"))
    fixtures = fixtures_dir / "libfixtures2.so"
    steps = [
        ["tar", "-xzf", str(tarball), "-C", str(source), "--strip-components=1"],
        # GNUSTEP_INSTALL_TYPE=NONE: otherwise the install ignores the prefix.
        ["cmake", "-S", str(source), "-B", str(build_dir), "-G", "Ninja",
         "-DCMAKE_BUILD_TYPE=Release", "-DTESTS=OFF", "-DGNUSTEP_INSTALL_TYPE=NONE",
         "-DCMAKE_C_COMPILER=clang", "-DCMAKE_CXX_COMPILER=clang++",
         f"-DCMAKE_INSTALL_PREFIX={prefix}"],
        ["ninja", "-C", str(build_dir), "install"],
        ["clang", "-x", "objective-c", "-fobjc-runtime=gnustep-2.0", "-shared", "-fPIC", "-O1",
         "-Wall", "-Werror", f"-I{prefix}/include", "-o", str(fixtures),
         str(HERE / "fixtures.m"), f"-L{prefix}/lib", "-lobjc", f"-Wl,-rpath,{prefix}/lib"],
    ]
    if built:  # the runtime from an earlier run: only the fixtures
        steps = steps[-1:]
    for cmd in steps:
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise FixtureBuildError(f"libobjc2: {' '.join(cmd[:3])} failed:\n"
                                    f"{(result.stdout + result.stderr)[-3000:]}")
    runtime = next((prefix / "lib").glob("libobjc.so.4.*"))
    return runtime, fixtures


if __name__ == "__main__":
    import sys
    import tempfile

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    for name, path in build(out).items():
        print(name, path)
