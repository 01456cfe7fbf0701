"""doctor, scan, explain and the learning launcher."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from envs import ACTIVATED_AT_START
from forkprobe import APPLE, RUNTIME

import objcprefork
from objcprefork._config import Config, read_file
from objcprefork._crashlog import STREAM_BLOCK, is_core, python_cores, read_report, read_stream
from objcprefork._defaults import markdown
from objcprefork._doctor import accepted_where, apple_accepts, read_macho
from objcprefork._files import append_classes

SAMPLES = Path(__file__).parent / "samples"
REPO = Path(__file__).parent.parent


# ---- the default list and its generated page --------------------------------

def test_docs_classes_md_matches_the_data_file():
    assert (REPO / "docs" / "classes.md").read_text() == markdown(), "run: make docs"


# ---- explain -----------------------------------------------------------------

@pytest.mark.parametrize("sample, kind, classes", [
    ("initialize.crash", "crash", ("__NSCFConstantString",)),
    ("initialize.ips", "ips", ("NSNumber",)),
    ("truncated.ips", "ips", ("NSNumber",)),
    ("stderr.txt", "text", ("NSCharacterSet", "NSPlaceholderMutableString")),
])
def test_reports_name_their_classes(sample, kind, classes):
    findings = read_report((SAMPLES / sample).read_bytes())
    assert (findings.format, findings.classes, findings.unfixable) == (kind, classes, ())


@pytest.mark.parametrize("sample, name, advice", [
    ("scproxy.crash", "proxy lookup (_scproxy / SystemConfiguration) in the child",
     "no_proxy='*'"),
    ("gss.ips", "Kerberos/GSSAPI through libdispatch (libpq, psycopg)", "gssencmode=disable"),
    ("getaddrinfo.crash", "getaddrinfo through Network.framework in the child",
     "Only fork and exec"),
])
def test_look_alikes_get_their_own_fix(sample, name, advice):
    findings = read_report((SAMPLES / sample).read_bytes())
    assert findings.classes == ()
    assert name in [u.name for u in findings.unfixable]
    problem = next(u for u in findings.unfixable if u.name == name)
    assert advice in problem.advice and "spawn" in problem.advice


def test_initialize_log_lists_what_children_initialized():
    findings = read_report((SAMPLES / "initialize-log.txt").read_bytes())
    # 5001 logs first: the parent. NSString ran there, so it is not the children's.
    assert findings.initialized_by_children == ("__NSCFConstantString", "__NSPlaceholderDate")


def test_a_streamed_log_keeps_its_parent_across_blocks():
    # Issue 19: each 1 MiB block took its own first pid as the parent, so a
    # log just over 1 MiB gave ('ParentLate',) streamed and ('ChildCls',) whole.
    def call(pid, name):
        return (f"objc[{pid}]: INITIALIZE: thread 0x1: calling +[{name} initialize]\n").encode()

    log = call(100, "ParentEarly") + b"filler line\n" * (1 << 17) + call(200, "ChildCls") \
        + call(100, "ParentLate")
    assert len(log) > STREAM_BLOCK
    assert read_report(log).initialized_by_children == ("ChildCls",)
    assert read_stream(io.BytesIO(log)).initialized_by_children == ("ChildCls",)


def test_an_announced_log_is_read_as_run_learn_reads_it():
    # Issue 22: the emulation logs in children only, so the first process
    # logging was a child, taken as the parent: its classes went missing.
    # objcprefork's announcements (run --learn --verbose) name the children.
    def call(pid, name):
        return f"objc[{pid}]: INITIALIZE: thread 0x1: calling +[{name} initialize]\n"

    log = ("objcprefork[100]: learn: exec\n"
           "objcprefork[100]: learn: trivial FXTrivial\n"
           "objcprefork[200]: learn: fork child of a threaded parent\n"
           + call(200, "FXFirst") + call(200, "FXTrivial")
           + "objcprefork[300]: learn: fork child of a threaded parent\n" + call(300, "FXSecond")
           + "objcprefork[300]: learn: exec\n" + call(300, "FXAfterExec")
           + call(400, "FXNotAChild")).encode()
    for findings in (read_report(log), read_stream(io.BytesIO(log))):
        assert findings.initialized_by_children == ("FXFirst", "FXSecond")


@pytest.mark.parametrize("sample, name", [
    ("dispatch.crash", "libdispatch in the child"),
    ("cf_must_exec.txt", "CoreFoundation refuses forked children"),
    ("multithreaded.crash", "multi-threaded process forked"),
    ("launchservices.ips", "LaunchServices check-in in the child"),
])
def test_unfixable_crashes_get_advice_not_a_class(sample, name):
    findings = read_report((SAMPLES / sample).read_bytes())
    assert findings.classes == ()
    assert [u.name for u in findings.unfixable] == [name]
    assert "spawn" in findings.unfixable[0].advice


def test_arbitrary_input_never_raises():
    rng = random.Random(1234)
    inputs = [b"", b"\x00" * 100, b"{", b'{"a": 1}\n{"asi": ', b"\xff\xfe" * 500,
              b"+[ initialize] may have been in progress in another thread when fork()",
              (SAMPLES / "initialize.ips").read_bytes()[:333]]
    inputs += [bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 4000)))
               for _ in range(200)]
    for data in inputs:
        findings = read_report(data)
        assert isinstance(findings.classes, tuple)


def explain(run_command, venv, *args, stdin=None, env=None):
    argv = [venv.bin / "objcprefork", "explain", *args]
    if stdin is None:
        return run_command(argv, env=env, check=False)
    done = subprocess.run([str(a) for a in argv], input=stdin, capture_output=True,
                          env={**os.environ, **(env or {})})
    return done


def test_explain_command(venv, run_command, tmp_path):
    config = tmp_path / "config.toml"
    run = explain(run_command, venv, SAMPLES / "stderr.txt", "--config", config)
    assert run.returncode == 0
    assert "+[NSCharacterSet initialize]  (already in the active list)" in run.stdout
    run = explain(run_command, venv, SAMPLES / "initialize.crash", "--config", config,
                  env={"OBJCPREFORK_DEFAULTS": "0"})
    assert "+[__NSCFConstantString initialize]  (not in the active list)" in run.stdout
    assert f'config file ({config}):  classes = ["__NSCFConstantString"]' in run.stdout
    assert "OBJCPREFORK_CLASSES=__NSCFConstantString" in run.stdout
    assert 'objcprefork.install(["__NSCFConstantString"])' in run.stdout  # add_classes alone
    # protects nothing in a process where objcprefork is not installed
    for _ in range(2):  # the second time adds nothing
        run = explain(run_command, venv, SAMPLES / "stderr.txt", "--append", "--config", config)
        assert run.returncode == 0
    loaded = Config()
    read_file(str(config), loaded)
    assert loaded.classes == ("NSCharacterSet", "NSPlaceholderMutableString")
    assert "already in" in run.stderr


def test_explain_says_plainly_when_it_finds_nothing(venv, run_command, tmp_path):
    (tmp_path / "garbage").write_bytes(bytes(range(256)) * 10)
    run = explain(run_command, venv, tmp_path / "garbage")
    assert run.returncode == 1
    assert run.stdout.strip() == "Found no fork-safety crash in this text input."
    done = explain(run_command, venv, "-", stdin=(SAMPLES / "dispatch.crash").read_bytes())
    assert done.returncode == 0 and b"libdispatch in the child" in done.stdout
    assert b"Traceback" not in done.stderr


# ---- editing the config file --------------------------------------------------

def test_append_classes_keeps_the_file_as_written(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent("""\
        # mine
        defaults = true  # keep
        classes = [
            "A",  # a comment with ] in it
            'B',
        ]
        frameworks = ["libobjc.so.4"]
    """))
    assert append_classes(str(path), ("B", "C")) == ("C",)
    assert append_classes(str(path), ("C",)) == ()
    text = path.read_text()
    assert text.startswith("# mine\ndefaults = true  # keep\nclasses = [")
    assert text.endswith('frameworks = ["libobjc.so.4"]\n')
    loaded = Config()
    read_file(str(path), loaded)
    assert (loaded.classes, loaded.frameworks, loaded.defaults) == (("A", "B", "C"),
                                                                    ("libobjc.so.4",), True)
    fresh = tmp_path / "new" / "config.toml"
    assert append_classes(str(fresh), ("X",)) == ("X",)
    with pytest.raises(ValueError, match="invalid"):
        append_classes(str(fresh), ("Bad Name",))


# ---- scan --------------------------------------------------------------------

def test_scan_finds_non_trivial_classes_and_initializes_nothing(run_python):
    run = run_python("""
        load()
        from objcprefork._scan import scan
        found = scan("libfixtures")
        make_threaded()
        report(found=found, runs=fx.fx_initialize_count(b"FXAlpha"),
               child=fork_touching("FXAlpha"))
    """)
    [(image, classes)] = run.facts["found"].items()
    assert image.endswith("libfixtures.so")
    assert classes == [["FXAlpha", "FXAlpha"], ["FXBase", "FXBase"], ["FXBeta", "FXBeta"],
                       ["FXDlopen", "FXDlopen"], ["FXForks", "FXForks"],
                       ["FXForksBack", "FXForksBack"], ["FXGamma", "FXGamma"],
                       ["FXSub", "FXBase"]]
    assert run.facts["runs"] == 0 and run.facts["child"] == "SIGABRT"


def test_scan_gnustep_and_write_a_config_that_protects(venv, run_command, run_python, tmp_path,
                                                       gnustep):
    out = tmp_path / "scanned.toml"
    run = run_command([venv.bin / "objcprefork", "scan", "--framework", gnustep,
                       "--image", "gnustep", "--write", out])
    assert "NSRecursiveLock" in run.stdout and "NSString" in run.stdout
    scanned = Config()
    read_file(str(out), scanned)
    assert scanned.frameworks == (gnustep,) and len(scanned.classes) > 100
    # The GNUstep scenario of test_fork, protected by nothing but the scan's file.
    code = """
        load(fixtures=False); load_gnustep(); make_threaded()
        def use_number():
            n = send(cls("NSNumber"), "numberWithInt:", 42, argtypes=(ctypes.c_int,))
            os._exit(0 if send(n, "intValue", restype=ctypes.c_int) == 42 else 1)
        report(child=fork_and(use_number))
    """
    assert run_python(code, python=venv.python).facts == {"child": "SIGABRT"}
    protected = run_python(code, python=venv.python,
                           env={"OBJCPREFORK": "1", "OBJCPREFORK_CONFIG": str(out)})
    assert protected.facts == {"child": "exit 0"}, protected.stderr


# ---- doctor ------------------------------------------------------------------

def macho(commands: list[bytes]) -> bytes:
    body = b"".join(commands)
    return struct.pack("<IiiIIIII", 0xFEEDFACF, 0x0100000C, 0, 2, len(commands), len(body),
                       0, 0) + body


def build_version(sdk: tuple[int, int]) -> bytes:
    return struct.pack("<IIIIII", 0x32, 24, 1, (11 << 16), (sdk[0] << 16) | (sdk[1] << 8), 0)


def version_min(sdk: tuple[int, int]) -> bytes:
    return struct.pack("<IIII", 0x24, 16, (10 << 16) | (9 << 8), (sdk[0] << 16) | (sdk[1] << 8))


def segment(segname: bytes, *sections: bytes) -> bytes:
    head = struct.pack("<II16sQQQQiiII", 0x19, 72 + 80 * len(sections), segname, 0, 0, 0, 0,
                       3, 3, len(sections), 0)
    return head + b"".join(struct.pack("<16s16sQQIIIIIIII", name, segname, 0, 0, 0, 0, 0, 0,
                                       0, 0, 0, 0) for name in sections)


def macho_sdk(data, machine=None):
    image = read_macho(data, *([machine] if machine else []))
    return image.sdk if image else None


def test_macho_sdk():
    empty = segment(b"__TEXT")
    assert macho_sdk(macho([empty, build_version((14, 2))])) == (14, 2)
    assert macho_sdk(macho([version_min((10, 12))])) == (10, 12)
    assert macho_sdk(macho([empty])) is None
    thin = macho([build_version((15, 0))])
    fat = struct.pack(">IIiiIII", 0xCAFEBABE, 1, 0x0100000C, 0, 28, len(thin), 0) + thin
    assert macho_sdk(fat, "arm64") == (15, 0) and macho_sdk(fat, "x86_64") is None
    assert macho_sdk(b"\x7fELF" + b"\0" * 60) is None
    assert macho_sdk(macho([build_version((14, 2))])[:40]) is None


def test_macho_sdk_zero_means_minos():
    # dyld: LC_VERSION_MIN_MACOSX with sdk 0 stands for its minos (10.9 here).
    zero = struct.pack("<IIII", 0x24, 16, (10 << 16) | (9 << 8), 0)
    assert macho_sdk(macho([zero])) == (10, 9)


def test_macho_fat_64():
    thin = macho([build_version((13, 1))])
    fat = struct.pack(">IIiiQQII", 0xCAFEBABF, 1, 0x01000007, 3, 40, len(thin), 0, 0) + thin
    assert macho_sdk(fat, "x86_64") == (13, 1) and macho_sdk(fat, "arm64") is None


def test_macho_objc_fork_ok_needs_imageinfo_too():
    fork_ok = segment(b"__DATA", b"__objc_fork_ok", b"__objc_imageinfo")
    assert read_macho(macho([fork_ok, build_version((14, 0))])).fork_ok is True
    alone = segment(b"__DATA", b"__objc_fork_ok")
    assert read_macho(macho([alone, build_version((14, 0))])).fork_ok is False
    elsewhere = segment(b"__TEXT", b"__objc_fork_ok", b"__objc_imageinfo")
    assert read_macho(macho([elsewhere])).fork_ok is False


def test_doctor_sees_objc_fork_ok_in_the_main_executable(monkeypatch, tmp_path):
    from objcprefork import _doctor

    image = tmp_path / "python"
    image.write_bytes(macho([segment(b"__DATA", b"__objc_fork_ok", b"__objc_imageinfo"),
                             build_version((14, 0))]))
    monkeypatch.setattr(_doctor.sys, "platform", "darwin")
    monkeypatch.setattr(_doctor.platform, "mac_ver", lambda: ("14.5", ("", "", ""), "arm64"))
    monkeypatch.setattr(_doctor.platform, "machine", lambda: "arm64")
    monkeypatch.setattr(_doctor, "main_executable", lambda: str(image))
    monkeypatch.delenv("OBJC_DISABLE_INITIALIZE_FORK_SAFETY", raising=False)
    applies, facts = _doctor.enforcement()
    assert applies is False
    assert any("__objc_fork_ok" in fact for fact in facts), facts


@pytest.mark.parametrize("value, strict, lenient, where", [
    ("YES", True, True, "every macOS"), ("yes", False, True, "only from objc4-876"),
    ("1", False, True, "only from"), ("Y", False, True, "only from"),
    ("warn", False, True, "only from"), ("On", False, True, "only from"),
    ("true", False, True, "only from"), ("fault", False, True, "only from objc4-940.4"),
    ("stochastic-fault", False, True, "only from objc4-940.4"),
    ("0", False, False, "no macOS"), ("NO", False, False, "no macOS"),
    ("01", False, False, "no macOS"), ("", False, False, "no macOS"),
])
def test_apple_accepted_values(value, strict, lenient, where):
    assert apple_accepts(value, strict=True) is strict
    assert apple_accepts(value) is lenient
    assert where in accepted_where(value)
    assert apple_accepts(None) is False


@pytest.mark.parametrize("value", ["fault", "Stochastic-Fault", "stochasticfault"])
def test_fault_values_count_only_from_objc4_940_4(value):
    # objc4-876 to 928.2 (macOS 14, early 15) parse them as off: the check stays on.
    assert apple_accepts(value, faults=False) is False
    assert apple_accepts(value, faults=True) is True
    assert apple_accepts("yes", faults=False) is True


def test_doctor_reports_classes_images_and_verdict(run_python):
    run = run_python("""
        load(); import objcprefork
        objcprefork.install(["FXAlpha", "FXMissing"], defaults=False)
        from objcprefork._doctor import collect
        report(**collect())
    """)
    facts = run.facts
    assert (facts["enforcement"] is False) is not APPLE and facts["protected"] is True
    assert facts["runtime"].endswith(RUNTIME) and facts["installed"] is True
    assert facts["classes"][0]["state"] == "initialized"
    assert facts["classes"][0]["image"].endswith("libfixtures.so")
    assert facts["classes"][1] == {"name": "FXMissing", "state": "not loaded",
                                   "source": "install()", "image": None, "did_you_mean": None}


def test_doctor_when_enforcement_applies_and_nothing_is_active(monkeypatch, capsys):
    from objcprefork import _cli, _doctor

    objcprefork.uninstall()
    monkeypatch.setattr(_doctor, "enforcement", lambda: ("unknown", ["SDK: unknown"]))
    assert _cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "enforcement:  unknown" in out and "verdict:      NOT protected" in out
    assert "objcprefork is not installed in this process" in out


def test_doctor_command_json(venv, run_command):
    # The exit status agrees with the report: 0 protected, 1 not. On Linux no
    # runtime enforces, so it is protected; on macOS, with nothing active, not.
    run = run_command([venv.bin / "objcprefork", "doctor", "--json"], check=False)
    report = json.loads(run.stdout)
    assert report["installed"] is False
    assert run.returncode == (0 if report["protected"] else 1)
    assert report["protected"] is not APPLE
    assert (report["enforcement"] is False) is not APPLE
    run = run_command([venv.bin / "objcprefork", "run", "--", venv.bin / "objcprefork",
                       "doctor", "--json"], check=False)
    report = json.loads(run.stdout)
    assert report["installed"] is True and report["activated_by"] == ACTIVATED_AT_START
    assert run.returncode == (0 if report["protected"] else 1)




# ---- the user's evidence: core files and crash-report folders ---------------

ELF_CORE = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<H", 4)  # e_type ET_CORE
MACHO_CORE = struct.pack("<IiiI", 0xFEEDFACF, 0x0100000C, 0, 4)  # filetype MH_CORE
MESSAGE = (b"objc[4242]: +[NSPlaceholderDictionary initialize] may have been in progress in "
           b"another thread when fork() was called.")


def test_a_core_is_known_by_its_header_not_its_name():
    assert is_core(ELF_CORE) and is_core(MACHO_CORE)
    assert not is_core(ELF_CORE[:16] + struct.pack("<H", 2))  # ET_EXEC
    assert not is_core(MACHO_CORE[:12] + struct.pack("<I", 2))  # MH_EXECUTE
    assert not is_core(b"\x7fELF") and not is_core(b"")


@pytest.mark.parametrize("cut", [0, 1, 2, 3, 30, len(MESSAGE) - 1, len(MESSAGE)])
def test_a_core_is_read_in_blocks_and_a_message_split_across_two_is_found(cut):
    # The message straddles the first block boundary, cut bytes of it before.
    start = STREAM_BLOCK - cut
    data = bytearray(ELF_CORE + bytes(3 * STREAM_BLOCK))
    data[start:start + len(MESSAGE)] = MESSAGE
    data[-200:-200 + len(MESSAGE)] = MESSAGE.replace(b"NSPlaceholderDictionary", b"FXBeta")
    findings = read_stream(io.BytesIO(bytes(data)))
    assert (findings.format, findings.classes) == ("core", ("NSPlaceholderDictionary", "FXBeta"))


def gcore_of_a_dying_child(folder: Path) -> Path:
    """A real core file: a forked child of a threaded parent, stopped by gdb
    at objc_initializeAfterForkError (the breakpoint Apple's message names),
    written by gcore. The machine's core_pattern is never touched."""
    from conftest import clean_environment, missing, no_core_files

    gdb = shutil.which("gdb")
    if gdb is None:
        missing("gdb is not installed (make objc-deps installs it)")
    core = folder / "core.child"
    scenario = ("from forkprobe import *\nload(); make_threaded()\n"
                "report(child=fork_touching('FXAlpha'))\n")
    done = subprocess.run(
        [gdb, "-nx", "-batch", "-iex", "set auto-load off",
         "-ex", "set breakpoint pending on",
         "-ex", "set follow-fork-mode child", "-ex", "handle SIGABRT nostop noprint",
         "-ex", "break objc_initializeAfterForkError", "-ex", "run",
         "-ex", "x/s (char *) &forksafety_crash_message", "-ex", f"gcore {core}", "-ex", "kill",
         "--args", sys.executable, "-c", scenario],
        cwd=folder, env=clean_environment(folder), preexec_fn=no_core_files,
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert core.exists(), f"gdb wrote no core ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    # As objc4's crash annotations: the message is in memory before the breakpoint.
    assert "+[FXAlpha initialize] may have been in progress" in done.stdout, done.stdout
    return core


@pytest.mark.emulation("the emulation's objc_initializeAfterForkError, and gdb")
def test_explain_finds_the_class_in_a_real_core_file(fixtures, venv, run_command, tmp_path):
    core = gcore_of_a_dying_child(tmp_path)
    run = explain(run_command, venv, core, "--json", "--config", tmp_path / "c.toml")
    report = json.loads(run.stdout)
    info = core.stat()
    assert run.returncode == 0 and report["format"] == "core"
    assert [c["name"] for c in report["classes"]] == ["FXAlpha"]
    assert report["core"] == {"path": str(core), "size": info.st_size,
                              "on_disk": info.st_blocks * 512}
    run = explain(run_command, venv, core, "--config", tmp_path / "c.toml")
    assert "+[FXAlpha initialize]  (not in the active list)" in run.stdout
    assert "on disk" in run.stdout and "--no-child-core-dumps" in run.stdout
    assert python_cores(str(tmp_path)) == [(str(core), info.st_size, info.st_blocks * 512)]


def test_doctor_counts_python_core_files_in_the_cores_folder(tmp_path, capsys):
    from objcprefork import _doctor

    assert _doctor.collect(str(tmp_path))["python_cores"] == []
    sparse = tmp_path / "core.501"
    with sparse.open("wb") as f:  # 1 GiB in size, a few KiB on disk
        f.write(ELF_CORE + b"\0" * 100 + b"/usr/bin/python3.12\0")
        f.truncate(1 << 30)
    (tmp_path / "core.502").write_bytes(ELF_CORE + b"/usr/bin/ruby\0")  # not Python's
    (tmp_path / "notes.txt").write_bytes(b"python " * 10)  # not a core
    (tmp_path / "Python.app").mkdir()
    os.mkfifo(tmp_path / "fifo")  # never opened for long: no block
    on_disk = sparse.stat().st_blocks * 512
    report = _doctor.collect(str(tmp_path))
    assert report["python_cores"] == [{"path": str(sparse), "size": 1 << 30,
                                       "on_disk": on_disk}]
    text = _doctor.render(report)
    assert "core files:   1 of Python processes" in text and "--no-child-core-dumps" in text
    assert "core files" not in _doctor.render(_doctor.collect(str(tmp_path / "none")))


def report_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "DiagnosticReports"
    folder.mkdir()
    for name in ("initialize.ips", "truncated.ips", "initialize.crash", "scproxy.crash",
                 "multithreaded.crash", "stderr.txt"):
        shutil.copy(SAMPLES / name, folder)
    newer = (SAMPLES / "initialize.crash").read_text().replace(
        "2026-03-02 10:14:07.512 +0100", "2026-04-01 08:00:00.000 +0200")
    (folder / "Python-2026-04-01.crash").write_text(newer)
    (folder / "ruby.crash").write_text(newer.replace("Python", "ruby"))  # not Python's
    return folder


def test_explain_reports_counts_each_class_in_a_report_folder(tmp_path, capsys):
    from objcprefork import _cli

    folder, config = report_folder(tmp_path), tmp_path / "config.toml"
    assert _cli.main(["explain", "--reports", str(folder), "--json", "--config",
                      str(config)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "reports"
    assert report["reports"] == {"folders": [str(folder)], "read": 5}
    assert [(c["name"], c["count"], c["last"]) for c in report["classes"]] == [
        ("NSNumber", 2, "2026-05-11 16:02:44 +0200"),
        ("__NSCFConstantString", 2, "2026-04-01 08:00:00 +0200")]
    assert [u["name"] for u in report["look_alikes"]] == [
        "proxy lookup (_scproxy / SystemConfiguration) in the child"]
    assert _cli.main(["explain", "--reports", str(folder), "--append", "--config",
                      str(config)]) == 0
    out = capsys.readouterr().out
    assert "2 crash reports, last 2026-04-01 08:00:00 +0200" in out
    loaded = Config()
    read_file(str(config), loaded)
    assert loaded.classes == ("NSNumber", "__NSCFConstantString")


def test_explain_reports_without_a_report_folder(tmp_path, capsys, monkeypatch):
    from objcprefork import _cli

    assert _cli.main(["explain", "--reports", str(tmp_path / "none")]) == 3
    assert "cannot read" in capsys.readouterr().err
    assert _cli.main(["explain", str(SAMPLES / "stderr.txt"), "--reports"]) == 2
    assert "not both" in capsys.readouterr().err
    if not APPLE or not os.path.isdir("/Library/Logs/DiagnosticReports"):
        monkeypatch.setenv("HOME", str(tmp_path))
        assert _cli.main(["explain", "--reports"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no crash-report folder here" in err


def test_explain_says_when_the_active_config_cannot_be_read(tmp_path, capsys, monkeypatch):
    from objcprefork import _cli

    broken = tmp_path / "objcprefork" / "config.toml"
    broken.parent.mkdir()
    broken.write_text('classes = ["NSNumber"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("OBJCPREFORK_CONFIG", raising=False)
    assert _cli.main(["explain", str(SAMPLES / "stderr.txt")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("objcprefork explain: warning: ") and str(broken) in err
    assert "(compared without it)" in err and err.count("\n") == 1


def test_explain_reports_skips_a_default_folder_it_may_not_read(tmp_path, capsys, monkeypatch):
    from objcprefork import _cli, _crashlog

    mine, system = report_folder(tmp_path), tmp_path / "system"
    system.mkdir()
    read = _crashlog.read_folder

    def read_folder(folder, tally):
        if folder == str(system):  # as /Library/Logs/DiagnosticReports for a non-admin
            raise PermissionError(13, "Permission denied")
        read(folder, tally)

    monkeypatch.setattr(_crashlog, "read_folder", read_folder)
    monkeypatch.setattr(_crashlog, "REPORT_FOLDERS", (str(mine), str(system)))
    assert _cli.main(["explain", "--reports", "--json", "--config",
                      str(tmp_path / "c.toml")]) == 0
    assert json.loads(capsys.readouterr().out)["reports"]["read"] == 5
    assert _cli.main(["explain", "--reports", str(system)]) == 3
