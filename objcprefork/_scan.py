"""`objcprefork scan`: the loaded classes whose +initialize could kill a
child, found without running any +initialize."""

from __future__ import annotations

from ._native import core


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


def nothing_found(image: str | None) -> str:
    """Why scan found nothing: no class loaded, no image matching, or none to force."""
    images = {row["image"] or "(unknown image)" for row in core.inspect(None)}
    if not images:
        return ("no Objective-C class is loaded in this process (is the runtime loaded? "
                "--framework NAME loads one)")
    if image is not None and not any(image in where for where in images):
        return f"no loaded image matches {image!r} ({len(images)} images are loaded)"
    where = f" in the images matching {image!r}" if image is not None else ""
    return f"no loaded class{where} has a non-trivial +initialize"


def render(found: dict[str, list[tuple[str, str]]], image: str | None = None) -> str:
    if not found:
        return nothing_found(image)
    lines = []
    for where, classes in found.items():
        lines.append(f"{where} ({len(classes)})")
        lines += [f"    {name}" + (f"  (inherits +[{owner} initialize])" if owner != name else "")
                  for name, owner in classes]
    return "\n".join(lines)
