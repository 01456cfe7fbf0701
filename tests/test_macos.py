"""Against Apple's real libobjc: only macOS can run these, and on macOS they
must fail loudly rather than pass vacuously (the unprotected child has to die
with Apple's message, or the test fails)."""

from __future__ import annotations

import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "darwin", reason="needs Apple's libobjc")

SCENARIO = """
import ctypes, ctypes.util, json, os, signal, sys, threading
cf = ctypes.CDLL(ctypes.util.find_library("CoreFoundation"))
cf.CFStringCreateWithCString.restype = ctypes.c_void_p
cf.CFStringCreateWithCString.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
cf.CFStringCreateMutableCopy.restype = ctypes.c_void_p
cf.CFStringCreateMutableCopy.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p]
if sys.argv[1] == "install":
    import objcprefork
    objcprefork.install()
thread = threading.Thread(target=lambda: None); thread.start(); thread.join()
pid = os.fork()
if pid == 0:
    text = cf.CFStringCreateWithCString(None, b"objcprefork", 0x08000100)
    os._exit(0 if cf.CFStringCreateMutableCopy(None, 0, text) else 1)
status = os.waitpid(pid, 0)[1]
print(json.dumps(signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status)
                 else os.WEXITSTATUS(status)))
"""


def test_cfstring_child_dies_without_objcprefork(run_command):
    run = run_command([sys.executable, "-c", SCENARIO, "plain"])
    assert run.stdout.strip() == '"SIGABRT"', run.stderr
    assert "may have been in progress in another thread when fork() was called" in run.stderr


def test_cfstring_child_lives_with_objcprefork(run_command):
    run = run_command([sys.executable, "-c", SCENARIO, "install"])
    assert run.stdout.strip() == "0", run.stderr
    assert "may have been in progress" not in run.stderr


def test_runtime_is_apples(run_command):
    run = run_command([sys.executable, "-c", "import objcprefork; "
                       "print(objcprefork.install().runtime)"])
    assert run.stdout.strip() == "/usr/lib/libobjc.A.dylib"
