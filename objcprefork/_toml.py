"""Writing config files, in one place: every value quoted, every class name
validated, and the file replaced atomically, never through a path someone
else can plant. Used by `run --learn`, `explain --append` and `scan --write`."""

from __future__ import annotations

import contextlib
import json
import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


def string(value: str) -> str:
    """A TOML basic string; JSON's escapes (\\n, \\", \\uXXXX) are TOML's too."""
    return json.dumps(value)


def array(values: Iterable[str]) -> str:
    return "[\n" + "".join(f"    {string(v)},\n" for v in values) + "]"


def comment(text: str) -> str:
    """A one-line comment: a newline in text (a path, say) cannot start a key."""
    return "# " + string(text)[1:-1]


def replace(path: str, text: str, check: Callable[[str], None]) -> None:
    """Write text to path: to a fresh temporary file (mkstemp: exclusive, 0600)
    in the target's real folder, check(temporary) (raise to refuse), give it
    the old file's mode, then os.replace() it onto the resolved target, so a
    symlinked config stays a symlink. On any error the target is untouched.
    Raises OSError for an unwritable place."""
    import tempfile

    real = os.path.realpath(path)
    folder = os.path.dirname(real)
    if os.path.exists(folder) and not os.path.isdir(folder):
        import errno

        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), folder)
    os.makedirs(folder, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(real).st_mode)
    except FileNotFoundError:
        mode = 0o644
    fd, temporary = tempfile.mkstemp(prefix=".objcprefork-", suffix=".toml", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), mode)
        check(temporary)
        os.replace(temporary, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
