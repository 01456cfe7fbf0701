"""Shared by the benchmarks: the Objective-C fixtures, wheels and venvs of the
test suite, a machine description, and a table printer."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "objc")]

from envs import Venv, build_wheel, make_venv  # noqa: E402

from build import build, many_class_names  # noqa: E402

__all__ = ["REPO", "Venv", "build_wheel", "fixtures", "make_venv", "many_class_names",
           "median", "table", "workdir"]


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="objcprefork-bench-"))


def fixtures(where: Path) -> dict[str, Path]:
    return build(where / "objc")


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}")


def table(title: str, header: list[str], rows: list[list[object]]) -> None:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}\n({machine()})")
    for n, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True,
                          **kwargs)  # type: ignore[call-overload]
