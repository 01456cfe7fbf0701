"""Switching objcprefork on: the .pth/.start at interpreter start, the launcher,
`import objcprefork.auto` and the configuration sources, in a fresh venv with a
real wheel installed."""

from __future__ import annotations

import json
import textwrap
import zipfile

import pytest
from envs import ACTIVATED_AT_START, START_FILES

import objcprefork

ACTIVE = "import sys; m = sys.modules.get('objcprefork._startup'); " \
         "print(m.activated_by if m else None, 'objcprefork' in sys.modules)"

APP = """
    # app.py: never imports objcprefork; a threaded parent forks children.
    import subprocess, sys
    from forkprobe import *
    load(); make_threaded()
    report(**{sys.argv[1]: [fork_touching("FXAlpha"), fork_touching("FXBeta")]})
    if sys.argv[1] == "child":
        subprocess.run([sys.executable, __file__, "grandchild"], check=True)
"""


def test_wheel_holds_the_startup_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for name in ["objcprefork.pth", "objcprefork.start", "_objcprefork_start.py",
                 "objcprefork/_bootstrap/sitecustomize.py", "objcprefork/data/classes.csv",
                 "objcprefork/py.typed"]:
        assert name in names
    assert any(n.startswith("objcprefork/_objcprefork") and n.endswith(".so") for n in names)


def test_unset_means_not_imported_at_start(venv, run_command):
    # Before 3.15 the .pth line imports nothing; from 3.15 site imports the
    # tiny _objcprefork_start for the .start file (PEP 829; the next test sees
    # it in sys.modules), never the package.
    run = run_command([venv.python, "-X", "importtime", "-c", ACTIVE])
    assert run.stdout.split() == ["None", "False"]
    imported = [line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines()
                if "|" in line]
    assert not [m for m in imported if m == "objcprefork" or m.startswith("objcprefork.")]


@pytest.mark.parametrize("value", ["1", "yes", "TRUE", "On"])
def test_set_means_active_before_main(venv, run_command, value):
    run = run_command([venv.python, "-c", ACTIVE + "; import objcprefork; "
                       "print(objcprefork.is_installed())"], env={"OBJCPREFORK": value})
    assert run.stdout.split() == [ACTIVATED_AT_START, "True", "True"]


@pytest.mark.parametrize("value", ["0", "no", "", "2", "enable"])
def test_other_values_do_nothing(venv, run_command, value):
    run = run_command([venv.python, "-c", ACTIVE], env={"OBJCPREFORK": value})
    assert run.stdout.split() == ["None", "False"]


@pytest.mark.parametrize("value", ["ture", "2", "t\x1bue"])
def test_a_mistyped_value_warns_once_and_stays_off(venv, run_command, value):
    run = run_command([venv.python, "-c", ACTIVE], env={"OBJCPREFORK": value})
    assert run.stdout.split() == ["None", "False"]
    assert run.stderr.count("\n") == 1 and f"OBJCPREFORK={value!r} is neither" in run.stderr
    assert "\x1b" not in run.stderr, run.stderr


@pytest.mark.parametrize("flag", ["-E", "-I"])
def test_honoured_under_E_and_I(venv, run_command, tmp_path, flag):
    # OBJCPREFORK* are not PYTHON* variables: -E and -I keep them. -I reads
    # no config file (neither the user's nor OBJCPREFORK_CONFIG); -E does.
    config = tmp_path / "c.toml"
    config.write_text('classes = ["FXFromFile"]\n')
    code = ACTIVE + "; import objcprefork; print('FXFromFile' in objcprefork.classes())"
    run = run_command([venv.python, flag, "-c", code],
                      env={"OBJCPREFORK": "1", "OBJCPREFORK_CONFIG": str(config)})
    assert run.stdout.split() == [ACTIVATED_AT_START, "True", str(flag == "-E")]


