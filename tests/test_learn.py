"""`objcprefork run --learn`: every class a command's fork children need, in
one run; signals; and a command line that never shows a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import clean_environment

from objcprefork._config import Config, read_file

APP = """
    import os, select, signal, sys, time
    from forkprobe import *
    if len(sys.argv) > 1:  # to be interrupted: count them, one byte each, never merged
        signal.signal(signal.SIGINT, lambda signum, frame: None)
        counter, each = os.pipe()
        os.set_blocking(each, False)
        signal.set_wakeup_fd(each)
    load(); make_threaded()
    touch("FXAlpha")  # the parent's own class: never learnt
    # A chain of non-trivial classes (FXSub inherits FXBase's +initialize),
    # and a trivial one, touched only by a forked child.
    child = fork_touching("FXBeta", "FXGamma", "FXSub", "FXTrivial")
    report(child=child)
    print("a line of the command's own", file=sys.stderr, flush=True)
    if len(sys.argv) > 1:
        select.select([counter], [], [])
        time.sleep(0.5)  # room for a second copy
        report(interrupts=len(os.read(counter, 100)))
        print("interrupted", file=sys.stderr, flush=True)  # to a stderr that may be gone
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # and die by it, as a C program would
        os.kill(os.getpid(), signal.SIGINT)
    raise SystemExit(0 if child == "exit 0" else 3)
"""


def launcher(venv, config):
    return [venv.bin / "objcprefork", "run", "--config", config, "--no-defaults"]


def test_one_run_learns_every_class_the_children_needed(venv, run_command, tmp_path, fixtures):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    config = tmp_path / "learnt.toml"
    before = run_command([venv.bin / "objcprefork", "run", "--no-defaults", "--",
                          venv.python, app], check=False)
    assert before.facts == {"child": "SIGABRT"}  # without the classes, the child dies
    assert not config.exists()  # and a plain run writes nothing
    first = run_command([*launcher(venv, config), "--learn", "--", venv.python, app])
    assert first.facts == {"child": "exit 0"}  # the check is off for the learning run
    assert "learnt 4 class(es) from 1 child process(es)" in first.stderr
    # The log lines stay out of the output, whole; the command's own pass.
    assert "objcprefork[" not in first.stderr and "INITIALIZE" not in first.stderr
    assert first.stderr.startswith("a line of the command's own\n"), first.stderr
    learnt = Config()
    read_file(str(config), learnt)
    assert set(learnt.classes) == {"FXBeta", "FXGamma", "FXBase", "FXSub"}  # no FXAlpha, FXTrivial
    second = run_command([*launcher(venv, config), "--", venv.python, app])
    assert second.facts == {"child": "exit 0"}
    again = run_command([*launcher(venv, config), "--learn", "--verbose", "--",
                         venv.python, app])
    assert "nothing to learn" in again.stderr  # the parent forced them all this time
    assert "INITIALIZE: " in again.stderr and ": learn: fork child" in again.stderr


def test_explain_reads_a_verbose_log_as_learn_did(venv, run_command, tmp_path, fixtures):
    # Issue 22: explain took the first process logging, here a child, for the
    # parent, and suggested fewer classes than --learn learnt from the same run.
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    config = tmp_path / "learnt.toml"
    run = run_command([*launcher(venv, config), "--learn", "--verbose", "--",
                       venv.python, app])
    log = tmp_path / "run.log"
    log.write_text(run.stderr)
    learnt = Config()
    read_file(str(config), learnt)
    explained = run_command([venv.bin / "objcprefork", "explain", "--json", "--config",
                             tmp_path / "other.toml", log])
    found = [c["name"] for c in json.loads(explained.stdout)["initialized_by_children"]]
    assert sorted(found) == sorted(learnt.classes) and len(found) == 4


def test_ctrl_c_keeps_what_was_learnt_and_leaves_nothing_behind(venv, tmp_path, fixtures):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    config = tmp_path / "learnt.toml"
    process = subprocess.Popen(
        [str(a) for a in [*launcher(venv, config), "--learn", "--", venv.python, app, "wait"]],
        cwd=tmp_path, env=clean_environment(tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the child has run and been reported
        assert json.loads(line) == {"child": "exit 0"}
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole process group
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    stderr = err.decode()
    assert process.returncode == -signal.SIGINT  # died as the command did
    assert "Traceback" not in stderr and "learnt 4 class(es)" in stderr
    learnt = Config()
    read_file(str(config), learnt)
    assert set(learnt.classes) == {"FXBeta", "FXGamma", "FXBase", "FXSub"}
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # no process of the group is left


def on_a_terminal(argv, tmp_path, **streams):
    """Start argv as a shell starts a job: a session whose controlling
    terminal is a new pty (returned, its master side), in the foreground."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()
    process = subprocess.Popen(
        [str(a) for a in argv], cwd=tmp_path, env=clean_environment(tmp_path), stdout=slave,
        start_new_session=True, preexec_fn=lambda: fcntl.ioctl(1, termios.TIOCSCTTY, 0),
        **streams)
    os.close(slave)
    return process, master


