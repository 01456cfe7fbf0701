"""The objcprefork command (also `python -m objcprefork`).

Exit status: 0 ok; 1 nothing found, or not protected; 2 usage or bad
configuration; 3 a file cannot be read or written. `run` exits as its
command did (and dies by the same signal). Errors are one line on stderr,
never a traceback; a closed stdout (`| head`) ends quietly with 141, as a
shell reports SIGPIPE."""

from __future__ import annotations

import argparse
import os
import sys

from ._names import escape, is_class_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from ._crashlog import Findings, Tally

OK, NOT_FOUND, USAGE, IO = 0, 1, 2, 3
BROKEN_PIPE = 128 + 13
TRUE_FOR_APPLE = "YES"


class Failure(Exception):
    """A user-facing error: one line on stderr, and the exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def config_failure(exc: ValueError) -> Failure:
    """A config file refused: status 3 if it cannot be read at all, as any
    file (docs/cli.md, "Exit status"), 2 if what it says is refused."""
    from ._config import Unreadable

    return Failure(str(exc), IO if isinstance(exc, Unreadable) else USAGE)


def bootstrap_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")


def launcher_environment(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """The environment under which every Python that the command starts activates.

    The launcher decides once: it reads the configuration (file, environment,
    options) here and hands the result on in variables, each class with its
    source, so that no Python under it needs a TOML parser, and the config
    file is not read again."""
    from ._config import ConfigError, launcher_variables, load
    from ._names import split_names

    env = dict(environ)
    try:
        named = tuple(name for value in args.classes for name in split_names(value))
    except ValueError as exc:
        raise Failure(str(exc), USAGE) from None
    if args.config:  # read, and refused if bad, once: by load() below
        path = os.path.abspath(args.config)
        exists = os.path.exists(path) or not args.learn  # --learn may create it
        env["OBJCPREFORK_CONFIG"] = path if exists else "-"
    try:
        config = load(env)
    except ConfigError as exc:
        raise config_failure(exc) from None
    config.add(named, "objcprefork run")
    env.update(launcher_variables(config), OBJCPREFORK="1", OBJCPREFORK_CONFIG="-",
               OBJCPREFORK_DEFAULTS="0" if args.no_defaults or config.defaults is False
               else "1")
    if config.frameworks:
        env["OBJCPREFORK_FRAMEWORKS"] = ",".join(config.frameworks)
    if args.no_child_core_dumps:
        env["OBJCPREFORK_CHILD_CORES"] = "0"
    if args.disable_fork_safety:
        env["OBJC_DISABLE_INITIALIZE_FORK_SAFETY"] = TRUE_FOR_APPLE
    paths = [bootstrap_dir()] + [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    if any(is_pex(arg) for arg in args.command[:3] if arg != "--"):
        # A pex re-executes its interpreter with -I, which drops PYTHONPATH
        # (and so the bootstrap), and leaves a virtualenv for its base
        # interpreter, or builds its own (--venv). Run it in its zipapp mode,
        # from this interpreter, whose objcprefork.pth honours OBJCPREFORK
        # under -I, with this interpreter's path (its site-packages) as a
        # fallback after the pex's own. Only that: the caller's PYTHONPATH,
        # which a pex run plainly ignores, and the bootstrap are not passed,
        # so the pex keeps its isolation. (pex reads these itself: PEX-INFO
        # overrides.)
        env.update(PEX_PYTHON=sys.executable, PEX_INHERIT_PATH="fallback", PEX_VENV="false")
        env.pop("PYTHONPATH")
    return env


def is_pex(arg: str) -> bool:
    """Whether arg names a pex file (a zip holding PEX-INFO), directly or on
    PATH. Only a regular file is opened (stat first): CMD's arguments may
    name a FIFO or a device, which opening would block on or disturb."""
    import shutil
    import stat
    import zipfile

    path = arg if os.sep in arg else shutil.which(arg)
    try:
        if not path or not stat.S_ISREG(os.stat(path).st_mode):
            return False
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode) or not zipfile.is_zipfile(f):
                return False
            with zipfile.ZipFile(f) as archive:
                return "PEX-INFO" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def config_target(args: argparse.Namespace) -> str:
    """The file --learn and --append write: --config FILE, else the file the
    configuration is read from (OBJCPREFORK_CONFIG, else the user's)."""
    from ._config import active_config_path

    target = os.path.abspath(args.config) if args.config else active_config_path(os.environ)
    if target is None:
        raise Failure("no config file to write: HOME is relative; give --config FILE or set "
                      "OBJCPREFORK_CONFIG to an absolute path", USAGE)
    return target


def record(path: str, classes: tuple[str, ...], command: str) -> None:
    """Add classes to a config file and say what was done."""
    from ._config import ConfigError
    from ._files import MAX_APPEND, append_classes

    valid = tuple(dict.fromkeys(c for c in classes if is_class_name(c)))
    try:
        added = append_classes(path, valid)
    except ConfigError as exc:
        raise Failure(str(exc), USAGE) from None
    except OSError as exc:
        raise Failure(f"cannot write {escape(path)}: {exc.strerror or exc}; it is unchanged",
                      IO) from None
    done = set(added)
    left = [c for c in valid if c not in done]
    shown = escape(path)
    if added:
        print(f"objcprefork {command}: added to {shown}: {', '.join(added)}", file=sys.stderr)
    if len(added) == MAX_APPEND and left:
        print(f"objcprefork {command}: {len(left)} more not added (at most {MAX_APPEND} a "
              "run): run it again to add them", file=sys.stderr)
    elif left:
        print(f"objcprefork {command}: already in {shown}: {', '.join(left)}", file=sys.stderr)


def command_run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise Failure("no command given (objcprefork run [options] -- CMD ARGS...)", USAGE)
    if args.verbose and not args.learn:
        raise Failure("--verbose goes with --learn (it shows the lines --learn reads)", USAGE)
    env = launcher_environment(args, dict(os.environ))
    try:
        if args.learn:
            from ._learn import learn

            return learn(command, env, config_target(args), record, args.verbose)
        os.execvpe(command[0], command, env)  # CMD's own signals and exit status
    except OSError as exc:
        raise Failure(f"cannot run {command[0]!r}: {exc.strerror}",
                      127 if isinstance(exc, FileNotFoundError) else 126) from None


def command_enable(args: argparse.Namespace) -> int:
    """Switch start-up activation on for every Python of this environment,
    without a variable: a marker next to objcprefork.pth, which its line stats."""
    from _objcprefork_start import distrust, enable_marker

    from ._files import startup_files_problem, write_marker

    marker = enable_marker()
    problem = startup_files_problem()
    if problem and args.enable:
        raise Failure(f"not enabled: {problem}", USAGE)
    try:
        if args.enable and os.path.exists(marker) and not distrust(os.stat(marker)):
            print(f"objcprefork: already enabled ({escape(marker)})")
        elif args.enable:
            write_marker(marker)
            print(f"objcprefork: enabled for every Python start of this environment "
                  f"({escape(marker)})")
        elif os.path.lexists(marker):
            os.remove(marker)
            print(f"objcprefork: disabled ({escape(marker)} removed)")
        else:
            print(f"objcprefork: already disabled (no {escape(marker)})")
    except (OSError, ValueError) as exc:
        raise Failure(f"cannot {'write' if args.enable else 'remove'} {escape(marker)}: "
                      f"{getattr(exc, 'strerror', None) or exc}", IO) from None
    return OK


def emit(report: Mapping[str, object], text: str, as_json: bool) -> None:
    """The report as JSON, or text whose lines hold values from outside (class
    and image names, paths, config keys): escaped, so none starts a terminal
    sequence or a line of its own."""
    if as_json:
        import json

        print(json.dumps(report, indent=2))
    else:
        print("\n".join(escape(line) for line in text.split("\n")))


def command_doctor(args: argparse.Namespace) -> int:
    from ._doctor import collect, render

    report = collect()
    emit(report, render(report), args.json)
    return OK if report["protected"] else NOT_FOUND


def command_scan(args: argparse.Namespace) -> int:
    from ._frameworks import load_frameworks
    from ._scan import render, scan

    try:
        load_frameworks(args.framework, allow_paths=True)
    except ValueError as exc:
        raise Failure(str(exc), USAGE) from None
    found = scan(args.image)
    report = {"images": [{"image": image, "classes": [{"name": name, "initializer": owner}
                                                       for name, owner in classes]}
                         for image, classes in found.items()],
              "count": sum(len(classes) for classes in found.values())}
    emit(report, render(found, args.image), args.json)
    if args.write:
        write_scan(args, found)
    return OK if found else NOT_FOUND


def write_scan(args: argparse.Namespace, found: dict[str, list[tuple[str, str]]]) -> None:
    from ._config import ConfigError
    from ._files import write_scan as write
    # Only valid names reach the file, and paths only inside quoted comments:
    # nothing the runtime or a path supplies can add a key.
    classes = tuple(dict.fromkeys(name for names in found.values() for name, _owner in names
                                  if is_class_name(name)))
    names = tuple(dict.fromkeys(f for f in args.framework if "/" not in f))
    comments = [f"scanned {p} (a path: load it in your app; the config takes names)"
                for p in args.framework if "/" in p]
    folder = os.path.dirname(os.path.abspath(args.write))
    if not os.path.isdir(folder):  # a mistyped path creates no folder
        raise Failure(f"cannot write {escape(args.write)}: no folder {escape(folder)}", IO)
    try:
        write(args.write, classes, names, comments)
    except ConfigError as exc:
        raise Failure(f"{exc}; it is unchanged", IO) from None
    except OSError as exc:
        raise Failure(f"cannot write {escape(args.write)}: {exc.strerror or exc}; it is "
                      "unchanged", IO) from None
    print(f"objcprefork scan: wrote {len(classes)} classes to {escape(args.write)}",
          file=sys.stderr)


def command_explain(args: argparse.Namespace) -> int:
    from ._config import Config, ConfigError, load, read_file
    from ._crashlog import Tally, disk_cost, read_stream
    from ._defaults import reported_name

    tally, extra = Tally(), dict[str, object]()
    try:
        if args.reports is not None:
            if args.file is not None:
                raise Failure("give a FILE or --reports, not both", USAGE)
            findings, extra["reports"] = read_folders(args.reports, tally)
        elif args.file in (None, "-"):
            if sys.stdin.isatty():
                print("objcprefork explain: reading a crash report or log from standard "
                      "input; paste it, then press Ctrl-D (or give a FILE)", file=sys.stderr)
            findings = read_stream(sys.stdin.buffer)
        else:
            with open(args.file, "rb") as f:
                findings = read_stream(f)
                if findings.format == "core":
                    size, on_disk = disk_cost(os.fstat(f.fileno()))
                    extra["core"] = {"path": args.file, "size": size, "on_disk": on_disk}
    except OSError as exc:
        raise Failure(f"cannot read {escape(args.file or 'standard input')}: "
                      f"{exc.strerror or exc}", IO) from None
    classes = tuple(dict.fromkeys(reported_name(n) for n in findings.classes))
    children = tuple(dict.fromkeys(reported_name(n) for n in findings.initialized_by_children))
    environ = dict(os.environ)
    if args.config:  # compared with as `run --config FILE` would load it
        path = os.path.abspath(args.config)
        if os.path.exists(path):
            try:
                read_file(path, Config())
            except ConfigError as exc:
                raise config_failure(exc) from None
            environ["OBJCPREFORK_CONFIG"] = path
        else:  # appended to, so created: nothing listed in it yet, and no other file
            environ["OBJCPREFORK_CONFIG"] = "-"
    def unused(exc: ConfigError) -> None:  # the comparison goes on without it, and says so
        print(f"objcprefork explain: warning: {exc} (compared without it)", file=sys.stderr)

    active = load(environ, on_error=unused).class_list()
    target = config_target(args)
    report = {
        "format": findings.format,
        "classes": [{"name": n, "listed": n in active, **counted(tally, n)} for n in classes],
        "initialized_by_children": [{"name": n, "listed": n in active} for n in children],
        "look_alikes": [{"name": u.name, "evidence": u.evidence, "advice": u.advice}
                        for u in findings.unfixable],
        "config": target,
        **extra,
    }
    emit(report, explanation(report, appending=args.append), args.json)
    wanted = tuple(dict.fromkeys(classes + children))
    if args.append and wanted:
        record(target, wanted, "explain")
    return OK if wanted or findings.unfixable else NOT_FOUND


def read_folders(given: list[str], tally: Tally) -> tuple[Findings, dict[str, object]]:
    """The crash reports of Python processes in the folders given, else in
    the default ones that exist: their findings, and what was read."""
    from ._crashlog import REPORT_FOLDERS, Findings, read_folder

    folders = given or [p for p in map(os.path.expanduser, REPORT_FOLDERS) if os.path.isdir(p)]
    if not folders:
        raise Failure(f"no crash-report folder here ({', '.join(REPORT_FOLDERS)}: macOS keeps "
                      "its reports there); name one: explain --reports FOLDER", NOT_FOUND)
    for folder in folders:
        try:
            read_folder(folder, tally)
        except OSError as exc:
            problem = f"cannot read {escape(folder)}: {exc.strerror or exc}"
            if given:
                raise Failure(problem, IO) from None
            print(f"objcprefork explain: {problem}; skipped", file=sys.stderr)  # not an admin
    findings = Findings("reports", tuple(tally.classes()), tuple(tally.unfixable.values()))
    return findings, {"folders": folders, "read": tally.reports}


def counted(tally: Tally, name: str) -> dict[str, object]:
    """How many crash reports read named a class (as reported_name gives
    it), and the last one's date; nothing when none were read."""
    from ._defaults import reported_name

    raw = [r for r in tally.counts if reported_name(r) == name]
    if not raw:
        return {}
    return {"count": sum(tally.counts[r] for r in raw),
            "last": max(tally.last[r] for r in raw).strftime("%Y-%m-%d %H:%M:%S %z")}


def explanation(report: Mapping[str, Any], appending: bool = False) -> str:
    """explain's text, from the report --json prints (appending: under --append)."""
    kind, classes = report["format"], report["classes"]
    children, unfixable = report["initialized_by_children"], report["look_alikes"]
    lines = []
    if "reports" in report:
        read = report["reports"]["read"]
        lines.append(f"Read {read} crash report{'s' * (read != 1)} of Python processes in "
                     f"{', '.join(report['reports']['folders'])}.")
    cost = [core_cost(report["core"])] if "core" in report else []
    if not classes and not children and not unfixable:
        where = "these crash reports" if kind == "reports" else f"this {kind} input"
        return "\n".join([*lines, f"Found no fork-safety crash in {where}.", *cost])
    if classes:
        lines.append("A child forked from a threaded parent needed Objective-C classes whose "
                     "+initialize had not run in the parent, and the runtime killed it "
                     f"(found in {kind} input):")
        lines += [f"  +[{c['name']} initialize]  ("
                  f"{'already in' if c['listed'] else 'not in'} the active list)"
                  + (f"  {c['count']} crash report{'s' * (c['count'] > 1)}, last {c['last']}"
                     if "count" in c else "")
                  for c in classes]
    if children:
        lines.append("Classes that fork children initialized (OBJC_PRINT_INITIALIZE_METHODS "
                     "log; the children are those objcprefork announced in it, as with "
                     "run --learn, or else every process but the first one logging):")
        lines += [f"  {c['name']}  ({'listed' if c['listed'] else 'not listed'})"
                  for c in children]
    missing = list(dict.fromkeys(c["name"] for c in classes + children if not c["listed"]))
    if missing:
        joined = ", ".join(f'"{n}"' for n in missing)
        lines += ["To add them, any one of:",
                  f"  config file ({escape(report['config'])}):  classes = [{joined}]",
                  f"  environment:  OBJCPREFORK_CLASSES={','.join(missing)}",
                  f"  launcher:     objcprefork run --classes {','.join(missing)} -- CMD",
                  f"  in the app:   objcprefork.install([{joined}])  (before the first fork)"]
        if not appending:
            lines.append("  or run this again with --append to write them to the config file.")
    elif classes:
        lines.append("They are listed: was objcprefork active in that process? "
                     "Check with `objcprefork run -- objcprefork doctor`.")
    if unfixable and not classes and not children:
        lines.append("Found no crash that a class list fixes, but crashes of other kinds:")
    from ._crashlog import FORK_EXEC_ADVICE

    advised: set[str] = set()
    for problem in unfixable:  # each advice once: a folder of reports repeats them
        found = f"{problem['name']} ({problem['evidence']!r})."
        lines.append(f"Also found: {found}" if classes or children else f"  {found}")
        own = problem["advice"].removesuffix(FORK_EXEC_ADVICE)
        if own not in advised:
            advised.add(own)
            lines.append(f"  {own}" + ("fork and exec (below)." if own != problem["advice"]
                                       else ""))
    if any(p["advice"].endswith(FORK_EXEC_ADVICE) for p in unfixable):
        lines.append(FORK_EXEC_ADVICE[0].upper() + FORK_EXEC_ADVICE[1:])
    return "\n".join(lines + cost)


def core_cost(core: Mapping[str, Any]) -> str:
    from ._crashlog import NO_CORES, human_size

    sparse = f" ({human_size(core['size'])} in size, sparse)" if (
        core["on_disk"] < core["size"]) else ""
    return (f"This core file takes {human_size(core['on_disk'])} on disk{sparse}: delete it "
            f"once read. {NO_CORES}.")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="objcprefork",
        description="Keep forked children alive on macOS: run Objective-C +initialize "
                    "before every fork().",
        epilog="Exit status: 0 ok, 1 nothing found or not protected, 2 usage or bad "
               "configuration, 3 a file cannot be read or written; `run` exits as its "
               "command did.")
    from . import __version__

    top.add_argument("--version", action="version", version=f"objcprefork {__version__}")
    sub = top.add_subparsers(dest="subcommand", required=True)

    run = sub.add_parser(
        "run", help="run a command with objcprefork active in every Python it starts",
        description="Run CMD with objcprefork active at the start of every Python process "
                    "that it starts, and those they exec, through objcprefork's .pth and a "
                    "sitecustomize bootstrap on PYTHONPATH. CMD replaces this process.")
    run.add_argument("--classes", metavar="A,B", action="append", default=[],
                     help="extra class names, separated by commas or spaces (repeatable)")
    run.add_argument("--config", metavar="FILE", help="a TOML config file to use")
    run.add_argument("--no-defaults", action="store_true", help="drop the default class list")
    run.add_argument("--no-child-core-dumps", action="store_true",
                     help="RLIMIT_CORE 0 in the command's forked children only")
    run.add_argument("--disable-fork-safety", action="store_true",
                     help="fallback: also set OBJC_DISABLE_INITIALIZE_FORK_SAFETY=YES, which "
                          "silences Apple's check (only effective before a process starts)")
    run.add_argument("--learn", action="store_true",
                     help="run CMD once as a child, with the runtime logging every "
                          "+initialize and the check off for that run, and record the classes "
                          "its fork children needed in the config file")
    run.add_argument("--verbose", action="store_true",
                     help="with --learn: also show the runtime's INITIALIZE lines and "
                          "objcprefork's announcements, which it otherwise keeps out of "
                          "CMD's stderr")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...",
                     help="the command to run, after --; it replaces this process")
    run.set_defaults(handler=command_run)

    for name, on in (("enable", True), ("disable", False)):
        switch = sub.add_parser(
            name, help=f"switch start-up activation {'on' if on else 'off'} for every Python "
                       "of this environment, without a variable",
            description="Write a marker next to objcprefork's .pth so that every Python start "
                        "of this environment activates it without OBJCPREFORK=1 (OBJCPREFORK=0 "
                        "still wins); for launchd, cron, IDEs." if on
            else "Remove the marker enable wrote.")
        switch.set_defaults(handler=command_enable, enable=on)

    doctor = sub.add_parser(
        "doctor", help="is this process protected? (exit 0 if so)",
        description="Report whether this process is protected: runtime, whether Apple's check "
                    "applies and why, how objcprefork was switched on, each class with its "
                    "state, source and image; exit 0 if protected. Run it as `objcprefork run "
                    "-- objcprefork doctor` to see what your program sees.")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(handler=command_doctor)

    scan = sub.add_parser(
        "scan", help="list loaded classes with a non-trivial +initialize, without initializing "
                     "any",
        description="List loaded classes whose +initialize is non-trivial, grouped by image, "
                    "reading method lists only: nothing is initialized.")
    scan.add_argument("--image", metavar="SUBSTRING", help="only images whose path contains it")
    scan.add_argument("--framework", action="append", default=[], metavar="NAME",
                      help="load this framework, library or path first (repeatable)")
    scan.add_argument("--write", metavar="FILE", help="save the result as a config file")
    scan.add_argument("--json", action="store_true", help="print the result as JSON")
    scan.set_defaults(handler=command_scan)

    explain = sub.add_parser(
        "explain", help="explain a crash from stderr text, a .crash or an .ips report, an "
                        "initialize log, a core file, or the crash-report folders",
        description="Find Apple's fork-safety message in stderr text, a .crash or .ips report, "
                    "an initialize log or a core file, or in the crash-report folders; name the "
                    "classes, say whether they are listed, print the lines that add them, and "
                    "recognise look-alikes that no list fixes.")
    explain.add_argument("file", nargs="?", metavar="FILE",
                         help="the report, log or core file; - or none: stdin")
    explain.add_argument("--reports", nargs="*", metavar="FOLDER",
                         help="read instead the crash reports (.ips, .crash) of Python "
                              "processes in these folders (default: ~/Library/Logs/"
                              "DiagnosticReports and /Library/Logs/DiagnosticReports): "
                              "each class with its count and last date")
    explain.add_argument("--append", action="store_true",
                         help="add the classes found to the config file")
    explain.add_argument("--config", metavar="FILE",
                         help="the config file to compare with and append to "
                              "(default: the active one)")
    explain.add_argument("--json", action="store_true", help="print the result as JSON")
    explain.set_defaults(handler=command_explain)
    return top


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args, unknown = top.parse_known_args(argv)  # usage errors: argparse's own line, status 2
    if unknown:  # with the usage of the subcommand they were given to, not the top-level one
        sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices[args.subcommand].error(f"unrecognized arguments: {' '.join(unknown)}")
    name = f"objcprefork {args.subcommand}"
    try:
        status = int(args.handler(args))
        sys.stdout.flush()  # here, where a closed stdout can still be handled
        return status
    except Failure as exc:
        print(f"{name}: {escape(str(exc))}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:
        # The reader went away (| head): say nothing more, and let no flush at
        # exit raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except KeyboardInterrupt:
        return 128 + 2
    except OSError as exc:
        print(f"{name}: {escape(str(exc.strerror or exc))}", file=sys.stderr)
        return IO
