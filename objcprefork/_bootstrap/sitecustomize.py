"""objcprefork's launcher bootstrap. `objcprefork run` puts this folder first on
PYTHONPATH, so every Python that the command starts imports it at start-up,
even one whose site-packages lacks objcprefork's .pth. It activates
objcprefork, then steps aside and runs the user's own sitecustomize.

Any Python may import it, so it parses on old ones too (no f-strings, no
annotations): on a Python objcprefork does not support it prints one line
naming the version, and that process is not protected."""

# ruff: noqa: UP031, UP036  (%-formatting and the version check are for old Pythons)
import os
import sys


def _warn(message):
    # type: (str) -> None
    sys.stderr.write("objcprefork: warning: %s\n" % (message,))


def _bootstrap():
    # type: () -> None
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    if sys.version_info < (3, 10):
        _warn("Python %d.%d is not supported (objcprefork needs 3.10 or later): this "
              "process is not protected" % sys.version_info[:2])
        return
    # Interpreter start, as the .pth line records it, before the package (and
    # its native core) loads: tells a later fork child from this process
    # (restricted_at_load, src/fork.c).
    sys.__dict__.setdefault("_objcprefork_start_pid", os.getpid())
    try:
        if "objcprefork._startup" not in sys.modules:
            try:
                import objcprefork._startup
            except ImportError:
                # Not installed for this interpreter: borrow the launcher's copy,
                # from the end of sys.path so it shadows nothing.
                site_dir = os.path.dirname(os.path.dirname(here))
                sys.path.append(site_dir)
                try:
                    import objcprefork._startup  # noqa: F401
                finally:
                    sys.path.remove(site_dir)
        sys.modules["objcprefork._startup"].activate("sitecustomize")
    except Exception as exc:
        _warn("start-up activation failed: %r" % (exc,))


_bootstrap()
_this = sys.modules.pop("sitecustomize")  # the user's own may now take the name
try:
    import sitecustomize  # type: ignore[import-not-found]  # noqa: F401  (the user's own)
except ImportError as exc:
    sys.modules["sitecustomize"] = _this  # none: the import system expects a module here
    if getattr(exc, "name", "sitecustomize") != "sitecustomize":
        raise
