"""make check-macos: the macOS branches of the C core, compiled and inspected
from Linux with Zig's clang (PyPI's ziglang) and a Mach-O reader (lief).

For x86_64-macos.10.13 and aarch64-macos.11.0, with setup.py's own flags,
-Werror and -Werror=unguarded-availability:
- compile and link the core's sources (src/*.c) as a Mach-O bundle (-undefined
  dynamic_lookup, as Python extensions are), for the stable ABI and, on arm64,
  the full API of a free-threaded (Py_GIL_DISABLED) 3.13+;
- check the result: only libSystem linked (no libobjc, no libpython), every
  imported symbol known here and available on the deployment target, the
  minimum OS as intended, and only PyInit__objcprefork exported;
- compile the Objective-C test fixtures for macOS, with the flags the macOS
  runners build them with (tests/objc/build.py); only the link against Apple's
  libobjc is left to the runners (Zig has no libobjc for macOS).
Then plant an error in an __APPLE__ branch and require the check to fail."""

from __future__ import annotations

import ast
import glob
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"x86_64-macos.10.13": (10, 13), "aarch64-macos.11.0": (11, 0)}
sys.path.insert(0, str(REPO / "tests" / "objc"))
import build as fixtures  # noqa: E402  (tests/objc/build.py)

# libSystem functions the core may import, with the macOS release that
# introduced them (Apple's availability annotations in the SDK headers).
AVAILABLE_SINCE = {
    "___error": (10, 0), "_atoi": (10, 0), "_bzero": (10, 0), "___bzero": (10, 0),
    "_clock_gettime": (10, 12),
    "_dladdr": (10, 3), "_dlopen": (10, 3), "_dlsym": (10, 3), "_free": (10, 0),
    "_getpid": (10, 0), "_malloc": (10, 0), "_memcmp": (10, 0), "_memcpy": (10, 0),
    "_memset": (10, 0), "_proc_pidinfo": (10, 5), "_pthread_atfork": (10, 4),
    "_pthread_is_threaded_np": (10, 4), "_pthread_mutex_init": (10, 4),
    "_pthread_mutex_lock": (10, 4), "_pthread_mutex_unlock": (10, 4),
    "_pthread_once": (10, 4), "_realloc": (10, 0), "_snprintf": (10, 0),
    "___snprintf_chk": (10, 5), "___memcpy_chk": (10, 5), "___memset_chk": (10, 5),
    "_strchr": (10, 0), "_strrchr": (10, 0), "_strtol": (10, 0), "_uname": (10, 0),
    "_fopen": (10, 0), "_fread": (10, 0), "_fclose": (10, 0), "dyld_stub_binder": (10, 0),
    "_getrlimit": (10, 0), "_setrlimit": (10, 0),
    "__dyld_image_count": (10, 1), "__dyld_get_image_header": (10, 1),
    "_getsectiondata": (10, 7), "_sysctl": (10, 0), "_issetugid": (10, 0),
    "_strnlen": (10, 7), "_strcmp": (10, 0), "_memchr": (10, 0), "_memmove": (10, 0),
    "___memmove_chk": (10, 5), "_strlen": (10, 0),
    "_open": (10, 0), "_read": (10, 0), "_close": (10, 0), "___stack_chk_fail": (10, 0),
    "___stack_chk_guard": (10, 0), "_pthread_getspecific": (10, 0),
    "_pthread_setspecific": (10, 0), "_pthread_key_create": (10, 0), "_strncmp": (10, 0),
    "_mmap": (10, 0), "_munmap": (10, 0), "_calloc": (10, 0),
}
LINKER_MADE = {"__mh_dylib_header", "___dso_handle"}


class CheckFailed(Exception):
    pass


