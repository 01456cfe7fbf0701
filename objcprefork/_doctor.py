"""`objcprefork doctor`: is this process protected, and if not, why."""

from __future__ import annotations

import os
import platform
import struct
import sys
import sysconfig
from typing import Any

import objcprefork

from . import _startup
from ._native import core

APPLE_YES = ("YES", "WARN", "TRUE", "ON", "Y")  # objc-env.h, case-insensitive, or exactly "1"
LC_VERSION_MIN_MACOSX, LC_BUILD_VERSION = 0x24, 0x32
CPU_TYPES = {"arm64": 0x0100000C, "x86_64": 0x01000007}
UNKNOWN = "unknown"


def apple_accepts(value: str | None) -> bool:
    return value is not None and (value == "1" or value.upper() in APPLE_YES)


def macho_sdk(data: bytes, machine: str = platform.machine()) -> tuple[int, int] | None:
    """(major, minor) of the SDK a Mach-O image was linked against, from its
    LC_BUILD_VERSION or LC_VERSION_MIN_MACOSX load command; None if absent."""
    try:
        return _macho_sdk(data, machine)
    except struct.error:  # truncated
        return None


def _macho_sdk(data: bytes, machine: str) -> tuple[int, int] | None:
    if data[:4] == b"\xca\xfe\xba\xbe":  # fat: pick this machine's slice
        (count,) = struct.unpack_from(">I", data, 4)
        for i in range(min(count, 32)):
            cputype, _sub, offset, size, _align = struct.unpack_from(">iiIII", data, 8 + 20 * i)
            if cputype == CPU_TYPES.get(machine):
                return _macho_sdk(data[offset:offset + size], machine)
        return None
    if data[:4] != b"\xcf\xfa\xed\xfe":  # MH_MAGIC_64, little-endian
        return None
    ncmds, sizeofcmds = struct.unpack_from("<II", data, 16)
    offset, end = 32, 32 + sizeofcmds
    for _ in range(ncmds):
        if offset + 8 > min(end, len(data)):
            break
        cmd, size = struct.unpack_from("<II", data, offset)
        if cmd == LC_BUILD_VERSION:
            (sdk,) = struct.unpack_from("<I", data, offset + 16)
            return sdk >> 16, (sdk >> 8) & 0xFF
        if cmd == LC_VERSION_MIN_MACOSX:
            (sdk,) = struct.unpack_from("<I", data, offset + 12)
            return sdk >> 16, (sdk >> 8) & 0xFF
        if size < 8:
            break
        offset += size
    return None


def main_executable() -> str:
    if sys.platform == "darwin":
        import ctypes

        size = ctypes.c_uint32(4096)
        buffer = ctypes.create_string_buffer(size.value)
        if ctypes.CDLL(None)._NSGetExecutablePath(buffer, ctypes.byref(size)) == 0:
            return os.fsdecode(buffer.value)
    return sys.executable


def ever_threaded() -> bool | str:
    import ctypes

    libc = ctypes.CDLL(None)
    if sys.platform == "darwin":
        return bool(libc.pthread_is_threaded_np())
    try:
        return not ctypes.c_char.in_dll(libc, "__libc_single_threaded").value[0]
    except (ValueError, IndexError):
        return UNKNOWN


