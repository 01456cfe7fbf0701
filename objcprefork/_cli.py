"""The objcprefork command (also `python -m objcprefork`).

Exit status: 0 ok; 1 nothing found, or not protected; 2 usage or bad
configuration; 3 an I/O problem. `run` exits as its command did (and dies by
the same signal). Errors are one line on stderr, never a traceback; a closed
stdout (`| head`) ends quietly with 141, as a shell reports SIGPIPE."""

from __future__ import annotations

import argparse
import os
import re
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

OK, NOT_FOUND, USAGE, IO = 0, 1, 2, 3
BROKEN_PIPE = 128 + 13
TRUE_FOR_APPLE = "YES"
MAX_LEARNT = 256  # classes one --learn run may add
RUNTIME_LINE = re.compile(rb"objc\[\d+\]: ")
# Written by objcprefork itself under --learn (_startup.announce_for_learning),
# and kept out of the command's output.
ANNOUNCE = re.compile(rb"objcprefork\[(\d+)\]: learn: (fork child of a threaded parent|exec"
                      rb"|trivial)(.*)")
ANNOUNCE_LINES = re.compile(rb"(?m)^objcprefork\[\d+\]: learn: [^\n]*\n")
INITIALIZE_CALL = re.compile(
    rb"objc\[(\d+)\]: INITIALIZE: thread 0x[0-9a-fA-F]+: calling \+\[([^\W\d][\w$.]{0,254}) "
    rb"initialize\]")


