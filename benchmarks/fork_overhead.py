"""Fork overhead: fork + _exit + waitpid from Python, in a process that never
imported objcprefork and in processes where it is switched on with 200
already-initialized classes (as start-up activation does it, and through
install()), each bare and holding about 50 MB of Python objects (a small app).

The ratio is taken against the process that never imported objcprefork,
because that is what a user compares with. Fork time grows with what a
process maps (page tables and mappings are copied, then torn down in the
child), so what objcprefork loads counts as much as what its handler does.
Every variant runs in sixteen long-lived processes (identical processes differ
by a few per cent: address-space layout) and the driver interleaves their
batches, so machine noise falls on all alike. Every process has the same 200
classes initialized (by hand where objcprefork does not do it), since
initialized classes cost the runtime memory whoever initializes them.

Printed: the ratio of medians; its 90 % bootstrap interval (processes
resampled); the range of the processes' own medians; a control group of the
baseline (what the machine can resolve); the extension's file mapped alone
(the share of loading any shared library); the resident memory that
`import objcprefork; install()` adds. Targets: ratio <= 1.03 bare, <= 1.01
at 50 MB."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import REPO, fixtures, many_class_names, median, table, workdir

WORKER = r"""
import ctypes, json, os, sys, threading, time
def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
objc = ctypes.CDLL("libobjc.so.4")
ctypes.CDLL(sys.argv[1])
mode, ballast_mb = sys.argv[2], int(sys.argv[3])
names = json.loads(sys.argv[4])
objc.objc_lookUpClass.restype = objc.sel_registerName.restype = ctypes.c_void_p
objc.objc_lookUpClass.argtypes = objc.sel_registerName.argtypes = [ctypes.c_char_p]
objc.class_getMethodImplementation.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
self_sel = objc.sel_registerName(b"self")
for name in names:  # initialize every class, as objcprefork would
    objc.class_getMethodImplementation(objc.objc_lookUpClass(name.encode()), self_sel)
# About ballast_mb MB of small objects, as an app's modules and data.
ballast = [{"n": i, "s": str(i) * 3} for i in range(ballast_mb * 4300)]
before = rss_kib()
if mode == "mapped":  # the extension's file mapped; no module imported to find it
    folder = next(os.path.join(entry, "objcprefork") for entry in sys.path
                  if os.path.isdir(os.path.join(entry, "objcprefork")))
    ctypes.CDLL(os.path.join(folder, next(name for name in os.listdir(folder)
                                          if name.startswith("_objcprefork.")
                                          and name.endswith(".so"))))
elif mode == "startup":  # what OBJCPREFORK=1 does at interpreter start
    import objcprefork
    objcprefork._install(dict.fromkeys(names, "benchmark"))
elif mode == "api":
    import objcprefork
    objcprefork.install(names, defaults=False)
    objcprefork.status()
added = rss_kib() - before
if mode in ("startup", "api"):
    from objcprefork._native import core
    from objcprefork._native import listed
    assert [state for _, state, _ in listed(core.snapshot())] == ["initialized"] * len(names)
thread = threading.Thread(target=lambda: None); thread.start(); thread.join()
from _forks import timed_forks
for line in sys.stdin:
    times = timed_forks(int(line))
    print(json.dumps({"times": times, "rss_added_kib": added, "rss_kib": rss_kib()}),
          flush=True)
