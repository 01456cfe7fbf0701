"""Hostile input, hostile places: the reproductions of the security review,
each turned into a test."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import no_runtime_at_start

from objcprefork._config import Config, ConfigError, load, read_file
from objcprefork._files import append_classes
from objcprefork._frameworks import load_frameworks


def shared_and_victim(tmp_path, text):
    """A sticky world-writable folder, as /tmp, and a 0600 file outside it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim"
    victim.write_text(text)
    victim.chmod(0o600)
    return shared, victim


def test_config_rewrite_never_follows_a_planted_symlink(tmp_path):
    shared, victim = shared_and_victim(tmp_path, "secret\n")
    real = tmp_path / "dotfiles" / "config.toml"
    real.parent.mkdir()
    real.write_text('classes = ["FXOld"]\n')
    real.chmod(0o640)
    config = shared / "config.toml"
    config.symlink_to(real)
    # 0.1.0 wrote to "{path}.objcprefork-{pid}": plant those names for the pids near ours.
    for pid in range(os.getpid() - 50, os.getpid() + 300):
        (shared / f"config.toml.objcprefork-{pid}").symlink_to(victim)
    assert append_classes(str(config), ("FXNew",)) == ("FXNew",)
    assert victim.read_text() == "secret\n"
    assert config.is_symlink() and os.readlink(config) == str(real)
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    reread = Config()
    read_file(str(config), reread)
    assert reread.classes == ("FXOld", "FXNew")
    assert not [p for p in real.parent.iterdir() if p.name != "config.toml"]  # no leftovers


def test_scan_write_cannot_be_made_to_inject_keys(run_python, fixtures, tmp_path):
    # A library in a folder whose name holds a newline, and a class registered
    # at run time whose name holds '"]' and a newline.
    odd = tmp_path / 'x\ndefaults = false\n'
    odd.mkdir()
    (odd / "libfixtures.so").write_bytes((fixtures / "libfixtures.so").read_bytes())
    out = tmp_path / "scan.toml"
    run = run_python(f"""
        load(fixtures=False)
        lib = ctypes.CDLL({str(odd / "libfixtures.so")!r})
        assert lib.fx_create_class(b'FXEvil"]\\nframeworks = ["libpwn.so"]\\n#') == 0
        from objcprefork._cli import main
        report(code=main(["scan", "--framework", {str(odd / "libfixtures.so")!r},
                          "--write", {str(out)!r}]))
    """)
    assert run.facts == {"code": 0}
    written = Config()
    read_file(str(out), written)  # a valid file, whose keys are only ours
    assert written.frameworks == () and written.defaults is None
    assert "FXAlpha" in written.classes and not any("Evil" in c for c in written.classes)
    assert "libpwn" not in "".join(written.classes)


@pytest.mark.skipif(sys.platform == "darwin", reason="sonames are the Linux rule")
def test_frameworks_never_come_from_the_current_directory(tmp_path, monkeypatch, fixtures):
    (tmp_path / "libplanted.so.1").write_bytes((fixtures / "libfixtures.so").read_bytes())
    (tmp_path / "Foundation").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LD_LIBRARY_PATH", ":relative")
    with pytest.raises(ValueError, match=r"cannot load framework 'Foundation': not found"):
        load_frameworks(["Foundation"])
    with pytest.raises(ValueError, match=r"cannot load framework 'libplanted\.so\.1': not found"):
        load_frameworks(["libplanted.so.1"])
    with pytest.raises(ValueError, match=r"'planted': not found \(tried libplanted\.so\* in"):
        load_frameworks(["planted"])
    with open("/proc/self/maps") as maps:
        assert "libplanted" not in maps.read()


@pytest.mark.parametrize("variable", ["OBJCPREFORK_CONFIG", "XDG_CONFIG_HOME"])
def test_relative_config_paths_are_ignored(tmp_path, monkeypatch, variable):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "objcprefork").mkdir()
    for name in ("config.toml", "objcprefork/config.toml"):
        (tmp_path / name).write_text('classes = ["FXFromCwd"]\n')
    value = "config.toml" if variable == "OBJCPREFORK_CONFIG" else "."
    problems: list[ConfigError] = []
    config = load({variable: value, "HOME": str(tmp_path / "home")}, problems.append)
    assert config.classes == ()
    assert len(problems) == 1 and "relative" in str(problems[0])


