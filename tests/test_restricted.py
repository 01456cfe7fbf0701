"""Never make it worse: restricted processes, deadlocks, +initialize methods that
block, load or fork, and classes that appear while others fork. Real forked
processes: on Linux against GCC's libobjc and the emulation of Apple's check,
on macOS against Apple's libobjc."""

from __future__ import annotations

import sys

import pytest
from conftest import LANE
from test_fork import assert_apple_message

# Why a fork child counts as restricted: musl has no flag to tell (src/fork.c).
CHILD_REASON = ("a fork child, and this libc does not say whether its parent was ever threaded"
                if LANE == "musl" else "a fork child of a threaded parent")

@pytest.mark.parametrize("how", ["fork", "multiprocessing", "subprocess"])
def test_restricted_child_loading_a_listed_class_then_forking_lives(run_python, how):
    # The child of a protected, threaded parent loads an image holding a
    # listed class and forks again: forcing that class there would abort it.
    run = run_python("""
        import objcprefork
        threaded_parent(["FXAlpha", "FXLate"])
        def child():
            load_late()
            again = fork_again(HOW)
            st = objcprefork.status()
            report(again=again, restricted=st.restricted,
                   states={c.name: c.state for c in st.classes},
                   touch_listed=fork_touching("FXAlpha"))
        report(child=fork_and(child), control=fork_and(lambda: load_late().fx_late_touch()))
    """, params={"HOW": how})
    assert run.facts["child"] == "exit 0"
    assert run.facts["again"] == "exit 0"
    assert run.facts["restricted"] == CHILD_REASON
    assert run.facts["states"] == {"FXAlpha": "initialized", "FXLate": "blocked"}
    assert run.facts["touch_listed"] == "exit 0"  # kept from the parent
    # The control: FXLate's +initialize in such a child really aborts it.
    assert run.facts["control"] == "SIGABRT"
    assert_apple_message(run.stderr, "FXLate")


@pytest.mark.parametrize("how", ["fork", "multiprocessing", "fork, parent imported it"])
def test_install_in_a_restricted_child_lives_and_warns(run_python, how):
    # gunicorn without --preload: the worker, a child of a threaded parent
    # that never installed objcprefork (or only imported it), imports the
    # app, which calls install().
    run = run_python("""
        import subprocess, sys, warnings
        if HOW == "fork, parent imported it":
            import objcprefork  # loaded, never installed: the fork must still count
        load(); make_threaded()
        def worker():
            import objcprefork
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                st = objcprefork.install(["FXAlpha", "FXBeta"], defaults=False)
                objcprefork.add_classes(["FXGamma"])
            sub = subprocess.run([sys.executable, "-c", "pass"]).returncode
            report(installed=st.installed, restricted=st.restricted is not None,
                   states=[c.state for c in objcprefork.status().classes],
                   warnings=[(w.category.__name__, str(w.message)) for w in caught],
                   at_the_caller=[w.filename == sys._getframe().f_code.co_filename
                                  for w in caught],
                   sub=sub, runs=fx.fx_initialize_count(b"FXAlpha"))
        report(worker=start_process(HOW.split(",")[0], worker), control=fork_touching("FXAlpha"))
    """, params={"HOW": how})
    assert run.facts["worker"] == "exit 0"
    assert run.facts["installed"] is True and run.facts["restricted"] is True
    assert run.facts["states"] == ["blocked", "blocked", "blocked"]
    assert run.facts["sub"] == 0 and run.facts["runs"] == 0
    [(category, message)] = run.facts["warnings"]
    assert run.facts["at_the_caller"] == [True]  # the line that called install()
    assert category == "RuntimeWarning"
    assert "restricted" in message and "Switch objcprefork on in the parent" in message
    assert run.facts["control"] == "SIGABRT"  # what forcing FXAlpha there would have done


def test_first_import_in_a_child_of_a_single_threaded_parent(run_python):
    # A daemon that forks, then installs. glibc tells that the parent was never
    # threaded; macOS cannot tell a fork child's parent apart (no exec: in
    # doubt, restricted), nor can musl (docs/design.md, "Restricted processes").
    run = run_python("""
        load()
        def child():
            import objcprefork
            report(restricted=objcprefork.status().restricted)
        fork_and(child)
    """)
    expected = {
        "darwin": "loaded in a fork child that has not exec'd, whose parent may have been "
                  "threaded",
        "musl": "loaded in a fork child of the process that started this interpreter",
    }.get("darwin" if sys.platform == "darwin" else LANE)
    assert run.facts == {"restricted": expected}


def test_unrestricted_child_of_a_single_threaded_parent_still_forces(run_python):
    run = run_python("""
        import objcprefork
        load(); objcprefork.install(["FXAlpha"], defaults=False)
        def child():
            load_late(); objcprefork.add_classes(["FXLate"]); make_threaded()
            st = objcprefork.status()
            report(restricted=st.restricted, state=st.classes[-1].state,
                   grandchild=fork_and(lambda: load_late().fx_late_touch()))
        report(child=fork_and(child))
    """)
    if LANE == "musl":
        # Without glibc's flag, whether the parent was ever threaded is
        # unknown: the child counts as restricted and forces nothing new (safe,
        # and FXLate, loaded there, stays unforced: its grandchild dies).
        assert run.facts == {"child": "exit 0", "state": "blocked", "grandchild": "SIGABRT",
                             "restricted": CHILD_REASON}
    else:
        assert run.facts == {"child": "exit 0", "restricted": None, "state": "initialized",
                             "grandchild": "exit 0"}


