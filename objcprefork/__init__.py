"""objcprefork: keep forked children alive on macOS.

Before every fork(), run Objective-C +initialize for a list of classes, so that
the child of a threaded parent finds them initialized instead of aborting with
"+[X initialize] may have been in progress in another thread when fork() was
called". Safe to import and call anywhere: where no Objective-C runtime is
loaded (Linux, Windows, macOS before 10.13) it does nothing, and says so.
"""

from __future__ import annotations

import os

from ._defaults import DEFAULT_CLASSES
from ._names import merge, validate_names
from ._native import core

# Kept light for interpreter start-up: typing, dataclasses and the config
# reader are imported only when used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ._status import ClassState, ClassStatus, Status

__version__ = "0.1.0"
__all__ = [
    "DEFAULT_CLASSES", "ClassState", "ClassStatus", "Status", "add_classes", "classes",
    "install", "install_from_config", "is_installed", "set_classes", "status", "uninstall",
]

def install(classes: Iterable[str] | None = None, *, defaults: bool = True,
            frameworks: Iterable[str] = ()) -> Status:
    """Run +initialize of the listed classes now and before every fork().

    The list becomes DEFAULT_CLASSES (unless defaults is false) followed by
    classes. frameworks (macOS framework names, library sonames, or paths) are
    loaded first, in this process. Listed classes already loaded are
    initialized right away, outside any fork, so that a failing +initialize
    fails here. Classes not loaded yet are looked for again at every fork after
    an image is loaded. Idempotent: calling it again sets the same list again.
    """
    if not isinstance(defaults, bool):
        raise TypeError(f"defaults must be True or False, not {defaults!r}")
    _install(merge(DEFAULT_CLASSES if defaults else (),
                   validate_names(classes) if classes is not None else ()),
             frameworks, allow_paths=True)
    return status()


def install_from_config(environ: Mapping[str, str] | None = None, *,
                        classes: Iterable[str] | None = None,
                        defaults: bool | None = None) -> Status:
    """install() with the configuration of the environment and the config file.

    Sources and precedence are those of start-up activation (see the README):
    classes add up (file, environment, then these), defaults comes from the
    most specific source that sets it (this argument, the environment, the
    file). A bad value raises ValueError naming the source, and installs nothing.
    """
    from . import _config

    extra = validate_names(classes) if classes is not None else ()
    if defaults is not None and not isinstance(defaults, bool):
        raise TypeError(f"defaults must be True, False or None, not {defaults!r}")
    config = _config.load(os.environ if environ is None else environ)
    if defaults is not None:
        config.defaults = defaults
    _install(config.class_list(extra), config.frameworks)
    return status()


def _install(names: tuple[str, ...], frameworks: Iterable[str] = (), *,
             allow_paths: bool = False) -> None:
    if frameworks:
        from ._frameworks import load_frameworks

        load_frameworks(frameworks, allow_paths=allow_paths)
    was = core.set_enabled(True)  # registering the handlers is what can fail: first
    try:
        core.set_table(names)
    except BaseException:
        core.set_enabled(was)
        raise
    core.force()


def uninstall() -> bool:
    """Make the fork handler inert (it stays registered); return whether it was installed."""
    return bool(core.set_enabled(False))


def is_installed() -> bool:
    """Whether the fork handler is active."""
    return bool(core.snapshot()["enabled"])


def classes() -> tuple[str, ...]:
    """The class list, in order."""
    return tuple(name for name, _state in core.snapshot()["classes"])


def add_classes(names: Iterable[str]) -> None:
    """Append classes to the list (duplicates are ignored); when installed, initialize them now."""
    core.set_table(validate_names(names), True)
    core.force()  # a no-op unless installed


def set_classes(names: Iterable[str]) -> None:
    """Replace the list; when installed, initialize the new classes now."""
    core.set_table(validate_names(names))
    core.force()  # a no-op unless installed


def status() -> Status:
    """A snapshot: installed or not, the runtime, each class's state, the counters."""
    from ._status import Status

    return Status.from_snapshot(core.snapshot())




def __getattr__(name: str) -> object:
    if name in ("ClassState", "ClassStatus", "Status"):
        from . import _status

        return getattr(_status, name)
    raise AttributeError(f"module 'objcprefork' has no attribute {name!r}")
