"""Fork cost where objcprefork has nothing to force, the two cases the fork-time
contract is about (docs/design.md, "Inside the fork"):

- no Objective-C runtime loaded at all (Linux, installed for the macOS
  developers of the same app): each os.fork runs the before-fork hook, which
  must cost one count of loaded libraries, not a search for the runtime;
- 4,095 listed classes that are never loaded: the hook must not look them up
  again while the runtime tells of no new class.

Each variant runs in several long-lived processes beside processes that never
imported objcprefork, batches interleaved; the first fork of each process is
untimed (the first fork after a dlopen is slow). Printed: the ratio of medians
to never imported, and its range over pairs of processes (target <= 1.01);
the before-fork hook alone (core.force(), warm, including the Python call),
in ns per call. The fork handler itself is not registered on Linux and is one
store on macOS (docs/design.md, "Inside the fork")."""

from __future__ import annotations

import json
import subprocess
import sys

from _common import REPO, median, table

WORKER = r"""
import ctypes, json, os, sys, threading, time
mode = sys.argv[1]
if "libobjc" in mode or mode == "4095 absent":
    ctypes.CDLL("libobjc.so.4")
if "names" in mode:  # the Python garbage of a list of names, without the list in objcprefork
    names = dict.fromkeys([f"Absent{i}" for i in range(4095)], "install()")
    del names
if not mode.startswith("never imported"):
    import objcprefork
if mode in ("no runtime", "installed, libobjc, 4095 names"):
    objcprefork.install()
elif mode == "4095 absent":
    objcprefork.install([f"Absent{i}" for i in range(4095)], defaults=False)
    assert objcprefork.status().load_signal, "needs the load signal"
thread = threading.Thread(target=int); thread.start(); thread.join()
hook_ns = 0.0
sys.stdin.readline()  # measured one process at a time
if not mode.startswith("never imported"):  # the before-fork hook alone, warm
    from objcprefork._native import core
    calls = 200000
    start = time.perf_counter_ns()
    for _ in range(calls):
        core.force()
    hook_ns = (time.perf_counter_ns() - start) / calls
from _forks import timed_forks
timed_forks(1)  # untimed: the first fork after the loads
print(json.dumps(hook_ns), flush=True)
for line in sys.stdin:
    print(json.dumps(timed_forks(int(line))), flush=True)
"""

# Each variant against a baseline that maps the same libraries; "4095 absent"
# also against objcprefork installed with its default list, which shows what
# the long list adds to what importing objcprefork costs ("no runtime").
PAIRS = [("no runtime", "never imported"),
         ("4095 absent", "never imported, libobjc, 4095 names"),
         ("4095 absent", "installed, libobjc, 4095 names")]
MODES = tuple(dict.fromkeys(mode for pair in PAIRS for mode in reversed(pair)))
PROCESSES, ROUNDS, BATCH = 24, 20, 20


def main() -> None:
    workers = [(mode, subprocess.Popen([sys.executable, "-c", WORKER, mode], text=True,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       cwd=REPO / "benchmarks"))
               for _ in range(PROCESSES) for mode in MODES]
    times: dict[str, list[list[int]]] = {mode: [[] for _ in range(PROCESSES)] for mode in MODES}
    hook: dict[str, list[float]] = {mode: [] for mode in MODES}
    for mode, worker in workers:
        assert worker.stdin and worker.stdout
        worker.stdin.write("hook\n")
        worker.stdin.flush()
        hook[mode].append(json.loads(worker.stdout.readline()))
    for round_ in range(ROUNDS):
        order = workers[round_ % len(workers):] + workers[:round_ % len(workers)]
        for mode, worker in order:
            assert worker.stdin and worker.stdout
            worker.stdin.write(f"{BATCH}\n")
            worker.stdin.flush()
            index = [w for m, w in workers if m == mode].index(worker)
            times[mode][index] += json.loads(worker.stdout.readline())
    for _mode, worker in workers:
        assert worker.stdin
        worker.stdin.close()
        worker.wait()
    rows = []
    for mode, baseline in PAIRS:
        base = median([t for run in times[baseline] for t in run])
        pooled = median([t for run in times[mode] for t in run])
        pairs = [median(run) / median(ref) for run, ref in zip(times[mode], times[baseline],
                                                                strict=True)]
        rows.append([mode, baseline, f"{pooled / 1000:.1f}", f"{pooled / base:.4f}",
                     f"{min(pairs):.3f}-{max(pairs):.3f}", f"{median(hook[mode]):.0f}"])
    table(f"os.fork + _exit + waitpid, nothing to force ({PROCESSES} processes per variant, "
          "interleaved; target <= 1.01)",
          ["variant", "against", "median us", "ratio", "pair range", "hook ns"], rows)


if __name__ == "__main__":
    main()
