"""objcprefork's start-up entry point, kept apart from the package so that an
interpreter start imports nothing more unless objcprefork is switched on.

objcprefork.pth calls activate("pth") when OBJCPREFORK is set or the enable
marker (`objcprefork enable`) sits next to it: one line, one stat() when off.
objcprefork.start (PEP 829, Python 3.15+) names activate itself, and site
calls it at every start. Whether start-up activation is on is decided here, in
switched_on(), for every caller (this module, objcprefork._config, doctor,
the launcher's bootstrap); whether this is a set-id process, in is_setugid().
Both import nothing beyond what every interpreter has loaded."""

import os
import stat
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

# The words of every objcprefork switch (OBJCPREFORK, OBJCPREFORK_DEBUG,
# OBJCPREFORK_DEFAULTS), in any case, around any spaces.
TRUE_VALUES = ("1", "yes", "true", "on")
FALSE_VALUES = ("0", "no", "false", "off")
AT_SECURE = 23  # <elf.h>

_setid: "bool | None" = None  # decided once per process (a fork child inherits it)


def truth(value: str) -> "bool | None":
    """True or False for a switch word, None for anything else."""
    word = value.strip().lower()
    return True if word in TRUE_VALUES else False if word in FALSE_VALUES else None


def enable_marker() -> str:
    """The file `objcprefork enable` writes, next to objcprefork.pth (whose
    line builds the same path from site's sitedir)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "objcprefork.enabled")


def distrust(info: os.stat_result) -> "str | None":
    """Why a config or marker file with this stat is not trusted, or None.
    As OpenSSH's StrictModes: a regular file, owned by us or root, that
    nobody else can write."""
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_uid not in (0, os.geteuid()):
        return f"owned by uid {info.st_uid}, neither this user nor root"
    if info.st_mode & 0o022:
        return f"writable by others (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def is_setugid() -> bool:
    """Whether this process runs with privileges its caller lacks: the
    kernel's AT_SECURE on Linux (set-id and file-capability binaries), else
    issetugid(). When neither can be read, the answer is yes: a uid
    comparison misses file capabilities."""
    global _setid
    if _setid is None:
        _setid = _read_setid()
    return _setid


def _read_setid() -> bool:
    if sys.platform.startswith("linux"):
        try:  # EACCES under file capabilities: set-id, as no answer is
            with open("/proc/self/auxv", "rb") as f:
                data = f.read()
        except OSError:
            return True
        size = 8 if sys.maxsize > 1 << 32 else 4
        for at in range(0, len(data) - 2 * size + 1, 2 * size):
            if int.from_bytes(data[at:at + size], sys.byteorder) == AT_SECURE:
                return data[at + size:at + 2 * size] != bytes(size)
        return True
    try:
        import ctypes

        return bool(ctypes.CDLL(None).issetugid())
    except (OSError, AttributeError):  # no issetugid (rare): no way to know
        return True


def switched_on(environ: "Mapping[str, str]" = os.environ,
                warn: "Callable[[str], None] | None" = None) -> "tuple[bool, str]":
    """Whether start-up activation is on, and what decided it: OBJCPREFORK
    when set (a true word), else a trusted enable marker. warn(message) hears
    of a marker refused, and of a value that is neither a true nor a false word."""
    value = environ.get("OBJCPREFORK")
    if value is not None:
        on = truth(value)
        if on is None and value.strip() and warn is not None:  # a typo ("ture") is off, loudly
            warn(f"OBJCPREFORK={value!r} is neither true ({', '.join(TRUE_VALUES)}) nor "
                 f"false ({', '.join(FALSE_VALUES)}): start-up activation is off")
        return on is True, f"OBJCPREFORK={value!r}"
    marker = enable_marker()
    try:
        problem = distrust(os.stat(marker))
    except OSError:
        return False, "off (OBJCPREFORK unset, not enabled)"
    if problem:
        if warn is not None:
            warn(f"the enable marker {marker!r} is ignored: {problem}")
        return False, f"off (the enable marker {marker!r} is {problem})"
    return True, f"enabled by {marker}"


def activate(how: str = "start") -> None:
    # Tells a later fork child from this process (see restricted_at_load in
    # the C core); the .pth line records it too.
    sys.__dict__.setdefault("_objcprefork_start_pid", os.getpid())
    if not switched_on(warn=_warn)[0]:  # unset and no marker: one stat
        return
    try:
        from objcprefork._startup import activate as activate_objcprefork

        activate_objcprefork(how)
    except Exception as exc:
        _warn(f"start-up activation failed: {exc!r}")


_said: "set[str]" = set()


def _warn(message: str) -> None:
    if message not in _said:  # site may run the .pth line twice (a site dir seen twice)
        _said.add(message)
        sys.stderr.write(f"objcprefork: warning: {message}\n")