def setup_flags() -> list[str]:
    """COMPILE_ARGS from setup.py, read without running it."""
    for node in ast.parse((REPO / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COMPILE_ARGS":
            return list(ast.literal_eval(node.value))
    raise CheckFailed("setup.py has no COMPILE_ARGS")


def free_threaded_headers() -> str:
    """Include folder of a CPython 3.13+ (its headers know Py_GIL_DISABLED)."""
    for include in sorted(glob.glob("/root/.pyenv/versions/3.1[3-9]*/include/python3.1[3-9]*")
                          + glob.glob("/usr/include/python3.1[3-9]*")):
        if Path(include, "Python.h").exists():
            return include
    raise CheckFailed("no CPython 3.13+ headers found for the Py_GIL_DISABLED variant")


def run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        raise CheckFailed(f"{' '.join(argv[:6])} ... failed:\n{done.stderr.strip()[-3000:]}")


def inspect(binary: Path, minimum: tuple[int, int]) -> None:
    import lief

    lief.logging.disable()
    image = lief.parse(str(binary))
    if image is None:
        raise CheckFailed(f"{binary}: not a Mach-O lief can read")
    linked = {lib.name for lib in image.libraries} - {str(binary)}
    if linked != {"/usr/lib/libSystem.B.dylib"}:
        raise CheckFailed(f"{binary.name}: links {sorted(linked)}; only libSystem is allowed")
    for symbol in sorted(s.name for s in image.imported_symbols):
        if symbol.startswith(("_Py", "__Py")):
            continue  # resolved in the interpreter at load time
        since = AVAILABLE_SINCE.get(symbol)
        if since is None:
            raise CheckFailed(f"{binary.name}: imports {symbol}, unknown here: add it to "
                              "AVAILABLE_SINCE with the macOS release that introduced it")
        if since > minimum:
            raise CheckFailed(f"{binary.name}: {symbol} needs macOS {since}, the target is "
                              f"{minimum}")
    exported = {s.name for s in image.exported_symbols} - LINKER_MADE
    if exported != {"_PyInit__objcprefork"}:
        raise CheckFailed(f"{binary.name}: exports {sorted(exported)}")
    # LC_BUILD_VERSION, or LC_VERSION_MIN_MACOSX for targets before 10.14.
    found = (tuple(image.build_version.minos[:2]) if image.has_build_version else
             tuple(image.version_min.version[:2]) if image.has_version_min else None)
    if found != minimum:
        raise CheckFailed(f"{binary.name}: minimum OS {found}, expected {minimum}")


def check(sources: list[Path], out: Path) -> int:
    zig = [sys.executable, "-m", "ziglang", "cc"]
    flags = [*setup_flags(), "-Werror", "-Werror=unguarded-availability", "-O2",
             "-fno-sanitize=all", "-fPIC"]
    limited = ["-I" + sysconfig.get_paths()["include"], "-DPy_LIMITED_API=0x030A0000"]
    variants = [(target, limited, "abi3") for target in TARGETS]
    variants.append(("aarch64-macos.11.0", ["-I" + free_threaded_headers(),
                                            "-DPy_GIL_DISABLED=1"], "free-threaded"))
    built = 0
    for target, python, label in variants:
        binary = out / f"_objcprefork-{target}-{label}.so"
        run([*zig, "-target", target, *flags, *python, "-shared",
             "-Wl,-undefined,dynamic_lookup", "-o", str(binary), *map(str, sources)])
        inspect(binary, TARGETS[target])
        print(f"check-macos: {target} {label}: built and inspected", flush=True)
        built += 1
    generated = {"many.m": fixtures.write_many(out)}
    for target in TARGETS:
        for name, source in fixtures.libraries("darwin").items():
            run([*zig, "-target", target, *fixtures.COMPILE_FLAGS, "-c",
                 "-o", str(out / f"{name}-{target}.o"),
                 str(generated.get(source, fixtures.HERE / source))])
        print(f"check-macos: {target}: fixtures compile", flush=True)
    return built


def main() -> int:
    sources = sorted((REPO / "src").glob("*.c"))
    with tempfile.TemporaryDirectory(prefix="objcprefork-macos-") as tmp:
        out = Path(tmp)
        try:
            check(sources, out)
        except CheckFailed as exc:
            print(f"check-macos: FAILED: {exc}", file=sys.stderr)
            return 1
        # The check must be able to fail: an error only macOS compiles.
        planted = out / "planted"
        shutil.copytree(REPO / "src", planted)
        fork = planted / "fork.c"
        marker = "#ifdef __APPLE__\n"
        assert marker in fork.read_text()
        fork.write_text(fork.read_text().replace(
            marker, marker + "static int planted = missing_name;\n", 1))
        try:
            check(sorted(planted.glob("*.c")), out)
        except CheckFailed:
            print("check-macos: a planted error in an __APPLE__ branch fails the check, "
                  "as it must", flush=True)
        else:
            print("check-macos: FAILED: a planted error in an __APPLE__ branch passed",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