def read_until(master, text):
    seen = b""
    while text not in seen:
        chunk = os.read(master, 4096)
        assert chunk, seen
        seen += chunk
    return seen


@pytest.mark.parametrize("tee_killed", [False, True])
def test_ctrl_c_on_the_terminal_reaches_the_command_once_and_loses_nothing(
        venv, tmp_path, fixtures, tee_killed):
    # `objcprefork run --learn -- CMD 2>&1 | tee log` (stdin no terminal), then
    # Ctrl-C, which may kill tee too. 0.1.0 sent CMD a second SIGINT, and died
    # of the closed pipe (BrokenPipeError) having written nothing.
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    config = tmp_path / "learnt.toml"
    reader, writer = os.pipe()
    process, master = on_a_terminal(
        [*launcher(venv, config), "--learn", "--", venv.python, app, "wait"], tmp_path,
        stdin=subprocess.DEVNULL, stderr=writer)
    os.close(writer)
    try:
        read_until(master, b'{"child": "exit 0"}')
        if tee_killed:
            os.close(reader)
        os.write(master, b"\x03")  # Ctrl-C: the terminal signals the foreground group
        assert b'{"interrupts": 1}' in read_until(master, b"interrupts")
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        os.close(master)
    if not tee_killed:
        with os.fdopen(reader, "rb") as tee:
            assert b"Traceback" not in tee.read()
    assert process.returncode == -signal.SIGINT  # died as the command did
    learnt = Config()
    read_file(str(config), learnt)
    assert set(learnt.classes) == {"FXBeta", "FXGamma", "FXBase", "FXSub"}


