"""Crash-log reader on 1 MB of hostile input: every pattern must be linear.
0.1.0's took 5.4 s on 32 KB of "+[" (quadratic). Target: 1 MB well under 1 s."""

from __future__ import annotations

import time

from _common import table

from objcprefork._crashlog import read_report

CHUNKS = [b"+[", b"+[A", b"gss_", b"LaunchServices", b"refusing to call +[",
          b"objc[1]: +[NSString initialize] may have been in progress in another thread "
          b"when fork() was called.\n"]


def main() -> None:
    rows = []
    for chunk in CHUNKS:
        data = chunk * ((1 << 20) // len(chunk))
        start = time.perf_counter()
        read_report(data)
        elapsed_ms = (time.perf_counter() - start) * 1000
        rows.append([repr(chunk[:24]), f"{len(data):,}", f"{elapsed_ms:.0f}"])
    table("read_report on 1 MB of one repeated chunk (ms)", ["chunk", "bytes", "ms"], rows)


if __name__ == "__main__":
    main()
