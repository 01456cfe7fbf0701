"""The objcprefork command (also `python -m objcprefork`)."""

from __future__ import annotations

import argparse
import os
import re
import sys

TRUE_FOR_APPLE = "YES"
MAX_LEARNT = 256  # classes one --learn run may add
RUNTIME_LINE = re.compile(rb"objc\[\d+\]: ")


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
        if not (args.learn and not os.path.exists(path)):  # --learn may create it
            read_file(path, Config())  # refuse a bad file now, not in every child
            env["OBJCPREFORK_CONFIG"] = path
    if args.no_defaults:
        env["OBJCPREFORK_DEFAULTS"] = "0"
    if args.disable_fork_safety:
        env["OBJC_DISABLE_INITIALIZE_FORK_SAFETY"] = TRUE_FOR_APPLE
    paths = [bootstrap_dir()] + [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def config_target(args: argparse.Namespace) -> str:
    """The file --learn and --append write: --config FILE, else the file the
    configuration is read from (OBJCPREFORK_CONFIG, else the user's)."""
    from ._config import active_config_path

    return os.path.abspath(args.config) if args.config else active_config_path(os.environ)


def record(path: str, classes: tuple[str, ...], command: str) -> int:
    """Add classes to a config file and say what was done; 0 or 1."""
    from ._config import ConfigError, append_classes

    try:
        added = append_classes(path, classes)
    except ConfigError as exc:
        print(f"objcprefork {command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"objcprefork {command}: cannot write {path}: {exc.strerror or exc}; "
              "it is unchanged", file=sys.stderr)
        return 1
    kept = [c for c in classes if c not in added]
    if added:
        print(f"objcprefork {command}: added to {path}: {', '.join(added)}", file=sys.stderr)
    if kept:
        print(f"objcprefork {command}: already in {path}: {', '.join(kept)}", file=sys.stderr)
    return 0


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
    if args.learn:
        return learn(command, env, config_target(args))
    try:
        os.execvpe(command[0], command, env)  # CMD's own signals and exit status
    except OSError as exc:
        print(f"objcprefork run: cannot run {command[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127 if isinstance(exc, FileNotFoundError) else 126


def learn(command: list[str], env: dict[str, str], config: str) -> int:
    """Run CMD with its stderr flowing through, collecting the classes Apple's
    message names; record them in the config file at exit."""
    import signal
    import subprocess

    from ._crashlog import read_report

    try:
        child = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    except OSError as exc:
        print(f"objcprefork run: cannot run {command[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127 if isinstance(exc, FileNotFoundError) else 126
    for forwarded in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(forwarded, lambda signum, _frame: child.send_signal(signum))
    seen: dict[str, None] = {}
    assert child.stderr is not None
    for line in iter(child.stderr.readline, b""):
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()
        # Only the runtime's own lines ("objc[PID]: ..."), never a log line
        # that quotes one; and at most MAX_LEARNT classes per run.
        if RUNTIME_LINE.match(line) and len(seen) < MAX_LEARNT:
            seen.update(dict.fromkeys(read_report(line).classes))
    code = child.wait()
    learnt = tuple(seen)
    if learnt:
        print(f"objcprefork run --learn: learnt {len(learnt)} class(es): {', '.join(learnt)}",
              file=sys.stderr)
        record(config, learnt, "run --learn")
    else:
        print("objcprefork run --learn: no fork-safety crash seen", file=sys.stderr)
    return code if code >= 0 else 128 - code


def command_doctor(args: argparse.Namespace) -> int:
    from ._doctor import collect, render

    report = collect()
    if args.json:
        import json

        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return 0 if report["protected"] else 1


def command_scan(args: argparse.Namespace) -> int:
    from ._frameworks import load_frameworks
    from ._scan import render, scan

    try:
        load_frameworks(args.framework, allow_paths=True)
    except ValueError as exc:
        print(f"objcprefork scan: {exc}", file=sys.stderr)
        return 2
    found = scan(args.image)
    print(render(found))
    if args.write:
        from . import _toml
        from ._config import Config, read_file
        from ._crashlog import is_class_name
        from ._frameworks import validate_framework_names

        # Only valid names reach the file, and paths only inside quoted comments:
        # nothing the runtime or a path supplies can add a key.
        classes = tuple(name for names in found.values() for name, _owner in names
                        if is_class_name(name))
        names = validate_framework_names(f for f in args.framework if "/" not in f)
        lines = ["# written by objcprefork scan: classes with a non-trivial +initialize"]
        lines += [_toml.comment(f"scanned {p} (a path: load it in your app; the config "
                                "takes names)") for p in args.framework if "/" in p]
        if names:
            lines.append(f"frameworks = {_toml.array(names)}")
        lines.append(f"classes = {_toml.array(classes)}")

        def check(written: str) -> None:
            config = Config()
            read_file(written, config)
            if config.classes != classes or config.frameworks != names:
                raise ValueError(f"{args.write}: the written file does not read back")

        try:
            _toml.replace(args.write, "\n".join(lines) + "\n", check)
        except OSError as exc:
            print(f"objcprefork scan: cannot write {args.write}: {exc.strerror or exc}; "
                  "it is unchanged", file=sys.stderr)
            return 1
        print(f"objcprefork scan: wrote {len(classes)} classes to {args.write}", file=sys.stderr)
    return 0


def command_explain(args: argparse.Namespace) -> int:
    from ._config import load
    from ._crashlog import read_report

    try:
        if args.file in (None, "-"):
            data = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as f:
                data = f.read()
    except OSError as exc:
        print(f"objcprefork explain: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    findings = read_report(data)
    classes = findings.classes
    if not classes and not findings.unfixable:
        print(f"Found no fork-safety crash in this {findings.format} input.")
        return 1
    if classes:
        active = load(os.environ, on_error=lambda exc: None).class_list()
        print(f"A child forked from a threaded parent needed Objective-C classes whose "
              f"+initialize had not run in the parent, and the runtime killed it "
              f"(found in {findings.format} input):")
        for name in classes:
            where = "already in the active list" if name in active else "not in the active list"
            print(f"  +[{name} initialize]  ({where})")
        missing = [n for n in classes if n not in active]
        if missing:
            joined = ", ".join(f'"{n}"' for n in missing)
            print("To add them, any one of:")
            print(f"  config file ({config_target(args)}):  classes = [{joined}]")
            print(f"  environment:  OBJCPREFORK_CLASSES={','.join(missing)}")
            print(f"  launcher:     objcprefork run --classes {','.join(missing)} -- CMD")
            print(f"  in the app:   objcprefork.add_classes([{joined}])")
            print("  or run this again with --append to write them to the config file.")
        else:
            print("They are listed: was objcprefork active in that process? "
                  "Check with `objcprefork run -- objcprefork doctor`.")
    for problem in findings.unfixable:
        print(f"Also found: {problem.name} ({problem.evidence!r}).")
        print(f"  {problem.advice}")
    if args.append and classes:
        return record(config_target(args), tuple(classes), "explain")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="objcprefork",
        description="Keep forked children alive on macOS: run Objective-C +initialize "
                    "before every fork().")
    from . import __version__

    top.add_argument("--version", action="version", version=f"objcprefork {__version__}")
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
    run.add_argument("--learn", action="store_true",
                     help="run CMD as a child, watch its stderr for Apple's message and record "
                          "the classes it names in the config file (--config or the user's)")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    run.set_defaults(handler=command_run)

    doctor = sub.add_parser("doctor", help="is this process protected? (exit 0 if so)")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(handler=command_doctor)

    scan = sub.add_parser("scan", help="list loaded classes with a non-trivial +initialize, "
                                       "without initializing any")
    scan.add_argument("--image", metavar="SUBSTRING", help="only images whose path contains it")
    scan.add_argument("--framework", action="append", default=[], metavar="NAME",
                      help="load this framework, library or path first (repeatable)")
    scan.add_argument("--write", metavar="FILE", help="save the result as a config file")
    scan.set_defaults(handler=command_scan)

    explain = sub.add_parser("explain", help="explain a crash from stderr text, a .crash or "
                                             "an .ips report")
    explain.add_argument("file", nargs="?", metavar="FILE", help="the report; - or none: stdin")
    explain.add_argument("--append", action="store_true",
                         help="add the classes found to the config file")
    explain.add_argument("--config", metavar="FILE", help="the config file (default: the user's)")
    explain.set_defaults(handler=command_explain)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.handler(args))
