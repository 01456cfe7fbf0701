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
Those log lines are kept out of what the user sees (unless --verbose), each
whole line; the rest of CMD's stderr passes unchanged.

CMD's output is not trusted: only whole lines that start as the runtime's
own do, each screened by substring before any pattern runs, and every set is
bounded."""

from __future__ import annotations

import os
import signal
import sys

from ._crashlog import InitializeLog, _classes_in
from ._names import is_class_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

MAX_LEARNT = 256  # classes one run may add
MAX_LINE = 1 << 16  # a longer line is dropped whole, never read from its middle
GRACE = 1.0  # seconds read after CMD exits: a descendant may hold its stderr open
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
KEYBOARD = (signal.SIGINT, signal.SIGQUIT)  # a terminal sends them to its foreground group


class Learner:
    """Learns from CMD's stderr, one whole line at a time: what the fork
    children initialized (InitializeLog, the rule `explain` follows too), and
    the classes in Apple's crash message."""

    def __init__(self) -> None:
        self.log = InitializeLog()
        self.crashed: dict[str, None] = {}

    def result(self) -> tuple[str, ...]:
        names = dict.fromkeys((*self.log.classes(), *self.crashed))
        return tuple(name for name in names if name not in self.log.trivial)[:MAX_LEARNT]

    def feed(self, line: bytes) -> None:
        if line.startswith(b"objcprefork[") or (line.startswith(b"objc[")
                                                and b"INITIALIZE: " in line):
            self.log.feed(line.decode("utf-8", "replace"))
        elif line.startswith(b"objc[") and b"initialize]" in line:
            # Apple's message, where the runtime cannot log; only the
            # runtime's own lines, never a log line quoting one
            for _at, name in _classes_in(line.decode("utf-8", "replace")):
                if len(self.crashed) < MAX_LEARNT and is_class_name(name):
                    self.crashed.setdefault(name, None)


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
          record: Callable[[str, tuple[str, ...], str], None], verbose: bool = False) -> int:
    """Run command under env, learning; record(config, classes) saves them.
    Returns CMD's exit status (or dies by its signal, or by one received
    after CMD was gone, once what was learnt is saved). CMD's stderr is
    passed on without the log lines, unless verbose."""
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
        # CMD is in this process group: a key pressed on the terminal whose
        # foreground group this is has reached it already.
        if not (signum in KEYBOARD and foreground()):
            child.send_signal(signum)  # polls first: nothing to a CMD already gone
        if child.returncode is not None:
            received.append(signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    learner, lines, shown = Learner(), Lines(), None if verbose else Shown()
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
        _show(shown.filter(chunk) if shown else chunk)
        for line in lines.split(chunk):
            learner.feed(line)
    if shown:
        _show(shown.end())
    for line in lines.end():
        learner.feed(line)
    os.close(reader)
    code = child.wait()
    learnt = learner.result()
    _show((  # the reader of stderr may be gone by now: that must not stop the recording

        f"objcprefork run --learn: learnt {len(learnt)} class(es) from "
        f"{max(len(learner.log.children), 1)} child process(es): {', '.join(learnt)}\n"
        if learnt else "objcprefork run --learn: nothing to learn: no fork child of a threaded "
        "parent initialized a class, and no fork-safety crash was seen"
        + ("" if sys.platform == "darwin" else " (only Apple's runtime logs +initialize: "
           "learn on macOS)") + "\n").encode())
    if learnt:
        record(config, learnt, "run --learn")
    for signum in FORWARDED:
        signal.signal(signum, signal.SIG_DFL)
    die = received[0] if received else -code if code < 0 else 0
    if die:  # as CMD did, or by the signal that ended the wait: the shell sees it
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), die)
    return code


def _show(data: bytes) -> None:
    """Write data to our stderr. Once its reader is gone (a killed tee,
    | head), stderr goes to /dev/null: learning, saving and exiting as CMD
    did go on without it."""
    try:
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()
    except OSError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)


HIDDEN = ((b"objc[", b"]: INITIALIZE: "), (b"objcprefork[", b"]: learn: "))


def _hidden(start: bytes) -> bool | None:
    """Whether a line that starts so is one --learn hides: objc's INITIALIZE
    log or objcprefork's announcement; None while it cannot be told yet."""
    undecided = False
    for name, tail in HIDDEN:
        if len(start) <= len(name):
            undecided = undecided or name.startswith(start)
        elif start.startswith(name):
            rest = start[len(name):]
            after = rest.lstrip(b"0123456789")
            if 0 < len(rest) - len(after) <= 10:
                if after.startswith(tail):
                    return True
                undecided = undecided or tail.startswith(after)
    return None if undecided and not start.endswith(b"\n") else False


class Shown:
    """CMD's stderr as the user sees it: every byte but the hidden lines, each
    dropped whole. Only the start of a line that may still turn out hidden (a
    few dozen bytes) waits for the next read; the rest passes at once."""

    def __init__(self) -> None:
        self.start: bytes | None = b""  # the line's start while undecided
        self.hiding = False

    def filter(self, chunk: bytes) -> bytes:
        shown = []
        for piece in chunk.splitlines(keepends=True):
            if self.start is not None:
                piece = self.start + piece
                hidden = _hidden(piece)
                if hidden is None:
                    self.start = piece
                    continue
                self.start, self.hiding = None, hidden
            if not self.hiding:
                shown.append(piece)
            if piece.endswith(b"\n"):
                self.start, self.hiding = b"", False
        return b"".join(shown)

    def end(self) -> bytes:
        return self.start or b""


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
    """Whether this process group is the foreground one of the controlling
    terminal, whichever of stdin, stdout and stderr are redirected."""
    try:
        tty = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:  # no controlling terminal
        return False
    try:
        return os.tcgetpgrp(tty) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(tty)
