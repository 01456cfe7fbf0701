"""objcprefork's PEP 829 start-up entry point (named in objcprefork.start).

Kept apart from the package so that an interpreter start without OBJCPREFORK
imports nothing but this file."""

import os
import sys


def activate() -> None:
    if sys.flags.ignore_environment:
        return
    if os.environ.get("OBJCPREFORK", "").strip().lower() in ("1", "yes", "true", "on"):
        try:
            from objcprefork._startup import activate as activate_objcprefork

            activate_objcprefork("start")
        except Exception as exc:
            sys.stderr.write(f"objcprefork: warning: start-up activation failed: {exc!r}\n")
