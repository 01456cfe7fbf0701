"""Zip applications, built for real with pex and shiv from PyPI and with
`python -m zipapp`: their forked children are protected through the launcher
(objcprefork installed where the launcher runs, not in the app) and through
OBJCPREFORK=1 (objcprefork bundled, or installed in the interpreter), and an
unprotected control dies."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

APP = """
    from forkprobe import *
    def main():
        load(); make_threaded()
        report(children=[fork_touching("FXAlpha"), fork_touching("FXBeta")])
    if __name__ == "__main__":
        main()
"""
ALIVE, DEAD = ["exit 0", "exit 0"], ["SIGABRT", "SIGABRT"]
CLASSES = {"OBJCPREFORK_DEFAULTS": "0", "OBJCPREFORK_CLASSES": "FXAlpha,FXBeta"}


@pytest.fixture
def sources(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(TESTS / "forkprobe.py", src)
    (src / "zapp.py").write_text(textwrap.dedent(APP))
    return src


def build(argv, tmp_path):
    subprocess.run([sys.executable, "-m", *map(str, argv)], check=True, cwd=tmp_path,
                   capture_output=True, env={"PATH": "/usr/bin:/bin",
                                             "PEX_ROOT": str(tmp_path / "pex-root"),
                                             "HOME": str(tmp_path)})


def wheels(wheel, tmp_path):
    folder = tmp_path / "wheels"
    folder.mkdir(exist_ok=True)
    shutil.copy(wheel, folder)
    return folder


def launch(venv, *command):
    return [venv.bin / "objcprefork", "run", "--no-defaults", "--classes", "FXAlpha,FXBeta",
            "--", *command]


ROOTS = {"PEX_ROOT": "{tmp}/pex-root", "SHIV_ROOT": "{tmp}/shiv-root"}


def roots(tmp_path, extra=None):
    return {**{k: v.format(tmp=tmp_path) for k, v in ROOTS.items()}, **(extra or {})}


@pytest.mark.parametrize("mode", [[], ["--venv"]], ids=["zipapp", "venv"])
def test_pex_through_the_launcher(venv, run_command, tmp_path, sources, fixtures, mode):
    pex = tmp_path / "app.pex"
    build(["pex", "-D", sources, "-e", "zapp:main", *mode, "-o", pex, "--python",
           venv.python, "--python-shebang", venv.python], tmp_path)
    control = run_command([pex], env=roots(tmp_path), check=False)
    assert control.facts == {"children": DEAD}, control.stderr
    run = run_command(launch(venv, pex), env=roots(tmp_path))
    assert run.facts == {"children": ALIVE}, run.stderr


def test_a_pex_under_the_launcher_keeps_its_isolation(venv, run_command, tmp_path, sources):
    # 0.1.0 set PEX_INHERIT_PATH=fallback with the caller's PYTHONPATH: a
    # module missing from the pex came from the current directory.
    (sources / "zapp.py").write_text(textwrap.dedent("""
        import sys
        def main():
            try:
                import planted
            except ImportError:
                planted = None
            print(planted is None, [p for p in sys.path if "_bootstrap" in p])
    """))
    (tmp_path / "planted.py").write_text("")
    pex = tmp_path / "app.pex"
    build(["pex", "-D", sources, "-e", "zapp:main", "-o", pex, "--python", venv.python,
           "--python-shebang", venv.python], tmp_path)
    env = roots(tmp_path, {"PYTHONPATH": "."})
    assert run_command([pex], env=env).stdout.strip() == "True []"  # run plainly
    assert run_command(launch(venv, pex), env=env).stdout.strip() == "True []"


@pytest.mark.skipif(sys.version_info >= (3, 12),
                    reason="to resolve a requirement for 3.12+, pex bootstraps its own pip "
                           "and setuptools from an index; this test builds offline (it runs "
                           "on 3.10 and 3.11 in make test and make wheel-test)")
@pytest.mark.parametrize("mode", [[], ["--venv"]], ids=["zipapp", "venv"])
def test_pex_bundling_objcprefork(venv, wheel, run_command, tmp_path, sources, fixtures, mode):
    pex = tmp_path / "app.pex"
    # --intransitive: offline, without tomli (3.10 needs it only to read a config file)
    build(["pex", "-D", sources, "-e", "zapp:main", *mode, "--no-pypi", "--intransitive", "-f",
           wheels(wheel, tmp_path), "objcprefork", "-o", pex, "--python", venv.python,
           "--python-shebang", venv.python], tmp_path)
    control = run_command([pex], env=roots(tmp_path, CLASSES), check=False)
    assert control.facts == {"children": DEAD}, control.stderr
    run = run_command([pex], env=roots(tmp_path, {"OBJCPREFORK": "1", **CLASSES}))
    assert run.facts == {"children": ALIVE}, run.stderr


def test_shiv_both_ways(venv, bare_venv, wheel, run_command, tmp_path, sources, fixtures):
    plain, bundled = tmp_path / "app.pyz", tmp_path / "bundled.pyz"
    build(["shiv", "-e", "zapp:main", "-o", plain, "--site-packages", sources], tmp_path)
    build(["shiv", "-e", "zapp:main", "-o", bundled, "--site-packages", sources,
           "--no-index", "--no-deps", "--find-links", wheels(wheel, tmp_path), "objcprefork"],
          tmp_path)
    control = run_command([bare_venv.python, plain], env=roots(tmp_path), check=False)
    assert control.facts == {"children": DEAD}, control.stderr
    launched = run_command(launch(venv, bare_venv.python, plain), env=roots(tmp_path))
    assert launched.facts == {"children": ALIVE}, launched.stderr
    switched = run_command([bare_venv.python, bundled],
                           env=roots(tmp_path, {"OBJCPREFORK": "1", **CLASSES}))
    assert switched.facts == {"children": ALIVE}, switched.stderr


def test_python_zipapp_both_ways(venv, bare_venv, run_command, tmp_path, sources, fixtures):
    folder = tmp_path / "za"
    folder.mkdir()
    shutil.copy(sources / "forkprobe.py", folder)
    (folder / "__main__.py").write_text(textwrap.dedent(APP).replace(
        'if __name__ == "__main__":', "if True:"))
    archive = tmp_path / "app.pyz"
    subprocess.run([sys.executable, "-m", "zipapp", str(folder), "-o", str(archive)],
                   check=True)
    control = run_command([bare_venv.python, archive], check=False)
    assert control.facts == {"children": DEAD}, control.stderr
    launched = run_command(launch(venv, bare_venv.python, archive))
    assert launched.facts == {"children": ALIVE}, launched.stderr
    # An extension module cannot load from inside a zip: objcprefork comes from
    # the interpreter's environment here, switched on by the variable.
    switched = run_command([venv.python, archive], env={"OBJCPREFORK": "1", **CLASSES})
    assert switched.facts == {"children": ALIVE}, switched.stderr