@pytest.mark.parametrize("terminal", [True, False])
def test_keys_are_not_forwarded_when_the_terminal_sent_them(venv, tmp_path, terminal):
    # The terminal's SIGINT reaches CMD, in the launcher's foreground group,
    # whichever streams are redirected. (Whether CMD then counts two depends
    # on the scheduler: a copy sent while the first is pending merges with it.)
    code = "from objcprefork._learn import foreground; print(foreground())"
    if terminal:
        process, master = on_a_terminal([venv.python, "-c", code], tmp_path,
                                        stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        said = read_until(master, b"\n")
        process.wait(timeout=60)
        os.close(master)
    else:
        said = subprocess.run([venv.python, "-c", code], cwd=tmp_path, capture_output=True,
                              env=clean_environment(tmp_path), start_new_session=True).stdout
    assert said.strip() == str(terminal).encode()


def test_log_lines_are_hidden_whole_even_split_across_reads(venv, run_command, tmp_path):
    # macOS writes 10 KB announcements; 0.1.0 hid them per read, and leaked
    # the part that came in a second read.
    script = ("import os, time\n"
              "def write(data):\n    os.write(2, data); time.sleep(0.3)\n"
              "write(b'objcprefork[1]: learn: trivial ' + b'FXTrivial ' * 1000)\n"
              "write(b'FXLast\\nobjc[1]: INITIAL')\n"
              "write(b'IZE: thread 0x1: calling +[FXBeta initialize]\\nown line\\n')\n"
              "write(b'objc[2]: a message of its own\\nobj')\n"
              "write(b'ect\\n')\n")
    run, _classes = learnt_from(venv, run_command, tmp_path, script)
    assert run.stderr.startswith("own line\nobjc[2]: a message of its own\nobject\n"
                                 "objcprefork run --learn: nothing to learn"), run.stderr


def test_only_a_line_start_that_may_be_hidden_waits():
    from objcprefork._learn import Shown

    shown = Shown()
    assert shown.filter(b"50%\r") == b"50%\r"  # a progress line passes at once
    assert shown.filter(b"60%\r\nobjc") == b"60%\r\n"  # "objc": it cannot tell yet
    assert shown.filter(b"[12]: class X is") == b"objc[12]: class X is"
    assert shown.filter(b" loaded\nobjcprefork[3]: learn: ex") == b" loaded\n"
    assert shown.filter(b"ec\r\nPassword: ") == b"Password: "
    assert shown.filter(b"\nobjc") == b"\n" and shown.end() == b"objc"


@pytest.mark.parametrize("output", [
    "[print('line', i, file=sys.stderr) for i in range(100000)]",  # seen going away
    "",  # only hidden lines: the summary is the first write to the closed pipe
])
def test_a_closed_stderr_loses_nothing(venv, tmp_path, output):
    # | head on 2>&1: the reader leaves, while CMD writes or not.
    script = ("import sys; print('objcprefork[1]: learn: fork child of a threaded parent\\n"
              "objc[1]: INITIALIZE: thread 0x1: calling +[FXReal initialize]', file=sys.stderr);"
              + output)
    config = tmp_path / "learnt.toml"
    process = subprocess.Popen(
        [str(venv.bin / "objcprefork"), "run", "--learn", "--config", str(config), "--",
         str(venv.python), "-c", script],
        cwd=tmp_path, env=clean_environment(tmp_path), stderr=subprocess.PIPE)
    assert process.stderr is not None
    process.stderr.close()
    assert process.wait(timeout=60) == 0
    assert "FXReal" in config.read_text()


def test_a_command_killed_by_a_signal_kills_the_launcher_the_same_way(venv, run_command,
                                                                      tmp_path):
    run = run_command([venv.bin / "objcprefork", "run", "--learn", "--config",
                       tmp_path / "c.toml", "--", sys.executable, "-c",
                       "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"], check=False)
    assert run.returncode == -signal.SIGTERM
    assert not (tmp_path / "c.toml").exists()  # nothing learnt, no empty file


def test_stderr_stays_a_terminal_under_learn(venv, tmp_path):
    import pty

    reader, writer = pty.openpty()
    code = "import sys; print('tty' if sys.stderr.isatty() else 'pipe', file=sys.stderr)"
    process = subprocess.Popen(
        [str(venv.bin / "objcprefork"), "run", "--learn", "--config", str(tmp_path / "c.toml"),
         "--", str(venv.python), "-c", code],
        cwd=tmp_path, env=clean_environment(tmp_path), stderr=writer, stdout=subprocess.DEVNULL)
    os.close(writer)
    output = b""
    while True:
        try:
            chunk = os.read(reader, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=60)
    os.close(reader)
    assert b"tty" in output and b"pipe" not in output, output


BAD_CONFIG = 'classes = ["A"\n'


@pytest.mark.parametrize("argv, status, words", [
    (["explain", "{tmp}/missing.log"], 3, "cannot read {tmp}/missing.log"),
    (["scan", "--write", "{tmp}/file/x.toml"], 3, "cannot write {tmp}/file/x.toml"),
    (["explain", "--append", "--config", "{tmp}/file/c.toml", "{sample}"], 3,
     "cannot write {tmp}/file/c.toml: Not a directory; it is unchanged"),
    (["explain", "--config", "{tmp}/bad.toml", "{sample}"], 2, "{tmp}/bad.toml, line"),
    (["run", "--classes", "Bad-Name", "--", "true"], 2, "invalid Objective-C class name"),
    (["run", "--", "no-such-command-objcprefork"], 127, "cannot run"),
    (["run"], 2, "no command given"),
    (["run", "--verbose", "--", "true"], 2, "--verbose goes with --learn"),
    (["explain", "{empty}"], 1, ""),
    (["frobnicate"], 2, "invalid choice"),
])
def test_command_line_errors_are_one_line_with_a_named_status(venv, run_command, tmp_path,
                                                              argv, status, words):
    (tmp_path / "file").write_text("a file, not a folder\n")
    (tmp_path / "bad.toml").write_text(BAD_CONFIG)
    (tmp_path / "empty.log").write_text("nothing to see\n")
    sample = os.path.join(os.path.dirname(__file__), "samples", "stderr.txt")
    argv = [a.format(tmp=tmp_path, sample=sample, empty=tmp_path / "empty.log") for a in argv]
    run = run_command([venv.bin / "objcprefork", *argv], check=False)
    assert run.returncode == status, run.stderr
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    if words:
        assert words.format(tmp=tmp_path) in lines[-1]
    if not lines or not lines[0].startswith("usage:"):  # argparse's usage, then its line
        assert len(lines) <= 1, lines
    assert (tmp_path / "file").read_text() == "a file, not a folder\n"  # untouched


def test_a_closed_stdout_ends_quietly(venv, tmp_path):
    sample = os.path.join(os.path.dirname(__file__), "samples", "stderr.txt")
    process = subprocess.Popen([str(venv.bin / "objcprefork"), "explain", "--json", sample],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                               env=clean_environment(tmp_path))
    assert process.stdout is not None
    process.stdout.close()  # the reader goes away, as with | head
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 141 and err == b"", err


@pytest.mark.parametrize("subcommand", [["doctor"], ["scan"], ["explain", "{sample}"]])
def test_every_reporting_subcommand_has_json(venv, run_command, tmp_path, subcommand):
    sample = os.path.join(os.path.dirname(__file__), "samples", "stderr.txt")
    argv = [a.format(sample=sample) for a in subcommand]
    run = run_command([venv.bin / "objcprefork", *argv, "--json"], check=False)
    report = json.loads(run.stdout)
    expected = {"doctor": {"protected", "classes", "problems"},
                "scan": {"images", "count"},
                "explain": {"format", "classes", "initialized_by_children", "look_alikes",
                            "config"}}[subcommand[0]]
    assert expected <= set(report), report


def test_explain_honours_config_and_restores_lost_underscores(venv, run_command, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('classes = ["__NSCFConstantString"]\ndefaults = false\n')
    log = tmp_path / "title.txt"
    log.write_text("objc[9]: +[NSCFConstantString initialize] may have been in progress in "
                   "another thread when fork() was called.\n")
    run = run_command([venv.bin / "objcprefork", "explain", "--json", "--config", config, log])
    assert json.loads(run.stdout)["classes"] == [{"name": "__NSCFConstantString",
                                                  "listed": True}]


def test_explain_says_what_it_waits_for_on_a_terminal(venv, tmp_path):
    import pty

    reader, writer = pty.openpty()
    process = subprocess.Popen([str(venv.bin / "objcprefork"), "explain"], stdin=writer,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                               env=clean_environment(tmp_path))
    time.sleep(1)
    os.write(reader, b"\x04")  # Ctrl-D: end of input
    out, err = process.communicate(timeout=60)
    os.close(reader)
    os.close(writer)
    assert b"reading a crash report or log from standard input" in err
    assert process.returncode == 1 and b"Found no fork-safety crash" in out


# ---- issue 20: what CMD writes is not trusted ----------------------------------

CRASH = ("objc[12]: +[{} initialize] may have been in progress in another thread when fork() "
         "was called.")


def learnt_from(venv, run_command, tmp_path, script, **kwargs):
    config = tmp_path / "learnt.toml"
    run = run_command([venv.bin / "objcprefork", "run", "--learn", "--config", config, "--",
                       venv.python, "-c", script], **kwargs)
    learnt = Config()
    if config.exists():
        read_file(str(config), learnt)
    return run, learnt.classes


def test_learn_ignores_names_that_are_not_class_names(venv, run_command, tmp_path):
    script = ("import sys; sys.stderr.write('objcprefork[1]: learn: fork child of a threaded "
              "parent\\nobjc[1]: INITIALIZE: thread 0x1: calling +[A. initialize]\\n"
              f"{CRASH.format('A.')}\\n{CRASH.format('FXReal')}\\n')")
    run, classes = learnt_from(venv, run_command, tmp_path, script)
    assert run.returncode == 0 and "Traceback" not in run.stderr
    assert classes == ("FXReal",)


def test_learn_never_reads_the_tail_of_a_long_line(venv, run_command, tmp_path):
    # 0.1.0 kept the last 64 KiB of a line read in 64 KiB blocks: here, from "objc[".
    forged = CRASH.format("FXForged").ljust(70000)
    script = (f"import os; os.write(2, b'x' * 65536 + {forged.encode()!r} + b'\\n'); "
              f"os.write(2, {CRASH.format('FXReal').encode()!r} + b'\\n')")
    _run, classes = learnt_from(venv, run_command, tmp_path, script)
    assert classes == ("FXReal",)


def test_lines_and_sets_are_bounded():
    from objcprefork import _crashlog, _learn

    lines = _learn.Lines()
    assert lines.split(b"a" * (_learn.MAX_LINE + 1)) == [] and lines.pending == b""
    assert lines.split(b"tail objc[1]: +[X initialize]\nnext\n") == [b"next"]
    learner = _learn.Learner()
    learner.feed(b"objcprefork[1]: learn: trivial " + b" ".join(
        b"T%d" % i for i in range(_crashlog.MAX_LOG_NAMES + 10)))
    assert len(learner.log.trivial) == _crashlog.MAX_LOG_NAMES
    for i in range(_crashlog.MAX_PIDS + 10):
        learner.feed(b"objcprefork[%d]: learn: fork child of a threaded parent" % i)
    assert len(learner.log.restricted) == _crashlog.MAX_PIDS
    for i in range(2 * _learn.MAX_LEARNT):
        learner.feed(CRASH.format(f"FX{i}").encode())
    assert len(learner.result()) == _learn.MAX_LEARNT


def test_learn_screens_lines_before_any_pattern(monkeypatch):
    from objcprefork import _crashlog, _learn

    calls = []
    monkeypatch.setattr(_learn, "_classes_in", lambda text: calls.append(text) or [])
    monkeypatch.setattr(_crashlog.InitializeLog, "feed", lambda log, text: calls.append(text))
    learner = _learn.Learner()
    for _ in range(10_000):  # a flood of lines that are none of the runtime's kinds
        learner.feed(b"objc[1]: class FXFlood is implemented in both images")
        learner.feed(b"log: objc[1]: INITIALIZE: thread 0x1: calling +[FXFlood initialize]")
    assert calls == [] and learner.result() == ()


def test_learn_stops_soon_after_cmd_exits(venv, tmp_path):
    # A descendant keeps stderr open for 30 s; 0.1.0 read until it closed.
    script = (f"import subprocess, sys; sys.stderr.write({CRASH.format('FXReal')!r} + '\\n'); "
              "subprocess.Popen(['sleep', '30'])")
    config = tmp_path / "learnt.toml"
    done = subprocess.run([str(venv.bin / "objcprefork"), "run", "--learn", "--config",
                           str(config), "--", str(venv.python), "-c", script],
                          cwd=tmp_path, env=clean_environment(tmp_path),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=15)
    assert done.returncode == 0 and "FXReal" in config.read_text()


def test_a_signal_after_cmd_is_gone_ends_the_launcher_keeping_what_was_learnt(venv, tmp_path):
    script = (f"import subprocess, sys; sys.stderr.write({CRASH.format('FXReal')!r} + '\\n'); "
              "sys.stderr.flush(); subprocess.Popen(['sleep', '30'])")
    config = tmp_path / "learnt.toml"
    process = subprocess.Popen(
        [str(venv.bin / "objcprefork"), "run", "--learn", "--config", str(config), "--",
         str(venv.python), "-c", script],
        cwd=tmp_path, env=clean_environment(tmp_path), stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        assert process.stderr is not None
        assert b"FXReal" in process.stderr.readline()  # CMD has written, and is ending
        time.sleep(0.3)
        process.terminate()
        process.wait(timeout=15)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == -signal.SIGTERM
    assert "FXReal" in config.read_text()
