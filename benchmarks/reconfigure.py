"""Reconfiguration cost: set_classes() and add_classes() with many names, and
status() over them. Hashing in C makes them linear; 0.1.0's pairwise merge
took 5.6 s for set_classes(100,000) and 17 s for add_classes(40,000).
Target: 100,000 names in under 0.5 s for each call."""

from __future__ import annotations

import subprocess
import sys

from _common import REPO, table

WORKER = r"""
import sys, time, objcprefork
count = int(sys.argv[1])
names = [f"FXBench{i}" for i in range(count)]
more = [f"FXMore{i}" for i in range(count)]
def timed(call, *args):
    start = time.perf_counter(); call(*args); return time.perf_counter() - start
objcprefork.install([], defaults=False)
results = [timed(objcprefork.set_classes, names), timed(objcprefork.add_classes, more),
           timed(objcprefork.add_classes, names), timed(lambda: objcprefork.status().classes)]
assert len(objcprefork.classes()) == 2 * count
print(" ".join(f"{r:.4f}" for r in results))
"""


def main() -> None:
    rows = []
    for count in (1_000, 10_000, 100_000):
        out = subprocess.run([sys.executable, "-c", WORKER, str(count)], capture_output=True,
                             text=True, check=True, cwd=REPO / "benchmarks").stdout.split()
        rows.append([f"{count:,}", *(f"{float(x) * 1000:.1f}" for x in out)])
    table("Reconfiguration (ms; installed, no runtime loaded)",
          ["names", "set_classes(n)", "add_classes(n new)", "add_classes(n known)",
           "status().classes over 2n"], rows)


if __name__ == "__main__":
    main()
