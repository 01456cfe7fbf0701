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
- activation: OBJCPREFORK when set, else the enable marker that
  `objcprefork enable` puts next to the .pth file (_objcprefork_start decides);
- a set-id process (AT_SECURE, issetugid(), or either unreadable) hears only
  that switch: defaults, and no other variable or file;
- a config file is read only when it is a regular file owned by this user or
  root that nobody else can write, at an absolute path.

At start-up a bad source is skipped with one warning line; through the API it
raises ValueError (ConfigError)."""

import os
import sys

from _objcprefork_start import distrust, is_setugid, switched_on, truth

from ._names import escape, split_names, validate_names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

FILE_KEYS = ("classes", "defaults", "frameworks")
# Parsing costs tomllib ~30 ms at this size, whatever the file holds (once
# screened); a real list (scan's whole output, learnt classes) stays well below,
# and objcprefork never writes a bigger file.
MAX_FILE_BYTES = 64 << 10
MAX_CLASSES = 4096  # from files and variables; the API is not capped
LAUNCHER = "objcprefork run"


class ConfigError(ValueError):
    """A bad configuration value; the message names its source."""


class Unreadable(ConfigError):
    """A config file that cannot be read at all (missing, no permission): an
    I/O problem rather than a bad value (the command line's exit status 3)."""


def user_config_path(environ: "Mapping[str, str]") -> str | None:
    """The XDG config file, or None without an absolute place for it: a
    relative XDG_CONFIG_HOME falls back to ~/.config (the XDG spec), and a
    relative HOME gives no file, as the current directory never supplies one."""
    base = environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".config")
    return os.path.join(base, "objcprefork", "config.toml") if os.path.isabs(base) else None


def active_config_path(environ: "Mapping[str, str]") -> str | None:
    """Where the configuration is read from, and so where learnt classes go:
    OBJCPREFORK_CONFIG when set and absolute, else the user's file."""
    explicit = environ.get("OBJCPREFORK_CONFIG", "")
    return explicit if os.path.isabs(explicit) else user_config_path(environ)


class Config:
    """The merged result of the environment, the file and the marker."""

    def __init__(self) -> None:
        self.active = False          # activate at start-up
        self.activation = ""         # what decided it, for doctor
        self.setid = False           # a set-id process: only the switch was heard
        self.debug = False           # OBJCPREFORK_DEBUG: one report line at start-up
        self.learn = False           # OBJCPREFORK_LEARN: under `objcprefork run --learn`
        self.defaults: bool | None = None
        self.sources: dict[str, str] = {}  # class -> where it came from, in list order
        self.frameworks: tuple[str, ...] = ()
        self.child_core_dumps: bool | None = None  # False: OBJCPREFORK_CHILD_CORES=0
        self.path: str | None = None  # the config file read, if any
        self.problems: list[str] = []  # every problem found, for doctor

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.sources)

    def add(self, names: "Iterable[str]", source: "str | Mapping[str, str]") -> None:
        """Add names, each labelled source (or source[name] when it has one)."""
        for name in names:
            label = source if isinstance(source, str) else source.get(name, LAUNCHER)
            self.sources.setdefault(name, label)

    def class_list(self, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
        return tuple(self.sourced(extra))

    def sourced(self, extra: tuple[str, ...] = (), extra_source: str = "install_from_config()"
                ) -> dict[str, str]:
        """The class list in force, each class with where it came from."""
        from ._defaults import DEFAULT_CLASSES

        listed = dict.fromkeys(DEFAULT_CLASSES if self.defaults is not False else (),
                               "defaults")
        for name, source in self.sources.items():
            listed.setdefault(name, source)
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
    """A trusted regular file of at most MAX_FILE_BYTES, opened without
    blocking: a FIFO, a device or /dev/zero is refused, never waited on or read
    whole, and so is a file another user owns or can write."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        problem = distrust(info) or (info.st_size > MAX_FILE_BYTES
                                     and f"larger than {MAX_FILE_BYTES >> 10} KiB")
        if problem:
            raise ConfigError(f"{path!r}: {problem}")
        return os.read(fd, MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]
    finally:
        os.close(fd)


# A one-line string (its end optional: an unclosed one runs to the end of its
# line, so no search restarts inside it) or a comment.
STRING_OR_COMMENT = r'"(?:[^"\\\n]|\\.)*"?|\'[^\'\n]*\'?|#[^\n]*'


def screen(text: str) -> str | None:
    """What makes text more than objcprefork's format (a few top-level keys,
    flat arrays of one-line strings), or None. Checked before tomllib, whose
    time and memory grow with the square of a dotted key's parts: with
    these refused, every file up to MAX_FILE_BYTES parses in bounded time.
    Each pattern is linear: an unclosed string runs to the end of its line."""
    import re

    if '"""' in text or "'''" in text:
        return "multi-line strings are not used here"
    bare = re.sub(STRING_OR_COMMENT, "S", text)
    if "{" in bare:
        return "inline tables are not used here"
    if re.search(r"(?m)^[ \t]*\[", bare):
        return "tables ([section]) are not used here: write the keys at the top level"
    if re.search(r"(?m)^[^=\n.]*\.[^=\n]*=", bare):
        return "dotted keys are not used here"
    if "]" in re.sub(r"\[[^\[\]]*\]", "", bare):
        return "nested arrays are not used here"
    return None