"""

SETTINGS = {"bare": 0, "50 MB of objects": 50}
# The control is a second group of the baseline itself: its ratio and
# interval show what this machine can resolve. "extension mapped only" loads
# the C extension's file and imports nothing: the share of any shared library.
MODES = {"never imported": "none", "never imported (control)": "none",
         "extension mapped only": "mapped", "start-up activation, 200 classes": "startup",
         "install(), 200 classes": "api"}
TARGETS = {"bare": 1.03, "50 MB of objects": 1.01}
# Identical processes differ by a few per cent (address-space layout), more
# than the effect measured: many processes per variant, few forks each.
ROUNDS, BATCH, PROCESSES, RESAMPLES = 8, 20, 16, 2000


def interval(base: list[float], variant: list[float]) -> tuple[float, float]:
    """90 % bootstrap interval of the ratio of medians, resampling processes."""
    rng = random.Random(0)
    ratios = sorted(median(rng.choices(variant, k=len(variant)))
                    / median(rng.choices(base, k=len(base))) for _ in range(RESAMPLES))
    return ratios[RESAMPLES // 20], ratios[-RESAMPLES // 20]


def measure(library: Path, names: str, setting: str) -> dict[str, list[dict[str, Any]]]:
    """Every variant of one setting, PROCESSES processes each, batches
    interleaved in a rotating order; per process, its fork times and memory."""
    workers = [(mode, subprocess.Popen(
        [sys.executable, "-c", WORKER, str(library), MODES[mode], str(SETTINGS[setting]), names],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO / "benchmarks"))
        for _ in range(PROCESSES) for mode in MODES]
    results: list[dict[str, Any]] = [{"times": []} for _ in workers]
    for round_ in range(ROUNDS + 1):
        shift = round_ % len(workers)
        for i in list(range(len(workers)))[shift:] + list(range(len(workers)))[:shift]:
            worker = workers[i][1]
            assert worker.stdin and worker.stdout
            worker.stdin.write(f"{BATCH}\n")
            worker.stdin.flush()
            result = json.loads(worker.stdout.readline())
            if round_:  # the first round warms up
                results[i]["times"] += result.pop("times")
                results[i].update(result)
    by_mode: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for (mode, worker), result in zip(workers, results, strict=True):
        assert worker.stdin
        worker.stdin.close()
        worker.wait()
        by_mode[mode].append(result)
    return by_mode


def main() -> None:
    libs = fixtures(workdir())
    names = json.dumps(many_class_names())
    rows, verdicts = [], []
    for setting, target in TARGETS.items():
        by_mode = measure(libs["many"], names, setting)
        pooled = {mode: [t for r in runs for t in r["times"]] for mode, runs in by_mode.items()}
        medians = {mode: [median(r["times"]) for r in runs] for mode, runs in by_mode.items()}
        base = median(pooled["never imported"])
        for mode, runs in by_mode.items():
            ratio = median(pooled[mode]) / base
            low, high = interval(medians["never imported"], medians[mode])
            spread = [m / base for m in medians[mode]]
            baseline, imported = mode == "never imported", MODES[mode] in ("startup", "api")
            rows.append([setting, mode, len(pooled[mode]), f"{median(pooled[mode]) / 1000:.1f}",
                         f"{ratio:.4f}", "-" if baseline else f"{low:.3f}-{high:.3f}",
                         f"{min(spread):.3f}-{max(spread):.3f}",
                         f"{median([r['rss_kib'] for r in runs]) / 1024:.1f}",
                         f"{median([r['rss_added_kib'] for r in runs])}" if imported else "-"])
            if imported:
                noise = ", within noise" if low <= target < high else ""
                verdicts.append(f"{setting}, {mode}: {ratio:.4f}, 90 % interval {low:.3f}-"
                                f"{high:.3f} (target <= {target}: "
                                f"{'met' if ratio <= target else 'NOT met'}{noise})")
    table(f"fork + _exit + waitpid ({PROCESSES} processes per variant, interleaved batches; "
          "ratio of medians to never imported)",
          ["setting", "variant", "forks", "median us", "ratio", "90 % interval",
           "process medians", "RSS MB", "RSS added by import+install, KiB"], rows)
    print("\n" + "\n".join(verdicts))
    same_process(libs["many"], names)


SAME_PROCESS = r"""
import ctypes, json, os, statistics, sys, threading, time
ctypes.CDLL("libobjc.so.4"); ctypes.CDLL(sys.argv[1])
ballast = [{"n": i, "s": str(i) * 3} for i in range(int(sys.argv[3]) * 4300)]
import objcprefork
names = json.loads(sys.argv[2])
thread = threading.Thread(target=lambda: None); thread.start(); thread.join()
from _forks import timed_forks
def batch(n=20):
    return timed_forks(n)
on, off = [], []
for _ in range(60):
    objcprefork.install(names, defaults=False); on += batch()
    objcprefork.uninstall(); off += batch()
print(json.dumps([statistics.median(on), statistics.median(off)]))
"""


def same_process(library: object, names: str) -> None:
    """The handler and the hook alone: one process, batches alternating
    installed / uninstalled (hook and handler registered, inert), so memory
    and layout are the same for both."""
    rows = []
    for setting, megabytes in SETTINGS.items():
        out = subprocess.run([sys.executable, "-c", SAME_PROCESS, str(library), names,
                              str(megabytes)], capture_output=True, text=True, check=True,
                             cwd=REPO / "benchmarks").stdout
        on, off = json.loads(out)
        rows.append([setting, f"{on / 1000:.1f}", f"{off / 1000:.1f}", f"{on / off:.4f}"])
    table("same process, installed vs uninstalled (median us)",
          ["setting", "installed", "uninstalled", "ratio"], rows)


if __name__ == "__main__":
    main()
