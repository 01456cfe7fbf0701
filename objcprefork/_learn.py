"""`objcprefork run --learn`: run CMD once as a child, read its stderr as it
flows through, and record the classes its fork children needed.

For that run only, the runtime is told to log every +initialize
(OBJC_PRINT_INITIALIZE_METHODS=YES) and not to enforce the check
(OBJC_DISABLE_INITIALIZE_FORK_SAFETY=YES), both before CMD starts, where objc
reads them. objcprefork, active in each Python process of CMD, says which
processes are fork children of a threaded parent and which exec'd
(_startup.announce_for_learning). The classes such a child initializes,
before any exec, are what its parent must force. Apple's crash message is
still read, for runtimes that cannot log: one class per crashing run.

CMD's output is not trusted: only whole lines that start as the runtime's
own do, each screened by substring before any pattern runs, and every set is
bounded."""

from __future__ import annotations

import os
import re
import signal
import sys

from ._crashlog import INITIALIZE_CALL, _classes_in
from ._names import is_class_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

MAX_LEARNT = 256  # classes one run may add
MAX_LINE = 1 << 16  # a longer line is dropped whole, never read from its middle
MAX_PIDS, MAX_TRIVIAL = 1 << 12, 1 << 16
GRACE = 1.0  # seconds read after CMD exits: a descendant may hold its stderr open
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
ANNOUNCE = re.compile(rb"objcprefork\[(\d{1,10})\]: learn: (fork child of a threaded parent"
                      rb"|exec|trivial)(.*)")
ANNOUNCE_LINES = re.compile(rb"(?m)^objcprefork\[\d+\]: learn: [^\n]*\n")


class Learner:
    """Learns from CMD's stderr, one whole line at a time."""

    def __init__(self) -> None:
        self.learnt: dict[str, None] = {}
        self.trivial: set[str] = set()
        self.restricted: set[str] = set()
        self.children: set[str] = set()

    def result(self) -> tuple[str, ...]:
        return tuple(name for name in self.learnt if name not in self.trivial)

    def learn(self, name: str) -> None:
        if len(self.learnt) < MAX_LEARNT and name not in self.trivial and is_class_name(name):
            self.learnt.setdefault(name, None)

    def feed(self, line: bytes) -> None:
        if line.startswith(b"objcprefork["):
            announce = ANNOUNCE.fullmatch(line)
            if announce is None:
                return
            pid, what = announce.group(1).decode(), announce.group(2)
            if what == b"exec":
                self.restricted.discard(pid)
            elif what == b"trivial":
                for name in announce.group(3).decode("utf-8", "replace").split():
                    if len(self.trivial) >= MAX_TRIVIAL:
                        break
                    self.trivial.add(name)
            elif len(self.restricted) < MAX_PIDS:
                self.restricted.add(pid)
                self.children.add(pid)
            return
        if not line.startswith(b"objc["):
            return  # only the runtime's own lines, never a log line quoting one
        if b"INITIALIZE: " in line:
            if self.restricted:
                call = INITIALIZE_CALL.match(line.decode("utf-8", "replace"))
                if call and call.group(1) in self.restricted:
                    self.learn(call.group(2))
        elif b"initialize]" in line:  # Apple's message, where the runtime cannot log
            for _at, name in _classes_in(line.decode("utf-8", "replace")):
                self.learn(name)


class Lines:
    """Splits a byte stream into whole lines; a line longer than MAX_LINE is
    dropped whole, so its tail can never pass for a line of its own."""

    def __init__(self) -> None:
        self.pending, self.skipping = b"", False

    def split(self, chunk: bytes) -> list[bytes]:
        lines = (self.pending + chunk).split(b"\n")
        self.pending = lines.pop()
        if self.skipping and lines:
            del lines[0]
            self.skipping = False
        elif self.skipping:
            self.pending = b""
        if len(self.pending) > MAX_LINE:
            self.pending, self.skipping = b"", True
        return [line.rstrip(b"\r") for line in lines]

    def end(self) -> list[bytes]:
        return [] if self.skipping or not self.pending else [self.pending.rstrip(b"\r")]


def learn(command: list[str], env: dict[str, str], config: str,
          record: Callable[[str, tuple[str, ...], str], None]) -> int:
    """Run command under env, learning; record(config, classes) saves them.
    Returns CMD's exit status (or dies by its signal, or by one received
    after CMD was gone, once what was learnt is saved)."""
    import select
    import subprocess
    import time

    env = {**env, "OBJCPREFORK_LEARN": "1", "OBJC_PRINT_INITIALIZE_METHODS": "YES",
           "OBJC_DISABLE_INITIALIZE_FORK_SAFETY": "YES"}
    reader, writer = _stderr_for(sys.stderr)
    try:
        child = subprocess.Popen(command, env=env, stderr=writer)
    except OSError:
        os.close(reader)
        raise
    finally:
        os.close(writer)
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        # Ctrl-C reaches CMD from the terminal itself (same process group):
        # forward SIGINT only when it did not come that way.
        if not (signum == signal.SIGINT and foreground()):
            child.send_signal(signum)  # polls first: nothing to a CMD already gone
        if child.returncode is not None:
            received.append(signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    learner, lines, out = Learner(), Lines(), sys.stderr.buffer
    deadline = None
    while not received:
        if deadline is None and child.poll() is not None:
            deadline = time.monotonic() + GRACE
        wait = 0.2 if deadline is None else deadline - time.monotonic()
        if wait <= 0:
            break
        if not select.select([reader], [], [], wait)[0]:
            continue
        try:
            chunk = os.read(reader, 65536)
        except OSError:  # EIO: the pty's other side is closed
            chunk = b""
        if not chunk:
            break
        out.write(ANNOUNCE_LINES.sub(b"", chunk))
        out.flush()
        for line in lines.split(chunk):
            learner.feed(line)
    for line in lines.end():
        learner.feed(line)
    os.close(reader)
    code = child.wait()
    learnt = learner.result()
    if learnt:
        print(f"objcprefork run --learn: learnt {len(learnt)} class(es) from "
              f"{max(len(learner.children), 1)} child process(es): {', '.join(learnt)}",
              file=sys.stderr)
        record(config, learnt, "run --learn")
    else:
        print("objcprefork run --learn: nothing to learn: no fork child of a threaded parent "
              "initialized a class, and no fork-safety crash was seen", file=sys.stderr)
    for signum in FORWARDED:
        signal.signal(signum, signal.SIG_DFL)
    die = received[0] if received else -code if code < 0 else 0
    if die:  # as CMD did, or by the signal that ended the wait: the shell sees it
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), die)
    return code


def _stderr_for(stream: TextIO) -> tuple[int, int]:
    """(reader, writer) for CMD's stderr: a pty when ours is a terminal, so
    that CMD keeps its \\r progress lines and colours; else a pipe."""
    if not stream.isatty():
        return os.pipe()
    import fcntl
    import pty
    import termios

    reader, writer = pty.openpty()
    try:
        size = fcntl.ioctl(stream.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(writer, termios.TIOCSWINSZ, size)
    except OSError:
        pass
    return reader, writer


def foreground() -> bool:
    """Whether this process group owns the controlling terminal."""
    for stream in (sys.stdin, sys.stderr):
        try:
            if stream.isatty() and os.tcgetpgrp(stream.fileno()) == os.getpgrp():
                return True
        except (OSError, ValueError):
            pass
    return False
