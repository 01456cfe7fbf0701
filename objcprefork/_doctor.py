"""`objcprefork doctor`: is this process protected, and if not, why."""

from __future__ import annotations

import os
import platform
import struct
import sys
import sysconfig
from typing import Any

import objcprefork
from _objcprefork_start import is_setugid

from . import _startup
from ._files import startup_files_problem
from ._native import core

# OBJC_DISABLE_INITIALIZE_FORK_SAFETY, parsed once at process start (objc-env.h,
# environ_init). objc4-723 to 866.9 (macOS 10.13 to 13.x before its 2023
# update): only the exact "YES" (strcmp). objc4-876 and later: these words in
# any case, or "1", which _objc_atfork_child treats as disabled; the fault-style
# values only from objc4-940.4 (macOS 15.4): before, environ_init parses them as off.
NEW_PARSING_WORDS = ("YES", "WARN", "TRUE", "ON", "Y", "FATAL", "HALT")
FAULT_WORDS = ("FAULT", "STOCHASTIC-FAULT", "STOCHASTICFAULT")
STRICT_UNTIL, LENIENT_FROM = "objc4-866.9 (macOS 10.13 to early 13.x)", "objc4-876 (2023 onwards)"
FAULTS_FROM, FAULTS_MACOS = "objc4-940.4 (macOS 15.4)", (15, 4)
LC_SEGMENT_64, LC_VERSION_MIN_MACOSX, LC_BUILD_VERSION = 0x19, 0x24, 0x32
FAT_MAGIC, FAT_MAGIC_64, MH_MAGIC_64 = b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf", b"\xcf\xfa\xed\xfe"
CPU_TYPES = {"arm64": 0x0100000C, "x86_64": 0x01000007}
UNKNOWN = "unknown"


def apple_accepts(value: str | None, *, strict: bool = False, faults: bool = True) -> bool:
    """Whether objc reads value as "disabled": strict is objc4 up to 866.9,
    faults whether it is objc4-940.4 or later."""
    if value is None:
        return False
    if strict:
        return value == "YES"
    upper = value.upper()
    return value == "1" or upper in NEW_PARSING_WORDS or (faults and upper in FAULT_WORDS)


def accepted_where(value: str) -> str:
    """Which macOS versions take value as switching the check off."""
    if apple_accepts(value, strict=True):
        return "accepted by every macOS"
    if apple_accepts(value, faults=False):
        return (f"accepted only from {LENIENT_FROM}; up to {STRICT_UNTIL} only the exact "
                "'YES' counts: write YES")
    if apple_accepts(value):
        return f"accepted only from {FAULTS_FROM}: write YES"
    return "accepted by no macOS (only YES works everywhere)"


class MachO:
    """What objc reads from the main executable: the SDK it was linked against
    and whether it carries __DATA,__objc_fork_ok (with __objc_imageinfo)."""

    def __init__(self, sdk: tuple[int, int] | None, fork_ok: bool) -> None:
        self.sdk, self.fork_ok = sdk, fork_ok


def _version(packed: int) -> tuple[int, int]:
    return packed >> 16, (packed >> 8) & 0xFF


def read_macho(data: bytes, machine: str = platform.machine()) -> MachO | None:
    """None if data is not a (complete enough) Mach-O for this machine."""
    try:
        return _read_macho(data, machine)
    except struct.error:  # truncated
        return None


