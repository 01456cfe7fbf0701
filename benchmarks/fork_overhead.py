"""Fork overhead: fork + _exit + waitpid from Python, in a process that never
imported objcprefork and in processes where it is switched on with 200
already-initialized classes (as start-up activation does it, and through
install()), each bare and holding about 50 MB of Python objects (a small app).

The ratio is taken against the process that never imported objcprefork,
because that is what a user compares with. Fork time grows with the memory a
process maps (page tables are copied), so what objcprefork imports counts as
much as what its handler does. Every variant runs in three long-lived
processes and the driver interleaves their batches, so machine noise falls on
all alike; every process has the same 200 classes initialized (by hand where
objcprefork does not do it), since initialized classes cost the runtime memory
whoever initializes them. The spread is the range of the three processes'
own medians. Also printed: the resident memory that `import objcprefork;
install()` adds. Targets: ratio <= 1.03 bare, <= 1.01 at 50 MB."""

from __future__ import annotations

import json
import subprocess
import sys

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
if mode == "startup":  # what OBJCPREFORK=1 does at interpreter start
    import objcprefork
    objcprefork._install(dict.fromkeys(names, "benchmark"))
elif mode == "api":
    import objcprefork
    objcprefork.install(names, defaults=False)
    objcprefork.status()
added = rss_kib() - before
if mode != "none":
    from objcprefork._native import core
    assert list(core.snapshot()["classes"].values()) == ["initialized"] * len(names)
thread = threading.Thread(target=lambda: None); thread.start(); thread.join()
for line in sys.stdin:
    times = []
    for _ in range(int(line)):
        start = time.perf_counter_ns()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        times.append(time.perf_counter_ns() - start)
    print(json.dumps({"times": times, "rss_added_kib": added, "rss_kib": rss_kib()}),
          flush=True)
"""

SETTINGS = {"bare": 0, "50 MB of objects": 50}
MODES = {"never imported": "none", "start-up activation, 200 classes": "startup",
         "install(), 200 classes": "api"}
TARGETS = {"bare": 1.03, "50 MB of objects": 1.01}
ROUNDS, BATCH, PROCESSES = 40, 20, 3


def main() -> None:
    libs = fixtures(workdir())
    names = json.dumps(many_class_names())
    keys = [(setting, mode) for setting in SETTINGS for mode in MODES]
    workers = [((setting, mode), subprocess.Popen(
        [sys.executable, "-c", WORKER, str(libs["many"]), MODES[mode], str(SETTINGS[setting]),
         names], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=REPO / "benchmarks")) for _ in range(PROCESSES) for setting, mode in keys]
    times: dict[tuple[str, str], list[int]] = {key: [] for key in keys}
    per_process: dict[int, list[int]] = {i: [] for i in range(len(workers))}
    rss: dict[tuple[str, str], list[int]] = {key: [] for key in keys}
    added: dict[tuple[str, str], list[int]] = {key: [] for key in keys}
    for round_ in range(ROUNDS + 1):
        shift = round_ % len(workers)
        order = list(range(len(workers)))[shift:] + list(range(len(workers)))[:shift]
        for i in order:
            key, worker = workers[i]
            assert worker.stdin and worker.stdout
            worker.stdin.write(f"{BATCH}\n")
            worker.stdin.flush()
            result = json.loads(worker.stdout.readline())
            if round_:  # the first round warms up
                times[key] += result["times"]
                per_process[i] += result["times"]
                rss[key].append(result["rss_kib"])
                added[key].append(result["rss_added_kib"])
    for _key, worker in workers:
        assert worker.stdin
        worker.stdin.close()
        worker.wait()
    rows, verdicts = [], []
    for setting in SETTINGS:
        base = median(times[(setting, "never imported")])
        for mode in MODES:
            key = (setting, mode)
            spread = [median(per_process[i]) / base for i, (k, _w) in enumerate(workers)
                      if k == key]
            ratio = median(times[key]) / base
            rows.append([setting, mode, len(times[key]), f"{median(times[key]) / 1000:.1f}",
                         f"{ratio:.4f}", f"{min(spread):.3f}-{max(spread):.3f}",
                         f"{median(rss[key]) / 1024:.1f}",
                         "-" if mode == "never imported" else f"{median(added[key])}"])
            if mode != "never imported":
                verdicts.append(f"{setting}, {mode}: {ratio:.4f} (target <= {TARGETS[setting]}: "
                                f"{'met' if ratio <= TARGETS[setting] else 'NOT met'})")
    table("fork + _exit + waitpid (interleaved batches; medians; ratio to never imported)",
          ["setting", "variant", "forks", "median us", "ratio", "spread of processes",
           "RSS MB", "RSS added by import+install, KiB"], rows)
    print("\n" + "\n".join(verdicts))
    same_process(libs["many"], names)


SAME_PROCESS = r"""
import ctypes, json, os, statistics, sys, threading, time
ctypes.CDLL("libobjc.so.4"); ctypes.CDLL(sys.argv[1])
ballast = [{"n": i, "s": str(i) * 3} for i in range(int(sys.argv[3]) * 4300)]
import objcprefork
names = json.loads(sys.argv[2])
thread = threading.Thread(target=lambda: None); thread.start(); thread.join()
def batch(n=20):
    out = []
    for _ in range(n):
        start = time.perf_counter_ns(); pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0); out.append(time.perf_counter_ns() - start)
    return out
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
