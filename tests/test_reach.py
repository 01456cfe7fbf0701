"""Reaching every process: enable/disable without a variable, the launcher on
every CPython found here, classes that never vanish, and core dumps in
children on request."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap

import pytest
from envs import ACTIVATED_AT_START, make_venv

ACTIVE = ("import sys; m = sys.modules.get('objcprefork._startup'); "
          "print(m.activated_by if m else None)")

APP = """
    # A threaded parent that never imports objcprefork forks children.
    import sys
    from forkprobe import *
    load(); make_threaded()
    report(version="%d.%d" % sys.version_info[:2], children=[fork_touching("FXAlpha"),
                                                              fork_touching("FXBeta")])
"""


def test_enable_and_disable_without_any_variable(wheel, run_command, tmp_path):
    venv = make_venv(tmp_path / "env", wheel)  # its own: enabling changes the environment
    objcprefork = str(venv.bin / "objcprefork")
    assert run_command([venv.python, "-c", ACTIVE]).stdout.split() == ["None"]
    enabled = run_command([objcprefork, "enable"])
    marker = venv.site_packages / "objcprefork.enabled"
    assert marker.exists() and str(marker) in enabled.stdout
    assert run_command([venv.python, "-c", ACTIVE]).stdout.split() == [ACTIVATED_AT_START]
    again = run_command([objcprefork, "enable"])
    assert again.stdout == f"objcprefork: already enabled ({marker})\n"
    # An explicit OBJCPREFORK still decides.
    assert run_command([venv.python, "-c", ACTIVE],
                       env={"OBJCPREFORK": "0"}).stdout.split() == ["None"]
    doctor = run_command([objcprefork, "doctor", "--json"], check=False)
    assert f"enabled by {marker}" in doctor.stdout
    run_command([objcprefork, "disable"])
    assert not marker.exists()
    assert run_command([venv.python, "-c", ACTIVE]).stdout.split() == ["None"]


def test_enable_refuses_an_install_outside_site_packages(wheel, bare_venv, run_command,
                                                          tmp_path):
    # As an editable install: objcprefork importable from a folder that site
    # never reads .pth files from. The marker would do nothing there.
    folder = tmp_path / "tree"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--target", str(folder), str(wheel)], check=True)
    env = {"PYTHONPATH": str(folder)}
    enable = run_command([bare_venv.python, "-m", "objcprefork", "enable"], env=env,
                         check=False)
    assert enable.returncode == 2 and enable.stdout == "", enable
    assert enable.stderr.count("\n") == 1 and "not from a site-packages folder" in enable.stderr
    assert "pip install ." in enable.stderr
    assert not (folder / "objcprefork.enabled").exists()
    doctor = run_command([bare_venv.python, "-m", "objcprefork", "doctor"], env=env, check=False)
    assert f"- objcprefork runs from {folder}, not from a site-packages folder" in doctor.stdout


def pythons() -> dict[str, str]:
    """One CPython per minor version found here (pyenv's), 3.8 and later."""
    found: dict[str, str] = {}
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for path in sorted(glob.glob(f"{root}/versions/3.*/bin/python3")):
        version = ".".join(path.split("/versions/")[1].split(".")[:2])
        if tuple(map(int, version.split("."))) >= (3, 8):
            found.setdefault(version, path)
    return found


@pytest.mark.skipif(not pythons(), reason="no pyenv CPythons on this machine")
def test_launcher_with_a_config_file_protects_every_cpython(venv, run_command, tmp_path,
                                                              fixtures):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    config = tmp_path / "config.toml"
    config.write_text('classes = ["FXAlpha", "FXBeta"]\ndefaults = false\n')
    checked = []
    for version, python in pythons().items():
        env_dir = tmp_path / f"bare-{version}"  # no objcprefork, no tomli: the launcher's copy
        subprocess.run([python, "-m", "venv", "--without-pip", str(env_dir)], check=True)
        bare = env_dir / "bin" / "python"
        run = run_command([venv.bin / "objcprefork", "run", "--config", config, "--",
                           bare, app], check=False)
        assert "Traceback" not in run.stderr, (version, run.stderr)
        if tuple(map(int, version.split("."))) >= (3, 10):
            assert run.facts == {"version": version, "children": ["exit 0", "exit 0"]}, (
                version, run.stderr)
        else:
            assert run.stderr.count("objcprefork: warning:") == 1, run.stderr
            assert f"Python {version} is not supported" in run.stderr
            assert run.facts["children"] == ["SIGABRT", "SIGABRT"]  # honestly unprotected
        checked.append(version)
    assert "3.10" in checked


def test_classes_from_every_way_survive_a_later_install(venv, run_command, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('classes = ["FXFile"]\n')
    code = ("import objcprefork; objcprefork.install(['FXApi']); "
            "print(sorted((c.name, c.source) for c in objcprefork.status().classes "
            "if c.name.startswith('FX')))")
    run = run_command([venv.bin / "objcprefork", "run", "--classes", "FXArg", "--classes",
                       "FXArg2", "--config", config, "--", venv.python, "-c", code],
                      env={"OBJCPREFORK_CLASSES": "FXEnv"})
    assert run.stdout.strip() == str(sorted([
        ("FXApi", "install()"), ("FXArg", "objcprefork run"), ("FXArg2", "objcprefork run"),
        ("FXEnv", "OBJCPREFORK_CLASSES"), ("FXFile", f"config file {config}")]))
    direct = run_command([venv.python, "-c", code],
                         env={"OBJCPREFORK": "1", "OBJCPREFORK_CONFIG": str(config),
                              "OBJCPREFORK_CLASSES": "FXEnv"})
    assert direct.stdout.strip() == str(sorted([
        ("FXApi", "install()"), ("FXEnv", "OBJCPREFORK_CLASSES"),
        ("FXFile", f"config file {config}")]))


LIMITS = """
    import os, resource, subprocess, sys
    import objcprefork
    HOW
    core = resource.RLIMIT_CORE
    resource.setrlimit(core, (resource.RLIM_INFINITY, resource.getrlimit(core)[1]))
    def child():
        execd = subprocess.run([sys.executable, "-c", "import resource; "
                                "print(resource.getrlimit(resource.RLIMIT_CORE)[0])"],
                               capture_output=True, text=True).stdout.strip()
        report(child=resource.getrlimit(core)[0], after_exec=int(execd))
        os._exit(0)
    fork_and(child)
    report(parent=resource.getrlimit(core)[0] == resource.RLIM_INFINITY)
"""


@pytest.mark.parametrize("how, env", [
    ("objcprefork.install(child_core_dumps=False)", {}),
    ("objcprefork.install_from_config()", {"OBJCPREFORK_CHILD_CORES": "0"}),
    ("pass", {"OBJCPREFORK": "1", "OBJCPREFORK_CHILD_CORES": "0"}),  # start-up activation
])
def test_no_core_dumps_in_children_on_request(venv, run_python, how, env):
    # The scenario runs with the harness's own RLIMIT_CORE 0: it raises it
    # first, as far as the hard limit allows, so that the child's 0 is objcprefork's.
    run = run_python(LIMITS.replace("HOW", how), python=venv.python, env=env)
    if run.facts.get("parent") is not True:
        pytest.skip("the hard RLIMIT_CORE here is 0: nothing to lower")
    assert run.facts == {"child": 0, "after_exec": 0, "parent": True}


def test_core_dumps_stay_by_default(venv, run_python):
    run = run_python(LIMITS.replace("HOW", "objcprefork.install()"), python=venv.python)
    if run.facts.get("parent") is not True:
        pytest.skip("the hard RLIMIT_CORE here is 0")
    assert run.facts["child"] != 0


def test_launcher_option_for_child_core_dumps(venv, run_command, tmp_path):
    script = tmp_path / "limits.py"
    script.write_text("from forkprobe import *\n"
                      + textwrap.dedent(LIMITS.replace("HOW", "pass")))
    run = run_command([venv.bin / "objcprefork", "run", "--no-child-core-dumps", "--",
                       venv.python, script])
    if run.facts.get("parent") is not True:
        pytest.skip("the hard RLIMIT_CORE here is 0")
    assert run.facts == {"child": 0, "after_exec": 0, "parent": True}


def test_sys_path_of_the_bootstrap_is_left_clean(venv, bare_venv, run_command):
    run = run_command([venv.bin / "objcprefork", "run", "--", bare_venv.python, "-c",
                       "import sys; print(any('_bootstrap' in p for p in sys.path))"])
    assert run.stdout.strip() == "False"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/auxv")
def test_set_id_detection_reads_at_secure():
    from _objcprefork_start import is_setugid

    assert is_setugid() is False  # this test process is not set-id