def _read_macho(data: bytes, machine: str) -> MachO | None:
    if data[:4] in (FAT_MAGIC, FAT_MAGIC_64):  # fat: this machine's slice
        wide = data[:4] == FAT_MAGIC_64  # fat_arch_64: 64-bit offset and size
        (count,) = struct.unpack_from(">I", data, 4)
        for i in range(min(count, 32)):
            if wide:
                cputype, _sub, offset, size, _align, _reserved = struct.unpack_from(
                    ">iiQQII", data, 8 + 32 * i)
            else:
                cputype, _sub, offset, size, _align = struct.unpack_from(">iiIII", data, 8 + 20 * i)
            if cputype == CPU_TYPES.get(machine):
                return _read_macho(data[offset:offset + size], machine)
        return None
    if data[:4] != MH_MAGIC_64:
        return None
    ncmds, sizeofcmds = struct.unpack_from("<II", data, 16)
    offset, end = 32, 32 + sizeofcmds
    sdk, sections = None, set()
    for _ in range(ncmds):
        if offset + 8 > min(end, len(data)):
            break
        cmd, size = struct.unpack_from("<II", data, offset)
        if cmd == LC_BUILD_VERSION:
            sdk = _version(struct.unpack_from("<I", data, offset + 16)[0])
        elif cmd == LC_VERSION_MIN_MACOSX and sdk is None:
            minos, packed = struct.unpack_from("<II", data, offset + 8)
            sdk = _version(packed or minos)  # dyld: an sdk of 0 means minos
        elif cmd == LC_SEGMENT_64:
            (nsects,) = struct.unpack_from("<I", data, offset + 64)
            for i in range(min(nsects, 255)):
                sectname, segname = struct.unpack_from("<16s16s", data, offset + 72 + 80 * i)
                sections.add((segname.rstrip(b"\0"), sectname.rstrip(b"\0")))
        if size < 8:
            break
        offset += size
    fork_ok = (b"__DATA", b"__objc_fork_ok") in sections and any(
        name == b"__objc_imageinfo" for _segment, name in sections)
    return MachO(sdk, fork_ok)


def main_executable() -> str:
    if sys.platform == "darwin":
        import ctypes

        size = ctypes.c_uint32(4096)
        buffer = ctypes.create_string_buffer(size.value)
        if ctypes.CDLL(None)._NSGetExecutablePath(buffer, ctypes.byref(size)) == 0:
            return os.fsdecode(buffer.value)
    return sys.executable


def enforcement() -> tuple[bool | str, list[str]]:
    """Whether Apple's check applies to this process, with the facts behind it."""
    if sys.platform != "darwin":
        return False, [f"{platform.system()}: no Objective-C runtime here enforces fork safety"]
    facts, applies = [], True
    release = platform.mac_ver()[0]
    if release and tuple(int(p) for p in release.split(".")[:2]) < (10, 13):
        return False, [f"macOS {release} is older than 10.13, which introduced the check"]
    value = os.environ.get("OBJC_DISABLE_INITIALIZE_FORK_SAFETY")
    macos = tuple(int(p) for p in (release or "0").split(".")[:2])
    strict = macos < (13, 0)  # 13.x may be either; 14 and later parse leniently
    if value is None:
        facts.append("OBJC_DISABLE_INITIALIZE_FORK_SAFETY is not set")
    elif is_setugid():
        facts.append(f"OBJC_DISABLE_INITIALIZE_FORK_SAFETY={value!r} is ignored: this is a "
                     "set-id process (issetugid)")
    elif apple_accepts(value, strict=strict, faults=macos >= FAULTS_MACOS):
        applies = False
        facts.append(f"OBJC_DISABLE_INITIALIZE_FORK_SAFETY={value!r} silences the check if it "
                     f"was set when the process started ({accepted_where(value)})")
    else:
        facts.append(f"OBJC_DISABLE_INITIALIZE_FORK_SAFETY={value!r} is not accepted here "
                     f"({accepted_where(value)})")
    executable = main_executable()
    try:
        with open(executable, "rb") as f:
            image = read_macho(f.read(1 << 20))
    except OSError:
        image = None
    if image is None or image.sdk is None:
        facts.append(f"SDK of the main executable {executable}: unknown")
        applies = UNKNOWN if applies else applies
    elif image.sdk < (10, 13):
        applies = False
        facts.append(f"the main executable {executable} was linked against SDK "
                     f"{image.sdk[0]}.{image.sdk[1]}, older than 10.13: no enforcement")
    else:
        facts.append(f"the main executable {executable} was linked against SDK "
                     f"{image.sdk[0]}.{image.sdk[1]}")
    if image is not None and image.fork_ok:
        applies = False
        facts.append(f"the main executable {executable} has a __DATA,__objc_fork_ok section: "
                     "no enforcement")
    return applies, facts


CORES = "/cores"  # where macOS writes core files


