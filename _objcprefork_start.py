"""objcprefork's start-up entry point, kept apart from the package so that an
interpreter start imports nothing more unless OBJCPREFORK asks for it.

objcprefork.pth calls activate("pth") when OBJCPREFORK is set at all (one
line, no exec of nested code: the parser's first use is what a .pth line
costs); objcprefork.start (PEP 829, Python 3.15+) names activate itself."""

import os
import sys


def activate(how: str = "start") -> None:
    # Tells a later fork child from this process (see restricted_at_load in
    # src/_objcprefork.c); the .pth line records it too.
    sys.__dict__.setdefault("_objcprefork_start_pid", os.getpid())
    if sys.flags.ignore_environment:
        return
    if os.environ.get("OBJCPREFORK", "").strip().lower() in ("1", "yes", "true", "on"):
        try:
            from objcprefork._startup import activate as activate_objcprefork

            activate_objcprefork(how)
        except Exception as exc:
            sys.stderr.write(f"objcprefork: warning: start-up activation failed: {exc!r}\n")
