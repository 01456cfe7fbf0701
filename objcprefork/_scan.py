"""`objcprefork scan`: the loaded classes whose +initialize could kill a
child, found without running any +initialize."""

from __future__ import annotations

import os
import sys

from ._frameworks import (
    SONAME,
    library_folders,
    load_first,
    load_frameworks,
    validate_framework_names,
)
from ._native import core


def load_for_scan(names: list[str]) -> None:
    """Load what scan --framework names: as the API would (paths too), and
    off macOS a short name, "gnustep-base", as lib<name>.so*, newest first."""
    import glob

    for name in names:
        if "/" in name or sys.platform == "darwin" or SONAME.fullmatch(name):
            load_frameworks([name], allow_paths=True)
            continue
        validate_framework_names([f"lib{name}.so"])  # its characters
        found = (path for folder in library_folders()
                 for path in glob.glob(os.path.join(glob.escape(folder),
                                                    f"lib{glob.escape(name)}.so*")))
        load_first(name, sorted(found, key=lambda path: (len(path), path), reverse=True),
                   f"lib{name}.so*")


def scan(image: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """{image: [(class, class whose +initialize it runs), ...]} for every loaded
    class with a non-trivial +initialize, optionally only in images whose path
    contains `image`. Looks at method lists only: initializes nothing."""
    found: dict[str, list[tuple[str, str]]] = {}
    for row in core.inspect(None):
        where = row["image"] or "(unknown image)"
        if not row["trivial"] and (image is None or image in where):
            found.setdefault(where, []).append((row["name"], row["initializer"] or row["name"]))
    return {where: sorted(found[where]) for where in sorted(found)}


def render(found: dict[str, list[tuple[str, str]]]) -> str:
    if not found:
        return "no loaded class has a non-trivial +initialize (is the runtime loaded?)"
    lines = []
    for where, classes in found.items():
        lines.append(f"{where} ({len(classes)})")
        lines += [f"    {name}" + (f"  (inherits +[{owner} initialize])" if owner != name else "")
                  for name, owner in classes]
    return "\n".join(lines)
