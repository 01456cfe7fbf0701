"""Every runtime the README names really forces: +initialize is seen to run (a
counter its +initialize bumps, read without messaging the class) in the parent
after install() and in a child before it touches the class."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import no_runtime_at_start
from forkprobe import APPLE, RUNTIME

SCENARIO = """
    import objcprefork
    RUNTIME
    st = objcprefork.install(["FXAlpha", "FXSub"], defaults=False)
    counts = {n: fx2.fx_initialize_count(n.encode()) for n in ("FXAlpha", "FXBase", "FXSub")}
    make_threaded()
    def child():  # reads the counter before anything messages the class
        os._exit(10 + fx2.fx_initialize_count(b"FXAlpha"))
    report(runtime=st.runtime, call=st.forcing_call, counts=counts,
           states=[c.state for c in st.classes], child=fork_and(child),
           c_thread=describe(fx2.fx_fork_from_c_thread(b"FXSub")),
           untouched=fx2.fx_initialize_count(b"FXGamma"))
"""


def test_system_runtime(run_python):
    # GCC's libobjc on Linux, Apple's on macOS: the runtime the fixtures use.
    facts = run_python(SCENARIO.replace("RUNTIME", "load(); fx2 = fx")).facts
    assert facts.pop("runtime").endswith(RUNTIME if APPLE else "/libobjc.so.4")
    assert facts == {"call": "class_getMethodImplementation",
                         "counts": {"FXAlpha": 1, "FXBase": 1, "FXSub": 1},
                         "states": ["initialized", "initialized"], "child": "exit 11",
                         "c_thread": "exit 0", "untouched": 0}


@no_runtime_at_start  # libobjc2 alone in the process: not beside a preloaded libobjc
def test_gnustep_libobjc2(run_python, libobjc2):
    runtime, fixtures = libobjc2
    facts = run_python(SCENARIO.replace(
        "RUNTIME", f"ctypes.CDLL({str(runtime)!r}); fx2 = ctypes.CDLL({str(fixtures)!r})")).facts
    assert facts.pop("runtime") == str(runtime.resolve())
    # class_getMethodImplementation forces nothing there (sendmsg2.c): the
    # counts prove objc_send_initialize is the call used.
    assert facts == {"call": "objc_send_initialize",
                         "counts": {"FXAlpha": 1, "FXBase": 1, "FXSub": 1},
                         "states": ["initialized", "initialized"], "child": "exit 11",
                         "c_thread": "exit 0", "untouched": 0}


@no_runtime_at_start  # a stand-in runtime cannot replace the libobjc already loaded
def test_a_runtime_without_diagnostic_queries_still_forces(run_command, tmp_path):
    # Binding needs only what forcing needs; the diagnostics say what is missing.
    library = tmp_path / "libforcingonly.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-DFORCING_ONLY", "-o", str(library),
                    str(Path(__file__).parent / "objc" / "fakeruntime.c")], check=True)
    code = textwrap.dedent(f"""
        import ctypes, json, objcprefork
        fake = ctypes.CDLL({str(library)!r}, mode=ctypes.RTLD_GLOBAL)
        st = objcprefork.install(["FK"], defaults=False)
        print(json.dumps(dict(runtime=st.runtime, states=[c.state for c in st.classes],
                              missing=st.diagnostics_missing,
                              forced=ctypes.c_int.in_dll(fake, "fake_forced").value,
                              rows=objcprefork._native.core.inspect(None))))
    """)
    facts = json.loads(run_command([sys.executable, "-c", code]).stdout)
    assert facts == {"runtime": str(library), "states": ["initialized"],
                     "missing": "objc_getClassList", "forced": 1, "rows": []}
