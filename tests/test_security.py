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

from objcprefork._config import Config, ConfigError, load, read_file
from objcprefork._files import append_classes
from objcprefork._frameworks import load_frameworks, validate_framework_names


def test_config_rewrite_never_follows_a_planted_symlink(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim"
    victim.write_text("secret\n")
    victim.chmod(0o600)
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
    with pytest.raises(ValueError, match=r"lib\*\.so"):
        validate_framework_names(["Foundation"])
    with pytest.raises(ValueError, match=r"cannot load framework 'libplanted\.so\.1': not found"):
        load_frameworks(["libplanted.so.1"])
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


@pytest.mark.skipif(sys.platform == "darwin", reason="a stand-in runtime cannot take the place "
                    "of the libobjc every macOS process has loaded")
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
