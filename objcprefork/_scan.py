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


def render(found: dict[str, list[tuple[str, str]]]) -> str:
    if not found:
        return "no loaded class has a non-trivial +initialize (is the runtime loaded?)"
    lines = []
    for where, classes in found.items():
        lines.append(f"{where} ({len(classes)})")
        lines += [f"    {name}" + (f"  (inherits +[{owner} initialize])" if owner != name else "")
                  for name, owner in classes]
    return "\n".join(lines)
