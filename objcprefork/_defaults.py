"""The default class list and its provenance, data/classes.csv (one row per
class, with where it was reported). Start-up reads only DEFAULT_CLASSES,
generated here from that file, so it reads no file and works from a zip; the
rest reads the file through importlib.resources, for the same reason."""

# Generated from data/classes.csv by `make docs` (docs/generate.py); a test
# checks that the two agree.
DEFAULT_CLASSES: tuple[str, ...] = (
    "__NSCFConstantString",
    "__NSPlaceholderDate",
    "NSNumber",
    "__NSPlaceholderDictionary",
    "NSCharacterSet",
    "NSString",
    "NSMutableString",
    "NSPlaceholderMutableString",
    "NSCheapMutableString",
    "NSPlaceholderString",
    "NSValue",
    "NSResponder",
    "__NSPlaceholderArray",
    "__NSPlaceholderSet",
    "__NSTimeZone",
    "ODNode",
    "NSTaggedPointerString",
)
# End of the generated part.

__all__ = ["DEFAULT_CLASSES", "markdown", "reported_name", "rows", "source"]


def rows() -> list[dict[str, str]]:
    """Every row of the data file, with its provenance (see the file's header)."""
    import csv
    from importlib.resources import files

    text = (files("objcprefork") / "data" / "classes.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(line for line in text.splitlines()
                               if line and not line.startswith("#")))


def reported_name(name: str) -> str:
    """A class name as a report gives it, with the leading "__" that titles
    and some logs lose restored when that names a known class."""
    known = {row["class"] for row in rows()}
    return f"__{name}" if name not in known and f"__{name}" in known else name


def source() -> str:
    """DEFAULT_CLASSES as generated above (make docs)."""
    names = "".join(f'    "{r["class"]}",\n' for r in rows() if r["default"] == "yes")
    return f"DEFAULT_CLASSES: tuple[str, ...] = (\n{names})\n"


def markdown() -> str:
    """docs/classes.md, generated from the data file (make docs)."""
    lines = [
        "# The default class list",
        "",
        "Generated from `objcprefork/data/classes.csv` by `make docs`; a test fails when",
        "the two disagree. *reports* is a lower bound of distinct public threads or",
        "documents naming `+[CLASS initialize]` in Apple's fork-safety message",
        "(re-checked 2026-11). Classes marked *no* are listed for their provenance",
        "and are not forced by default.",
        "",
        "| class | default | framework | reports | years | examples | typical trigger "
        "| evidence | why |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| `{r['class']}` | {r['default']} | {r['framework']} | {r['reports']} | "
              f"{r['years']} | {r['examples']} | {r['trigger']} | {r['evidence']} | "
              f"{r['why']} |" for r in rows()]
    return "\n".join(lines) + "\n"