def test_broken_config_warns_and_start_goes_on(venv, run_command, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('classes = ["NSString"]\ndefaults = maybe\n')
    run = run_command([venv.python, "-c", ACTIVE + "; import objcprefork; "
                       "print(len(objcprefork.classes()))"],
                      env={"OBJCPREFORK": "1", "OBJCPREFORK_CONFIG": str(bad)})
    assert run.stdout.split() == [ACTIVATED_AT_START, "True",
                                 str(len(objcprefork.DEFAULT_CLASSES))]
    assert run.stderr.count("\n") == 1
    assert run.stderr == f"objcprefork: warning: {bad}, line 2: Invalid value; ignored\n"


@pytest.mark.parametrize("env, words", [
    ({"OBJCPREFORK_CLASSES": "Good, Bad-Name"}, "OBJCPREFORK_CLASSES: invalid Objective-C "
                                                "class name 'Bad-Name'"),
    ({"OBJCPREFORK_DEFAULTS": "perhaps"}, "OBJCPREFORK_DEFAULTS='perhaps'"),
    ({"OBJCPREFORK_CONFIG": "/nonexistent/objcprefork.toml"}, "/nonexistent/objcprefork.toml: "
                                                              "cannot read it"),
])
def test_bad_variables_warn_once(venv, run_command, env, words):
    run = run_command([venv.python, "-c", ACTIVE], env={"OBJCPREFORK": "1", **env})
    assert run.stdout.split() == [ACTIVATED_AT_START, "True"]
    assert run.stderr.count("\n") == 1 and words in run.stderr, run.stderr


def test_debug_prints_one_report_line(venv, run_command):
    run = run_command([venv.python, "-c", "pass"],
                      env={"OBJCPREFORK": "1", "OBJCPREFORK_DEBUG": "1"})
    assert run.stderr.startswith(f"objcprefork: installed ({ACTIVATED_AT_START}); runtime ")
    assert run.stderr.count("\n") == 1


def test_classes_variable_reaches_the_handler(venv, run_python):
    run = run_python("""
        import objcprefork
        load(); make_threaded()
        child = fork_touching("FXAlpha")
        st = objcprefork.status()
        report(child=child, ours=[st.classes[-2].name, st.classes[-1].name],
               states=sorted({c.state for c in st.classes}),
               initialized=[n for n in st.names("initialized") if n.startswith("FX")])
    """, python=venv.python, env={"OBJCPREFORK": "1", "OBJCPREFORK_CLASSES": "FXBeta FXAlpha"})
    # The defaults come first; where Foundation is loaded from the start (macOS,
    # the macOS-shaped lane) they are initialized too, elsewhere not loaded.
    assert run.facts["child"] == "exit 0" and run.facts["ours"] == ["FXBeta", "FXAlpha"]
    assert run.facts["initialized"] == ["FXBeta", "FXAlpha"]
    assert set(run.facts["states"]) <= {"initialized", "not loaded"}


def test_config_file_with_frameworks(venv, run_python, tmp_path, gnustep):
    config = tmp_path / "config.toml"
    config.write_text(textwrap.dedent(f"""
        # loaded at activation, in the parent
        frameworks = ["{gnustep}"]
        classes = ["NSString", "NSNumber"]
        defaults = false
    """))
    run = run_python("""
        import objcprefork
        st = objcprefork.status()
        report(classes=list(objcprefork.classes()), initialized=list(st.names("initialized")))
    """, python=venv.python, env={"OBJCPREFORK": "1", "OBJCPREFORK_CONFIG": str(config),
                                 "OBJCPREFORK_CLASSES": "NSDate"})
    assert run.facts == {"classes": ["NSString", "NSNumber", "NSDate"],
                         "initialized": ["NSString", "NSNumber", "NSDate"]}


def test_user_config_file_is_found(venv, run_command, tmp_path):
    (tmp_path / "xdg" / "objcprefork").mkdir(parents=True)
    (tmp_path / "xdg" / "objcprefork" / "config.toml").write_text('classes = ["FXFromUser"]\n')
    code = "import objcprefork; print(objcprefork.classes()[-1])"
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "OBJCPREFORK": "1"}
    assert run_command([venv.python, "-c", code], env=env).stdout.strip() == "FXFromUser"


def test_running_the_pth_twice_is_harmless(venv, run_command):
    pth = venv.site_packages / "objcprefork.pth"
    code = (f"exec(open({str(pth)!r}).read()); exec(open({str(pth)!r}).read()); "
            "import os, objcprefork; pid = os.fork()\n"
            "if pid == 0: os._exit(0)\n"
            "os.waitpid(pid, 0); print(objcprefork.status().installed, "
            "objcprefork._startup.activated_by)")
    run = run_command([venv.python, "-c", code], env={"OBJCPREFORK": "1"})
    assert run.stdout.split() == ["True", ACTIVATED_AT_START]