def test_no_deadlock_between_forks_and_reconfiguration_under_gc(run_python):
    # Finalizers that release the GIL run during the allocations of
    # add_classes/set_classes/status while another thread forks in a loop.
    run = run_python("""
        import gc, threading, time, objcprefork
        load(); load_late(); objcprefork.install(["FXAlpha"], defaults=False)
        make_threaded()
        class ReleasesTheGil:
            def __del__(self): time.sleep(0)
        go = threading.Event(); outcomes = []; rounds = []
        def reconfigure():
            go.wait()
            # A fixed number of rounds: with every allocation collecting and
            # every finalizer handing the GIL on, garbage made without bound
            # outgrows the collector (3.10 reached gigabytes), whatever we do.
            for _ in range(300):
                junk = [ReleasesTheGil() for _ in range(20)]
                for i in range(len(junk) - 1):
                    junk[i].next = junk[i + 1]; junk[i + 1].prev = junk[i]  # cycles for gc
                del junk
                objcprefork.add_classes([f"FXMissing{len(rounds) % 50}", "FXBeta"])
                objcprefork.set_classes(["FXAlpha", "FXLate", "FXSub"])
                objcprefork.status(); rounds.append(1)
        def forker():  # forks for as long as the reconfiguration goes on, 150 times at least
            go.wait()
            done = 0
            while done < 150 or len(rounds) < 600:
                outcomes.append(fork_touching("FXAlpha")); done += 1
        threads = [threading.Thread(target=reconfigure) for _ in range(2)]
        threads += [threading.Thread(target=forker) for _ in range(2)]
        for t in threads: t.start()
        # Every thread runs before the collector fires at each allocation.
        gc.set_threshold(1); go.set()
        for t in threads: t.join()
        report(outcomes=sorted(set(outcomes)), enough=len(outcomes) >= 300, rounds=len(rounds))
    """, watchdog=60)
    assert run.facts == {"outcomes": ["exit 0"], "enough": True, "rounds": 600}, run.stderr


@pytest.mark.parametrize("when", ["install", "os.fork"])
def test_initialize_waiting_on_a_thread_that_needs_the_gil(run_python, when):
    # FXWaits's +initialize takes a lock that another thread holds while it
    # calls back into Python: forcing with the GIL held would deadlock.
    run = run_python("""
        import threading, time, objcprefork
        load()
        late = None if WHEN == "os.fork" else load_late()
        objcprefork.install(["FXWaits"], defaults=False); make_threaded()
        late = late or load_late()
        callback = ctypes.CFUNCTYPE(None)(lambda: time.sleep(0.01))
        holder = threading.Thread(target=late.fx_hold_lock_calling, args=(callback,))
        holder.start()
        while not late.fx_wait_lock_held(): time.sleep(0.001)
        if WHEN == "install":
            objcprefork.install(["FXWaits"], defaults=False)
            child = fork_touching("FXWaits")
        else:
            child = fork_and(lambda: touch("FXWaits"))
        holder.join()
        report(child=child, runs=late.fx_waits_initialized(),
               state=objcprefork.status().classes[0].state)
    """, watchdog=60, params={"WHEN": when})
    assert run.facts == {"child": "exit 0", "runs": 1, "state": "initialized"}


def test_subprocess_forking_with_the_gil_held_never_forces(run_python):
    # macOS's subprocess forks from C with the GIL held and skips the
    # before-fork hook. FXWaits is listed and loaded but not forced yet, and its
    # +initialize waits for a thread that needs the GIL: a fork handler that
    # forced it would deadlock the parent. The child execs: it needs nothing.
    run = run_python("""
        import subprocess, threading, time, objcprefork
        subprocess._USE_VFORK = False; subprocess._USE_POSIX_SPAWN = False  # as on macOS
        load(); objcprefork.install(["FXWaits"], defaults=False); make_threaded()
        late = load_late()  # FXWaits appears: found at the next fork from Python
        callback = ctypes.CFUNCTYPE(None)(lambda: time.sleep(0.01))
        holder = threading.Thread(target=late.fx_hold_lock_calling, args=(callback,))
        holder.start()
        while not late.fx_wait_lock_held(): time.sleep(0.001)
        code = subprocess.run(["/bin/true"]).returncode
        holder.join()
        report(code=code, runs=late.fx_waits_initialized(),
               state=objcprefork.status().classes[0].state)
    """, watchdog=30)
    assert run.facts == {"code": 0, "runs": 0, "state": "pending"}


