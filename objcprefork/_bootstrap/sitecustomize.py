"""objcprefork's launcher bootstrap. `objcprefork run` puts this folder first on
PYTHONPATH, so every Python that the command starts imports it at start-up,
even one whose site-packages lacks objcprefork's .pth. It activates
objcprefork, then steps aside and runs the user's own sitecustomize."""

import os
import sys


def _bootstrap() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
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
        sys.stderr.write(f"objcprefork: warning: start-up activation failed: {exc!r}\n")


_bootstrap()
del _bootstrap
_this = sys.modules.pop("sitecustomize")  # the user's own may now take the name
try:
    import sitecustomize  # type: ignore[import-not-found]  # noqa: F401  (the user's own)
except ImportError as exc:
    sys.modules["sitecustomize"] = _this  # none: the import system expects a module here
    if exc.name != "sitecustomize":
        raise