def quick_parse(text: str) -> "dict[str, object] | None":
    """The values of text when it keeps to the plain form objcprefork writes:
    `key = value` lines at the top level, each value true, false, a string
    without escapes, or a flat array of such strings (over several lines,
    with commas and comments); None for anything else, which tomllib then
    reads (with its own messages). It agrees with tomllib wherever it answers
    (tests/test_fuzz.py), and spares the start-up of importing tomllib and re,
    about 14 ms, where a config file exists."""
    if "\r" in text or any((c < " " and c not in "\t\n") or c == "\x7f" for c in text):
        return None  # control characters: tomllib decides
    data: dict[str, object] = {}
    n = len(text)

    def skip(i: int, newlines: bool) -> int:  # blanks and comments
        while i < n:
            if text[i] in " \t" or (newlines and text[i] == "\n"):
                i += 1
            elif text[i] == "#":
                end = text.find("\n", i)
                i = n if end < 0 else end
            else:
                break
        return i

    def string(i: int) -> "tuple[str | None, int]":
        end = text.find(text[i], i + 1)
        value = text[i + 1:end] if end > 0 else "\n"
        if "\n" in value or (text[i] == '"' and "\\" in value):
            return None, i
        return value, end + 1

    i = skip(0, True)
    while i < n:
        start = i
        while i < n and ((text[i].isascii() and text[i].isalnum()) or text[i] in "_-"):
            i += 1
        key = text[start:i]
        i = skip(i, False)
        if not key or key in data or i >= n or text[i] != "=":
            return None
        i = skip(i + 1, False)
        value: object
        if text.startswith(("true", "false"), i):
            value = text.startswith("true", i)
            i += 4 if value else 5
        elif i < n and text[i] in "\"'":
            value, i = string(i)
        elif i < n and text[i] == "[":
            items: list[str] = []
            i = skip(i + 1, True)
            while i < n and text[i] != "]":
                item, i = string(i) if text[i] in "\"'" else (None, i)
                if item is None:
                    return None
                items.append(item)
                i = skip(i, True)
                if i < n and text[i] == ",":
                    i = skip(i + 1, True)
                elif i < n and text[i] != "]":
                    return None
            if i >= n:
                return None
            value, i = items, i + 1
        else:
            return None
        if value is None:
            return None
        i = skip(i, False)
        if i < n and text[i] != "\n":
            return None
        data[key] = value
        i = skip(i, True)
    return data


def read_file(path: str, config: Config) -> None:
    """Read a TOML config file into config; ConfigError names the file and the line."""
    try:
        text = _read_bounded(path).decode("utf-8")
    except OSError as exc:
        raise Unreadable(f"{escape(path)}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{escape(path)}: not UTF-8 text ({exc.reason} at byte {exc.start})"
                          ) from None
    parse(text, path, config)


def parse(text: str, path: str, config: Config) -> None:
    """Read the text of the config file path into config (ConfigError)."""

    shown = escape(path)
    data = quick_parse(text)
    if data is None:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib

        problem = screen(text)
        if problem:
            raise ConfigError(f"{shown}: {problem} (objcprefork reads the keys "
                              f"{', '.join(FILE_KEYS)})")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(_toml_problem(shown, str(exc), text)) from None
        except RecursionError:  # tomllib recurses into nested arrays
            raise ConfigError(f"{shown}: nested too deeply to read") from None

    def fail(key: str, needle: str, problem: str) -> ConfigError:
        line = _line_of(text, needle)
        where = f"{shown}, line {line}" if line else shown
        return ConfigError(f"{where}: {escape(key)}: {problem}")

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
    valid: dict[str, tuple[str, ...]] = {"frameworks": ()}
    checks: list[tuple[str, Callable[[Iterable[str]], tuple[str, ...]]]] = [
        ("classes", validate_names)]
    if lists["frameworks"]:  # its module imports re: only when there are any
        from ._frameworks import validate_framework_names

        checks.append(("frameworks", validate_framework_names))
    for key, validate in checks:
        try:
            valid[key] = validate(lists[key])
        except ValueError:  # which one, on which line
            for item in lists[key]:
                try:
                    validate([item])
                except ValueError as exc:
                    raise fail(key, item or key, str(exc)) from None
            raise
    config.path = path
    config.defaults = defaults
    config.add(valid["classes"], f"config file {path}")
    config.frameworks = valid["frameworks"]


