"""The default class list, read from data/classes.csv (one row per class, with
where it was reported)."""

from __future__ import annotations

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
