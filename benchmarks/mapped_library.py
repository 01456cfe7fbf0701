"""What mapping one more shared library costs a fork, the extension's own file
standing for any: in one process, batches of fork + _exit + waitpid with the
file mapped (dlopen) and unmapped (dlclose), alternating, so memory and layout
are otherwise the same. One untimed fork follows every dlopen and dlclose: the
first fork after one is slow (its page tables are new), and counting it made
an earlier version of this measure report 2-4 % per library."""

from __future__ import annotations

import json
import subprocess
import sys

from _common import REPO, median, table

WORKER = r"""
import _ctypes, ctypes, json, os, sys, time
import importlib.util
path = importlib.util.find_spec("objcprefork._objcprefork").origin
from _forks import timed_forks as forks
def untimed():
    forks(1)
mapped, unmapped = [], []
for _ in range(40):
    handle = ctypes.CDLL(path)._handle; untimed()
    mapped += forks(20)
    _ctypes.dlclose(handle); untimed()
    unmapped += forks(20)
print(json.dumps([mapped, unmapped]))
"""


def main() -> None:
    rows = []
    ratios = []
    for run in range(4):
        out = subprocess.run([sys.executable, "-c", WORKER], capture_output=True, text=True,
                             check=True, cwd=REPO / "benchmarks").stdout
        mapped, unmapped = json.loads(out)
        ratio = median(mapped) / median(unmapped)
        ratios.append(ratio)
        rows.append([run + 1, f"{median(unmapped) / 1000:.1f}", f"{median(mapped) / 1000:.1f}",
                     f"{ratio:.4f}"])
    table("one more shared library mapped (the extension's file), same process, alternating",
          ["process", "unmapped median us", "mapped median us", "ratio"], rows)
    print(f"\nper mapped library: {min(ratios) - 1:+.2%} to {max(ratios) - 1:+.2%}")


if __name__ == "__main__":
    main()
