"""Finding Apple's fork-safety messages in stderr text, macOS .crash reports
and .ips reports (a JSON header line, then a JSON body). Never raises on
arbitrary input: the worst it does is find nothing."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import BinaryIO

from ._names import is_class_name

# A class name is at most 255 bytes of identifier characters: bounding it keeps
# every search linear on hostile input (a run of "+[" with no end).
CLASS = r"([^\W\d][\w$.]{0,254})"
INITIALIZE_IN_FORK = re.compile(
    r"\+\[" + CLASS + r" initialize\] may have been in progress in another thread when fork\(\)")
# OBJC_PRINT_INITIALIZE_METHODS=YES logs this in the child instead of crashing.
REFUSED = re.compile(r"refusing to call \+\[" + CLASS + r" initialize\]")

FORK_EXEC_ADVICE = (
    "fork and exec instead of forking alone: use the 'spawn' (or 'forkserver') start "
    "method (multiprocessing.set_start_method('spawn') once, in the main module under "
    "`if __name__ == '__main__':`), subprocess instead of os.fork, or a pool or worker "
    "that spawns (rq's SpawnWorker, celery's --pool=solo or threads, gunicorn's gthread "
    "workers with --preload off). Pre-initializing classes cannot fix this one.")


@dataclass(frozen=True)
class Unfixable:
    """A fork crash that pre-initializing classes does not fix."""

    name: str
    evidence: str
    advice: str


def _all(*patterns: str, flags: int = 0) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, flags) for p in patterns)


# Each look-alike is recognised when every one of its patterns occurs in the
# report. Searching for each on its own keeps the reader linear on any input
# (a pattern that looked for one near the other backtracked). The frames of a
# crash in a forked child are only a look-alike when Apple's +initialize
# message is absent: with it, they merely show what triggered the +initialize.
FRAMES_ONLY = ("proxy lookup (_scproxy / SystemConfiguration) in the child",
               "Kerberos/GSSAPI through libdispatch (libpq, psycopg)",
               "getaddrinfo through Network.framework in the child", "XPC in the child")
CHILD_SIDE = r"child side of fork|forked child|after fork\(\)"
# Words (lower case) one of which every text matching a look-alike's first
# pattern holds: a substring test screens a log at memory speed, where most
# of these patterns (alternations, \b, IGNORECASE) cost far more.
HINTS = {
    "libdispatch in the child": ("kern_invalid_address",),
    "CoreFoundation refuses forked children": ("the process has forked",),
    "multi-threaded process forked": ("multi-threaded process forked",),
    "LaunchServices check-in in the child": ("lsapplicationcheckin", "launchservices"),
    "proxy lookup (_scproxy / SystemConfiguration) in the child": (
        "_scproxy", "scdynamicstorecopyproxies"),
    "Kerberos/GSSAPI through libdispatch (libpq, psycopg)": ("gss", "krb5"),
    "getaddrinfo through Network.framework in the child": (
        "getaddrinfo", "nw_resolver", "libnetwork.dylib", "network.framework"),
    "XPC in the child": ("libxpc", "_xpc_", "xpc_error"),
}
UNFIXABLE: tuple[tuple[str, tuple[re.Pattern[str], ...], str], ...] = (
    ("libdispatch in the child",
     _all(r"KERN_INVALID_ADDRESS at 0x0*110\b"),
     "libdispatch poisons its queues in the child of a parent that used it: any GCD use "
     "there faults at 0x110. Only " + FORK_EXEC_ADVICE),
    ("CoreFoundation refuses forked children",
     _all(r"The process has forked and you cannot use this CoreFoundation "
          r"functionality safely\. You MUST exec\(\)"),
     "CoreFoundation checks this itself, even with OBJC_DISABLE_INITIALIZE_FORK_SAFETY. "
     "Only " + FORK_EXEC_ADVICE),
    ("multi-threaded process forked",
     _all(r"multi-threaded process forked"),
     "A library refuses to run in the child of a multi-threaded parent. Only "
     + FORK_EXEC_ADVICE),
    ("LaunchServices check-in in the child",
     _all(r"_?LSApplicationCheckIn|LaunchServices.{0,80}check.?in", flags=re.IGNORECASE),
     "LaunchServices cannot check a forked child in. Only " + FORK_EXEC_ADVICE),
    ("proxy lookup (_scproxy / SystemConfiguration) in the child",
     _all(r"_scproxy|SCDynamicStoreCopyProxies", r"SIGSEGV|EXC_BAD_ACCESS|Segmentation fault"),
     "urllib's macOS proxy lookup (_scproxy -> SystemConfiguration) crashes in a forked "
     "child, and OBJC_DISABLE_INITIALIZE_FORK_SAFETY does not help. Set no_proxy='*' in "
     "the environment before the fork (os.environ['no_proxy'] = '*', or in the worker's "
     "environment) so requests and urllib skip the lookup. Otherwise, " + FORK_EXEC_ADVICE),
    ("Kerberos/GSSAPI through libdispatch (libpq, psycopg)",
     _all(r"\bgss_|GSSAPI|gssencmode|libgssapi|\bkrb5", r"libdispatch|" + CHILD_SIDE),
     "libpq negotiates GSSAPI encryption through Kerberos, which uses XPC and libdispatch: "
     "neither survives fork. Connect with gssencmode=disable (in the connection string or "
     "PGGSSENCMODE=disable), or connect only after the fork. Otherwise, "
     + FORK_EXEC_ADVICE),
    ("getaddrinfo through Network.framework in the child",
     _all(r"getaddrinfo|nw_resolver|libnetwork\.dylib|Network\.framework", CHILD_SIDE),
     "Name resolution on recent macOS goes through Network.framework and libdispatch, "
     "which do not work in a forked child, and no class list fixes that. Only "
     + FORK_EXEC_ADVICE),
    ("XPC in the child",
     _all(r"libxpc|_xpc_|XPC_ERROR", CHILD_SIDE),
     "XPC connections do not survive fork. Only " + FORK_EXEC_ADVICE),
)


@dataclass(frozen=True)
class Findings:
    format: str               # "ips", "crash" or "text"
    classes: tuple[str, ...]  # valid class names in Apple's message, in order of appearance
    unfixable: tuple[Unfixable, ...]
    initialized_by_children: tuple[str, ...] = ()  # from OBJC_PRINT_INITIALIZE_METHODS logs


MAX_STRINGS = 1 << 18  # strings taken from an .ips body: a real one holds thousands
JSON_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"?')


def _ips_text(text: str) -> str | None:
    """The strings of an .ips report's body (keys and values, in order), or
    None if this is not one. The body is never parsed whole: its strings are
    taken one by one, up to MAX_STRINGS, so neither its depth nor its count
    of objects costs recursion or memory; a truncated body reads the same."""
    if not text.startswith("{"):
        return None
    header, _, body = text.partition("\n")
    if len(header) > 1 << 16:  # a real header: ~1 KB
        return None
    try:
        if not isinstance(json.loads(header), dict):
            return None
    except (ValueError, RecursionError):
        return None
    found = []
    for count, match in enumerate(JSON_STRING.finditer(body)):
        if count == MAX_STRINGS:
            break
        token = match.group()
        if "\\" not in token:
            found.append(token[1:-1])
            continue
        try:
            found.append(json.loads(token))
        except ValueError:  # cut short: its text as it is
            found.append(token[1:])
    return "\n".join(found)


# OBJC_PRINT_INITIALIZE_METHODS=YES: one line per +initialize the runtime runs;
# and, under `objcprefork run --learn`, objcprefork's announcements
# (_startup.announce_for_learning). Each only as a whole line of its own.
LOG_LINE = re.compile(
    r"^(?:objc\[(\d{1,10})\]: INITIALIZE: thread 0x[0-9a-fA-F]{1,16}: calling \+\[" + CLASS
    + r" initialize\]|objcprefork\[(\d{1,10})\]: learn: (fork child of a threaded parent|exec"
    r"|trivial)(.*))", re.MULTILINE)
MAX_LOG_NAMES = 1 << 16  # distinct classes an initialize log may name
MAX_PIDS = 1 << 12  # processes announced as fork children


class InitializeLog:
    """The classes that fork children initialized, from a log fed whole or in
    blocks of whole lines: one rule for `run --learn` and `explain`.

    Where objcprefork announced its processes (a --learn run; its log with
    --verbose), a child is a process announced as a fork child of a threaded
    parent, until it announces an exec, and classes announced as trivial are
    left out. In a log with no announcement, every process but the first one
    logging (taken as the parent) is a child, and the parent's classes are
    left out."""

    def __init__(self) -> None:
        self.announced = False
        self.restricted: set[str] = set()  # announced children, not exec'd since
        self.children: set[str] = set()
        self.trivial: set[str] = set()
        self.learnt: dict[str, None] = {}  # what announced children initialized
        self.parent: str | None = None  # without announcements: the first process logging
        self.parents: set[str] = set()
        self.found: dict[str, None] = {}

    def feed(self, text: str) -> None:
        if "INITIALIZE: " not in text and "objcprefork[" not in text:
            return
        for match in LOG_LINE.finditer(text):
            pid, name, announcer, what = match.group(1, 2, 3, 4)
            if announcer is not None:
                self.announce(announcer, what, match.group(5))
            elif pid in self.restricted:
                if len(self.learnt) < MAX_LOG_NAMES:
                    self.learnt.setdefault(name, None)
            elif not self.announced:
                self.parent = self.parent or pid
                if pid == self.parent:
                    if len(self.parents) < MAX_LOG_NAMES:
                        self.parents.add(name)
                elif len(self.found) < MAX_LOG_NAMES:
                    self.found.setdefault(name, None)

    def announce(self, pid: str, what: str, rest: str) -> None:
        self.announced = True
        if what == "exec":
            self.restricted.discard(pid)
        elif what == "trivial":
            for name in rest.split():
                if len(self.trivial) >= MAX_LOG_NAMES:
                    break
                self.trivial.add(name)
        elif len(self.children) < MAX_PIDS:
            self.restricted.add(pid)
            self.children.add(pid)

    def classes(self) -> tuple[str, ...]:
        if self.announced:
            return tuple(n for n in self.learnt if n not in self.trivial and is_class_name(n))
        return tuple(n for n in self.found if n not in self.parents and is_class_name(n))


def _classes_in(text: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group(1)) for pattern in (INITIALIZE_IN_FORK, REFUSED)
            for m in pattern.finditer(text)]


def read_report(data: bytes) -> Findings:
    return _read(data.decode("utf-8", errors="replace"), InitializeLog())


def _read(text: str, log: InitializeLog) -> Findings:
    text = text.replace("\r\n", "\n")
    ips = _ips_text(text.lstrip())
    if ips is not None:
        kind, text = "ips", ips
    elif "Exception Type:" in text or "Application Specific Information" in text:
        kind = "crash"
    else:
        kind = "text"
    found = sorted(_classes_in(text))
    ordered = tuple(dict.fromkeys(name for _at, name in found if is_class_name(name)))
    unfixable = []
    lower = text.lower()
    for name, patterns, advice in UNFIXABLE:
        if (ordered and name in FRAMES_ONLY) or not any(h in lower for h in HINTS[name]):
            continue
        first = patterns[0].search(text)
        if first is not None and all(p.search(text) for p in patterns[1:]):
            unfixable.append(Unfixable(name, first.group(0)[:200], advice))
    log.feed(text)
    return Findings(kind, ordered, tuple(unfixable), log.classes())


# A report (.ips, .crash) is read whole up to WHOLE_LIMIT; a text log of any
# size streams in blocks of whole lines, a line longer than MAX_LINE is cut.
STREAM_BLOCK, WHOLE_LIMIT, MAX_LINE = 1 << 20, 8 << 20, 1 << 16


def read_stream(stream: BinaryIO) -> Findings:
    """read_report() for a file or pipe of any size, in flat memory."""
    head = stream.read(STREAM_BLOCK)
    first = head.lstrip()[:1]
    if first == b"{" or b"Exception Type:" in head or b"Application Specific" in head:
        return read_report(head + stream.read(WHOLE_LIMIT - len(head)))
    classes: dict[str, None] = {}
    unfixable: dict[str, Unfixable] = {}
    log = InitializeLog()

    def take(data: bytes) -> None:
        findings = _read(data.decode("utf-8", errors="replace"), log)
        classes.update(dict.fromkeys(findings.classes))
        for problem in findings.unfixable:
            unfixable.setdefault(problem.name, problem)

    block, carry, skipping = head, b"", False
    while block:
        if skipping:  # the rest of a line too long to read: never taken for a line
            end = block.find(b"\n")
            skipping, block = end < 0, block[end + 1:] if end >= 0 else b""
        data = carry + block
        cut = data.rfind(b"\n") + 1
        take(data[:cut])
        carry = data[cut:]
        if len(carry) > MAX_LINE:
            carry, skipping = b"", True
        block = stream.read(STREAM_BLOCK)
    take(carry)
    return Findings("text", tuple(classes), tuple(unfixable.values()), log.classes())
