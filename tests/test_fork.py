"""Real forked processes: on Linux against GCC's libobjc and the emulation of
Apple's check, on macOS against Apple's libobjc."""

from __future__ import annotations

import re
import sys
import textwrap

import pytest
from conftest import no_runtime_at_start

APPLE_LINES = (
    r"objc\[(\d+)\]: \+\[{cls} initialize\] may have been in progress in another thread "
    r"when fork\(\) was called\.\n"
    r"objc\[\1\]: \+\[{cls} initialize\] may have been in progress in another thread "
    r"when fork\(\) was called\. We cannot safely call it or ignore it in the fork\(\) child "
    r"process\. Crashing instead\. Set a breakpoint on objc_initializeAfterForkError to debug\.\n"
)


def assert_apple_message(stderr: str, cls: str) -> None:
    assert re.search(APPLE_LINES.format(cls=re.escape(cls)), stderr), stderr


def test_child_of_threaded_parent_dies_without_objcprefork(run_python):
    run = run_python("""
        load(); make_threaded()
        report(child=fork_touching("FXAlpha"))
    """)
    assert run.facts["child"] == "SIGABRT"
    assert_apple_message(run.stderr, "FXAlpha")


def test_child_lives_with_install(run_python):
    run = run_python("""
        load(); import objcprefork
        st = objcprefork.install(["FXAlpha"], defaults=False)
        make_threaded()
        report(child=fork_touching("FXAlpha"), state=[c.state for c in st.classes],
               runs=fx.fx_initialize_count(b"FXAlpha"))
    """)
    assert run.facts == {"child": "exit 0", "state": ["initialized"], "runs": 1}
    assert "objc[" not in run.stderr


def test_class_not_listed_still_dies(run_python):
    run = run_python("""
        load(); import objcprefork
        objcprefork.install(["FXAlpha"], defaults=False); make_threaded()
        report(listed=fork_touching("FXAlpha"), unlisted=fork_touching("FXGamma"))
    """)
    assert run.facts == {"listed": "exit 0", "unlisted": "SIGABRT"}
    assert_apple_message(run.stderr, "FXGamma")


def test_inherited_initialize_is_forced_and_named(run_python):
    # FXSub inherits FXBase's +initialize: the runtime names the subclass once
    # the superclass is initialized, and listing the subclass covers both.
    run = run_python("""
        load(); import objcprefork; make_threaded()
        touch("FXBase")
        report(before=fork_touching("FXSub"))
        objcprefork.install(["FXSub"], defaults=False)
        report(after=fork_touching("FXSub"), trivial=fork_touching("FXTrivial"))
    """)
    assert run.facts == {"before": "SIGABRT", "after": "exit 0", "trivial": "exit 0"}
    assert_apple_message(run.stderr, "FXSub")


def test_uninstall_brings_the_crash_back(run_python):
    run = run_python("""
        load(); import objcprefork
        objcprefork.install(["FXLate"], defaults=False); make_threaded()
        changed = objcprefork.uninstall()
        load_late()
        report(changed=changed, again=objcprefork.uninstall(),
               installed=objcprefork.is_installed(),
               child=fork_and(lambda: load_late().fx_late_touch()))
    """)
    assert run.facts == {"changed": True, "again": False, "installed": False,
                         "child": "SIGABRT"}
    assert_apple_message(run.stderr, "FXLate")


@pytest.mark.parametrize("fork_from", ["python", "c"])
def test_library_loaded_after_install(run_python, fork_from):
    # A fork from Python forces the new class in the before-fork hook, outside
    # the fork. The fork handler forces nothing (docs/design.md, "Inside the
    # fork"): a fork from a C thread gets only what was forced before it, and
    # the next configuration call forces the rest.
    run = run_python("""
        load(); import objcprefork
        before = objcprefork.install(["FXLate"], defaults=False); make_threaded()
        late = load_late()
        if FORK_FROM == "python":
            child = fork_and(lambda: late.fx_late_touch())
        else:
            child = describe(fx.fx_fork_from_c_thread(b"FXLate"))
        between = objcprefork.status().classes[0].state
        objcprefork.install(defaults=False)
        report(before=before.classes[0].state, child=child, between=between,
               after=objcprefork.status().classes[0].state,
               again=describe(fx.fx_fork_from_c_thread(b"FXLate")))
    """, params={"FORK_FROM": fork_from})
    protected = fork_from == "python"
    assert run.facts == {"before": "not loaded", "child": "exit 0" if protected else "SIGABRT",
                         "between": "initialized" if protected else "pending",
                         "after": "initialized", "again": "exit 0"}


