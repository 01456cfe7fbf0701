"""Where the configuration comes from, and in what order.

Sources: the environment (OBJCPREFORK_*), a TOML file, the API's arguments.
Class lists add up, in that order of sources: file, then environment, then
API. A single setting (defaults) is taken from the most specific source that
sets it: API argument, else environment, else file, else true.

At start-up a bad source is skipped with one warning line; through the API it
raises ValueError (ConfigError)."""

from __future__ import annotations

import os
import sys

from ._names import merge, split_names, validate_names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

TRUE_VALUES = ("1", "yes", "true", "on")
FILE_KEYS = ("classes", "defaults", "frameworks")


class ConfigError(ValueError):
    """A bad configuration value; the message names its source."""


def is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in TRUE_VALUES


def environment_ignored() -> bool:
    """-E and -I ignore the environment, and so do setuid/setgid processes."""
    if sys.flags.ignore_environment:
        return True
    if hasattr(os, "geteuid"):
        return os.getuid() != os.geteuid() or os.getgid() != os.getegid()
    return False


def user_config_path(environ: Mapping[str, str]) -> str:
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "objcprefork", "config.toml")


class Config:
    """The merged result of the environment and the file."""

    def __init__(self) -> None:
        self.active = False          # OBJCPREFORK: activate at start-up
        self.debug = False           # OBJCPREFORK_DEBUG: one report line at start-up
        self.defaults: bool | None = None
        self.classes: tuple[str, ...] = ()
        self.frameworks: tuple[str, ...] = ()
        self.path: str | None = None  # the config file read, if any

    def class_list(self, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
        from ._defaults import DEFAULT_CLASSES

        return merge(DEFAULT_CLASSES if self.defaults is not False else (), self.classes, extra)


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


def read_file(path: str, config: Config) -> None:
    """Read a TOML config file into config; ConfigError names the file and the line."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        with open(path, "rb") as f:
            raw = f.read()
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
    config.classes = validate_names(lists["classes"])
    config.frameworks = validate_framework_names(lists["frameworks"])


def load(environ: Mapping[str, str],
         on_error: Callable[[ConfigError], None] | None = None) -> Config:
    """Merge the environment and the config file.

    Without on_error the first problem raises ConfigError and nothing is used;
    with it, each bad source is reported to on_error and skipped.
    """
    def problem(exc: ConfigError) -> None:
        if on_error is None:
            raise exc
        on_error(exc)

    config = Config()
    ignored = environment_ignored()
    env: Mapping[str, str] = {} if ignored else environ
    config.active = is_true(env.get("OBJCPREFORK"))
    config.debug = is_true(env.get("OBJCPREFORK_DEBUG"))

    explicit = env.get("OBJCPREFORK_CONFIG")
    path = explicit or (None if ignored else user_config_path(environ))
    if path is not None and (explicit or os.path.exists(path)):
        try:
            read_file(path, config)
        except ConfigError as exc:
            problem(exc)

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
        try:
            config.classes = merge(config.classes, split_names(env["OBJCPREFORK_CLASSES"]))
        except ValueError as exc:
            problem(ConfigError(f"OBJCPREFORK_CLASSES: {exc}"))
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


def _toml_array(names: tuple[str, ...]) -> str:
    return "[\n" + "".join(f'    "{name}",\n' for name in names) + "]"


def append_classes(path: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """Add class names to the config file's `classes`, creating the file if
    needed, keeping everything else as written. Returns the names added.

    The result is read back before it replaces the file: a file this cannot
    edit safely raises ConfigError and is left untouched."""
    text = ""
    config = Config()
    if os.path.exists(path):
        read_file(path, config)
        with open(path, encoding="utf-8") as f:
            text = f.read()
    added = tuple(name for name in validate_names(names) if name not in config.classes)
    if not added:
        return ()
    wanted = merge(config.classes, added)
    import re

    key = re.search(r"(?m)^[ \t]*classes[ \t]*=[ \t]*(?=\[)", text)
    end = _array_end(text, key.end()) if key else -1
    if key and end > 0:
        new_text = text[:key.start()] + "classes = " + _toml_array(wanted) + text[end:]
    elif key is None:  # valid files have no tables, so the end is top level
        new_text = text + ("\n" if text and not text.endswith("\n") else "")
        new_text += f"classes = {_toml_array(wanted)}\n"
    else:
        raise ConfigError(f"{path}: cannot add classes to this file automatically; "
                          f"add them by hand: {', '.join(added)}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = f"{path}.objcprefork-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(new_text)
    try:
        check = Config()
        read_file(temporary, check)
        if check.classes != wanted:
            raise ConfigError(f"{path}: editing it would not give the expected classes")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return added