def load(environ: "Mapping[str, str]",
         on_error: "Callable[[ConfigError], None] | None" = None) -> Config:
    """Merge the environment and the config file.

    Without on_error the first problem raises ConfigError and nothing is used;
    with it, each bad source is reported to on_error and skipped.
    """
    def problem(message: str | ConfigError) -> None:
        exc = message if isinstance(message, ConfigError) else ConfigError(message)
        config.problems.append(str(exc))
        if on_error is None:
            raise exc
        on_error(exc)

    config = Config()
    # Kept for doctor, never raised: they concern start-up alone, whose first
    # step (_objcprefork_start) has warned already.
    config.active, config.activation = switched_on(environ, config.problems.append)
    if is_setugid():  # the switch and the defaults, nothing else
        config.setid = True
        config.activation += "; set-id: other variables and files ignored"
        return config
    env = environ
    config.debug = truth(env.get("OBJCPREFORK_DEBUG", "")) is True
    config.learn = env.get("OBJCPREFORK_LEARN") == "1"
    if "OBJCPREFORK_CHILD_CORES" in env:  # 0: none in children; 1: the limit is left as it is
        value = truth(env["OBJCPREFORK_CHILD_CORES"])
        if value is None:
            problem(f"OBJCPREFORK_CHILD_CORES={env['OBJCPREFORK_CHILD_CORES']!r}: "
                    "expected 0 or 1")
        elif not value:
            config.child_core_dumps = False

    files = not sys.flags.isolated
    explicit = env.get("OBJCPREFORK_CONFIG") if files else None
    if explicit == "-":  # no file: `objcprefork run` read it already, for everyone
        files, explicit = False, None
        config.path = env.get("OBJCPREFORK_LAUNCHER_CONFIG") or None  # for doctor
    if explicit and not os.path.isabs(explicit):
        problem(f"OBJCPREFORK_CONFIG={explicit!r} is relative: the current directory never "
                "supplies the configuration")
        explicit = None
    xdg, home = env.get("XDG_CONFIG_HOME", "").strip(), env.get("HOME", "")
    if files and not explicit and xdg and not os.path.isabs(xdg):
        problem(f"XDG_CONFIG_HOME={xdg!r} is relative (the XDG spec says to ignore it): "
                "using ~/.config")
    if files and not explicit and not os.path.isabs(xdg) and home and not os.path.isabs(home):
        problem(f"HOME={home!r} is relative: no user config file is read (the current "
                "directory never supplies the configuration)")
    path = explicit or (user_config_path(env) if files else None)
    if path is not None and (explicit or os.path.exists(path)):
        try:
            read_file(path, config)
        except ConfigError as exc:
            problem(exc)
    if "OBJCPREFORK_FRAMEWORKS" in env:  # names only, as in a config file
        from ._frameworks import validate_framework_names

        try:
            config.frameworks = tuple(dict.fromkeys(config.frameworks + validate_framework_names(
                env["OBJCPREFORK_FRAMEWORKS"].replace(",", " ").split())))
        except ValueError as exc:
            problem(f"OBJCPREFORK_FRAMEWORKS: {exc}")

    if "OBJCPREFORK_DEFAULTS" in env:
        value = truth(env["OBJCPREFORK_DEFAULTS"])
        if value is None:
            problem(f"OBJCPREFORK_DEFAULTS={env['OBJCPREFORK_DEFAULTS']!r}: expected 0 or 1")
        else:
            config.defaults = value
    if "OBJCPREFORK_CLASSES" in env:
        try:
            config.add(split_names(env["OBJCPREFORK_CLASSES"]), launcher_sources(env))
        except ValueError as exc:
            problem(f"OBJCPREFORK_CLASSES: {exc}")
    if len(config.sources) > MAX_CLASSES:
        count = len(config.sources)
        config.sources = dict(list(config.sources.items())[:MAX_CLASSES])
        problem(f"{count} classes from files and variables: only the first {MAX_CLASSES} "
                "are used")
    return config


def launcher_sources(environ: "Mapping[str, str]") -> str | dict[str, str]:
    """How to label OBJCPREFORK_CLASSES: under `objcprefork run`, each class
    with the source the launcher read it from (OBJCPREFORK_LAUNCHER, JSON
    {source: [names]}), else "objcprefork run"; elsewhere, the variable."""
    if "OBJCPREFORK_LAUNCHER" not in environ:
        return "OBJCPREFORK_CLASSES"
    import json

    try:
        groups = json.loads(environ["OBJCPREFORK_LAUNCHER"])
        # A label is only shown: escaped, it can never fail the table (NUL)
        # or forge a line of output.
        return {name: escape(source) for source, names in groups.items() for name in names
                if isinstance(source, str) and isinstance(name, str)}
    except (ValueError, AttributeError, TypeError):  # an older launcher's "1"
        return LAUNCHER


def launcher_variables(config: Config) -> dict[str, str]:
    """The variables through which the launcher hands config's classes, with
    their sources, and the config file it read, to every Python under it
    (read back by load())."""
    import json

    groups: dict[str, list[str]] = {}
    for name, source in config.sources.items():
        groups.setdefault(source, []).append(name)
    return {"OBJCPREFORK_CLASSES": ",".join(config.sources),
            "OBJCPREFORK_LAUNCHER": json.dumps(groups, separators=(",", ":")),
            "OBJCPREFORK_LAUNCHER_CONFIG": config.path or ""}
