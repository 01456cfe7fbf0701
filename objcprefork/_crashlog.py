"""Finding Apple's fork-safety messages in stderr text, macOS .crash reports
and .ips reports (a JSON header line, then a JSON body). Never raises on
arbitrary input: the worst it does is find nothing."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ._names import validate_name

# A class name is at most 255 bytes of identifier characters: bounding it keeps
# every search linear on hostile input (a run of "+[" with no end).
CLASS = r"([^\W\d][\w$.]{0,254})"
INITIALIZE_IN_FORK = re.compile(
    r"\+\[" + CLASS + r" initialize\] may have been in progress in another thread when fork\(\)")
# OBJC_PRINT_INITIALIZE_METHODS=YES logs this in the child instead of crashing.
REFUSED = re.compile(r"refusing to call \+\[" + CLASS + r" initialize\]")

FORK_EXEC_ADVICE = (
    "Fork and exec instead of forking alone: use the 'spawn' (or 'forkserver') start "
    "method (multiprocessing.set_start_method('spawn') once, in the main module under "
    "`if __name__ == '__main__':`), subprocess instead of os.fork, or a pool or worker "
    "that spawns (rq's SpawnWorker, celery's --pool=solo or threads, gunicorn's gthread "
    "workers with --preload off). objcprefork cannot fix this one.")


@dataclass(frozen=True)
class Unfixable:
    """A fork crash that pre-initializing classes does not fix."""

    name: str
    evidence: str
    advice: str


UNFIXABLE = (
    ("libdispatch in the child",
     re.compile(r"KERN_INVALID_ADDRESS at 0x0*110\b"),
     "libdispatch poisons its queues in the child of a parent that used it: any GCD use "
     "there faults at 0x110. " + FORK_EXEC_ADVICE),
    ("CoreFoundation refuses forked children",
     re.compile(r"The process has forked and you cannot use this CoreFoundation "
                r"functionality safely\. You MUST exec\(\)"),
     "CoreFoundation checks this itself, even with OBJC_DISABLE_INITIALIZE_FORK_SAFETY. "
     + FORK_EXEC_ADVICE),
    ("multi-threaded process forked",
     re.compile(r"multi-threaded process forked"),
     "A library refuses to run in the child of a multi-threaded parent. " + FORK_EXEC_ADVICE),
    ("LaunchServices check-in in the child",
     re.compile(r"_?LSApplicationCheckIn|LaunchServices.{0,80}check.?in", re.IGNORECASE),
     "LaunchServices cannot check a forked child in. " + FORK_EXEC_ADVICE),
    ("XPC or GSS/Kerberos in the child",
     re.compile(r"(libxpc|_xpc_|XPC_ERROR|GSSAPI|gss_|gssencmode)(?=.{0,400}child side of fork)"
                r"|child side of fork.{0,400}(libxpc|_xpc_|GSSAPI|gss_)", re.DOTALL),
     "XPC connections and GSS/Kerberos do not survive fork (libpq: set "
     "gssencmode=disable, or connect only after the fork). " + FORK_EXEC_ADVICE),
)


def is_class_name(name: str) -> bool:
    try:
        validate_name(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Findings:
    format: str               # "ips", "crash" or "text"
    classes: tuple[str, ...]  # valid class names in Apple's message, in order of appearance
    unfixable: tuple[Unfixable, ...]


def _strings(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            out.append(str(key))
            _strings(item, out)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out)


def _ips_text(text: str) -> str | None:
    """All strings of an .ips report's body, or None if this is not one."""
    header, _, body = text.partition("\n")
    try:
        if not isinstance(json.loads(header), dict):
            return None
    except (ValueError, RecursionError):
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return body  # truncated or hostile: search the text that is there
    found: list[str] = []
    try:
        _strings(parsed, found)
    except RecursionError:
        return body
    return "\n".join(found)


def read_report(data: bytes) -> Findings:
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    ips = _ips_text(text.lstrip())
    if ips is not None:
        kind, text = "ips", ips
    elif "Exception Type:" in text or "Application Specific Information" in text:
        kind = "crash"
    else:
        kind = "text"
    found = sorted((m.start(), m.group(1)) for pattern in (INITIALIZE_IN_FORK, REFUSED)
                   for m in pattern.finditer(text))
    ordered = tuple(dict.fromkeys(name for _at, name in found if is_class_name(name)))
    unfixable = tuple(Unfixable(name, match.group(0)[:200], advice)
                      for name, pattern, advice in UNFIXABLE
                      if (match := pattern.search(text)))
    return Findings(kind, ordered, unfixable)
