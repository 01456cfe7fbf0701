"""Validating and splitting Objective-C class names: the API, the environment
and the config file all go through here."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

MAX_NAME_BYTES = 255
MAX_GUESSED = 16  # listed names not loaded that close_names() looks at: diagnostics stay fast


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate_name(name: object) -> str:
    """Return name, as a plain str, if it can be an Objective-C class name;
    raise TypeError or ValueError."""
    if not isinstance(name, str):
        raise TypeError(f"a class name must be str, not {type(name).__name__}: {_shown(name)}")
    # A subclass may compare or hash as it likes: its plain characters are the name.
    name = str.__str__(name)
    problem = None
    if not name:
        problem = "it is empty"
    elif "\0" in name:
        problem = "it contains NUL"
    elif any(c.isspace() for c in name):
        problem = "it contains whitespace"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        problem = f"it is longer than {MAX_NAME_BYTES} bytes in UTF-8"
    elif not all(part.replace("$", "_").isidentifier() for part in name.split(".")):
        # Identifier characters ('$' included, as clang allows), and dots for
        # Swift's Module.Class names.
        digit = any(part[:1].isdigit() for part in name.split("."))
        problem = (f"{'it starts with a digit' if digit else 'it holds other characters'}: "
                   "a class name is a letter, _ or $, then letters, digits, _ and $ (with . "
                   "between the parts of Swift's Module.Class)")
    if problem:
        raise ValueError(f"invalid Objective-C class name {_shown(name)}: {problem}")
    return name


def is_class_name(name: str) -> bool:
    try:
        validate_name(name)
    except ValueError:
        return False
    return True


def validate_names(names: object) -> tuple[str, ...]:
    """Validate an iterable of class names; return them in order, without duplicates.

    A bare str is refused rather than taken as a list of one-letter names.
    """
    return merge(valid_names(names))


def valid_names(names: object) -> "Iterator[str]":
    """validate_names() one name at a time, duplicates kept: what builds a
    dict of thousands of names makes no list and no tuple of them first."""
    if isinstance(names, (str, bytes, bytearray)):
        raise TypeError(f"expected an iterable of class names, got {type(names).__name__} "
                        f"{_shown(names)}; wrap a single name in a list: [{_shown(names)}]")
    try:
        items = iter(names)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"expected an iterable of class names, got {type(names).__name__}: "
                        f"{_shown(names)}") from None
    return (validate_name(name) for name in items)


def escape(text: str) -> str:
    """text, with what is not printable (ESC, newlines...) shown as Python
    escapes: a value from outside can never start a terminal sequence or
    forge a line of output."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def merge(*lists: "Iterable[str]") -> tuple[str, ...]:
    """Concatenate already-valid name lists, keeping the first of each name."""
    return tuple(dict.fromkeys(name for names in lists for name in names))


def split_names(text: str) -> tuple[str, ...]:
    """Split 'A, B C' (commas and/or whitespace) into validated names."""
    return validate_names(text.replace(",", " ").split())


def close_names(wanted: "Iterable[str]", known: "Iterable[str]") -> dict[str, str]:
    """{name: the known name it is most likely a typo of}, for the first
    MAX_GUESSED wanted names: "NSDaet" -> "NSDate". Case is ignored, and only
    names within two characters of its length are compared, so that a
    runtime's tens of thousands of classes stay cheap."""
    wanted = list(wanted)[:MAX_GUESSED]
    if not wanted:
        return {}
    import difflib

    by_length: dict[int, dict[str, str]] = {}
    for name in known:
        by_length.setdefault(len(name), {}).setdefault(name.lower(), name)
    found = {}
    for name in wanted:
        pool = {lower: original for size in range(len(name) - 2, len(name) + 3)
                for lower, original in by_length.get(size, {}).items()}
        match = difflib.get_close_matches(name.lower(), pool, n=1, cutoff=0.8)
        if match and pool[match[0]] != name:
            found[name] = pool[match[0]]
    return found
