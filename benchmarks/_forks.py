"""Imported by the benchmarks' worker processes (run from this folder): the
one timed fork loop, light enough to import before measuring."""

import os
import time


def timed_forks(count: int) -> list[int]:
    """fork + _exit + waitpid, count times: each one's nanoseconds."""
    times = []
    for _ in range(count):
        start = time.perf_counter_ns()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        times.append(time.perf_counter_ns() - start)
    return times
