"""Builds the Objective-C fixtures once per session and runs scenarios in fresh
interpreters, so the runtime's sticky state never leaks between tests.

On Linux the fixtures are built against GCC's libobjc, with the emulation of
Apple's check; on macOS against Apple's libobjc, which enforces the check
itself. Tests marked `emulation` need something only the emulation has (one
of its objc4 variants) and skip on macOS, saying so; so do, with their own
reasons, the tests of Linux-only runtimes (GNUstep, libobjc2, none loaded).
With OBJCPREFORK_REQUIRE_OBJC=1 (set by .ci/run and the wheels workflow) a
missing compiler, runtime or fixture fails the run instead of skipping, and so
does a missing GNUstep with OBJCPREFORK_REQUIRE_GNUSTEP=1."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
FIXTURES_DIR = Path("/nonexistent")  # set once the fixtures are built

# The real fork handler never runs in the pytest process: loading the native
# core registers it. The API and configuration suites need a core, so
# test_suites.py runs them in fresh interpreters, once per core (as markupsafe
# runs its suite against both implementations), with OBJCPREFORK_TEST_CORE set
# to "native" or "inert"; every other test reaches the native core through a
# scenario process, and imports only pure-Python modules here.
CORE_UNDER_TEST = os.environ.get("OBJCPREFORK_TEST_CORE")
IN_PROCESS_SUITES = ["test_api.py", "test_config.py"]
collect_ignore = ["test_suites.py"] if CORE_UNDER_TEST else IN_PROCESS_SUITES
WITHHELD = "the native core is withheld from this process"
if CORE_UNDER_TEST != "native":
    import importlib.abc

    class _NoNativeCore(importlib.abc.MetaPathFinder):
        """As where the extension could not be built or imported."""

        def find_spec(self, name: str, path: object, target: object = None) -> None:
            if name == "objcprefork._objcprefork":
                raise ImportError(WITHHELD)

    sys.meta_path.insert(0, _NoNativeCore())
sys.path.insert(0, str(TESTS / "objc"))
from envs import Venv, build_wheel, make_venv  # noqa: E402

from build import FixtureBuildError, build, build_libobjc2  # noqa: E402

APPLE = sys.platform == "darwin"
# The lanes that give this suite the shape of targets it cannot run here
# (docs/testing.md): "macos" (GNUstep Foundation LD_PRELOAD'ed into every
# process, subprocess forking with the GIL held) and "musl" (glibc's
# __libc_single_threaded hidden from the core). .ci/run sets it.
LANE = os.environ.get("OBJCPREFORK_LANE", "")
MACOS_SHAPED = APPLE or LANE == "macos"
# Every macOS Python has libobjc and CoreFoundation loaded from the start, so
# "no runtime yet" exists only off macOS and off its lane.
no_runtime_at_start = pytest.mark.skipif(
    MACOS_SHAPED, reason="every macOS process has libobjc (and CoreFoundation) loaded")


def pytest_configure(config: pytest.Config) -> None:
    preloaded = os.environ.get("LD_PRELOAD", "")
    needs = {"macos": "libgnustep-base", "musl": "hide_single_threaded"}
    if LANE and (LANE not in needs or needs[LANE] not in preloaded):
        raise pytest.UsageError(f"OBJCPREFORK_LANE={LANE!r} needs LD_PRELOAD with "
                                f"{needs.get(LANE, 'a known lane')}, not {preloaded!r}")
    config.addinivalue_line("markers", "emulation(why): needs the Linux emulation of "
                            "Apple's check (tests/objc/forksafety.m); skipped on macOS")


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("emulation")
    if marker is not None and APPLE:
        pytest.skip(f"needs the emulation of Apple's check, which is Linux-only: "
                    f"{marker.args[0]}")


def pytest_report_header(config: pytest.Config) -> str | None:
    """On macOS, as CPython's test.support.SuppressCrashReport does: the core
    limit is 0 (no_core_files), but macOS has no per-process switch for its
    crash reporter, so say when it will show a dialog for each child these
    tests kill on purpose."""
    if not APPLE:
        return None
    try:
        dialog = subprocess.run(["/usr/bin/defaults", "read", "com.apple.CrashReporter",
                                 "DialogType"], capture_output=True, text=True, timeout=10)
        mode = dialog.stdout.strip() or "default"
    except (OSError, subprocess.SubprocessError):
        mode = "unknown"
    notice = (": a dialog for each child killed on purpose" if mode == "developer"
              else "")
    return (f"crash reporter: DialogType {mode}{notice}; children meant to die leave "
            "no core file, and macOS writes their crash reports regardless")


def missing(what: str, requirement: str = "OBJCPREFORK_REQUIRE_OBJC") -> None:
    if os.environ.get(requirement) == "1":
        pytest.fail(f"{requirement}=1 but {what}", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("objc")
    try:
        build(out)
    except FixtureBuildError as exc:
        missing(str(exc))
    global FIXTURES_DIR
    FIXTURES_DIR = out
    return out


@pytest.fixture(scope="session")
def gnustep(fixtures: Path) -> str:
    if APPLE:
        pytest.skip("GNUstep Foundation is a Linux runtime; macOS runs Apple's Foundation")
    library = ctypes.util.find_library("gnustep-base")
    if library is None:
        missing("GNUstep Foundation is not installed (apt-get install libgnustep-base-dev)",
                "OBJCPREFORK_REQUIRE_GNUSTEP")
    return library


@pytest.fixture(scope="session")
def libobjc2(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(runtime, fixtures) built against GNUstep's libobjc2 from its vendored source."""
    if APPLE:
        pytest.skip("GNUstep's libobjc2 is a Linux runtime here; macOS runs Apple's")
    tarball = os.environ.get("OBJCPREFORK_LIBOBJC2_TARBALL")
    try:
        # The runtime is built once per checkout (.objc/, ignored by git) and
        # reused by every interpreter of make wheel-test; the fixtures always.
        return build_libobjc2(TESTS.parent / ".objc" / "libobjc2",
                              Path(tarball) if tarball else None,
                              fixtures_dir=tmp_path_factory.mktemp("libobjc2"))
    except FixtureBuildError as exc:
        missing(str(exc), "OBJCPREFORK_REQUIRE_LIBOBJC2")
        raise


