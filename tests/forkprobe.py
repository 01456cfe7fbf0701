"""Imported by the test subprocesses: load the Objective-C fixtures, make the
process threaded, fork children that touch classes, and describe how they ended.

A scenario prints one JSON line per fact it wants the test to check."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

FIXTURES = Path(os.environ.get("OBJCPREFORK_FIXTURES", "."))
APPLE = sys.platform == "darwin"
# The runtime the fixtures are built against (tests/objc/build.py).
RUNTIME = "/usr/lib/libobjc.A.dylib" if APPLE else "libobjc.so.4"
objc: ctypes.CDLL | None = None
_fixtures: ctypes.CDLL | None = None


class _Fixtures:
    """libfixtures.so once load() has run; stays valid after 'from forkprobe import *'."""

    def __getattr__(self, name: str) -> object:
        assert _fixtures is not None, "load() has not loaded the fixtures"
        return getattr(_fixtures, name)


fx = _Fixtures()


def load(*, fixtures: bool = True) -> None:
    """Load the runtime (RTLD_LOCAL, ctypes' default) and the classes; on Linux
    also the emulation of Apple's check, which macOS's own runtime enforces."""
    global objc, _fixtures
    objc = ctypes.CDLL(RUNTIME)
    for fn, restype, argtypes in [
        ("objc_lookUpClass", ctypes.c_void_p, [ctypes.c_char_p]),
        ("sel_registerName", ctypes.c_void_p, [ctypes.c_char_p]),
    ]:
        getattr(objc, fn).restype = restype
        getattr(objc, fn).argtypes = argtypes
    if not APPLE:
        objc.objc_msg_lookup.restype = ctypes.c_void_p
        objc.objc_msg_lookup.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        # Global, so that its objc_registerClassPair comes before libobjc's
        # for every library loaded later (the fixtures, GNUstep Foundation).
        ctypes.CDLL(str(FIXTURES / "libforksafety.so"), mode=ctypes.RTLD_GLOBAL)
    if fixtures:
        _fixtures = ctypes.CDLL(str(FIXTURES / "libfixtures.so"))


def load_late() -> ctypes.CDLL:
    return ctypes.CDLL(str(FIXTURES / "liblate.so"))


def load_gnustep() -> None:
    """Load GNUstep Foundation and give this thread an autorelease pool."""
    ctypes.CDLL(ctypes.util.find_library("gnustep-base"), mode=ctypes.RTLD_GLOBAL)
    pool = send(send(cls("NSAutoreleasePool"), "alloc"), "init")
    assert pool


def cls(name: str) -> int:
    assert objc is not None
    found = objc.objc_lookUpClass(name.encode())
    assert found, f"class {name} is not loaded"
    return int(found)


def send(receiver: int, selector: str, *args: object, restype: object = ctypes.c_void_p,
         argtypes: tuple[object, ...] = ()) -> object:
    """An Objective-C message send: [receiver selector...]. Apple's runtime
    sends through objc_msgSend, called with the method's own prototype (never
    as a variadic function: arm64 passes those differently); GCC's looks the
    method up with objc_msg_lookup, then calls it."""
    assert objc is not None
    sel = objc.sel_registerName(selector.encode())
    prototype = ctypes.CFUNCTYPE(restype, ctypes.c_void_p, ctypes.c_void_p, *argtypes)
    if APPLE:
        function = prototype(ctypes.cast(objc.objc_msgSend, ctypes.c_void_p).value)
    else:
        function = prototype(objc.objc_msg_lookup(receiver, sel))
    return function(receiver, sel, *args)


def threaded_parent(installed: list[str] | None) -> None:
    """Load the fixtures, install objcprefork for these classes (None: not at
    all), and make the process threaded: the parent of most scenarios."""
    load()
    if installed is not None:
        import objcprefork

        objcprefork.install(installed, defaults=False)
    make_threaded()


_idle_thread = threading.Event()


def make_threaded() -> None:
    """What Apple checks is whether the process ever created a thread. glibc
    remembers that; on other libcs the emulation sees only live threads, so
    one stays, idle."""
    if platform.libc_ver()[0] == "glibc":
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()
    else:
        threading.Thread(target=_idle_thread.wait, daemon=True).start()


def touch(*names: str) -> None:
    for name in names:
        if fx.fx_touch(name.encode()) != 0:
            os._exit(3)


def touch_returning(name: str) -> int:
    """For pools: touch one class, return fx_touch's result."""
    return int(fx.fx_touch(name.encode()))


def describe(wait_status: int) -> str:
    if os.WIFSIGNALED(wait_status):
        return signal.Signals(os.WTERMSIG(wait_status)).name
    return f"exit {os.WEXITSTATUS(wait_status)}"


def fork_and(action: Callable[[], None]) -> str:
    """Fork; the child runs action then exits 0. Returns how the child ended."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            action()
        finally:
            os._exit(0)
    return describe(os.waitpid(pid, 0)[1])


def start_process(how: str, action: Callable[[], None]) -> str:
    """Runs action in a child started the way a server would: "fork"
    (os.fork) or "multiprocessing" (a fork-context Process); how it ended."""
    if how == "multiprocessing":
        import multiprocessing

        process = multiprocessing.get_context("fork").Process(target=action)
        process.start()
        process.join()
        code = process.exitcode
        return f"exit {code}" if code >= 0 else signal.Signals(-code).name
    return fork_and(action)


def fork_again(how: str) -> str:
    """Forks a child that does nothing: by os.fork, multiprocessing, or
    subprocess (which execs a new interpreter); how it ended."""
    if how == "subprocess":
        import subprocess

        return f"exit {subprocess.run([sys.executable, '-c', 'pass']).returncode}"
    return start_process(how, lambda: None)


def fork_touching(*names: str) -> str:
    return fork_and(lambda: touch(*names))


def report(**facts: object) -> None:
    print(json.dumps(facts), flush=True)