def collect(cores: str = CORES) -> dict[str, Any]:
    """Everything doctor reports, as plain data (what --json prints)."""
    from ._crashlog import python_cores

    status = objcprefork.status()
    from ._config import load

    settings = load(os.environ, on_error=lambda exc: None)  # problems are kept in it
    rows = core.inspect(tuple(c.name for c in status.classes))
    images = {row["name"]: row["image"] for row in rows}
    guesses = status.did_you_mean()
    applies, facts = enforcement()
    problems = []
    if applies is not False:
        if not status.installed:
            problems.append("objcprefork is not installed in this process (start it under "
                            "`objcprefork run --`, set OBJCPREFORK=1, or call install())")
        elif status.runtime is None:
            problems.append(f"no Objective-C runtime found: {status.runtime_missing}")
        pending = status.names("pending")
        if pending and status.installed:
            problems.append(f"classes not initialized yet: {', '.join(pending)}")
        blocked = status.names("blocked")
        if blocked:
            problems.append(f"this process is restricted ({status.restricted}): these classes "
                            f"cannot be initialized here without aborting it: {', '.join(blocked)}")
    return {
        "os": f"{platform.system()} {platform.mac_ver()[0] or platform.release()}",
        "machine": platform.machine(),
        "python": f"{platform.python_implementation()} {platform.python_version()}"
                  f"{' free-threaded' if sysconfig.get_config_var('Py_GIL_DISABLED') else ''}"
                  f" ({sys.executable})",
        "objcprefork": objcprefork.__version__,
        "runtime": status.runtime,
        "runtime_missing": status.runtime_missing,
        "forcing_call": status.forcing_call,
        "restricted": status.restricted,
        "enforcement": applies,
        "enforcement_facts": facts,
        "installed": status.installed,
        "activated_by": _startup.activated_by,
        "activation": settings.activation,
        "startup_files": startup_files_problem(),
        "config_file": settings.path,
        "config_problems": settings.problems,
        "child_core_dumps": status.child_core_dumps,
        "python_cores": [{"path": path, "size": size, "on_disk": on_disk}
                         for path, size, on_disk in python_cores(cores)],
        "classes": [{"name": c.name, "state": c.state, "source": c.source,
                     "image": images.get(c.name), "did_you_mean": guesses.get(c.name)}
                    for c in status.classes],
        "load_signal": status.load_signal,
        "check_off": status.check_off,
        "protected": not problems,
        "problems": problems,
    }


def render(report: dict[str, Any]) -> str:
    enforced = {True: "applies", False: "does not apply", UNKNOWN: "unknown"}
    lines = [
        f"os:           {report['os']} ({report['machine']})",
        f"python:       {report['python']}",
        f"objcprefork:  {report['objcprefork']}, "
        + (f"installed (by {report['activated_by'] or 'install()'})"
           if report["installed"] else "not installed"),
        f"runtime:      {report['runtime'] or 'none (' + str(report['runtime_missing']) + ')'}"
        + (f", forcing with {report['forcing_call']}" if report["forcing_call"] else ""),
        f"restricted:   {report['restricted'] or 'no'}",
        f"start-up:     {report['activation']}",
        *([f"              - {report['startup_files']}"] if report["startup_files"] else []),
        f"config file:  {report['config_file'] or 'none'}",
        *(f"              - problem: {p}" for p in report["config_problems"]),
        f"enforcement:  {enforced[report['enforcement']]}",
        *(f"              - {fact}" for fact in report["enforcement_facts"]),
        f"classes:      {len(report['classes'])}",
        *((f"              {c['name']:<32} {c['state']:<12} {c['source']:<20} "
           + (f"did you mean {c['did_you_mean']}?" if c["did_you_mean"] else c["image"] or "")
           ).rstrip() for c in report["classes"]),
        "new classes:  " + (f"told by {report['load_signal']}" if report["load_signal"]
                            else "looked for before every fork from Python"),
    ]
    if report["python_cores"]:
        from ._crashlog import NO_CORES, human_size

        cores = report["python_cores"]
        lines += [f"core files:   {len(cores)} of Python processes, "
                  f"{human_size(sum(c['on_disk'] for c in cores))} on disk: "
                  + ", ".join(c["path"] for c in cores[:3]) + (", ..." if len(cores) > 3 else ""),
                  "              - `objcprefork explain CORE` names the class that killed "
                  f"each; then delete them. {NO_CORES}"]
    if report["protected"] and report["enforcement"] is False:
        lines.append("verdict:      nothing to protect: Apple's check does not apply here"
                     + ("" if report["installed"] else " (and objcprefork is not installed)"))
    elif report["protected"]:
        lines.append("verdict:      protected for its list")
    else:
        lines += ["verdict:      NOT protected",
                  *(f"              - {p}" for p in report["problems"])]
    return "\n".join(lines)
