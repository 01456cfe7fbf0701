"""Writes what is generated from the sources (`make docs`), or with --check
says what is stale (tests/test_docs.py runs that):

- DEFAULT_CLASSES in objcprefork/_defaults.py, and docs/classes.md, from
  objcprefork/data/classes.csv;
- the command reference in docs/cli.md, from objcprefork._cli.parser().

It imports objcprefork from this tree, not from an installed copy."""

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from objcprefork._cli import parser  # noqa: E402
from objcprefork._defaults import markdown, source  # noqa: E402

CLI_PART = ("<!-- generated from objcprefork._cli.parser() by `make docs`: edit the parser -->\n",
            "<!-- end of the generated part -->\n")
CLASSES_PART = ("# checks that the two agree.\n", "# End of the generated part.\n")


def cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|")


def usage(prog: str, command: argparse.ArgumentParser) -> str:
    words = [prog]
    for action in command._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        metavar = action.metavar or action.dest.upper()
        if not action.option_strings:
            words.append(f"[{metavar}]" if action.nargs == "?" else str(metavar))
            continue
        argument = {0: "", "*": f" [{metavar} ...]"}.get(action.nargs, f" {metavar}")
        flag = action.option_strings[-1] + argument
        words.append(f"[{flag}]" + ("..." if isinstance(action, argparse._AppendAction) else ""))
    return " ".join(words)


def reference() -> str:
    top = parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    out = [f"{top.description}\n", "```"]
    out += [usage(f"objcprefork {name}", command) for name, command in sub.choices.items()]
    out += ["```", "", f"{top.epilog}", ""]
    for summary in sub._choices_actions:
        command = sub.choices[summary.dest]
        summary_help = summary.help or ""
        out += [f"## `objcprefork {summary.dest}`", "",
                summary_help[:1].upper() + summary_help[1:], ""]
        if command.description:
            out += [command.description, ""]
        options = [a for a in command._actions if not isinstance(a, argparse._HelpAction)]
        if options:
            out += ["| argument | meaning |", "|---|---|"]
            for action in options:
                name = (action.option_strings[-1] if action.option_strings else "")
                metavar = "" if action.nargs == 0 else str(action.metavar or action.dest.upper())
                shown = " ".join(filter(None, [name, metavar]))
                out.append(f"| `{cell(shown)}` | {cell(action.help)} |")
            out.append("")
    return "\n".join(out)


def splice(current: str, part: tuple[str, str], content: str) -> str:
    head, _, rest = current.partition(part[0])
    return f"{head}{part[0]}{content}{part[1]}{rest.partition(part[1])[2]}"


def main() -> int:
    check = sys.argv[1:] == ["--check"]
    cli, defaults = REPO / "docs" / "cli.md", REPO / "objcprefork" / "_defaults.py"
    wanted = {defaults: splice(defaults.read_text(encoding="utf-8"), CLASSES_PART, source()),
              REPO / "docs" / "classes.md": markdown(),
              cli: splice(cli.read_text(encoding="utf-8"), CLI_PART, f"\n{reference()}\n")}
    stale = [path for path, text in wanted.items()
             if path.read_text(encoding="utf-8") != text]
    for path in stale:
        if check:
            print(f"stale: {path.relative_to(REPO)} (run: make docs)")
        else:
            path.write_text(wanted[path], encoding="utf-8")
            print(f"wrote {path.relative_to(REPO)}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
