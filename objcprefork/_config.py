"""The one settings step: the environment, the config file and the enable
marker become one Config. Every way in (the .pth line and the .start file
through _startup, the launcher's bootstrap, objcprefork.auto,
install_from_config, run, explain, doctor) reads it from here.

Sources: the environment (OBJCPREFORK_*), a TOML file, the API's arguments.
Class lists add up, in that order of sources: file, then environment, then
API. A single setting (defaults) is taken from the most specific source that
sets it: API argument, else environment, else file, else true.

Who is heard, in one place (README, "Activation rules"):
- OBJCPREFORK* variables are not PYTHON* variables: -E and -I honour them;
- -I (isolated) reads no config file: neither the user's nor OBJCPREFORK_CONFIG;
- a set-id process (issetugid(), AT_SECURE) ignores every OBJCPREFORK*
  variable and every config file;
- activation: OBJCPREFORK when set, else the enable marker that
  `objcprefork enable` puts next to the .pth file.

At start-up a bad source is skipped with one warning line; through the API it
raises ValueError (ConfigError)."""

from __future__ import annotations

import os
import sys

from ._names import merge, split_names, validate_names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

try:
    from _objcprefork_start import TRUE_VALUES
except ImportError:  # a source tree or a zip application without the start-up module
    TRUE_VALUES = ("1", "yes", "true", "on")
FILE_KEYS = ("classes", "defaults", "frameworks")


class ConfigError(ValueError):
    """A bad configuration value; the message names its source."""


def is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in TRUE_VALUES


MAX_FILE_BYTES = 1 << 20
MAX_CLASSES = 4096  # from files and variables; the API is not capped


def is_setugid() -> bool:
    """issetugid() where it exists (macOS, BSDs), else the kernel's AT_SECURE
    (set-id and file-capability binaries): a uid comparison misses both.
    Linux reads /proc/self/auxv, so start-up needs no ctypes there."""
    if sys.platform.startswith("linux"):
        import struct

        try:
            with open("/proc/self/auxv", "rb") as f:
                data = f.read()
        except OSError:
            return os.getuid() != os.geteuid() or os.getgid() != os.getegid()
        size = struct.calcsize("@L")
        for offset in range(0, len(data) - 2 * size + 1, 2 * size):
            key, value = struct.unpack_from("@LL", data, offset)
            if key == 23:  # AT_SECURE
                return bool(value)
        return False
    import ctypes

    libc = ctypes.CDLL(None)
    if hasattr(libc, "issetugid"):
        return bool(libc.issetugid())
    return os.getuid() != os.geteuid() or os.getgid() != os.getegid()


def enable_marker() -> str:
    """The file `objcprefork enable` writes, next to objcprefork.pth; "" where
    the start-up files are not installed (a source tree, a zip application)."""
    try:
        from _objcprefork_start import enable_marker as marker_path
    except ImportError:
        return ""
    return marker_path()


def user_config_path(environ: Mapping[str, str]) -> str:
    """The XDG config file; a relative XDG_CONFIG_HOME is ignored, as the XDG
    spec says."""
    base = environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "objcprefork", "config.toml")


def active_config_path(environ: Mapping[str, str]) -> str:
    """Where the configuration is read from, and so where learnt classes go:
    OBJCPREFORK_CONFIG when set and absolute, else the user's file."""
    explicit = environ.get("OBJCPREFORK_CONFIG", "")
    return explicit if os.path.isabs(explicit) else user_config_path(environ)


