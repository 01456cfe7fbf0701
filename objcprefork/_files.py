"""Every file objcprefork writes, written here: classes appended to a config
file (`run --learn`, `explain --append`), scan output (`scan --write`) and
the enable marker (`objcprefork enable`).

Every value is quoted and every class name validated, so nothing from
outside can add a key. Each write holds an flock on the file across read,
edit and write, so concurrent writers lose nothing. A symlink is followed
only when its owner is the writer or root (as the kernel's
protected_symlinks would). A file only the writer links to is replaced
atomically; one with other links or another owner is rewritten in place, so
that its links, owner and mode stay."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat

from ._config import MAX_FILE_BYTES, STRING_OR_COMMENT, Config, ConfigError, parse
from ._names import validate_names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

MAX_APPEND = 256  # classes one run may add: learning or explaining a flood stays small
MARKER_TEXT = ("# objcprefork is switched on at the start of every Python of this "
               "environment.\n# `objcprefork disable` removes this file; OBJCPREFORK=0 "
               "overrides it.\n")


def string(value: str) -> str:
    """A TOML basic string; JSON's escapes (\\n, \\", \\uXXXX) are TOML's too."""
    return json.dumps(value)


def array(values: Iterable[str]) -> str:
    return "[\n" + "".join(f"    {string(v)},\n" for v in values) + "]"


def comment(text: str) -> str:
    """A one-line comment: a newline in text (a path, say) cannot start a key."""
    return "# " + string(text)[1:-1]


def resolve(path: str) -> str:
    """path with its symlinks followed, refusing one planted by another user."""
    for _hop in range(40):
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return path
        if not os.path.islink(path):
            return path
        if info.st_uid not in (0, os.geteuid()):
            raise PermissionError(errno.EPERM, f"a symlink owned by uid {info.st_uid} (not "
                                  "followed)", path)
        path = os.path.join(os.path.dirname(path), os.readlink(path))
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


def update(path: str, edit: Callable[[str], str | None]) -> None:
    """Give path the text edit(its text) returns ("" for a new file; None:
    leave it), under an flock held from the read to the write. Raises
    OSError for an unwritable place, ConfigError for what edit refuses; on
    any error the file is unchanged."""
    real = resolve(os.path.abspath(path))
    os.makedirs(os.path.dirname(real), exist_ok=True)
    while True:
        try:
            fd = os.open(real, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            if not stat.S_ISREG(os.lstat(real).st_mode):  # never opened: a FIFO, a device
                raise ConfigError(f"{real!r}: not a regular file") from None
            fd = os.open(real, os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                current = os.stat(real, follow_symlinks=False)
            except FileNotFoundError:
                continue  # replaced and gone while we waited: again
            if (current.st_dev, current.st_ino) != (held.st_dev, held.st_ino):
                continue  # another writer replaced it while we waited: lock the new one
            if not stat.S_ISREG(held.st_mode):  # swapped in since the lstat
                raise ConfigError(f"{real!r}: not a regular file")
            old = os.read(fd, MAX_FILE_BYTES + 1)
            if len(old) > MAX_FILE_BYTES:
                raise ConfigError(f"{real!r}: larger than {MAX_FILE_BYTES >> 10} KiB")
            text = edit(old.decode("utf-8"))
            if text is None:
                return
            data = text.encode("utf-8")
            if len(data) > MAX_FILE_BYTES:
                raise ConfigError(f"{real!r}: would grow past {MAX_FILE_BYTES >> 10} KiB, "
                                  "more than objcprefork reads")
            if held.st_nlink > 1 or held.st_uid != os.geteuid() or not old:
                _rewrite(fd, data)  # keeps links, owner and mode; a new file is ours alone
            else:
                _replace(real, data, stat.S_IMODE(held.st_mode))
            return
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{real!r}: not UTF-8 text ({exc.reason})") from None
        finally:
            os.close(fd)  # releases the lock


def _rewrite(fd: int, data: bytes) -> None:
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    os.write(fd, data)
    os.fsync(fd)


def _replace(real: str, data: bytes, mode: int) -> None:
    """A fresh temporary file (mkstemp: exclusive, 0600) in the same folder,
    renamed onto real: a reader sees the old text or the new, never half."""
    import tempfile

    fd, temporary = tempfile.mkstemp(prefix=".objcprefork-", dir=os.path.dirname(real))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), mode)
        os.replace(temporary, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def append_classes(path: str, names: Iterable[str]) -> tuple[str, ...]:
    """Add class names to the config file's `classes`, creating the file if
    needed, keeping everything else as written. Returns the names added: at
    most MAX_APPEND a run. A file this cannot edit safely raises ConfigError
    and is left untouched."""
    names = validate_names(names)
    added: tuple[str, ...] = ()

    def edit(text: str) -> str | None:
        nonlocal added
        config = Config()
        parse(text, path, config)
        listed = config.sources
        added = tuple(name for name in names if name not in listed)[:MAX_APPEND]
        if not added:
            return None
        wanted = (*listed, *added)
        key = re.search(r"(?m)^[ \t]*classes[ \t]*=[ \t]*\[", text)
        if key is None:  # valid files have no tables, so the end is top level
            new = text + ("\n" if text and not text.endswith("\n") else "")
            new += f"classes = {array(wanted)}\n"
        else:  # the array's end: the first "]" outside strings and comments
            tokens = re.compile(STRING_OR_COMMENT + r"|\]").finditer(text, key.end())
            end = next((m.end() for m in tokens if m.group() == "]"), -1)
            if end < 0:
                raise ConfigError(f"{path}: cannot add classes to this file automatically; "
                                  f"add them by hand: {', '.join(added)}")
            new = text[:key.start()] + "classes = " + array(wanted) + text[end:]
        reread = Config()
        parse(new, path, reread)
        if reread.classes != wanted:
            raise ConfigError(f"{path}: editing it would not give the expected classes")
        return new

    update(path, edit)
    return added


def write_scan(path: str, classes: tuple[str, ...], frameworks: tuple[str, ...],
               comments: Iterable[str]) -> None:
    """A config file of scan's result, replacing whatever path held."""
    lines = ["# written by objcprefork scan: classes with a non-trivial +initialize"]
    lines += [comment(text) for text in comments]
    if frameworks:
        lines.append(f"frameworks = {array(frameworks)}")
    lines.append(f"classes = {array(classes)}")
    text = "\n".join(lines) + "\n"
    written = Config()
    parse(text, path, written)
    if written.classes != classes or written.frameworks != frameworks:
        raise ConfigError(f"{path}: the written file would not read back")
    update(path, lambda _old: text)


def write_marker(path: str) -> None:
    update(path, lambda old: None if old == MARKER_TEXT else MARKER_TEXT)


def startup_files_problem() -> str | None:
    """Why objcprefork's .pth, .start and enable marker have no effect in this
    install, or None. site reads them only in a site-packages folder: an
    editable install or a source tree on sys.path has them elsewhere."""
    import site

    from _objcprefork_start import enable_marker

    folder = os.path.dirname(enable_marker())
    sites = [*site.getsitepackages(), site.getusersitepackages()]
    if os.path.realpath(folder) not in map(os.path.realpath, sites):
        return (f"objcprefork runs from {folder}, not from a site-packages folder (an editable "
                "install, or a source tree on sys.path), where site never reads its .pth or "
                "the enable marker: install it with `pip install .` (not -e), or use "
                "`objcprefork run -- CMD` or `import objcprefork.auto`")
    if not os.path.exists(os.path.join(folder, "objcprefork.pth")):
        return f"objcprefork's start-up files are not installed in {folder}: install the wheel"
    return None
