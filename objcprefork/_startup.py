"""The single entry point of start-up activation: the .pth line, the .start
file and the launcher's sitecustomize all call activate(). Idempotent, and it
never raises: a problem is one warning line on stderr, and start-up goes on."""

import os
import sys

# At import, so that the launcher's bootstrap, borrowing its copy of
# objcprefork for a Python that lacks one, imports _objcprefork_start too.
from ._config import load

activated_by: str | None = None
"""How objcprefork was switched on in this process: "pth", "start",
"sitecustomize", "import objcprefork.auto", or None."""


def warn(message: object) -> None:
    from ._names import escape

    sys.stderr.write(f"objcprefork: warning: {escape(str(message))}\n")


def activate(how: str = "pth", *, switched: bool = False) -> None:
    """switched: the caller is the switch (import objcprefork.auto), so
    OBJCPREFORK and the marker are not asked; the rest is read alike."""
    global activated_by
    if activated_by is not None:
        return
    try:
        config = load(os.environ, on_error=lambda exc: warn(f"{exc}; ignored"))
        if not (switched or config.active):  # OBJCPREFORK false, or unset and not enabled
            return
        if config.frameworks:
            from ._frameworks import load_frameworks

            for framework in config.frameworks:
                try:
                    load_frameworks([framework])
                except ValueError as exc:
                    warn(f"{exc}; ignored")
        from . import _install
        from ._native import InertCore, core

        if isinstance(core, InertCore):  # nothing to switch on: say why, once
            warn(f"not active: {core.reason}")
            return
        _install(config.sourced(), child_core_dumps=config.child_core_dumps)
        activated_by = how
        if config.learn:  # never in a set-id process: load() heard no variable
            announce_for_learning()
        if config.debug:
            sys.stderr.write(report(how) + "\n")
    except Exception as exc:
        warn(f"start-up activation failed: {exc!r}")


def announce_for_learning() -> None:
    """Under `objcprefork run --learn`, tell the launcher on stderr (it keeps
    these lines out of the output):
    - that this process started by exec: its +initialize log lines are its own;
    - in every Python fork child that objc restricts, that its lines name
      classes its parent should force;
    - before each fork, which loaded classes have a trivial +initialize,
      which objc logs too but which never need forcing."""
    pid = os.getpid()
    os.write(2, f"objcprefork[{pid}]: learn: exec\n".encode())

    def after_in_child() -> None:
        from ._native import core

        if core.snapshot()["threaded_parent"]:
            os.write(2, f"objcprefork[{os.getpid()}]: learn: fork child of a threaded "
                        "parent\n".encode())

    announced: set[str] = set()

    def trivial_before_fork() -> None:
        # Before each fork, the loaded classes with a trivial +initialize not
        # announced yet: objc logs them in children too, and they never need
        # forcing. Only under --learn.
        from ._native import core

        names = [row["name"] for row in core.inspect(None)
                 if row["trivial"] and row["name"] not in announced]
        announced.update(names)
        for start in range(0, len(names), 500):
            os.write(2, (f"objcprefork[{os.getpid()}]: learn: trivial "
                         + " ".join(names[start:start + 500]) + "\n").encode(
                             "utf-8", "surrogateescape"))

    os.register_at_fork(before=trivial_before_fork, after_in_child=after_in_child)


def report(how: str) -> str:
    """One line: how, the runtime, and the classes by state (OBJCPREFORK_DEBUG)."""
    from . import status

    st = status()
    runtime = st.runtime or f"none ({st.runtime_missing})"
    guesses = "".join(f"; {name}: did you mean {loaded}?"
                      for name, loaded in st.did_you_mean().items())
    return (f"objcprefork: installed ({how}); runtime {runtime}; "
            f"{len(st.classes)} classes: {len(st.names('initialized'))} initialized, "
            f"{len(st.names('pending'))} pending, {len(st.names('not loaded'))} not loaded"
            f"{guesses}")
