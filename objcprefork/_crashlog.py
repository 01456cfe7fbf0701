"""Finding Apple's fork-safety messages in stderr text, macOS .crash reports
and .ips reports (a JSON header line, then a JSON body). Never raises on
arbitrary input: the worst it does is find nothing."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Literal

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
    "that spawns or does not fork (rq's SpawnWorker, celery's --pool=solo or threads; "
    "gunicorn forks its workers whatever the worker class: keep the library's first use "
    "out of its master). Pre-initializing classes cannot fix this one.")


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
    if is_core(head):
        return read_core(head, stream)
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


# ---- core files --------------------------------------------------------------
# objc4 keeps its fatal message in the crash annotations (CRSetCrashLogMessage),
# in the process's memory, so a core file holds it among gigabytes of other
# bytes. A core is recognised by its header, whatever its name: ELF ET_CORE
# (Linux), Mach-O MH_CORE (macOS).
ELF, ET_CORE, MH_CORE = b"\x7fELF", 4, 4
MACHO_ORDER: dict[bytes, Literal["little", "big"]] = {
    b"\xcf\xfa\xed\xfe": "little", b"\xce\xfa\xed\xfe": "little",
    b"\xfe\xed\xfa\xcf": "big", b"\xfe\xed\xfa\xce": "big"}
IN_MEMORY = re.compile(INITIALIZE_IN_FORK.pattern.encode())  # ASCII names: all objc4 prints
MESSAGE_TAIL = b" initialize] may have been in progress in another thread when fork()"
# The longest message match: a block is searched with this much of the one
# before it, so a message split across two blocks is found whole.
OVERLAP = len("+[") + 255 + len(MESSAGE_TAIL)
PYTHON_LOOK = 1 << 20  # bytes of a core looked through for "python" (doctor)
NO_CORES = ("Forked children write none with `objcprefork run --no-child-core-dumps`, "
            "OBJCPREFORK_CHILD_CORES=0 or install(child_core_dumps=False)")


def is_core(head: bytes) -> bool:
    """Whether head, a file's first bytes, starts a core file."""
    if head[:4] == ELF and len(head) >= 18:
        return int.from_bytes(head[16:18], "big" if head[5] == 2 else "little") == ET_CORE
    order = MACHO_ORDER.get(head[:4])
    return order is not None and len(head) >= 16 and int.from_bytes(
        head[12:16], order) == MH_CORE


def read_core(head: bytes, stream: BinaryIO) -> Findings:
    """The classes named in Apple's message anywhere in a core file of any
    size, read in STREAM_BLOCK blocks after head: flat memory."""
    found: dict[str, None] = {}
    carry, block = b"", head
    while block:
        # A plain search at memory speed screens each block and its seam with
        # the one before; the two are joined, and the pattern run, only where
        # the message is (joining every block costs a fresh buffer each time).
        seam = carry + block[:len(MESSAGE_TAIL)]
        if MESSAGE_TAIL in block or MESSAGE_TAIL in seam:
            window = carry + block
            for match in IN_MEMORY.finditer(window):
                name = match.group(1).decode("ascii")
                if is_class_name(name):
                    found.setdefault(name, None)  # one seen again in carry counts once
        carry = (carry + block)[-OVERLAP:] if len(block) < OVERLAP else block[-OVERLAP:]
        block = stream.read(STREAM_BLOCK)
    return Findings("core", tuple(found), ())


def disk_cost(info: os.stat_result) -> tuple[int, int]:
    """(size, bytes on disk) of a file: a sparse core holds less than its size."""
    return info.st_size, getattr(info, "st_blocks", 0) * 512 or info.st_size


def human_size(count: int) -> str:
    """1536 -> '1.5 KiB'."""
    size, unit = float(count), "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, larger
    return f"{count} bytes" if unit == "bytes" else f"{size:.1f} {unit}"


def _regular_files(entries: Iterable[os.DirEntry[str]]
                   ) -> Iterator[tuple[os.DirEntry[str], BinaryIO]]:
    """Each entry that is a regular file (never a FIFO or a device, which
    opening could block on; never through a link), opened for reading until
    the caller moves on; the others are skipped."""
    for entry in entries:
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            continue
        with os.fdopen(fd, "rb") as f:
            yield entry, f


