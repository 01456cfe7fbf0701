"""The default class list, read from data/classes.csv (one row per class, with
where it was reported)."""

import os

CLASSES_CSV = os.path.join(os.path.dirname(__file__), "data", "classes.csv")


def _lines() -> list[str]:
    with open(CLASSES_CSV, encoding="utf-8") as f:
        return [line for line in f.read().splitlines() if line and not line.startswith("#")]


def rows() -> list[dict[str, str]]:
    """Every row of the data file, with its provenance (see the file's header)."""
    import csv

    return list(csv.DictReader(_lines()))


# The first two columns only: cheap enough for interpreter start-up (no csv).
DEFAULT_CLASSES: tuple[str, ...] = tuple(
    name for name, default, _rest in (line.split(",", 2) for line in _lines()[1:])
    if default == "yes")


def reported_name(name: str) -> str:
    """A class name as a report gives it, with the leading "__" that titles
    and some logs lose restored when that names a known class."""
    known = {row_name for row_name, *_ in (line.split(",", 1) for line in _lines()[1:])}
    return f"__{name}" if name not in known and f"__{name}" in known else name


def markdown() -> str:
    """docs/classes.md, generated from the data file (make docs)."""
    lines = [
        "# The default class list",
        "",
        "Generated from `objcprefork/data/classes.csv` by `make docs`; a test fails when",
        "the two disagree. *reports* is a lower bound of distinct public threads or",
        "documents naming `+[CLASS initialize]` in Apple's fork-safety message",
        "(re-checked 2026-11). Classes marked *no* are listed for their provenance",
        "and are not forced by default.",
        "",
        "| class | default | framework | reports | years | examples | typical trigger "
        "| evidence | why |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| `{r['class']}` | {r['default']} | {r['framework']} | {r['reports']} | "
              f"{r['years']} | {r['examples']} | {r['trigger']} | {r['evidence']} | "
              f"{r['why']} |" for r in rows()]
    return "\n".join(lines) + "\n"
