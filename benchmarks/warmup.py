"""First warm-up: how long install() takes to force the default list, and a
50-class list, with GNUstep Foundation loaded. Each sample is a fresh process,
since a class is initialized only once per process."""

from __future__ import annotations

import ctypes.util
import json
import sys

from _common import REPO, median, run, table

SAMPLE = r"""
import ctypes, json, sys, time
ctypes.CDLL("libobjc.so.4")
ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)
import objcprefork
from objcprefork._native import core, listed
names = json.loads(sys.argv[2])
start = time.perf_counter_ns()
if names is None:
    objcprefork._install(dict.fromkeys(objcprefork.DEFAULT_CLASSES, "defaults"))
else:
    objcprefork._install(dict.fromkeys(names, "benchmark"))
elapsed = time.perf_counter_ns() - start
states = [state for _, state, _ in listed(core.snapshot())]
print(json.dumps({"ns": elapsed, "initialized": states.count("initialized"),
                  "listed": len(states)}))
"""

SCAN = r"""
import ctypes, json, sys
ctypes.CDLL("libobjc.so.4"); ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)
from objcprefork._scan import scan
print(json.dumps([name for names in scan("gnustep").values() for name, _ in names]))
"""
SAMPLES = 15


def main() -> None:
    gnustep = ctypes.util.find_library("gnustep-base")
    if gnustep is None:
        sys.exit("warmup: needs GNUstep Foundation (apt-get install libgnustep-base-dev)")
    # 50 GNUstep classes with a non-trivial +initialize, as `objcprefork scan` lists them.
    fifty = json.loads(run([sys.executable, "-c", SCAN, gnustep], cwd=REPO / "benchmarks").stdout)
    fifty = [n for n in fifty if n.startswith("NS")][:50]
    rows = []
    for label, names in (("DEFAULT_CLASSES", None), ("50 GNUstep classes", fifty)):
        results = [json.loads(run([sys.executable, "-c", SAMPLE, gnustep, json.dumps(names)],
                                  cwd=REPO / "benchmarks").stdout) for _ in range(SAMPLES)]
        ns = [r["ns"] for r in results]
        rows.append([label, f"{results[0]['initialized']} of {results[0]['listed']}", SAMPLES,
                     f"{median(ns) / 1e6:.3f}", f"{min(ns) / 1e6:.3f}", f"{max(ns) / 1e6:.3f}"])
    table("first warm-up: install() forcing +initialize, GNUstep Foundation loaded (ms)",
          ["list", "initialized (loaded)", "processes", "median ms", "min ms", "max ms"], rows)


if __name__ == "__main__":
    main()