@pytest.mark.parametrize("cls", ["FXDlopen", "FXForks"])
@pytest.mark.parametrize("when", ["install", "os.fork"])
def test_initialize_that_loads_a_library_or_forks(run_python, cls, when):
    # Forced at configuration time or in the before-fork hook, outside every
    # fork lock, these terminate. The fork handler never forces (docs/design.md,
    # "Inside the fork"), so no fork can run them under libpthread's atfork
    # lock or dyld's loader lock.
    run = run_python("""
        import objcprefork
        load()
        if WHEN == "install":
            objcprefork.install([CLS], defaults=False)
        else:  # listed, not forced yet: the before-fork hook forces it
            objcprefork.install([], defaults=False); objcprefork.uninstall()
            objcprefork.set_classes([CLS]); objcprefork._native.core.set_installed(True)
        make_threaded()
        child = fork_touching(CLS)
        report(child=child, runs=fx.fx_initialize_count(CLS.encode()),
               state=objcprefork.status().classes[0].state)
    """, watchdog=60, params={"WHEN": when, "CLS": cls})
    assert run.facts == {"child": "exit 0", "runs": 1, "state": "initialized"}


def test_initialize_that_forks_leaves_the_child_a_sound_table(run_python):
    # The child of FXForksBack's fork carries on through the forcing pass that
    # ran it, back into Python: its reader count must restart from that one
    # pass, or its next reconfiguration frees a table a reader still walks
    # (caught by ASan under make sanitize; a plain build crashed at random).
    run = run_python("""
        import threading, time, objcprefork
        load()
        parent = os.getpid()
        objcprefork.install(["FXForksBack"], defaults=False)
        if os.getpid() != parent:  # the child, back from the +initialize that forked
            stop = []
            def read():
                while not stop:
                    objcprefork.status()
            readers = [threading.Thread(target=read) for _ in range(2)]
            for t in readers: t.start()
            many = [f"FXMissing{n}" for n in range(300)]  # a long walk for each reader
            until = time.monotonic() + 8  # bounded in time too: sanitizers run it 10x slower
            for i in range(2000):
                objcprefork.set_classes(["FXAlpha", f"FXOther{i % 7}", *many])
                if time.monotonic() > until:
                    break
            stop.append(1)
            for t in readers: t.join()
            os._exit(0 if objcprefork.classes()[0] == "FXAlpha" else 3)
        report(child=describe(fx.fx_forks_back_status()),
               runs=fx.fx_initialize_count(b"FXForksBack"))
    """, watchdog=120)
    assert run.facts == {"child": "exit 0", "runs": 1}


def test_a_fork_racing_a_dlopen_never_misses_a_class_for_good(run_python):
    # The load signal comes after the runtime registered the image's classes,
    # and each pass reads it before looking: a fork that races the dlopen may
    # miss FXLate, every later fork from Python finds it forced.
    run = run_python("""
        import threading, time, objcprefork
        threaded_parent(["FXLate"])
        loaded_after = []; results = []
        def loader():
            time.sleep(0.05)
            load_late()
            loaded_after.append(len(results))  # forks completed before it was loaded
        thread = threading.Thread(target=loader); thread.start()
        for _ in range(60):
            results.append(fork_and(lambda: load_late().fx_late_touch()))
            time.sleep(0.005)
        thread.join()
        report(loaded_after=loaded_after[0], results=results,
               signal=objcprefork.status().load_signal)
    """, watchdog=60)
    k, results = run.facts["loaded_after"], run.facts["results"]
    assert 0 < k < len(results) - 2, results
    assert results[0] == "SIGABRT"  # loaded only in the child: objc refuses it there
    assert set(results[k + 1:]) == {"exit 0"}, (k, results)
    assert run.facts["signal"] in ("_objc_load_callback", "objc_addLoadImageFunc")


def test_a_class_created_at_run_time_is_found_at_the_next_configuration(run_python):
    # objc_allocateClassPair brings a class without an image, so no load signal
    # tells of it (objc4 and GCC's libobjc alike): it is found at the next
    # configuration call, not at the next fork (docs/design.md, "Limits").
    run = run_python("""
        import objcprefork
        threaded_parent(["FXCreated"])
        fork_and(lambda: None)  # the list is looked up and settled before the class exists
        assert fx.fx_create_class(b"FXCreated") == 0
        def child_check():
            os._exit(10 + fx.fx_initialize_count(b"FXCreated"))  # read without messaging
        missed = fork_and(child_check)
        objcprefork.add_classes([])
        report(missed=missed, found=fork_and(child_check))
    """)
    assert run.facts == {"missed": "exit 10", "found": "exit 11"}


def test_a_class_created_in_a_restricted_child_aborts_there(run_python):
    # objc4 refuses any new non-trivial +initialize in such a child, whether
    # its class came from an image or from objc_allocateClassPair.
    run = run_python("""
        load(); make_threaded()
        def child():
            assert fx.fx_create_class(b"FXCreatedInChild") == 0
            touch("FXCreatedInChild")
        report(child=fork_and(child))
    """)
    assert run.facts == {"child": "SIGABRT"}
    assert_apple_message(run.stderr, "FXCreatedInChild")
