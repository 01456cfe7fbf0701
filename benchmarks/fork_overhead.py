"""Fork overhead: fork + _exit + waitpid, without objcprefork and with it
installed holding 20 and 200 already-initialized classes: activated the way
OBJCPREFORK=1 does it at start-up, and through install(); fork time grows with
the memory of the process, so imports show up too, and a variant that only
imports the package isolates that.

Every variant runs in three long-lived processes (one process alone can be
a few percent faster or slower than another for reasons of its own, such as
where its memory landed), and the driver interleaves their batches, so that
machine noise falls on all alike. All variants have the
same 200 classes initialized (by hand where objcprefork does not do it), since
initialized classes cost the runtime memory, and so fork time, whoever
initializes them. Target: median ratio <= 1.02 at 200 classes. The handler's
counters time only the forks where it had work (classes to look up or force)."""

from __future__ import annotations

import json
import subprocess
import sys

from _common import REPO, fixtures, many_class_names, median, table, workdir

WORKER = r"""
import ctypes, json, os, sys, threading, time
objc = ctypes.CDLL("libobjc.so.4")
ctypes.CDLL(sys.argv[1])
mode, count = sys.argv[2], int(sys.argv[3])
names = json.loads(sys.argv[4])
objc.objc_lookUpClass.restype = objc.sel_registerName.restype = ctypes.c_void_p
objc.objc_lookUpClass.argtypes = objc.sel_registerName.argtypes = [ctypes.c_char_p]
objc.class_getMethodImplementation.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
self_sel = objc.sel_registerName(b"self")
for name in names:  # initialize every class, as objcprefork would
    objc.class_getMethodImplementation(objc.objc_lookUpClass(name.encode()), self_sel)
if mode != "none":
    import objcprefork
    from objcprefork._native import core
if mode == "api":
    objcprefork.install(names[:count], defaults=False)
if mode == "startup":  # what OBJCPREFORK=1 does at interpreter start: no Status built
    objcprefork._install(tuple(names[:count]))
if mode == "missing":  # listed classes absent: every fork looks them up again
    objcprefork._install(objcprefork.DEFAULT_CLASSES)
    count = len(objcprefork.DEFAULT_CLASSES)
elif count:
    assert list(core.snapshot()["classes"].values()) == ["initialized"] * count
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
    handler = core.snapshot()["handler_last_ns"] if count else None
    print(json.dumps({"times": times, "handler_ns": handler}), flush=True)
"""

VARIANTS = {  # label: (how, classes it holds)
    "without objcprefork": ("none", 0),
    "imported, not installed": ("imported", 0),
    "activated as at start-up, 20 classes": ("startup", 20),
    "activated as at start-up, 200 classes": ("startup", 200),
    "install() from the API, 200 classes": ("api", 200),
    "default list, its classes not loaded (Linux)": ("missing", 0),
}
ROUNDS, BATCH, PROCESSES = 40, 20, 3


def main() -> None:
    libs = fixtures(workdir())
    names = json.dumps(many_class_names())
    workers = [(label, subprocess.Popen(
        [sys.executable, "-c", WORKER, str(libs["many"]), how, str(count), names],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO / "benchmarks"))
        for _ in range(PROCESSES) for label, (how, count) in VARIANTS.items()]
    labels = list(VARIANTS)
    times: dict[str, list[int]] = {label: [] for label in labels}
    handler: dict[str, list[int]] = {label: [] for label in labels}
    for round_ in range(ROUNDS + 1):
        shift = round_ % len(workers)
        for label, worker in workers[shift:] + workers[:shift]:
            assert worker.stdin and worker.stdout
            worker.stdin.write(f"{BATCH}\n")
            worker.stdin.flush()
            result = json.loads(worker.stdout.readline())
            if round_:  # the first round warms up
                times[label] += result["times"]
                if result["handler_ns"] is not None:
                    handler[label].append(result["handler_ns"])
    for _label, worker in workers:
        assert worker.stdin
        worker.stdin.close()
        worker.wait()
    bare, imported = median(times[labels[0]]), median(times[labels[1]])
    rows = [[label, len(times[label]), f"{median(times[label]) / 1000:.1f}",
             f"{median(times[label]) / bare:.4f}", f"{median(times[label]) / imported:.4f}",
             (f"{median(handler[label]):.0f}" if median(handler[label]) else "no work")
             if handler[label] else "-"] for label in labels]
    table("fork + _exit + waitpid (interleaved batches; medians)",
          ["variant", "forks", "median us", "ratio", "ratio to imported",
           "handler ns when it had work (median)"], rows)
    at_200 = median(times[labels[3]])
    print(f"\ntarget: ratio <= 1.02 at 200 classes: {at_200 / imported:.4f} against the same "
          f"process with objcprefork imported, not installed "
          f"({'met' if at_200 / imported <= 1.02 else 'NOT met'}); {at_200 / bare:.4f} against "
          "one that never imported it (fork time grows with memory)")
    print("once warm the handler has no work: it reads three flags and returns, untimed "
          "(the before-fork hook forced every class, outside the fork)")


if __name__ == "__main__":
    main()
