"""Build the native core; metadata lives in pyproject.toml.

The package works without its extension (it then does nothing, and says so in
its status), so a failed build falls back to pure Python, as markupsafe does,
except on Windows where there is nothing to build, and under cibuildwheel or
OBJCPREFORK_REQUIRE_NATIVE=1, where a failure must be loud.
"""

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

# Free-threaded builds cannot use the stable ABI.
LIMITED_API = not sysconfig.get_config_var("Py_GIL_DISABLED")
STARTUP_FILES = ("objcprefork.pth", "objcprefork.start")


def must_build() -> bool:
    return bool(os.environ.get("CIBUILDWHEEL") or os.environ.get("OBJCPREFORK_REQUIRE_NATIVE"))


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            self.fallback(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self.fallback(exc)

    @staticmethod
    def fallback(exc: Exception) -> None:
        if must_build():
            raise
        print(f"objcprefork: native core not built ({exc}); installing the inert "
              "pure-Python package", file=sys.stderr)


class BuildPyWithStartupFiles(build_py):
    """Put the .pth and .start files at the wheel root, which is site-packages."""

    def run(self) -> None:
        super().run()
        for name in STARTUP_FILES:
            shutil.copyfile(Path(__file__).parent / name, Path(self.build_lib) / name)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        return outputs + [str(Path(self.build_lib) / name) for name in STARTUP_FILES]


# Also read by .ci/check_macos.py (make check-macos), which cross-compiles with them.
# Hidden by default: the parts of the core (src/core.h) share names that must
# never be seen, or interposed, outside it; only PyInit__objcprefork is exported.
COMPILE_ARGS = ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                "-Werror=implicit-function-declaration", "-fvisibility=hidden"]

ext_modules = []
if sys.platform != "win32":
    ext_modules.append(Extension(
        "objcprefork._objcprefork",
        ["src/_objcprefork.c", "src/runtime.c", "src/table.c", "src/fork.c"],
        depends=["src/core.h"],
        py_limited_api=LIMITED_API,
        define_macros=[("Py_LIMITED_API", "0x030A0000")] if LIMITED_API else [],
        # Warnings are errors where the build must succeed (CI, cibuildwheel);
        # elsewhere a newer compiler's new warning must not cost users the core.
        extra_compile_args=[*COMPILE_ARGS, *(["-Werror"] if must_build() else [])],
    ))

setup(
    ext_modules=ext_modules,
    cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPyWithStartupFiles},
    options={"bdist_wheel": {"py_limited_api": "cp310"}} if LIMITED_API and ext_modules else {},
)