def test_grandchildren(run_python):
    # The child is single-threaded, yet its children stay restricted (sticky flag).
    run = run_python("""
        load(); import objcprefork
        objcprefork.install(["FXAlpha"], defaults=False); make_threaded()
        def child():
            listed = fork_touching("FXAlpha")
            unlisted = fork_touching("FXGamma")
            os._exit(0 if (listed, unlisted) == ("exit 0", "SIGABRT") else 1)
        report(child=fork_and(child))
    """)
    assert run.facts == {"child": "exit 0"}
    assert_apple_message(run.stderr, "FXGamma")


@pytest.mark.parametrize("installed", [False, True])
def test_multiprocessing_fork_context(run_python, installed):
    # Process, Pool and ProcessPoolExecutor; an unprotected Pool would only
    # wait for its dead workers, so it runs protected only.
    run = run_python("""
        import concurrent.futures, multiprocessing
        threaded_parent(["FXAlpha"] if INSTALLED else None)
        ctx = multiprocessing.get_context("fork")
        p = ctx.Process(target=touch, args=("FXAlpha",)); p.start(); p.join()
        facts = dict(exitcode=p.exitcode)
        if INSTALLED:
            with ctx.Pool(2) as pool:
                facts["pool"] = pool.map(touch_returning, ["FXAlpha"] * 8)
        executor = concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx)
        try:
            facts["executor"] = list(executor.map(touch_returning, ["FXAlpha"] * 6))
        except concurrent.futures.process.BrokenProcessPool as exc:
            facts["executor"] = type(exc).__name__
        executor.shutdown()
        report(**facts)
    """, params={"INSTALLED": installed})
    if installed:
        assert run.facts == {"exitcode": 0, "pool": [0] * 8, "executor": [0] * 6}
    else:
        assert run.facts == {"exitcode": -6, "executor": "BrokenProcessPool"}
        assert_apple_message(run.stderr, "FXAlpha")


def test_fork_from_a_c_thread_without_the_gil(run_python):
    run = run_python("""
        load(); import objcprefork
        unprotected = describe(fx.fx_fork_from_c_thread(b"FXBeta"))
        objcprefork.install(["FXAlpha"], defaults=False)
        protected = describe(fx.fx_fork_from_c_thread(b"FXAlpha"))
        report(unprotected=unprotected, protected=protected)
    """)
    assert run.facts == {"unprotected": "SIGABRT", "protected": "exit 0"}


@pytest.mark.emulation("the order of prepare handlers is libpthread's on macOS, with objc's last")
def test_a_thread_started_by_a_later_prepare_handler_restricts_the_child(run_python):
    # objc samples threadedness after every client prepare handler
    # (_objc_atfork_prepare runs after them), whatever the load order.
    run = run_python("""
        early = ctypes.CDLL(str(FIXTURES / "liblate.so"))  # before the emulation loads
        assert early.fx_start_thread_at_fork() == 0
        load()
        report(child=fork_touching("FXAlpha"))
    """)
    assert run.facts == {"child": "SIGABRT"}
    assert_apple_message(run.stderr, "FXAlpha")


def test_single_threaded_parent_is_unrestricted(run_python):
    run = run_python("""
        load()
        report(child=fork_touching("FXAlpha", "FXSub"))
    """)
    assert run.facts == {"child": "exit 0"}