@pytest.fixture
def clean_objcprefork():
    """For the in-process suites (run by test_suites.py in fresh interpreters):
    nothing listed, nothing installed, before and after each test."""
    import objcprefork

    objcprefork.uninstall()
    objcprefork.set_classes([])
    yield
    objcprefork.uninstall()
    objcprefork.set_classes([])


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def facts(self) -> dict[str, object]:
        merged: dict[str, object] = {}
        for line in self.stdout.splitlines():
            if line.startswith("{"):
                merged.update(json.loads(line))
        return merged


def clean_environment(tmp_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OBJCPREFORK", "OBJC_", "PYTHON"))}
    path = [str(TESTS / "lanes" / "macos")] if LANE == "macos" else []
    emulation = FIXTURES_DIR / "libforksafety.so"
    if LANE == "macos" and emulation.exists():
        # As objc4 in every macOS process: the emulation from the start, ahead
        # of the runtime Foundation brings (its objc_registerClassPair first).
        env["LD_PRELOAD"] = f"{emulation} {env.get('LD_PRELOAD', '')}".strip()
    env.update(OBJCPREFORK_FIXTURES=str(FIXTURES_DIR),
               PYTHONPATH=os.pathsep.join([*path, str(TESTS)]),
               XDG_CONFIG_HOME=str(tmp_path / "no-config"))
    env.update(extra or {})
    return env


def no_core_files() -> None:
    """In each scenario process, before it runs: children meant to die by
    SIGABRT (and their children, who inherit it) leave no core file. macOS
    writes its crash reports regardless (pytest_report_header says so)."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))


@pytest.fixture
def run_command(tmp_path: Path):
    """Run argv with a clean environment in a scratch directory (so the source
    tree never shadows the installed package); fail on a non-zero exit unless
    check=False."""

    def run(argv: list[str], *, env: dict[str, str] | None = None, check: bool = True) -> Run:
        done = subprocess.run([str(a) for a in argv], cwd=tmp_path,
                              env=clean_environment(tmp_path, env), preexec_fn=no_core_files,
                              capture_output=True, text=True, timeout=120)
        result = Run(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            pytest.fail(f"{argv} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return result

    return run


@pytest.fixture
def run_python(run_command, fixtures):
    """Run a scenario (code using forkprobe) in a fresh interpreter."""

    def run(code: str, *, python: object = sys.executable, args: tuple[str, ...] = (),
            env: dict[str, str] | None = None, check: bool = True,
            watchdog: int | None = None, params: dict[str, object] | None = None) -> Run:
        """watchdog: seconds after which the scenario dumps its threads and
        exits (a deadlock fails the test instead of hanging CI). params: names
        the scenario reads, so that it stays plain code, never an f-string."""
        script = "from forkprobe import *\n"
        script += "".join(f"{name} = {value!r}\n" for name, value in (params or {}).items())
        if watchdog:
            script += ("import faulthandler\n"
                       f"faulthandler.dump_traceback_later({watchdog}, exit=True)\n")
        script += textwrap.dedent(code)
        return run_command([python, *args, "-c", script], env=env, check=check)

    return run


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv with the wheel installed."""
    return make_venv(tmp_path_factory.mktemp("venv") / "env", wheel)


@pytest.fixture(scope="session")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A venv without objcprefork: its site-packages has no .pth of ours."""
    return make_venv(tmp_path_factory.mktemp("bare") / "env")
