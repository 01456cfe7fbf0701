"""objcprefork: keep forked children alive on macOS.

Before every fork(), run Objective-C +initialize for a list of classes, so that
the child of a threaded parent finds them initialized instead of aborting with
"+[X initialize] may have been in progress in another thread when fork() was
called". Safe to import and call anywhere: where no Objective-C runtime is
loaded (Linux, Windows, macOS before 10.13) it does nothing, and says so.
"""

import os

from ._defaults import DEFAULT_CLASSES
from ._names import valid_names, validate_names
from ._native import InertCore, core, listed

# Kept light for interpreter start-up: typing, dataclasses and the config
# reader are imported only when used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ._contract import ClassState
    from ._status import ClassStatus, Status

__version__ = "0.1.0"
__all__ = [
    "DEFAULT_CLASSES", "ClassState", "ClassStatus", "Status", "add_classes", "classes",
    "install", "install_from_config", "is_installed", "set_classes", "status", "uninstall",
]

def install(classes: "Iterable[str] | None" = None, *, defaults: bool = True,
            frameworks: "Iterable[str]" = (), child_core_dumps: bool | None = None
            ) -> "Status":
    """Run +initialize of the listed classes now and before every fork().

    Adds DEFAULT_CLASSES (unless defaults is false) and classes to the list.
    It never drops a class that another way put there (the launcher, the
    environment, the config file, learnt classes, earlier calls): only
    set_classes() replaces the list. frameworks (macOS framework names,
    library sonames, or paths) are loaded first, in this process. Listed
    classes already loaded are initialized right away, outside any fork, so
    that a failing +initialize fails here. Classes not loaded yet are looked
    for again, once the runtime tells of new classes, before each fork made
    from Python (a before-fork hook), and forced there, outside the fork.
    The fork handler itself forces nothing: a fork made from C code gets what
    was forced before it.
    Idempotent. child_core_dumps=False sets RLIMIT_CORE to 0 in forked
    children only (the parent keeps its limit); None leaves it as it is.

    In a restricted process (a fork child of a threaded parent, where Apple's
    runtime aborts at any new +initialize), nothing new is forced: install()
    succeeds, keeps what the parent initialized, and warns once
    (RuntimeWarning). Where the native core is missing, nothing is installed
    and status() says why.
    """
    if not isinstance(defaults, bool):
        raise TypeError(f"defaults must be True or False, not {defaults!r}")
    if child_core_dumps is not None and not isinstance(child_core_dumps, bool):
        raise TypeError(f"child_core_dumps must be True, False or None, not "
                        f"{child_core_dumps!r}")
    named = dict.fromkeys(DEFAULT_CLASSES, "defaults") if defaults else {}
    for name in valid_names(classes) if classes is not None else ():
        named.setdefault(name, "install()")
    _install(named, frameworks, allow_paths=True, child_core_dumps=child_core_dumps,
             stacklevel=4)
    return status()


def install_from_config(environ: "Mapping[str, str] | None" = None, *,
                        classes: "Iterable[str] | None" = None,
                        defaults: bool | None = None) -> "Status":
    """install() with the configuration of the environment and the config file.

    Sources and precedence are those of start-up activation (see the README):
    classes add up (file, environment, then these), defaults comes from the
    most specific source that sets it (this argument, the environment, the
    file). A bad value raises ValueError naming the source, and installs nothing.
    """
    from collections.abc import Mapping

    from . import _config

    if environ is not None and not isinstance(environ, Mapping):
        raise TypeError(f"environ must be a mapping of str to str or None, not {environ!r}")
    extra = validate_names(classes) if classes is not None else ()
    if defaults is not None and not isinstance(defaults, bool):
        raise TypeError(f"defaults must be True, False or None, not {defaults!r}")
    config = _config.load(os.environ if environ is None else environ)
    if defaults is not None:
        config.defaults = defaults
    _install(config.sourced(extra, "install_from_config()"), config.frameworks,
             child_core_dumps=config.child_core_dumps, stacklevel=4)
    return status()


_hooked = False  # os.register_at_fork(before=core.force) done in this interpreter
_warned_restricted = False


def _install(names: "Mapping[str, str]", frameworks: "Iterable[str]" = (), *,
             allow_paths: bool = False, child_core_dumps: bool | None = None,
             stacklevel: int = 3) -> None:
    """Add names (class -> source) to the list and switch objcprefork on."""
    global _hooked
    if isinstance(core, InertCore) and core.tell:
        core.tell = False
        import sys

        sys.stderr.write(f"objcprefork: warning: {core.reason}\n")
    if frameworks:
        from ._frameworks import load_frameworks

        load_frameworks(frameworks, allow_paths=allow_paths)
    was = core.set_installed(True)  # registering the handlers is what can fail: first
    try:
        core.set_table(names if type(names) is dict else dict(names), True)
    except BaseException:
        core.set_installed(was)
        raise
    if child_core_dumps is not None:
        core.set_child_core_dumps(child_core_dumps)
    if not _hooked and not isinstance(core, InertCore):
        # Forks from Python get their classes forced here, with the GIL
        # released and before CPython takes its fork locks; the fork
        # handlers never force (docs/design.md, "Inside the fork"). There is
        # no way to unregister: when uninstalled, force() returns at once.
        os.register_at_fork(before=core.force)
        _hooked = True
    _force(stacklevel)


def _force(stacklevel: int = 3) -> None:
    """Force now, outside any fork; in a restricted process, warn once instead,
    at the caller's line stacklevel frames up (the public function's caller)."""
    global _warned_restricted
    core.force()  # nothing when not installed
    if _warned_restricted:
        return
    reason = core.withheld()  # a read of two flags: no snapshot of the whole list
    if reason and core.is_installed():
        _warned_restricted = True
        import warnings

        warnings.warn(
            f"objcprefork: this process is restricted ({reason}): Apple's runtime "
            "aborts it at any new +initialize, so objcprefork forces nothing here and keeps "
            "only what the parent initialized. Switch objcprefork on in the parent process "
            "(install() before it forks, OBJCPREFORK=1, or `objcprefork run -- CMD`).",
            RuntimeWarning, stacklevel=stacklevel)


def uninstall() -> bool:
    """Make the fork handler inert (it stays registered); return whether it was installed."""
    return bool(core.set_installed(False))


def is_installed() -> bool:
    """Whether objcprefork is switched on."""
    return core.is_installed()


def classes() -> tuple[str, ...]:
    """The class list, in order."""
    return tuple(name for name, _, _ in listed(core.snapshot()))


def add_classes(names: "Iterable[str]") -> None:
    """Append classes to the list (duplicates are ignored); when installed, initialize them
    now (never in a restricted process: see Status.restricted)."""
    core.set_table(dict.fromkeys(valid_names(names), "add_classes()"), True)
    _force()


def set_classes(names: "Iterable[str]") -> None:
    """Replace the whole list, whatever put the classes there (the launcher, the
    environment, the config file, install()); when installed, initialize the new
    classes now (never in a restricted process: see Status.restricted)."""
    core.set_table(dict.fromkeys(valid_names(names), "set_classes()"))
    _force()


def status() -> "Status":
    """A snapshot: installed or not, restricted or not, the runtime, each class's
    state, the counters."""
    from ._status import Status

    return Status(core.snapshot())


def __getattr__(name: str) -> object:
    if name == "ClassState":  # a type; at run time, the Literal of the states
        from typing import Literal

        return Literal[core.STATES]
    if name in ("ClassStatus", "Status"):
        from . import _status

        return getattr(_status, name)
    raise AttributeError(f"module 'objcprefork' has no attribute {name!r}")
