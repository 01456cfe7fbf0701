"""The objcprefork command (also `python -m objcprefork`)."""

from __future__ import annotations

import argparse
import os
import sys

TRUE_FOR_APPLE = "YES"


def bootstrap_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")


def launcher_environment(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """The environment under which every Python that the command starts activates.

    Raises ValueError for bad --classes or --config."""
    from ._config import Config, read_file
    from ._names import split_names

    env = dict(environ)
    env["OBJCPREFORK"] = "1"
    if args.classes:
        split_names(args.classes)
        env["OBJCPREFORK_CLASSES"] = ",".join(
            part for part in (environ.get("OBJCPREFORK_CLASSES", "").strip(), args.classes) if part)
    if args.config:
        path = os.path.abspath(args.config)
        read_file(path, Config())  # refuse a bad file now, not in every child
        env["OBJCPREFORK_CONFIG"] = path
    if args.no_defaults:
        env["OBJCPREFORK_DEFAULTS"] = "0"
    if args.disable_fork_safety:
        env["OBJC_DISABLE_INITIALIZE_FORK_SAFETY"] = TRUE_FOR_APPLE
    paths = [bootstrap_dir()] + [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def command_run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("objcprefork run: no command given (objcprefork run [options] -- CMD ARGS...)",
              file=sys.stderr)
        return 2
    try:
        env = launcher_environment(args, dict(os.environ))
    except ValueError as exc:
        print(f"objcprefork run: {exc}", file=sys.stderr)
        return 2
    try:
        os.execvpe(command[0], command, env)  # CMD's own signals and exit status
    except OSError as exc:
        print(f"objcprefork run: cannot run {command[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127 if isinstance(exc, FileNotFoundError) else 126


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="objcprefork",
        description="Keep forked children alive on macOS: run Objective-C +initialize "
                    "before every fork().")
    sub = top.add_subparsers(dest="subcommand", required=True)

    run = sub.add_parser(
        "run", help="run a command with objcprefork active in every Python it starts",
        description="Run CMD with objcprefork active at the start of every Python process "
                    "that it starts, and those they exec, through objcprefork's .pth and a "
                    "sitecustomize bootstrap on PYTHONPATH. CMD replaces this process.")
    run.add_argument("--classes", metavar="A,B",
                     help="extra class names, separated by commas or spaces")
    run.add_argument("--config", metavar="FILE", help="a TOML config file to use")
    run.add_argument("--no-defaults", action="store_true", help="drop the default class list")
    run.add_argument("--disable-fork-safety", action="store_true",
                     help="fallback: also set OBJC_DISABLE_INITIALIZE_FORK_SAFETY=YES, which "
                          "silences Apple's check (only effective before a process starts)")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    run.set_defaults(handler=command_run)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.handler(args))