# objc4 876+ (2023 onwards) and objc4 up to 866.9 (only the exact YES).
@pytest.mark.parametrize("value, new, old", [
    ("YES", False, False), ("yes", False, True), ("1", False, True), ("TRUE", False, True),
    ("on", False, True), ("Y", False, True), ("WARN", False, True), ("fault", False, True),
    ("stochasticFault", False, True), ("0", True, True), ("NO", True, True),
    ("2", True, True), ("", True, True), ("01", True, True), ("YES ", True, True),
])
@pytest.mark.parametrize("objc4", ["951.1", pytest.param("866.9", marks=pytest.mark.emulation(
    "it parses OBJC_DISABLE_INITIALIZE_FORK_SAFETY as objc4 before 876 (macOS 13) did; "
    "the runners' macOS has objc4 876 or later"))])
def test_apple_environment_switch(run_python, value, new, old, objc4):
    run = run_python("""
        load(); make_threaded()
        report(child=fork_touching("FXAlpha"))
    """, env={"OBJC_DISABLE_INITIALIZE_FORK_SAFETY": value, "FORKSAFETY_OBJC4": objc4})
    enforced = new if objc4 == "951.1" else old
    assert run.facts == {"child": "SIGABRT" if enforced else "exit 0"}


@pytest.mark.emulation("objc4 928.2 (macOS 14, early 15) is not the runners' objc4")
@pytest.mark.parametrize("value", ["fault", "stochastic-fault", "stochasticFault"])
def test_fault_values_leave_the_check_on_before_objc4_940_4(run_python, value):
    run = run_python("""
        load(); make_threaded()
        report(child=fork_touching("FXAlpha"))
    """, env={"OBJC_DISABLE_INITIALIZE_FORK_SAFETY": value, "FORKSAFETY_OBJC4": "928.2"})
    assert run.facts == {"child": "SIGABRT"}


def test_with_the_check_off_nothing_is_blocked(run_python):
    # OBJC_DISABLE_INITIALIZE_FORK_SAFETY=YES at start: objc restricts no child,
    # so nothing says "blocked" or warns; objcprefork still starts no
    # +initialize in a child of a threaded parent (it would not be needed).
    run = run_python("""
        import warnings
        load(); make_threaded()
        def worker():
            import objcprefork
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                st = objcprefork.install(["FXAlpha"], defaults=False)
            report(restricted=st.restricted, check_off=st.check_off, lineage=st.threaded_parent,
                   states=[c.state for c in st.classes], warnings=len(caught),
                   grandchild=fork_touching("FXGamma"))
        report(worker=fork_and(worker))
    """, env={"OBJC_DISABLE_INITIALIZE_FORK_SAFETY": "YES"})
    assert run.facts == {"worker": "exit 0", "restricted": None, "lineage": True,
                         "check_off": "OBJC_DISABLE_INITIALIZE_FORK_SAFETY=YES at start",
                         "states": ["pending"], "warnings": 0, "grandchild": "exit 0"}


def test_install_forces_in_the_parent_and_never_twice(run_python):
    run = run_python("""
        load(); import objcprefork
        for _ in range(3):
            objcprefork.install(["FXAlpha", "FXBase"], defaults=False)
        objcprefork.add_classes(["FXAlpha", "FXBeta"])
        make_threaded()
        children = [fork_touching("FXAlpha", "FXBeta") for _ in range(3)]
        st = objcprefork.status()
        report(children=children,
               runs=[fx.fx_initialize_count(n) for n in (b"FXAlpha", b"FXBase", b"FXBeta")],
               classes=list(objcprefork.classes()))
    """)
    assert run.facts == {"children": ["exit 0"] * 3,
                         "runs": [1, 1, 1], "classes": ["FXAlpha", "FXBase", "FXBeta"]}


