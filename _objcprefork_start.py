"""objcprefork's start-up entry point, kept apart from the package so that an
interpreter start imports nothing more unless objcprefork is switched on.

objcprefork.pth calls activate("pth") when OBJCPREFORK is set or the enable
marker (`objcprefork enable`) sits next to it: one line, one stat() when off.
objcprefork.start (PEP 829, Python 3.15+) names activate itself, and site
calls it at every start: it checks the same two things before importing
anything. Whether to activate is then decided in one place,
objcprefork._config.load (-E/-I, set-id, values)."""

import os
import sys

# The values that switch OBJCPREFORK on; objcprefork._config reads them here.
TRUE_VALUES = ("1", "yes", "true", "on")


def enable_marker() -> str:
    """The file `objcprefork enable` writes, next to objcprefork.pth (whose
    line builds the same path from site's sitedir)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "objcprefork.enabled")


def activate(how: str = "start") -> None:
    # Tells a later fork child from this process (see restricted_at_load in
    # src/_objcprefork.c); the .pth line records it too.
    sys.__dict__.setdefault("_objcprefork_start_pid", os.getpid())
    value = os.environ.get("OBJCPREFORK")
    if value is not None:  # set: it decides, and a false value imports nothing
        if value.strip().lower() not in TRUE_VALUES:
            return
    elif not os.path.exists(enable_marker()):
        return
    try:
        from objcprefork._startup import activate as activate_objcprefork

        activate_objcprefork(how)
    except Exception as exc:
        sys.stderr.write(f"objcprefork: warning: start-up activation failed: {exc!r}\n")
