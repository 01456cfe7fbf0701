"""Zip applications, built for real with pex and shiv from PyPI and with
`python -m zipapp`: their forked children are protected through the launcher
(objcprefork installed where the launcher runs, not in the app), through
OBJCPREFORK=1 (objcprefork bundled, or installed in the interpreter), and, with
no variable at all, by objcprefork bundled and switched on in the entry
point's first line; an unprotected control dies. A `python -m zipapp` archive
cannot load the extension: bundling objcprefork there must cost the app nothing."""

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
# The user's path: the entry point's first line switches objcprefork on.
OWN = """
    {first_line}
    from zapp import main
    if __name__ == "__main__":
        main()
"""
INSTALL = 'import objcprefork; objcprefork.install(["FXAlpha", "FXBeta"])'
AUTO = 'import objcprefork.auto; objcprefork.add_classes(["FXAlpha", "FXBeta"])'
ALIVE, DEAD = ["exit 0", "exit 0"], ["SIGABRT", "SIGABRT"]
CLASSES = {"OBJCPREFORK_DEFAULTS": "0", "OBJCPREFORK_CLASSES": "FXAlpha,FXBeta"}


@pytest.fixture
def sources(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(TESTS / "forkprobe.py", src)
    (src / "zapp.py").write_text(textwrap.dedent(APP))
    (src / "zapp_install.py").write_text(textwrap.dedent(OWN).format(first_line=INSTALL))
    (src / "zapp_auto.py").write_text(textwrap.dedent(OWN).format(first_line=AUTO))
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
    pex, own = tmp_path / "app.pex", tmp_path / "own.pex"
    for output, entry in ((pex, "zapp:main"), (own, "zapp_install:main")):
        # --intransitive: offline, without tomli (3.10 needs it only to read a config file)
        build(["pex", "-D", sources, "-e", entry, *mode, "--no-pypi", "--intransitive", "-f",
               wheels(wheel, tmp_path), "objcprefork", "-o", output, "--python", venv.python,
               "--python-shebang", venv.python], tmp_path)
    control = run_command([pex], env=roots(tmp_path, CLASSES), check=False)
    assert control.facts == {"children": DEAD}, control.stderr
    run = run_command([pex], env=roots(tmp_path, {"OBJCPREFORK": "1", **CLASSES}))
    assert run.facts == {"children": ALIVE}, run.stderr
    no_variable = run_command([own], env=roots(tmp_path))
    assert no_variable.facts == {"children": ALIVE}, no_variable.stderr


def test_shiv_both_ways(venv, bare_venv, wheel, run_command, tmp_path, sources, fixtures):
    plain, bundled, own = tmp_path / "app.pyz", tmp_path / "bundled.pyz", tmp_path / "own.pyz"
    build(["shiv", "-e", "zapp:main", "-o", plain, "--site-packages", sources], tmp_path)
    for output, entry in ((bundled, "zapp:main"), (own, "zapp_auto:main")):
        build(["shiv", "-e", entry, "-o", output, "--site-packages", sources, "--no-index",
               "--no-deps", "--find-links", wheels(wheel, tmp_path), "objcprefork"], tmp_path)
    control = run_command([bare_venv.python, plain], env=roots(tmp_path), check=False)
    assert control.facts == {"children": DEAD}, control.stderr
    launched = run_command(launch(venv, bare_venv.python, plain), env=roots(tmp_path))
    assert launched.facts == {"children": ALIVE}, launched.stderr
    switched = run_command([bare_venv.python, bundled],
                           env=roots(tmp_path, {"OBJCPREFORK": "1", **CLASSES}))
    assert switched.facts == {"children": ALIVE}, switched.stderr
    no_variable = run_command([bare_venv.python, own], env=roots(tmp_path))
    assert no_variable.facts == {"children": ALIVE}, no_variable.stderr


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


def test_python_zipapp_bundling_objcprefork(bare_venv, wheel, run_command, tmp_path, sources,
                                            fixtures):
    """The extension cannot load from a zip: the app runs unprotected, and one
    line on stderr says why and what to do, never a traceback."""
    folder = tmp_path / "za"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--target", str(folder), str(wheel)], check=True)
    for name in ("forkprobe.py", "zapp.py"):
        shutil.copy(sources / name, folder)
    (folder / "__main__.py").write_text(f"{INSTALL}\nfrom zapp import main\nmain()\n")
    archive = tmp_path / "app.pyz"
    subprocess.run([sys.executable, "-m", "zipapp", str(folder), "-o", str(archive)],
                   check=True)
    run = run_command([bare_venv.python, archive])
    assert run.facts == {"children": DEAD}
    ours = [line for line in run.stderr.splitlines() if not line.startswith("objc[")]
    assert len(ours) == 1 and "zip" in ours[0] and "Traceback" not in run.stderr, ours