def test_a_rebuilt_table_keeps_each_first_source_and_what_it_knew(run_python):
    # Tables are rebuilt at each change (src/table.c, lay_out): appended names
    # follow, a replaced list keeps what was forced, sources stay in runs.
    run = run_python("""
        load(); import objcprefork
        from objcprefork._native import core
        objcprefork.install(["FXAlpha", "FXMissing"], defaults=False)
        objcprefork.add_classes(["FXMissing", "FXBeta", "FXNé"])
        rows = lambda: [[c.name, c.state, c.source] for c in objcprefork.status().classes]
        appended = rows()
        try:
            core.set_table({"FXGood": "test", "FX\\0Bad": "test"}, True)
        except ValueError as error:
            refused = str(error)
        kept = rows() == appended
        objcprefork.set_classes(["FXOther", "FXAlpha"])
        report(appended=appended, refused=refused, kept=kept, replaced=rows(),
               sources=core.snapshot()["sources"], runs=fx.fx_initialize_count(b"FXAlpha"))
    """)
    assert run.facts == {
        "appended": [["FXAlpha", "initialized", "install()"],
                     ["FXMissing", "not loaded", "install()"],
                     ["FXBeta", "initialized", "add_classes()"],
                     ["FXNé", "not loaded", "add_classes()"]],
        "refused": "class names and sources cannot contain NUL: 'FX\\x00Bad'", "kept": True,
        "replaced": [["FXOther", "not loaded", "set_classes()"],
                     ["FXAlpha", "initialized", "set_classes()"]],
        "sources": [["set_classes()", 2]],
        "runs": 1,
    }


def test_pending_classes_are_forced_at_install(run_python):
    # Configured while not installed: nothing runs until install().
    # install() adds to the list (FXAlpha stays listed and is forced then).
    run = run_python("""
        load(); import objcprefork
        objcprefork.set_classes(["FXAlpha"])
        pending = objcprefork.status().classes[0].state
        objcprefork.install(["FXBeta"], defaults=False)
        objcprefork.uninstall()
        objcprefork.set_classes(["FXGamma"])
        objcprefork.install(objcprefork.classes(), defaults=False)
        make_threaded()
        report(pending=pending, runs=fx.fx_initialize_count(b"FXAlpha"),
               child=fork_touching("FXGamma"))
    """)
    assert run.facts == {"pending": "pending", "runs": 1, "child": "exit 0"}


def test_reconfiguring_while_other_threads_fork(run_python):
    run = run_python("""
        import threading, objcprefork
        load(); objcprefork.install(["FXAlpha"], defaults=False)
        stop = threading.Event(); outcomes = []
        def reconfigure():
            while not stop.is_set():
                objcprefork.set_classes(["FXAlpha", "FXBeta", "FXGamma"])
                objcprefork.add_classes(["FXBase"])
                objcprefork.uninstall(); objcprefork.install(["FXAlpha"], defaults=False)
                objcprefork.status()
        def forker():
            for _ in range(40):
                outcomes.append(fork_touching("FXAlpha"))
        threads = [threading.Thread(target=reconfigure)]
        threads += [threading.Thread(target=forker) for _ in range(4)]
        for t in threads: t.start()
        for t in threads[1:]: t.join()
        stop.set(); threads[0].join()
        report(outcomes=sorted(set(outcomes)), count=len(outcomes))
    """)
    assert run.facts == {"outcomes": ["exit 0"], "count": 160}


def test_gnustep_foundation(run_python, gnustep):
    # Real Foundation classes: without objcprefork the child dies inside GNUstep;
    # with them listed, NSNumber works in the child.
    code = """
        load(fixtures=False); load_gnustep(); import objcprefork
        names = ["NSObject", "NSString", "NSMutableString", "NSNumber", "NSDate", "NSURL",
                 "NSArray", "NSDictionary", "NSRecursiveLock", "NSCharacterSet"]
        if INSTALL:
            st = objcprefork.install(names)
            report(states={c.name: c.state for c in st.classes if c.name in names})
        make_threaded()
        def use_number():
            n = send(cls("NSNumber"), "numberWithInt:", 42, argtypes=(ctypes.c_int,))
            os._exit(0 if send(n, "intValue", restype=ctypes.c_int) == 42 else 1)
        report(child=fork_and(use_number))
    """
    code = textwrap.dedent(code)
    without = run_python("INSTALL = False\n" + code)
    assert without.facts == {"child": "SIGABRT"}
    assert "may have been in progress in another thread" in without.stderr
    with_it = run_python("INSTALL = True\n" + code)
    assert with_it.facts["child"] == "exit 0"
    assert set(with_it.facts["states"].values()) == {"initialized"}


