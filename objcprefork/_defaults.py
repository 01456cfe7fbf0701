"""The default class list, read from data/classes.csv (one row per class, with
where it was reported)."""

from __future__ import annotations

import csv
from pathlib import Path

CLASSES_CSV = Path(__file__).with_name("data") / "classes.csv"


def _lines() -> list[str]:
    text = CLASSES_CSV.read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def rows() -> list[dict[str, str]]:
    """Every row of the data file: class, framework, macos, reports, trigger."""
    return list(csv.DictReader(_lines()))


# The first column only: cheap enough for interpreter start-up (no csv import).
DEFAULT_CLASSES: tuple[str, ...] = tuple(line.split(",", 1)[0] for line in _lines()[1:])
