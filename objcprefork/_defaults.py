"""The default class list, read from data/classes.csv (one row per class, with
where it was reported)."""

import os

CLASSES_CSV = os.path.join(os.path.dirname(__file__), "data", "classes.csv")


def _lines() -> list[str]:
    with open(CLASSES_CSV, encoding="utf-8") as f:
        return [line for line in f.read().splitlines() if line and not line.startswith("#")]


def rows() -> list[dict[str, str]]:
    """Every row of the data file: class, framework, macos, reports, trigger."""
    import csv

    return list(csv.DictReader(_lines()))


# The first column only: cheap enough for interpreter start-up (no csv import).
DEFAULT_CLASSES: tuple[str, ...] = tuple(line.split(",", 1)[0] for line in _lines()[1:])


def markdown() -> str:
    """docs/classes.md, generated from the data file (make docs)."""
    lines = [
        "# The default class list",
        "",
        "Generated from `objcprefork/data/classes.csv` by `make docs`; a test fails when",
        "the two disagree. *reports* is a lower bound of distinct public threads or",
        "documents naming `+[CLASS initialize]` in Apple's fork-safety message.",
        "",
        "| class | framework | macOS | reports | typical trigger |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| `{r['class']}` | {r['framework']} | {r['macos']} | {r['reports']} | "
              f"{r['trigger'] or ''} |" for r in rows()]
    return "\n".join(lines) + "\n"
