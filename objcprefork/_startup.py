"""The single entry point of start-up activation: the .pth line, the .start
file and the launcher's sitecustomize all call activate(). Idempotent, and it
never raises: a problem is one warning line on stderr, and start-up goes on."""

from __future__ import annotations

import os
import sys

activated_by: str | None = None
"""How objcprefork was switched on in this process: "pth", "start",
"sitecustomize", "import objcprefork.auto", or None."""


def warn(message: object) -> None:
    sys.stderr.write(f"objcprefork: warning: {message}\n")


def activate(how: str = "pth") -> None:
    global activated_by
    if activated_by is not None:
        return
    try:
        from . import _config

        if _config.environment_ignored() or not _config.is_true(os.environ.get("OBJCPREFORK")):
            return
        config = _config.load(os.environ, on_error=lambda exc: warn(f"{exc}; ignored"))
        if config.frameworks:
            from ._frameworks import load_frameworks

            for framework in config.frameworks:
                try:
                    load_frameworks([framework])
                except ValueError as exc:
                    warn(f"{exc}; ignored")
        from . import _install

        _install(config.class_list())
        activated_by = how
        if config.debug:
            sys.stderr.write(report(how) + "\n")
    except Exception as exc:
        warn(f"start-up activation failed: {exc!r}")


def report(how: str) -> str:
    """One line: how, the runtime, and the classes by state."""
    from ._native import core

    snap = core.snapshot()
    states = [state for _name, state in snap["classes"]]
    runtime = snap["runtime"] or f"none ({snap['runtime_missing']})"
    return (f"objcprefork: active ({how}); runtime {runtime}; {len(states)} classes: "
            f"{states.count(1)} initialized, {states.count(0)} pending, "
            f"{states.count(2)} not loaded")