class Config:
    """The merged result of the environment, the file and the marker."""

    def __init__(self) -> None:
        self.active = False          # activate at start-up
        self.activation: str | None = None  # what decided it, for doctor
        self.debug = False           # OBJCPREFORK_DEBUG: one report line at start-up
        self.defaults: bool | None = None
        self.classes: tuple[str, ...] = ()
        self.sources: dict[str, str] = {}  # class -> where it came from
        self.frameworks: tuple[str, ...] = ()
        self.child_core_dumps: bool | None = None  # False: OBJCPREFORK_CHILD_CORES=0
        self.path: str | None = None  # the config file read, if any
        self.problems: list[str] = []  # every problem found, for doctor

    def add(self, names: tuple[str, ...], source: str) -> None:
        for name in names:
            self.sources.setdefault(name, source)
        self.classes = merge(self.classes, names)

    def class_list(self, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
        return tuple(self.sourced(extra))

    def sourced(self, extra: tuple[str, ...] = (), extra_source: str = "install_from_config()"
                ) -> dict[str, str]:
        """The class list in force, each class with where it came from."""
        from ._defaults import DEFAULT_CLASSES

        listed = dict.fromkeys(DEFAULT_CLASSES if self.defaults is not False else (),
                               "defaults")
        for name in self.classes:
            listed.setdefault(name, self.sources.get(name, "configuration"))
        for name in extra:
            listed.setdefault(name, extra_source)
        return listed


def _line_of(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    return None


def _toml_problem(path: str, message: str, text: str) -> str:
    """'file, line N: problem' from tomllib's '... (at line N, column M)'."""
    problem, _, where = message.rpartition(" (at ")
    if where.startswith("line "):
        return f"{path}, line {where[5:].split(',')[0]}: {problem}"
    if where == "end of document)":
        return f"{path}, line {max(1, len(text.splitlines()))}: {problem} at the end"
    return f"{path}: {message}"


def _read_bounded(path: str) -> bytes:
    """A regular file of at most MAX_FILE_BYTES, opened without blocking: a
    FIFO, a device or /dev/zero is refused, never waited on or read whole."""
    import stat

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB")
        return os.read(fd, MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]
    finally:
        os.close(fd)


def read_file(path: str, config: Config) -> None:
    """Read a TOML config file into config; ConfigError names the file and the line."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        raw = _read_bounded(path)
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_problem(path, str(exc), text)) from None
    except RecursionError:  # tomllib recurses into nested arrays and tables
        raise ConfigError(f"{path}: nested too deeply to read") from None

    def fail(key: str, needle: str, problem: str) -> ConfigError:
        line = _line_of(text, needle)
        where = f"{path}, line {line}" if line else path
        return ConfigError(f"{where}: {key}: {problem}")

    for key in data:
        if key not in FILE_KEYS:
            raise fail(key, key, f"unknown key (known: {', '.join(FILE_KEYS)})")
    defaults = data.get("defaults", None)
    if defaults is not None and not isinstance(defaults, bool):
        raise fail("defaults", "defaults", f"must be true or false, not {defaults!r}")
    lists = {}
    for key in ("classes", "frameworks"):
        value = data.get(key, [])
        if not isinstance(value, list):
            raise fail(key, key, f"must be a list of strings, not {value!r}")
        for item in value:
            if not isinstance(item, str):
                raise fail(key, key, f"must be a list of strings; {item!r} is not a string")
        lists[key] = value
    from ._frameworks import validate_framework_names

    checks = (("classes", validate_names), ("frameworks", validate_framework_names))
    for key, validate in checks:
        for item in lists[key]:
            try:
                validate([item])
            except ValueError as exc:
                raise fail(key, item or key, str(exc)) from None
    config.path = path
    config.defaults = defaults
    config.add(validate_names(lists["classes"]), f"config file {path}")
    config.frameworks = validate_framework_names(lists["frameworks"])


def load(environ: Mapping[str, str],
         on_error: Callable[[ConfigError], None] | None = None) -> Config:
    """Merge the environment and the config file.

    Without on_error the first problem raises ConfigError and nothing is used;
    with it, each bad source is reported to on_error and skipped.
    """
    def problem(exc: ConfigError) -> None:
        config.problems.append(str(exc))
        if on_error is None:
            raise exc
        on_error(exc)

    config = Config()
    setid = is_setugid()
    env: Mapping[str, str] = {} if setid else environ
    files = not setid and not sys.flags.isolated
    if "OBJCPREFORK" in env:
        config.active = is_true(env["OBJCPREFORK"])
        config.activation = f"OBJCPREFORK={env['OBJCPREFORK']!r}"
    elif (marker := enable_marker()) and os.path.exists(marker):
        config.active, config.activation = True, f"enabled by {marker}"
    if setid:
        config.activation = (config.activation or "off") + "; set-id: variables and files ignored"
    config.debug = is_true(env.get("OBJCPREFORK_DEBUG"))
    if env.get("OBJCPREFORK_CHILD_CORES", "").strip() == "0":
        config.child_core_dumps = False  # else None: the limit is left as it is

    explicit = env.get("OBJCPREFORK_CONFIG") if files else None
    if explicit == "-":  # no file: `objcprefork run` read it already, for everyone
        files, explicit = False, None
    if explicit and not os.path.isabs(explicit):
        problem(ConfigError(f"OBJCPREFORK_CONFIG={explicit!r} is relative: the current "
                            "directory never supplies the configuration"))
        explicit = None
    if files and environ.get("XDG_CONFIG_HOME", "").strip() and \
            not os.path.isabs(environ["XDG_CONFIG_HOME"]):
        problem(ConfigError(f"XDG_CONFIG_HOME={environ['XDG_CONFIG_HOME']!r} is relative "
                            "(the XDG spec says to ignore it): using ~/.config"))
    path = explicit or (user_config_path(environ) if files else None)
    if path is not None and (explicit or os.path.exists(path)):
        try:
            read_file(path, config)
        except ConfigError as exc:
            problem(exc)
    if "OBJCPREFORK_FRAMEWORKS" in env:  # names only, as in a config file
        from ._frameworks import validate_framework_names

        try:
            config.frameworks = merge(config.frameworks, validate_framework_names(
                env["OBJCPREFORK_FRAMEWORKS"].replace(",", " ").split()))
        except ValueError as exc:
            problem(ConfigError(f"OBJCPREFORK_FRAMEWORKS: {exc}"))

    if "OBJCPREFORK_DEFAULTS" in env:
        value = env["OBJCPREFORK_DEFAULTS"].strip().lower()
        if value in ("0", "no", "false", "off"):
            config.defaults = False
        elif value in TRUE_VALUES:
            config.defaults = True
        else:
            problem(ConfigError(f"OBJCPREFORK_DEFAULTS={env['OBJCPREFORK_DEFAULTS']!r}: "
                                "expected 0 or 1"))
    if "OBJCPREFORK_CLASSES" in env:
        source = ("objcprefork run" if env.get("OBJCPREFORK_LAUNCHER") == "1"
                  else "OBJCPREFORK_CLASSES")
        try:
            config.add(split_names(env["OBJCPREFORK_CLASSES"]), source)
        except ValueError as exc:
            problem(ConfigError(f"OBJCPREFORK_CLASSES: {exc}"))
    if len(config.classes) > MAX_CLASSES:
        count = len(config.classes)
        config.classes = config.classes[:MAX_CLASSES]
        problem(ConfigError(f"{count} classes from files and variables: only the first "
                            f"{MAX_CLASSES} are used"))
    return config


def _array_end(text: str, start: int) -> int:
    """Index just past the TOML array opening at text[start] ('['), skipping
    strings and comments; -1 if it does not close."""
    depth, i, quote = 0, start, ""
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "#":
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def append_classes(path: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """Add class names to the config file's `classes`, creating the file if
    needed, keeping everything else as written. Returns the names added.

    The result is read back before it replaces the file: a file this cannot
    edit safely raises ConfigError and is left untouched."""
    from ._toml import array, replace

    text = ""
    config = Config()
    if os.path.exists(path):
        read_file(path, config)
        text = _read_bounded(path).decode("utf-8")
    added = tuple(name for name in validate_names(names) if name not in config.classes)
    if not added:
        return ()
    wanted = merge(config.classes, added)
    import re

    key = re.search(r"(?m)^[ \t]*classes[ \t]*=[ \t]*(?=\[)", text)
    end = _array_end(text, key.end()) if key else -1
    if key and end > 0:
        new_text = text[:key.start()] + "classes = " + array(wanted) + text[end:]
    elif key is None:  # valid files have no tables, so the end is top level
        new_text = text + ("\n" if text and not text.endswith("\n") else "")
        new_text += f"classes = {array(wanted)}\n"
    else:
        raise ConfigError(f"{path}: cannot add classes to this file automatically; "
                          f"add them by hand: {', '.join(added)}")
    def check(written: str) -> None:
        reread = Config()
        read_file(written, reread)
        if reread.classes != wanted:
            raise ConfigError(f"{path}: editing it would not give the expected classes")

    replace(path, new_text, check)
    return added