def python_cores(folder: str, limit: int = 1000) -> list[tuple[str, int, int]]:
    """(path, size, bytes on disk) of the core files of Python processes in
    folder, of its first `limit` entries: files whose header is a core's and
    whose first PYTHON_LOOK bytes hold "python" in any case (the ELF notes
    and mapped files' names, or the Mach-O main executable's load commands,
    lie there). Unreadable files and a missing folder are skipped."""
    found = []
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)[:limit]
    except OSError:
        return []
    for entry, f in _regular_files(entries):
        try:
            head = f.read(PYTHON_LOOK)
            if is_core(head) and b"python" in head.lower():
                found.append((entry.path, *disk_cost(os.fstat(f.fileno()))))
        except OSError:
            continue
    return found


# ---- crash-report folders ----------------------------------------------------
REPORT_FOLDERS = ("~/Library/Logs/DiagnosticReports", "/Library/Logs/DiagnosticReports")
REPORT_SUFFIXES = (".ips", ".crash")
REPORT_HEAD = 1 << 16  # where a report names its process and date
MAX_FOLDER_REPORTS = 10000  # reports read per folder: the newest
# A report of a Python process: its process name or path says so (.crash:
# "Process:" or "Path:"; .ips: app_name, name, procName or procPath).
PYTHON_PROCESS = re.compile(r'(?im)^(?:Process|Path):[^\n]{0,1024}python|"(?:app_name|name|'
                            r'procName|procPath)"[ \t]*:[ \t]*"[^"\n]{0,1024}python')
REPORT_DATE = re.compile(r'(?m)(?:"timestamp"[ \t]*:[ \t]*"|^Date/Time:[ \t]*)(\d{4}-\d\d-\d\d '
                         r'\d\d:\d\d:\d\d)(?:\.\d{1,9})?(?: ([+-]\d{4}))?')


@dataclass
class Tally:
    """What a folder of crash reports says about Python processes."""

    reports: int = 0  # reports of Python processes read
    counts: dict[str, int] = field(default_factory=dict)  # reports naming each class
    last: dict[str, datetime] = field(default_factory=dict)  # the newest of them
    unfixable: dict[str, Unfixable] = field(default_factory=dict)

    def classes(self) -> list[str]:
        """Most reported first, then most recent."""
        return sorted(self.counts, key=lambda n: (-self.counts[n], -self.last[n].timestamp()))


def report_date(head: str, mtime: float) -> datetime:
    """When the report says it crashed, else its file's time."""
    found = REPORT_DATE.search(head)
    try:
        if found is not None and found.group(2):
            return datetime.strptime(" ".join(found.groups()), "%Y-%m-%d %H:%M:%S %z")
        if found is not None:
            return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S").astimezone()
    except ValueError:  # a date that does not exist (month 13)
        pass
    return datetime.fromtimestamp(mtime).astimezone()


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return 0.0


def read_folder(folder: str, tally: Tally) -> None:
    """Adds the .ips and .crash reports of Python processes in folder to
    tally, each read whole up to WHOLE_LIMIT. Raises OSError for a folder
    that cannot be listed; an unreadable report is skipped."""
    with os.scandir(folder) as listing:
        reports = [e for e in listing if e.name.endswith(REPORT_SUFFIXES)]
    for _entry, f in _regular_files(sorted(reports, key=_mtime)[-MAX_FOLDER_REPORTS:]):
        try:
            data = f.read(REPORT_HEAD)
            head = data.decode("utf-8", errors="replace")
            if not PYTHON_PROCESS.search(head):
                continue
            data += f.read(WHOLE_LIMIT - len(data))
            mtime = os.fstat(f.fileno()).st_mtime
        except OSError:
            continue
        findings = read_report(data)
        tally.reports += 1
        when = report_date(head, mtime)
        for name in findings.classes:
            tally.counts[name] = tally.counts.get(name, 0) + 1
            tally.last[name] = max(tally.last.get(name, when), when)
        for problem in findings.unfixable:
            tally.unfixable.setdefault(problem.name, problem)