def test_pth_processed_again_in_a_fork_child_keeps_the_start_pid(venv, run_command):
    # site.addsitedir in a fork child (virtualenv's activate_this.py) runs the
    # line again: the child must still be told from the process that started.
    pth = venv.site_packages / "objcprefork.pth"
    code = ("import os, sys, threading\n"
            "threading.Thread(target=int).start()\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            f"    exec(open({str(pth)!r}).read())\n"
            "    import objcprefork\n"
            "    print(objcprefork.status().restricted, flush=True)\n"
            "    os._exit(0)\n"
            "os.waitpid(pid, 0)\n")
    run = run_command([venv.python, "-c", code])
    assert run.stdout.strip() == ("loaded in a fork child of the process that started this "
                                  "interpreter")


def test_start_file_entry_point(venv, run_command):
    # Python 3.15+ runs objcprefork.start (PEP 829); older ones do not, so call
    # the entry point it names the way the interpreter would.
    entry = (venv.site_packages / "objcprefork.start").read_text().strip()
    module, function = entry.split(":")
    code = f"import {module}; {module}.{function}(); " + ACTIVE
    assert run_command([venv.python, "-c", code]).stdout.split() == ["None", "False"]
    run = run_command([venv.python, "-S", "-c", f"import sys; sys.path.append("
                       f"{str(venv.site_packages)!r}); " + code], env={"OBJCPREFORK": "1"})
    assert run.stdout.split() == ["start", "True"]


def test_auto_module(venv, run_command, tmp_path):
    code = "import objcprefork.auto, objcprefork; print(objcprefork.is_installed(), " \
           "objcprefork.classes()[-1], objcprefork._startup.activated_by)"
    run = run_command([venv.python, "-c", code], env={"OBJCPREFORK_CLASSES": "FXAuto"})
    assert run.stdout.split() == ["True", "FXAuto", "import", "objcprefork.auto"]
    # The first line of a shipped app: the user's bad setting is a warning,
    # never the app's end (install_from_config() raises instead).
    bad = run_command([venv.python, "-c", code], env={"OBJCPREFORK_CLASSES": "FX Auto!"})
    [warning] = bad.stderr.splitlines()
    assert warning.startswith("objcprefork: warning: OBJCPREFORK_CLASSES: invalid Objective-C "
                              "class name 'Auto!'")
    assert warning.endswith("; ignored")
    assert bad.stdout.split()[0] == "True"


def launcher(venv):
    return [venv.bin / "objcprefork", "run"]


def test_launcher_protects_children_and_grandchildren(venv, bare_venv, run_command, tmp_path,
                                                      fixtures):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    for python in (venv.python, bare_venv.python):
        without = run_command([python, app, "child"], check=False)
        assert without.facts == {"child": ["SIGABRT", "SIGABRT"],
                                 "grandchild": ["SIGABRT", "SIGABRT"]}, without.stderr
        run = run_command([*launcher(venv), "--classes", "FXAlpha,FXBeta", "--no-defaults",
                           "--", python, app, "child"])
        assert run.facts == {"child": ["exit 0", "exit 0"],
                             "grandchild": ["exit 0", "exit 0"]}, run.stderr


def test_launcher_without_the_pth_uses_the_bootstrap(venv, bare_venv, run_command):
    run = run_command([*launcher(venv), "--", bare_venv.python, "-c", ACTIVE])
    assert run.stdout.split() == ["sitecustomize", "True"]
    assert run.stderr == ""
    run = run_command([*launcher(venv), "--", venv.python, "-c", ACTIVE])
    assert run.stdout.split() == [ACTIVATED_AT_START, "True"]


def test_launcher_runs_the_users_sitecustomize(venv, bare_venv, run_command, tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "sitecustomize.py").write_text("import sys; sys.user_site_ran = True\n")
    code = ACTIVE + "; print(getattr(sys, 'user_site_ran', False))"
    for python in (venv.python, bare_venv.python):
        run = run_command([*launcher(venv), "--", python, "-c", code],
                          env={"PYTHONPATH": str(user)})
        assert run.stdout.split()[1:] == ["True", "True"] and run.stderr == ""


def test_launcher_passes_exit_status_and_signals(venv, run_command):
    assert run_command([*launcher(venv), "--", venv.python, "-c", "raise SystemExit(7)"],
                       check=False).returncode == 7
    killed = run_command([*launcher(venv), "--", venv.python, "-c",
                          "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"], check=False)
    assert killed.returncode == -15
    missing = run_command([*launcher(venv), "--", "no-such-command-objcprefork"], check=False)
    assert missing.returncode == 127
    assert "cannot run 'no-such-command-objcprefork'" in missing.stderr