def enforcement() -> tuple[bool | str, list[str]]:
    """Whether Apple's check applies to this process, with the facts behind it."""
    if sys.platform != "darwin":
        return False, [f"{platform.system()}: no Objective-C runtime here enforces fork safety"]
    facts, applies = [], True
    release = platform.mac_ver()[0]
    if release and tuple(int(p) for p in release.split(".")[:2]) < (10, 13):
        return False, [f"macOS {release} is older than 10.13, which introduced the check"]
    value = os.environ.get("OBJC_DISABLE_INITIALIZE_FORK_SAFETY")
    setugid = os.getuid() != os.geteuid() or os.getgid() != os.getegid()
    if value is None:
        facts.append("OBJC_DISABLE_INITIALIZE_FORK_SAFETY is not set")
    elif apple_accepts(value) and not setugid:
        applies = False
        facts.append(f"OBJC_DISABLE_INITIALIZE_FORK_SAFETY={value!r} is accepted: the check is "
                     "silenced (if it was set when the process started)")
    else:
        facts.append(f"OBJC_DISABLE_INITIALIZE_FORK_SAFETY={value!r} is not accepted "
                     "by the runtime")
    executable = main_executable()
    try:
        with open(executable, "rb") as f:
            sdk = macho_sdk(f.read(1 << 20))
    except OSError:
        sdk = None
    if sdk is None:
        facts.append(f"SDK of the main executable {executable}: unknown")
        applies = UNKNOWN if applies else applies
    elif sdk < (10, 13):
        applies = False
        facts.append(f"the main executable {executable} was linked against SDK "
                     f"{sdk[0]}.{sdk[1]}, older than 10.13: no enforcement")
    else:
        facts.append(f"the main executable {executable} was linked against SDK {sdk[0]}.{sdk[1]}")
    threaded = ever_threaded()
    facts.append(f"this process has {'ever' if threaded is True else 'never'} been threaded"
                 if threaded != UNKNOWN else "whether this process was ever threaded: unknown")
    return applies, facts


def collect() -> dict[str, Any]:
    """Everything doctor reports, as plain data (what --json prints)."""
    status = objcprefork.status()
    images = {name: image for name, image, _trivial, _owner
              in core.inspect(tuple(c.name for c in status.classes))}
    applies, facts = enforcement()
    problems = []
    if applies is not False:
        if not status.installed:
            problems.append("objcprefork is not active in this process (start it under "
                            "`objcprefork run --`, set OBJCPREFORK=1, or call install())")
        elif status.runtime is None:
            problems.append(f"no Objective-C runtime found: {status.runtime_missing}")
        pending = status.names("pending")
        if pending and status.installed:
            problems.append(f"classes not initialized yet: {', '.join(pending)}")
    return {
        "os": f"{platform.system()} {platform.mac_ver()[0] or platform.release()}",
        "machine": platform.machine(),
        "python": f"{platform.python_implementation()} {platform.python_version()}"
                  f"{' free-threaded' if sysconfig.get_config_var('Py_GIL_DISABLED') else ''}"
                  f" ({sys.executable})",
        "objcprefork": objcprefork.__version__,
        "runtime": status.runtime,
        "runtime_missing": status.runtime_missing,
        "enforcement": applies,
        "enforcement_facts": facts,
        "installed": status.installed,
        "activated_by": _startup.activated_by,
        "classes": [{"name": c.name, "state": c.state, "image": images.get(c.name)}
                    for c in status.classes],
        "counters": {"forks": status.forks, "forced_in_fork": status.forced_in_fork,
                     "handler_last_ns": status.handler_last_ns,
                     "handler_max_ns": status.handler_max_ns},
        "protected": not problems,
        "problems": problems,
    }


def render(report: dict[str, Any]) -> str:
    enforced = {True: "applies", False: "does not apply", UNKNOWN: "unknown"}
    lines = [
        f"os:           {report['os']} ({report['machine']})",
        f"python:       {report['python']}",
        f"objcprefork:  {report['objcprefork']}, "
        + (f"active (activated by {report['activated_by'] or 'install()'})"
           if report["installed"] else "not active"),
        f"runtime:      {report['runtime'] or 'none (' + str(report['runtime_missing']) + ')'}",
        f"enforcement:  {enforced[report['enforcement']]}",
        *(f"              - {fact}" for fact in report["enforcement_facts"]),
        f"classes:      {len(report['classes'])}",
        *(f"              {c['name']:<32} {c['state']:<12} {c['image'] or ''}"
          for c in report["classes"]),
        "counters:     forks {forks}, forced in fork {forced_in_fork}, handler last "
        "{handler_last_ns} ns, max {handler_max_ns} ns".format(**report["counters"]),
    ]
    if report["protected"]:
        lines.append("verdict:      protected for its list")
    else:
        lines += ["verdict:      NOT protected",
                  *(f"              - {p}" for p in report["problems"])]
    return "\n".join(lines)