@no_runtime_at_start
def test_process_without_any_runtime(run_python):
    run = run_python("""
        import objcprefork
        st = objcprefork.install(["NSString"])
        maps = open("/proc/self/maps").read()
        report(runtime=st.runtime, why=st.runtime_missing, installed=st.installed,
               states=sorted({c.state for c in st.classes}), child=fork_and(lambda: None),
               libobjc_loaded="libobjc" in maps)
    """)
    assert run.facts == {"runtime": None, "installed": True,
                         "why": "no Objective-C runtime is loaded in this process",
                         "states": ["not loaded"], "child": "exit 0",
                         "libobjc_loaded": False}


@no_runtime_at_start
def test_runtime_loaded_after_install_is_found_at_next_fork(run_python):
    run = run_python("""
        import objcprefork
        before = objcprefork.install(["FXAlpha"], defaults=False)
        load(); make_threaded()
        child = fork_touching("FXAlpha")
        after = objcprefork.status()
        report(before=before.runtime, child=child, after=after.runtime.endswith("libobjc.so.4"),
               state=after.classes[0].state)
    """)
    assert run.facts == {"before": None, "child": "exit 0", "after": True,
                         "state": "initialized"}


INTERPRETERS = """
    try:
        import _interpreters as interpreters  # 3.13+: isolated (own GIL) by default
    except ImportError:
        import _xxsubinterpreters as interpreters
    def sub(code, config="legacy"):
        interp = (interpreters.create(config) if interpreters.__name__ == "_interpreters"
                  else interpreters.create(isolated=config == "isolated")
                  if sys.version_info >= (3, 12) else interpreters.create())
        failed = interpreters.run_string(interp, "import objcprefork\\n" + code)
        interpreters.destroy(interp)
        assert not failed, failed
"""


def test_interpreters_share_one_state(run_python):
    # One process-wide table, switch and list of sources: what a
    # subinterpreter sharing the GIL configures, every interpreter reports
    # alike (docs/design.md, "Interpreters"), since a fork forks them all.
    run = run_python(textwrap.dedent(INTERPRETERS) + textwrap.dedent("""
        import objcprefork
        load(); objcprefork.install(["FXAlpha"], defaults=False)
        sub("objcprefork.add_classes(['FXBeta'])")
        shared = {c.name: (c.state, c.source) for c in objcprefork.status().classes}
        sub("objcprefork.uninstall()")
        off = objcprefork.is_installed()
        objcprefork.install(defaults=False)
        make_threaded()
        report(shared=shared, off=off, child=fork_touching("FXAlpha", "FXBeta"))
    """))
    assert run.facts == {"shared": {"FXAlpha": ["initialized", "install()"],
                                    "FXBeta": ["initialized", "add_classes()"]},
                         "off": False, "child": "exit 0"}


@pytest.mark.skipif(sys.version_info < (3, 12), reason="a GIL per interpreter is 3.12+")
def test_an_interpreter_with_its_own_gil_gets_the_inert_core(run_python):
    # The stable-ABI build declares no per-interpreter GIL support: such an
    # interpreter gets the inert core, which says why and changes nothing.
    run = run_python(textwrap.dedent(INTERPRETERS) + textwrap.dedent("""
        import objcprefork
        load(); objcprefork.install(["FXAlpha"], defaults=False)
        sub("import sys; assert not objcprefork.is_installed(); "
            "assert 'native core' in objcprefork.status().runtime_missing; "
            "objcprefork.uninstall(); objcprefork.set_classes([])", config="isolated")
        report(installed=objcprefork.is_installed(), classes=list(objcprefork.classes()))
    """))
    assert run.facts == {"installed": True, "classes": ["FXAlpha"]}


def test_children_meant_to_die_leave_no_core_file(run_python):
    # The harness sets RLIMIT_CORE to 0 in every scenario process; children
    # and grandchildren inherit it, so a SIGABRT writes nothing. Under make
    # sanitize, ASan's runtime sets it to 1 at start: no core either, since
    # Linux writes no core file below one page and pipes none at 1
    # (fs/coredump.c, do_coredump).
    run = run_python("""
        import resource
        load(); make_threaded()
        def child():
            os._exit(0 if resource.getrlimit(resource.RLIMIT_CORE)[0] <= 1 else 3)
        report(limit=fork_and(child), died=fork_touching("FXAlpha"))
    """)
    assert run.facts == {"limit": "exit 0", "died": "SIGABRT"}
