"""make demo: a threaded parent forks children that touch an Objective-C class
whose +initialize has not run, before and after objcprefork.install().

On macOS the class is Apple's (CFStringCreateMutableCopy, through ctypes); on
Linux it is a fixture class, under the emulation of Apple's check."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import objcprefork


def linux_setup() -> tuple[Callable[[], None], list[str] | None, str]:
    sys.path.insert(0, str(Path(__file__).parent / "objc"))
    from build import build

    libs = build(Path(tempfile.mkdtemp(prefix="objcprefork-demo-")))
    ctypes.CDLL("libobjc.so.4")
    ctypes.CDLL(str(libs["forksafety"]))
    fixtures = ctypes.CDLL(str(libs["fixtures"]))
    return (lambda: fixtures.fx_touch(b"FXAlpha")), ["FXAlpha"], \
        "Linux: GCC's libobjc with the emulation of Apple's check; class FXAlpha"


def macos_setup() -> tuple[Callable[[], None], list[str] | None, str]:
    cf = ctypes.CDLL(ctypes.util.find_library("CoreFoundation"))
    cf.CFStringCreateWithCString.restype = ctypes.c_void_p
    cf.CFStringCreateWithCString.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
    cf.CFStringCreateMutableCopy.restype = ctypes.c_void_p
    cf.CFStringCreateMutableCopy.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p]

    def touch() -> None:
        text = cf.CFStringCreateWithCString(None, b"objcprefork demo", 0x08000100)  # UTF-8
        cf.CFStringCreateMutableCopy(None, 0, text)

    return touch, None, "macOS: Apple's libobjc; CFStringCreateMutableCopy in the child"


def fork_child(touch: Callable[[], None]) -> tuple[str, str]:
    """Fork a child that runs touch(); return how it ended and what it printed."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.dup2(write_end, 2)
        touch()
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, errors="replace") as pipe:
        printed = pipe.read()
    status = os.waitpid(pid, 0)[1]
    if os.WIFSIGNALED(status):
        ended = f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    else:
        ended = f"exited with status {os.WEXITSTATUS(status)}"
    return ended, printed.strip()


def column(title: str, ended: str, printed: str, width: int) -> list[str]:
    lines = [title, "-" * len(title), f"child {ended}"]
    for line in printed.splitlines() or ["(printed nothing)"]:
        lines += textwrap.wrap(line, width) or [""]
    return lines


def main() -> int:
    touch, classes, where = macos_setup() if sys.platform == "darwin" else linux_setup()
    worker = threading.Thread(target=lambda: None)  # a parent that was ever threaded
    worker.start()
    worker.join()

    before = fork_child(touch)
    objcprefork.install(classes)
    after = fork_child(touch)

    width = 58
    left = column("without objcprefork", *before, width)
    right = column(f"with objcprefork.install({classes or ''})", *after, width)
    print(f"objcprefork demo — {where}\n")
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        print(f"{a:<{width}} | {b}")
    print()
    print(objcprefork.status())
    died = "killed" in before[0]
    lived = after[0] == "exited with status 0"
    print("\nresult:", "as expected: the child dies without objcprefork and lives with it"
          if died and lived else "UNEXPECTED: see the columns above")
    return 0 if died and lived else 1


if __name__ == "__main__":
    sys.exit(main())