def test_launcher_options_reach_the_environment(venv, run_command, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('classes = ["FXFile"]\n')
    code = ("import os, objcprefork; print(os.environ['OBJC_DISABLE_INITIALIZE_FORK_SAFETY'], "
            "objcprefork.classes())")
    run = run_command([venv.python, "-m", "objcprefork", "run", "--disable-fork-safety",
                       "--no-defaults", "--config", config, "--classes", "FXArg", "--",
                       venv.python, "-c", code])
    assert run.stdout.strip() == "YES ('FXFile', 'FXArg')"


@pytest.mark.parametrize("argv, status, words", [
    (["--classes", "Bad-Name", "--", "true"], 2, "invalid Objective-C class name 'Bad-Name'"),
    (["--config", "/nonexistent.toml", "--", "true"], 3, "/nonexistent.toml: cannot read it"),
    ([], 2, "no command given"),
])
def test_launcher_refuses_bad_options(venv, run_command, argv, status, words):
    run = run_command([*launcher(venv), *argv], check=False)
    assert run.returncode == status and words in run.stderr


def test_pth_does_not_import_objcprefork_when_unset(venv, run_command):
    run = run_command([venv.python, "-c", "import sys; print(sorted(m for m in sys.modules "
                       "if 'objcprefork' in m))"])
    assert run.stdout.strip() == ("['_objcprefork_start']" if START_FILES else "[]")


def test_install_and_status_import_nothing_beyond_a_bare_interpreter(venv, run_command):
    # Fork time grows with what a process maps: the API path stays as lean as
    # start-up activation (no dataclasses, typing, re, inspect ...).
    code = ("import sys; before = set(sys.modules); import objcprefork; "
            "objcprefork.install(); print(objcprefork.status().installed); "
            "print(sorted(m for m in set(sys.modules) - before "
            "if m != 'objcprefork' and not m.startswith('objcprefork.')))")
    run = run_command([venv.python, "-c", code])
    assert run.stdout.split("\n")[:2] == ["True", "[]"]


def test_a_typo_in_a_class_name_gets_a_did_you_mean(venv, run_command, fixtures):
    # FXAlpha is loaded at start-up (the fixtures, as a framework short name);
    # FXAlpah, listed, never will be. The defaults are left out: not loaded
    # here, and no typo.
    env = {"LD_LIBRARY_PATH": str(fixtures), "OBJCPREFORK_FRAMEWORKS": "fixtures",
           "OBJCPREFORK_DEBUG": "1"}
    run = [*launcher(venv), "--no-defaults", "--classes", "FXAlpah,FXBeta,FXNothingLikeIt",
           "--"]
    debug = run_command([*run, venv.python, "-c", "pass"], env=env)
    assert debug.stderr.count("\n") == 1 and "; FXAlpah: did you mean FXAlpha?" in debug.stderr
    assert "FXNothingLikeIt:" not in debug.stderr
    shown = run_command([*run, venv.python, "-c", "import objcprefork; "
                         "print(objcprefork.status())"], env=env)
    assert "not loaded (2): FXAlpah (did you mean FXAlpha?), FXNothingLikeIt\n" in shown.stdout
    doctor = run_command([*run, venv.bin / "objcprefork", "doctor", "--json"], env=env,
                         check=False)
    guesses = {c["name"]: c["did_you_mean"] for c in json.loads(doctor.stdout)["classes"]}
    assert guesses == {"FXAlpah": "FXAlpha", "FXBeta": None, "FXNothingLikeIt": None}
    text = run_command([*run, venv.bin / "objcprefork", "doctor"], env=env, check=False)
    assert "did you mean FXAlpha?" in text.stdout


def test_doctor_under_the_launcher_shows_the_config_file_and_each_source(venv, run_command,
                                                                         tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('classes = ["FXFile"]\n')
    doctor = run_command([*launcher(venv), "--config", config, "--classes", "FXArg", "--",
                          venv.bin / "objcprefork", "doctor", "--json"], check=False)
    report = json.loads(doctor.stdout)
    assert report["config_file"] == str(config)
    sources = {c["name"]: c["source"] for c in report["classes"]}
    assert (sources["FXFile"], sources["FXArg"]) == (f"config file {config}", "objcprefork run")
    text = run_command([*launcher(venv), "--config", config, "--", venv.bin / "objcprefork",
                        "doctor"], check=False)
    assert f"config file:  {config}\n" in text.stdout
