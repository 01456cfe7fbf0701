"""Loading frameworks (macOS) or libraries (elsewhere) in the parent, at
configuration time, so their classes exist before any fork. Never called from
the fork handler."""

from __future__ import annotations

import os
import re
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

# Apple's system framework folders, in dyld's order.
FRAMEWORK_FOLDERS = ("/System/Library/Frameworks", "/System/Library/PrivateFrameworks")
SONAME = re.compile(r"lib[\w.+-]*\.so(\.\d+)*")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-")


def validate_framework_names(names: Iterable[str], *, allow_paths: bool = False
                             ) -> tuple[str, ...]:
    """Framework names (macOS: "Foundation"; elsewhere a soname, "libfoo.so.1",
    or a short name, "foo" for lib<foo>.so*: see candidates()).

    Paths are accepted only when allow_paths (the Python API), never from
    configuration."""
    if isinstance(names, (str, bytes, bytearray)):
        raise TypeError(f"expected an iterable of framework names, got {names!r}; "
                        f"wrap a single name in a list: [{names!r}]")
    valid = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"a framework name must be str, not {type(name).__name__}: {name!r}")
        is_path = "/" in name
        if is_path and allow_paths and "\0" not in name:
            valid.append(name)
            continue
        if is_path:
            raise ValueError(f"invalid framework {name!r}: a path is accepted only through "
                             "the Python API; configuration takes a name")
        if not name or name[0] == "." or not set(name) <= _NAME_CHARS:
            raise ValueError(f"invalid framework name {name!r}: letters, digits and ._+- only")
        valid.append(name)
    return tuple(dict.fromkeys(valid))


def library_folders() -> list[str]:
    """Where a soname is looked for off macOS: the absolute entries of
    LD_LIBRARY_PATH (not in a set-id process, as the loader itself), then the
    system's folders. Never a relative or empty entry: the loader would take
    those from the current directory."""
    import sysconfig

    from _objcprefork_start import is_setugid

    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    variable = "" if is_setugid() else os.environ.get("LD_LIBRARY_PATH", "")
    folders = [p for p in variable.split(":") if os.path.isabs(p)]
    for root in ("/lib", "/usr/lib", "/usr/local/lib"):
        folders += [f"{root}/{multiarch}"] if multiarch else []
        folders += [f"{root}64", root]
    return list(dict.fromkeys(folders))


def candidates(name: str) -> tuple[list[str], str]:
    """The files a framework name means, in the order to try them, and the
    pattern tried: the one meaning for scan --framework, the config file,
    OBJCPREFORK_FRAMEWORKS and install(frameworks=...). A path is itself;
    on macOS a name is a system framework; elsewhere a soname is that file,
    and a short name, "gnustep-base", is lib<name>.so*, newest first."""
    if "/" in name:
        return [name], name
    if sys.platform == "darwin":
        return [f"{folder}/{name}.framework/{name}" for folder in FRAMEWORK_FOLDERS], name
    if SONAME.fullmatch(name):
        return [os.path.join(folder, name) for folder in library_folders()
                if os.path.isfile(os.path.join(folder, name))], name
    import glob

    pattern = f"lib{glob.escape(name)}.so*"
    found = [path for folder in library_folders()
             for path in glob.glob(os.path.join(glob.escape(folder), pattern))]
    return sorted(found, key=lambda path: (len(path), path), reverse=True), f"lib{name}.so*"


def load_frameworks(names: Iterable[str], *, allow_paths: bool = False) -> None:
    """Load each framework; ValueError names the first one that cannot be loaded,
    and what was tried."""
    for name in validate_framework_names(names, allow_paths=allow_paths):
        load_first(name, *candidates(name))


def load_first(name: str, paths: list[str], tried: str) -> None:
    """Load the first of paths that loads; else ValueError naming name, and
    what was tried (the pattern tried, in which folders)."""
    import ctypes

    errors = []
    for path in paths:
        try:
            ctypes.CDLL(path)
            return
        except Exception as exc:  # any failure is one message, never a crash
            errors.append(str(exc))
    folders = FRAMEWORK_FOLDERS if sys.platform == "darwin" else library_folders()
    raise ValueError(f"cannot load framework {name!r}: {'; '.join(errors) or 'not found'} "
                     f"(tried {tried} in {', '.join(folders)})")