def test_the_crash_log_reader_is_linear(tmp_path):
    # 0.1.0's pattern took 5.4 s on 32 KB of "+["; 1 MB would take hours. A
    # generous bound separates linear from quadratic without timing anything.
    code = textwrap.dedent("""
        from objcprefork._crashlog import read_report
        for chunk in (b"+[", b"+[A", b"gss_", b"LaunchServices", b"refusing to call +["):
            read_report(chunk * ((1 << 20) // len(chunk)))
        print("done")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.stdout.strip() == "done", done.stderr


def test_learn_takes_only_the_runtimes_own_lines(venv, run_command, tmp_path):
    quoted = ('log: request body "objc[12]: +[FXQuoted initialize] may have been in progress '
              'in another thread when fork() was called."')
    real = ("objc[12]: +[FXReal initialize] may have been in progress in another thread when "
            "fork() was called.")
    script = f"import sys; print({quoted!r}, file=sys.stderr); print({real!r}, file=sys.stderr)"
    config = tmp_path / "learnt.toml"
    run_command([venv.bin / "objcprefork", "run", "--learn", "--config", config, "--",
                 venv.python, "-c", script])
    learnt = Config()
    read_file(str(config), learnt)
    assert learnt.classes == ("FXReal",)


@pytest.mark.parametrize("kind", ["fifo", "zero", "oversized", "directory"])
def test_startup_survives_hostile_config_files(venv, run_command, tmp_path, kind):
    path = tmp_path / "config.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path = "/dev/zero"
    elif kind == "oversized":
        path.write_text("# " + "x" * (1 << 20) + '\nclasses = ["FXBig"]\n')
    else:
        path.mkdir()
    run = run_command([venv.python, "-c", "import objcprefork; print(objcprefork.is_installed())"],
                      env={"OBJCPREFORK": "1", "OBJCPREFORK_CONFIG": str(path)})
    assert run.stdout.strip() == "True"
    assert run.stderr.count("\n") == 1 and "objcprefork: warning:" in run.stderr
    assert ("not a regular file" in run.stderr) != (kind == "oversized"), run.stderr


def test_class_count_from_files_and_variables_is_capped(tmp_path):
    names = " ".join(f"FX{i}" for i in range(5000))
    problems: list[ConfigError] = []
    config = load({"OBJCPREFORK_CLASSES": names, "HOME": str(tmp_path)}, problems.append)
    assert len(config.classes) == 4096 and config.classes[-1] == "FX4095"
    assert len(problems) == 1 and "only the first 4096" in str(problems[0])


@pytest.mark.skipif(sys.platform == "darwin", reason="copies GCC's libobjc.so.4; Apple's "
                    "libobjc is in the dyld shared cache, not a file to copy")
def test_non_utf8_class_names_and_runtime_paths(run_python, fixtures, tmp_path):
    odd = tmp_path / "r\udcffuntime"  # a folder name that is not UTF-8
    odd.mkdir()
    runtime = os.path.realpath("/usr/lib/x86_64-linux-gnu/libobjc.so.4")
    if not os.path.exists(runtime):
        runtime = subprocess.run(["gcc", "-print-file-name=libobjc.so.4"], capture_output=True,
                                 text=True).stdout.strip()
    (odd / "libobjc.so.4").write_bytes(Path(runtime).read_bytes())
    # The loader finds the runtime through LD_LIBRARY_PATH, under its non-UTF-8 path.
    run = run_python("""
        import objcprefork
        load()
        assert fx.fx_create_class(b"FX\\xffOdd") == 0
        st = objcprefork.install(["FXAlpha"], defaults=False)
        from objcprefork._scan import scan
        found = [n for names in scan().values() for n, _ in names]
        report(runtime=st.runtime.encode("utf-8", "surrogateescape").endswith(
                   b"r\\xffuntime/libobjc.so.4"),
               odd=any(n.encode("utf-8", "surrogateescape") == b"FX\\xffOdd" for n in found),
               state=st.classes[0].state)
    """, env={"LD_LIBRARY_PATH": str(odd)})
    assert run.facts == {"runtime": True, "odd": True, "state": "initialized"}


@no_runtime_at_start  # a stand-in runtime cannot replace the libobjc already loaded
def test_class_list_growing_between_calls_never_overflows(run_command, tmp_path):
    # objc_getClassList(NULL, 0), then a class registered, then the call with
    # the buffer returns more than it holds: loop until the count is stable.
    source = Path(__file__).parent / "objc" / "fakeruntime.c"
    library = tmp_path / "libfakeobjc.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o", str(library),
                    str(source)], check=True)
    code = textwrap.dedent(f"""
        import ctypes, json
        ctypes.CDLL({str(library)!r}, mode=ctypes.RTLD_GLOBAL)
        from objcprefork._native import core
        rows = core.inspect(None)
        print(json.dumps([row["name"] for row in rows]))
    """)
    run = run_command([sys.executable, "-c", code])
    names = json.loads(run.stdout)
    assert names == [f"FK{i:02d}" for i in range(64)]


# ---- issue 20: hostile files, hostile users, hostile output --------------------

NOBODY = 65534


def peak_bytes(function, *args):
    import tracemalloc

    tracemalloc.start()
    try:
        function(*args)
    except ConfigError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("text", [
    "a" + ".a" * 5000 + " = 1\n",                 # 0.1.0: 1.4 s and 111 MB at 10 KB
    'classes = ["A"]\n[t' + ".t" * 5000 + "]\n",   # a table header, dotted
    "x = {" + "a." * 5000 + "a = 1}\n",            # an inline table
    "classes = " + "[" * 5000 + "]" * 5000 + "\n",  # nested arrays
])
def test_config_shapes_tomllib_pays_for_are_refused_before_parsing(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="not used here"):
        read_file(str(path), Config())
    assert peak_bytes(read_file, str(path), Config()) < 50 << 20


def test_any_config_file_up_to_the_cap_is_cheap(tmp_path):
    from objcprefork._config import MAX_FILE_BYTES

    assert MAX_FILE_BYTES == 64 << 10  # ~30 ms for tomllib, whatever the file holds
    path = tmp_path / "config.toml"
    worst = {"items": "classes = [" + '"A",' * ((MAX_FILE_BYTES - 20) // 4) + "]\n",
             "comments": "#\n" * (MAX_FILE_BYTES // 2 - 8) + "classes=[]\n",
             "strings": 'classes = ["' + "\\u0041" * ((MAX_FILE_BYTES - 20) // 6) + '"]\n'}
    for text in worst.values():
        assert len(text) <= MAX_FILE_BYTES
        path.write_text(text)
        assert peak_bytes(read_file, str(path), Config()) < 50 << 20
    path.write_text("#" * MAX_FILE_BYTES + "\n")
    with pytest.raises(ConfigError, match="larger than 64 KiB"):
        read_file(str(path), Config())


def test_set_id_is_assumed_when_at_secure_cannot_be_read(monkeypatch):
    import builtins

    import _objcprefork_start as start

    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/auxv")
    assert start._read_setid() is False  # this test process is not set-id
    real_open = builtins.open

    def refuse(path, *args, **kwargs):
        if path == "/proc/self/auxv":  # as under file capabilities
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refuse)
    assert start._read_setid() is True


def test_set_id_detection_costs_no_struct_import(tmp_path):
    code = ("import sys, _objcprefork_start as s; s.is_setugid(); "
            "print('struct' in sys.modules, 'ctypes' in sys.modules)")
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env={"PYTHONPATH": os.path.dirname(
                              __import__("_objcprefork_start").__file__)})
    assert done.stdout.split() == ["False", str(sys.platform != "linux")], done.stderr


def test_a_set_id_process_hears_only_the_switch(tmp_path, monkeypatch):
    import _objcprefork_start as start
    from objcprefork._frameworks import library_folders

    config = tmp_path / "config.toml"
    config.write_text('classes = ["FXFile"]\n')
    monkeypatch.setattr(start, "_setid", True)
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    loaded = load({"OBJCPREFORK": "1", "OBJCPREFORK_LEARN": "1", "OBJCPREFORK_CLASSES": "FXEnv",
                   "OBJCPREFORK_FRAMEWORKS": "libobjc.so.4", "OBJCPREFORK_DEFAULTS": "0",
                   "OBJCPREFORK_CONFIG": str(config), "OBJCPREFORK_DEBUG": "1"})
    assert (loaded.active, loaded.learn, loaded.debug, loaded.classes, loaded.frameworks,
            loaded.defaults, loaded.path) == (True, False, False, (), (), None, None)
    assert "set-id" in loaded.activation
    assert load({"OBJCPREFORK": "0"}).active is False
    assert str(tmp_path) not in library_folders()


def test_a_set_id_process_registers_no_learning_hook(run_python):
    run = run_python("""
        import _objcprefork_start, os
        _objcprefork_start._setid = True  # as AT_SECURE would say
        os.environ.update(OBJCPREFORK="1", OBJCPREFORK_LEARN="1", OBJCPREFORK_CLASSES="FXEnv")
        from objcprefork import _startup
        _startup.activate("pth")
        import objcprefork
        report(classes=list(objcprefork.classes()) == list(objcprefork.DEFAULT_CLASSES),
               installed=objcprefork.is_installed())
    """)
    assert run.facts == {"classes": True, "installed": True}
    assert "learn:" not in run.stderr


def test_a_relative_home_supplies_no_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".config" / "objcprefork").mkdir(parents=True)
    (tmp_path / ".config" / "objcprefork" / "config.toml").write_text('classes = ["FXCwd"]\n')
    problems: list[ConfigError] = []
    config = load({"HOME": "."}, problems.append)
    assert config.classes == () and config.path is None
    assert [str(p) for p in problems] == [
        "HOME='.' is relative: no user config file is read (the current directory never "
        "supplies the configuration)"]


@pytest.mark.parametrize("owner, mode, problem", [
    (NOBODY, 0o644, "owned by uid 65534, neither this user nor root"),
    (0, 0o666, "writable by others (mode 666)"),
    (0, 0o664, "writable by others (mode 664)"),
])
def test_a_config_another_user_can_write_is_refused(tmp_path, owner, mode, problem):
    if os.geteuid() != 0 and owner != os.geteuid():
        pytest.skip("giving a file away needs root")
    path = tmp_path / "config.toml"
    path.write_text('classes = ["FXPlanted"]\nframeworks = ["libobjc.so.4"]\n')
    os.chown(path, owner, -1)
    path.chmod(mode)
    problems: list[ConfigError] = []
    config = load({"OBJCPREFORK_CONFIG": str(path)}, problems.append)
    assert config.classes == () and config.frameworks == ()
    assert [str(p) for p in problems] == [f"{str(path)!r}: {problem}"]


FORGED_KEY = '"\\u001b]0;title\\u0007\\nobjcprefork: forged" = 1\n'


def test_escape_sequences_never_reach_stderr(venv, run_command, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(FORGED_KEY)
    env = {"OBJCPREFORK": "1", "OBJCPREFORK_CONFIG": str(path)}
    run = run_command([venv.python, "-c", "pass"], env=env)
    assert "\x1b" not in run.stderr and "\x07" not in run.stderr
    assert run.stderr.count("\n") == 1 and "\\x1b]0;title\\x07\\nobjcprefork: forged" in run.stderr
    doctor = run_command([venv.bin / "objcprefork", "doctor"], env=env, check=False)
    assert "\x1b" not in doctor.stdout and "\nobjcprefork: forged" not in doctor.stdout
    assert "\\x1b]0;title" in doctor.stdout


@pytest.mark.parametrize("kind", ["directory", "others-writable"])
def test_a_marker_that_is_not_a_trusted_file_does_not_switch_on(venv, run_command, kind):
    marker = venv.site_packages / "objcprefork.enabled"
    if kind == "directory":
        marker.mkdir()
    else:
        marker.write_text("")
        marker.chmod(0o666)
    try:
        run = run_command([venv.python, "-c", "import sys; print('objcprefork' in sys.modules)"])
        assert run.stdout.strip() == "False"
        assert run.stderr.count("\n") == 1
        assert f"the enable marker {str(marker)!r} is ignored" in run.stderr
    finally:
        marker.rmdir() if kind == "directory" else marker.unlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="planting another user's symlink needs root")
@pytest.mark.parametrize("how", ["append", "scan"])
def test_writes_never_follow_another_users_symlink(tmp_path, how):
    from objcprefork._files import write_scan

    shared, victim = shared_and_victim(tmp_path, 'classes = ["FXSecret"]\n')
    link = shared / "team.toml"
    link.symlink_to(victim)
    os.lchown(link, NOBODY, NOBODY)
    with pytest.raises(PermissionError, match="owned by uid 65534"):
        if how == "append":
            append_classes(str(link), ("FXNew",))
        else:
            write_scan(str(link), ("FXNew",), (), ())
    assert victim.read_text() == 'classes = ["FXSecret"]\n'
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600
    os.lchown(link, 0, 0)  # root's own link is followed, as the kernel would
    assert append_classes(str(link), ("FXNew",)) == ("FXNew",)
    assert link.is_symlink() and "FXNew" in victim.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="a file of another user needs root")
def test_a_write_keeps_owner_mode_and_hard_links(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('classes = ["FXOld"]\n')
    os.chown(path, NOBODY, NOBODY)
    path.chmod(0o640)
    other = tmp_path / "other-link.toml"
    os.link(path, other)
    before = path.stat()
    assert append_classes(str(path), ("FXNew",)) == ("FXNew",)
    after = path.stat()
    assert (after.st_ino, after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode),
            after.st_nlink) == (before.st_ino, NOBODY, NOBODY, 0o640, 2)
    assert "FXNew" in other.read_text()


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "config.toml"
    code = textwrap.dedent(f"""
        import sys
        from objcprefork._files import append_classes
        append_classes({str(path)!r}, (sys.argv[1],))
    """)
    writers = [subprocess.Popen([sys.executable, "-c", code, f"FX{i}"], cwd=tmp_path)
               for i in range(20)]
    assert [w.wait(timeout=60) for w in writers] == [0] * 20
    written = Config()
    read_file(str(path), written)
    assert sorted(written.classes) == sorted(f"FX{i}" for i in range(20))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".objcprefork-")]


def test_an_append_is_capped(tmp_path):
    from objcprefork._files import MAX_APPEND

    path = tmp_path / "config.toml"
    names = tuple(f"FX{i}" for i in range(10_000))
    assert append_classes(str(path), names) == names[:MAX_APPEND] and MAX_APPEND == 256
    assert append_classes(str(path), names) == names[MAX_APPEND:2 * MAX_APPEND]
    written = Config()
    read_file(str(path), written)
    assert written.classes == names[:2 * MAX_APPEND]


def test_the_launcher_opens_no_fifo_to_classify_its_command(venv, run_command, tmp_path):
    os.mkfifo(tmp_path / "fifo")
    # 0.1.0 opened ./fifo to look for a pex, and blocked there for ever.
    run = run_command([venv.bin / "objcprefork", "run", "--", "true", "./fifo"])
    assert run.returncode == 0


class Endless:
    """A stream of one repeated chunk, counting what is read from it."""

    def __init__(self, first: bytes, chunk: bytes) -> None:
        self.first, self.chunk, self.taken = first, chunk, 0

    def read(self, size: int) -> bytes:
        if self.taken > 1 << 30:
            return b""
        data = (self.first if not self.taken else b"") + self.chunk * (size // len(self.chunk))
        self.taken += len(data)
        return data


def test_explain_reads_a_report_whole_only_up_to_8_mib():
    from objcprefork._crashlog import read_stream

    stream = Endless(b'{"bug_type": "309"}\n', b"[{},{},")
    read_stream(stream)
    assert stream.taken <= 8 << 20


@pytest.mark.parametrize("body", [b"[" + b"{}," * (2 << 20) + b"{}]", b"{" * (6 << 20),
                                  b"[" + b'"a",' * (1 << 20) + b'"a"]'])
def test_explain_walks_an_ips_body_in_flat_memory(body):
    from objcprefork._crashlog import read_report

    data = b'{"bug_type": "309"}\n' + body
    # The text, decoded, and a copy or two; never an object per JSON node.
    assert peak_bytes(read_report, data) < (50 << 20) + 3 * len(data)


def test_explain_finds_a_class_in_a_deep_ips_body():
    from objcprefork._crashlog import MAX_STRINGS, _ips_text, read_report

    nested = b"[" * 100_000 + b'"+[Deep initialize] may have been in progress in another ' \
        b'thread when fork()"' + b"]" * 100_000
    assert read_report(b'{"bug_type": "309"}\n' + nested).classes == ("Deep",)
    assert _ips_text('{"bug_type": "309"}\n' + '"a",' * (MAX_STRINGS + 5)).count("\n") \
        == MAX_STRINGS - 1
