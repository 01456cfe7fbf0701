"""The one contract between C and Python (objcprefork/_contract.pyi): what the
native core and the inert core produce has exactly the names it declares."""

from __future__ import annotations

import ast
from pathlib import Path

from objcprefork._native import InertCore, listed

CONTRACT = Path(__file__).resolve().parent.parent / "objcprefork" / "_contract.pyi"


def declared() -> dict[str, object]:
    """TypedDict keys and the ClassState literal, read from the stub."""
    found: dict[str, object] = {}
    for node in ast.parse(CONTRACT.read_text()).body:
        if isinstance(node, ast.ClassDef) and node.name in ("Snapshot", "InspectRow"):
            found[node.name] = sorted(item.target.id for item in node.body
                                      if isinstance(item, ast.AnnAssign))
        elif isinstance(node, ast.Assign) and node.targets[0].id == "ClassState":
            found["ClassState"] = tuple(ast.literal_eval(node.value.slice))
    return found


def test_the_stub_declares_what_the_tests_check():
    names = declared()
    assert set(names) == {"Snapshot", "InspectRow", "ClassState"}
    assert "names" in names["Snapshot"] and "trivial" in names["InspectRow"]


def test_native_core_produces_exactly_the_contract(run_python):
    run = run_python("""
        load(); from objcprefork._native import core, listed
        core.set_table({"FXAlpha": "test", "FXMissing": "test", "FXNé": "other"})
        snap = core.snapshot()
        report(states=list(core.STATES), snapshot=sorted(snap),
               listed=[list(row) for row in listed(snap)],
               rows=[sorted(row) for row in core.inspect(("FXAlpha", "FXSub"))],
               every=len(core.inspect(None)) > 5)
    """)
    names = declared()
    assert tuple(run.facts["states"]) == names["ClassState"]
    assert run.facts["snapshot"] == names["Snapshot"]
    assert run.facts["listed"] == [["FXAlpha", "pending", "test"],
                                   ["FXMissing", "not loaded", "test"],
                                   ["FXNé", "not loaded", "other"]]
    assert run.facts["rows"] == [names["InspectRow"]] * 2
    assert run.facts["every"] is True


def test_inert_core_produces_exactly_the_contract():
    inert = InertCore("for the test")
    inert.set_table({"A": "first", "B": "first"})
    inert.set_table({"B": "second", "C": "second"}, True)
    names = declared()
    assert names["ClassState"] == inert.STATES
    snap = inert.snapshot()
    assert sorted(snap) == names["Snapshot"]
    assert listed(snap) == [("A", "not loaded", "first"), ("B", "not loaded", "first"),
                            ("C", "not loaded", "second")]
    assert snap["sources"] == [("first", 2), ("second", 1)]
    assert snap["installed"] is False and inert.set_installed(True) is False
    assert inert.is_installed() is False
    assert snap["runtime_missing"] == "for the test"