class Failure(Exception):
    """A user-facing error: one line on stderr, and the exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def bootstrap_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")


def launcher_environment(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """The environment under which every Python that the command starts activates.

    The launcher decides once: it reads the configuration (file, environment,
    options) here and hands the result on in variables, so that no Python
    under it needs a TOML parser, and the config file is not read again."""
    from ._config import ConfigError, load
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
        raise Failure(str(exc), USAGE) from None
    config.add(named, "objcprefork run")
    env.update(OBJCPREFORK="1", OBJCPREFORK_LAUNCHER="1", OBJCPREFORK_CONFIG="-",
               OBJCPREFORK_CLASSES=",".join(config.classes),
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
        # from this interpreter, with this environment's site-packages as a
        # fallback after the pex's own: there objcprefork's .pth runs, and
        # -I honours OBJCPREFORK. (pex reads these itself: PEX-INFO overrides.)
        env.update(PEX_PYTHON=sys.executable, PEX_INHERIT_PATH="fallback", PEX_VENV="false")
    return env


def is_pex(arg: str) -> bool:
    """Whether arg names a pex file (a zip holding PEX-INFO), directly or on PATH."""
    import shutil
    import zipfile

    path = arg if os.sep in arg else shutil.which(arg)
    try:
        if not path or not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return "PEX-INFO" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def config_target(args: argparse.Namespace) -> str:
    """The file --learn and --append write: --config FILE, else the file the
    configuration is read from (OBJCPREFORK_CONFIG, else the user's)."""
    from ._config import active_config_path

    return os.path.abspath(args.config) if args.config else active_config_path(os.environ)


def record(path: str, classes: tuple[str, ...], command: str) -> None:
    """Add classes to a config file and say what was done."""
    from ._config import ConfigError, append_classes

    try:
        added = append_classes(path, classes)
    except ConfigError as exc:
        raise Failure(str(exc), USAGE) from None
    except OSError as exc:
        raise Failure(f"cannot write {path}: {exc.strerror or exc}; it is unchanged", IO) from None
    kept = [c for c in classes if c not in added]
    if added:
        print(f"objcprefork {command}: added to {path}: {', '.join(added)}", file=sys.stderr)
    if kept:
        print(f"objcprefork {command}: already in {path}: {', '.join(kept)}", file=sys.stderr)


def command_run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise Failure("no command given (objcprefork run [options] -- CMD ARGS...)", USAGE)
    env = launcher_environment(args, dict(os.environ))
    if args.learn:
        return learn(command, env, config_target(args))
    try:
        os.execvpe(command[0], command, env)  # CMD's own signals and exit status
    except OSError as exc:
        raise Failure(f"cannot run {command[0]!r}: {exc.strerror}",
                      127 if isinstance(exc, FileNotFoundError) else 126) from None


class Learner:
    """Reads CMD's stderr as it flows through, and learns in one run.

    For that run only, the runtime is told to log every +initialize
    (OBJC_PRINT_INITIALIZE_METHODS=YES) and not to enforce the check
    (OBJC_DISABLE_INITIALIZE_FORK_SAFETY=YES), both before CMD starts, where
    objc reads them. objcprefork, active in each Python process of CMD, says
    which processes are fork children of a threaded parent and which exec'd.
    The classes such a child initializes, before any exec, are what its
    parent must force. Apple's crash message is still read, for runtimes
    that cannot log: one class per crashing run."""

    def __init__(self) -> None:
        self.learnt: dict[str, None] = {}
        self.trivial: set[str] = set()
        self.restricted: set[bytes] = set()
        self.children: set[bytes] = set()

    def result(self) -> tuple[str, ...]:
        return tuple(name for name in self.learnt if name not in self.trivial)

    def feed(self, line: bytes) -> None:
        announce = ANNOUNCE.match(line.rstrip(b"\r"))
        if announce:
            pid, what = announce.group(1), announce.group(2)
            if what == b"exec":
                self.restricted.discard(pid)
            elif what == b"trivial":
                self.trivial.update(announce.group(3).decode("utf-8", "replace").split())
            else:
                self.restricted.add(pid)
                self.children.add(pid)
            return
        if not RUNTIME_LINE.match(line) or len(self.learnt) >= MAX_LEARNT:
            return  # only the runtime's own lines, never a log line quoting one
        call = INITIALIZE_CALL.match(line)
        if call:
            if call.group(1) in self.restricted:
                self.learnt.setdefault(call.group(2).decode(), None)
            return
        from ._crashlog import read_report

        self.learnt.update(dict.fromkeys(read_report(line).classes))


def learn(command: list[str], env: dict[str, str], config: str) -> int:
    import signal
    import subprocess

    env = {**env, "OBJCPREFORK_LEARN": "1", "OBJC_PRINT_INITIALIZE_METHODS": "YES",
           "OBJC_DISABLE_INITIALIZE_FORK_SAFETY": TRUE_FOR_APPLE}
    terminal = sys.stderr.isatty()
    if terminal:  # CMD's stderr stays a terminal: \r progress lines, colours
        import pty

        reader, writer = pty.openpty()
        try:
            import fcntl
            import termios

            size = fcntl.ioctl(sys.stderr.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(writer, termios.TIOCSWINSZ, size)
        except OSError:
            pass
    else:
        reader, writer = os.pipe()
    try:
        child = subprocess.Popen(command, env=env, stderr=writer)
    except OSError as exc:
        os.close(reader)
        os.close(writer)
        raise Failure(f"cannot run {command[0]!r}: {exc.strerror}",
                      127 if isinstance(exc, FileNotFoundError) else 126) from None
    os.close(writer)

    def forward(signum: int, _frame: object) -> None:
        # Ctrl-C reaches CMD from the terminal itself (same process group):
        # forward SIGINT only when it did not come that way.
        if signum == signal.SIGINT and foreground():
            return
        child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    learner, pending = Learner(), b""
    out = sys.stderr.buffer
    while True:
        try:
            chunk = os.read(reader, 65536)
        except InterruptedError:
            continue
        except OSError:  # EIO: the pty's other side is closed
            chunk = b""
        if not chunk:
            break
        out.write(ANNOUNCE_LINES.sub(b"", chunk))
        out.flush()
        lines = (pending + chunk).replace(b"\r\n", b"\n").split(b"\n")
        pending = lines.pop()[-65536:]
        for line in lines:
            learner.feed(line)
    learner.feed(pending)
    os.close(reader)
    code = child.wait()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)
    learnt = learner.result()
    if learnt:
        print(f"objcprefork run --learn: learnt {len(learnt)} class(es) from "
              f"{max(len(learner.children), 1)} child process(es): {', '.join(learnt)}",
              file=sys.stderr)
        record(config, learnt, "run --learn")
    else:
        print("objcprefork run --learn: nothing to learn: no fork child of a threaded parent "
              "initialized a class, and no fork-safety crash was seen", file=sys.stderr)
    if code < 0:  # die as CMD did, so the shell sees the same status
        sys.stdout.flush()
        os.kill(os.getpid(), -code)
    return code


def foreground() -> bool:
    """Whether this process group owns the controlling terminal."""
    for stream in (sys.stdin, sys.stderr):
        try:
            if stream.isatty() and os.tcgetpgrp(stream.fileno()) == os.getpgrp():
                return True
        except (OSError, ValueError):
            pass
    return False


def command_enable(args: argparse.Namespace) -> int:
    """Switch start-up activation on for every Python of this environment,
    without a variable: a marker next to objcprefork.pth, which its line stats."""
    from ._config import enable_marker

    marker = enable_marker()
    if not marker or not os.path.exists(os.path.join(os.path.dirname(marker),
                                                     "objcprefork.pth")):
        raise Failure("objcprefork's start-up files are not installed next to "
                      f"{os.path.dirname(marker) or 'this package'} (an editable install has "
                      "none): install the wheel", IO)
    if args.enable:
        import tempfile

        try:
            fd, temporary = tempfile.mkstemp(dir=os.path.dirname(marker), prefix=".objcprefork-")
            with os.fdopen(fd, "w") as f:
                f.write("# objcprefork is switched on at the start of every Python of this "
                        "environment.\n# `objcprefork disable` removes this file; OBJCPREFORK=0 "
                        "overrides it.\n")
            os.chmod(temporary, 0o644)
            os.replace(temporary, marker)
        except OSError as exc:
            raise Failure(f"cannot write {marker}: {exc.strerror or exc}", IO) from None
        print(f"objcprefork: enabled for every Python start of this environment ({marker})")
    else:
        try:
            os.remove(marker)
            print(f"objcprefork: disabled ({marker} removed)")
        except FileNotFoundError:
            print(f"objcprefork: already disabled (no {marker})")
        except OSError as exc:
            raise Failure(f"cannot remove {marker}: {exc.strerror or exc}", IO) from None
    return OK


def emit(report: Mapping[str, object], text: str, as_json: bool) -> None:
    if as_json:
        import json

        print(json.dumps(report, indent=2))
    else:
        print(text)


def command_doctor(args: argparse.Namespace) -> int:
    from ._doctor import collect, render

    report = collect()
    emit(report, render(report), args.json)
    return OK if report["protected"] else NOT_FOUND


def command_scan(args: argparse.Namespace) -> int:
    from ._frameworks import load_frameworks
    from ._scan import render, scan

    try:
        load_frameworks(args.framework, allow_paths=True, short_names=True)
    except ValueError as exc:
        raise Failure(str(exc), USAGE) from None
    found = scan(args.image)
    report = {"images": [{"image": image, "classes": [{"name": name, "initializer": owner}
                                                       for name, owner in classes]}
                         for image, classes in found.items()],
              "count": sum(len(classes) for classes in found.values())}
    emit(report, render(found), args.json)
    if args.write:
        write_scan(args, found)
    return OK if found else NOT_FOUND


def write_scan(args: argparse.Namespace, found: dict[str, list[tuple[str, str]]]) -> None:
    from . import _toml
    from ._config import Config, read_file
    from ._crashlog import is_class_name
    from ._frameworks import SONAME, validate_framework_names

    # Only valid names reach the file, and paths only inside quoted comments:
    # nothing the runtime or a path supplies can add a key.
    classes = tuple(name for names in found.values() for name, _owner in names
                    if is_class_name(name))
    names = validate_framework_names(f for f in args.framework
                                     if "/" not in f and (sys.platform == "darwin"
                                                          or SONAME.fullmatch(f)))
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
            raise Failure(f"{args.write}: the written file does not read back", IO)

    try:
        _toml.replace(args.write, "\n".join(lines) + "\n", check)
    except OSError as exc:
        raise Failure(f"cannot write {args.write}: {exc.strerror or exc}; it is unchanged",
                      IO) from None
    print(f"objcprefork scan: wrote {len(classes)} classes to {args.write}", file=sys.stderr)


def command_explain(args: argparse.Namespace) -> int:
    from ._config import Config, ConfigError, load, read_file
    from ._crashlog import read_stream
    from ._defaults import reported_name

    try:
        if args.file in (None, "-"):
            if sys.stdin.isatty():
                print("objcprefork explain: reading a crash report or log from standard "
                      "input; paste it, then press Ctrl-D (or give a FILE)", file=sys.stderr)
            findings = read_stream(sys.stdin.buffer)
        else:
            with open(args.file, "rb") as f:
                findings = read_stream(f)
    except OSError as exc:
        raise Failure(f"cannot read {args.file or 'standard input'}: {exc.strerror or exc}",
                      IO) from None
    classes = tuple(dict.fromkeys(reported_name(n) for n in findings.classes))
    children = tuple(dict.fromkeys(reported_name(n) for n in findings.initialized_by_children))
    environ = dict(os.environ)
    if args.config:  # compared with as `run --config FILE` would load it
        path = os.path.abspath(args.config)
        if os.path.exists(path):
            try:
                read_file(path, Config())
            except ConfigError as exc:
                raise Failure(str(exc), USAGE) from None
            environ["OBJCPREFORK_CONFIG"] = path
        else:  # appended to, so created: nothing listed in it yet, and no other file
            environ["OBJCPREFORK_CONFIG"] = "-"
    active = load(environ, on_error=lambda exc: None).class_list()
    wanted = tuple(dict.fromkeys(classes + children))
    missing = [n for n in wanted if n not in active]
    report = {
        "format": findings.format,
        "classes": [{"name": n, "listed": n in active} for n in classes],
        "initialized_by_children": [{"name": n, "listed": n in active} for n in children],
        "look_alikes": [{"name": u.name, "evidence": u.evidence, "advice": u.advice}
                        for u in findings.unfixable],
        "config": config_target(args),
    }
    if args.json:
        emit(report, "", True)
    else:
        print(explanation(findings.format, classes, children, active, missing,
                          findings.unfixable, config_target(args)))
    if args.append and wanted:
        record(config_target(args), wanted, "explain")
    return OK if wanted or findings.unfixable else NOT_FOUND


def explanation(kind: str, classes: tuple[str, ...], children: tuple[str, ...],
                active: tuple[str, ...], missing: list[str], unfixable: tuple[object, ...],
                target: str) -> str:
    lines = []
    if not classes and not children and not unfixable:
        return f"Found no fork-safety crash in this {kind} input."
    if classes:
        lines.append("A child forked from a threaded parent needed Objective-C classes whose "
                     "+initialize had not run in the parent, and the runtime killed it "
                     f"(found in {kind} input):")
        lines += [f"  +[{name} initialize]  ("
                  f"{'already in the active list' if name in active else 'not in the active list'})"
                  for name in classes]
    if children:
        lines.append("Classes that fork children initialized (OBJC_PRINT_INITIALIZE_METHODS "
                     "log; the first process logging is taken as the parent):")
        lines += [f"  {name}  ({'listed' if name in active else 'not listed'})"
                  for name in children]
    if missing:
        joined = ", ".join(f'"{n}"' for n in missing)
        lines += ["To add them, any one of:",
                  f"  config file ({target}):  classes = [{joined}]",
                  f"  environment:  OBJCPREFORK_CLASSES={','.join(missing)}",
                  f"  launcher:     objcprefork run --classes {','.join(missing)} -- CMD",
                  f"  in the app:   objcprefork.add_classes([{joined}])",
                  "  or run this again with --append to write them to the config file."]
    elif classes:
        lines.append("They are listed: was objcprefork active in that process? "
                     "Check with `objcprefork run -- objcprefork doctor`.")
    for problem in unfixable:
        lines.append(f"Also found: {problem.name} ({problem.evidence!r}).")  # type: ignore[attr-defined]
        lines.append(f"  {problem.advice}")  # type: ignore[attr-defined]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="objcprefork",
        description="Keep forked children alive on macOS: run Objective-C +initialize "
                    "before every fork().",
        epilog="Exit status: 0 ok, 1 nothing found or not protected, 2 usage or bad "
               "configuration, 3 an I/O problem; `run` exits as its command did.")
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
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    run.set_defaults(handler=command_run)

    for name, on in (("enable", True), ("disable", False)):
        switch = sub.add_parser(
            name, help=f"switch start-up activation {'on' if on else 'off'} for every Python "
                       "of this environment, without a variable")
        switch.set_defaults(handler=command_enable, enable=on)

    doctor = sub.add_parser("doctor", help="is this process protected? (exit 0 if so)")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(handler=command_doctor)

    scan = sub.add_parser("scan", help="list loaded classes with a non-trivial +initialize, "
                                       "without initializing any")
    scan.add_argument("--image", metavar="SUBSTRING", help="only images whose path contains it")
    scan.add_argument("--framework", action="append", default=[], metavar="NAME",
                      help="load this framework, library or path first (repeatable)")
    scan.add_argument("--write", metavar="FILE", help="save the result as a config file")
    scan.add_argument("--json", action="store_true", help="print the result as JSON")
    scan.set_defaults(handler=command_scan)

    explain = sub.add_parser("explain", help="explain a crash from stderr text, a .crash or "
                                             "an .ips report, or an initialize log")
    explain.add_argument("file", nargs="?", metavar="FILE", help="the report; - or none: stdin")
    explain.add_argument("--append", action="store_true",
                         help="add the classes found to the config file")
    explain.add_argument("--config", metavar="FILE",
                         help="the config file to compare with and append to "
                              "(default: the active one)")
    explain.add_argument("--json", action="store_true", help="print the result as JSON")
    explain.set_defaults(handler=command_explain)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # usage errors: argparse's own line, status 2
    name = f"objcprefork {args.subcommand}"
    try:
        status = int(args.handler(args))
        sys.stdout.flush()  # here, where a closed stdout can still be handled
        return status
    except Failure as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:
        # The reader went away (| head): say nothing more, and let no flush at
        # exit raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except KeyboardInterrupt:
        return 128 + 2
    except OSError as exc:
        print(f"{name}: {exc.strerror or exc}", file=sys.stderr)
        return IO
