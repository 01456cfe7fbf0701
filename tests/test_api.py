"""The Python API in this (runtime-free) process: validation, state, reports."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import WITHHELD

import objcprefork
from objcprefork import _native
from objcprefork._defaults import rows
from objcprefork._names import split_names, validate_name

no_runtime = pytest.mark.skipif(sys.platform == "darwin",
                                reason="Apple's libobjc is loaded in every macOS process")
# Run by test_suites.py against each core; NATIVE says which this run has.
NATIVE = os.environ.get("OBJCPREFORK_TEST_CORE", "native") == "native"


pytestmark = pytest.mark.usefixtures("clean_objcprefork")


def test_the_core_under_test_is_the_one_asked_for():
    inert = isinstance(_native.core, _native.InertCore)
    assert inert is not NATIVE, getattr(_native.core, "reason", "")


@pytest.mark.parametrize("good", [
    "NSString", "__NSCFConstantString", "_TtC7MyApp4View", "MyApp.View", "Café", "A$b",
    "x" * 255,
])
def test_valid_names(good):
    assert validate_name(good) == good


@pytest.mark.parametrize("bad, error, words", [
    ("", ValueError, "empty"),
    ("NS String", ValueError, "whitespace"),
    ("NSString\n", ValueError, "whitespace"),
    ("NS\0String", ValueError, "NUL"),
    ("é" * 128, ValueError, "255 bytes"),
    ("x" * 256, ValueError, "255 bytes"),
    ("1Class", ValueError, "it starts with a digit: a class name is a letter, _ or $"),
    ("MyApp.2View", ValueError, "it starts with a digit"),
    ("NS-String", ValueError, "other characters"),
    ("Module.", ValueError, "other characters"),
    ("\ud800", ValueError, "other characters"),
    (b"NSString", TypeError, "bytes"),
    (None, TypeError, "NoneType"),
    (42, TypeError, "int"),
])
def test_invalid_names_are_refused_and_named(bad, error, words):
    with pytest.raises(error) as caught:
        objcprefork.set_classes([bad])
    assert words in str(caught.value)
    assert repr(bad)[:20] in str(caught.value)


@pytest.mark.parametrize("call", [
    lambda names: objcprefork.install(names),
    objcprefork.add_classes,
    objcprefork.set_classes,
])
def test_errors_leave_the_previous_state(call):
    objcprefork.install(["FXKeep"], defaults=False)
    before = objcprefork.status()
    for bad in ["NSString", b"NSString", 7, ["Good", "Bad Name"], ["Good", None]]:
        with pytest.raises((TypeError, ValueError)):
            call(bad)
        assert objcprefork.status() == before


def test_defaults_must_be_a_bool():
    with pytest.raises(TypeError, match="defaults must be True or False, not 'no'"):
        objcprefork.install(defaults="no")  # type: ignore[arg-type]
    assert not objcprefork.is_installed()


def test_a_bare_str_is_not_a_list_of_names():
    with pytest.raises(TypeError, match=r"wrap a single name in a list: \['NSString'\]"):
        objcprefork.add_classes("NSString")


def test_install_builds_the_list_from_defaults_and_classes():
    st = objcprefork.install(["FXOne", "NSString", "FXOne"])
    assert objcprefork.classes() == (*objcprefork.DEFAULT_CLASSES, "FXOne")
    assert st.installed is objcprefork.is_installed() is NATIVE
    assert {c.name: c.source for c in st.classes}["FXOne"] == "install()"
    assert {c.source for c in st.classes if c.name != "FXOne"} == {"defaults"}
    # A later install() adds; it never drops what is there. Only set_classes() replaces.
    assert objcprefork.install(defaults=False).classes == st.classes
    objcprefork.set_classes([])
    assert objcprefork.install(iter(["FXTwo"]), defaults=False).classes[0].name == "FXTwo"


def test_a_str_subclass_is_listed_by_its_characters():
    class Odd(str):  # equal to nothing, hashed by identity
        __hash__ = object.__hash__

        def __eq__(self, other: object) -> bool:
            return self is other

    objcprefork.set_classes([Odd("A"), "A", Odd("B")])
    objcprefork.add_classes([Odd("B")])
    assert objcprefork.classes() == ("A", "B")
    assert {type(name) for name in objcprefork.classes()} == {str}


def test_the_core_takes_a_plain_dict_only():
    from collections import OrderedDict

    from objcprefork._native import core

    objcprefork.set_classes(["A"])
    for bad in [OrderedDict(B="test"), [("B", "test")]]:
        with pytest.raises(TypeError, match="takes a dict"):
            core.set_table(bad)  # type: ignore[arg-type]
    assert objcprefork.classes() == ("A",)


def test_add_and_set_classes():
    objcprefork.set_classes(("A", "B"))
    objcprefork.add_classes(["B", "C"])
    assert objcprefork.classes() == ("A", "B", "C")
    objcprefork.set_classes(x for x in ["D"])
    assert objcprefork.classes() == ("D",)
    assert not objcprefork.is_installed()


def test_uninstall_reports_whether_anything_changed():
    assert objcprefork.uninstall() is False
    objcprefork.install()
    assert objcprefork.uninstall() is NATIVE  # the inert core is never installed
    assert objcprefork.uninstall() is False


@no_runtime
def test_status_without_runtime_is_honest_and_readable():
    st = objcprefork.install(["FXOne"], defaults=False)
    why = ("no Objective-C runtime is loaded in this process" if NATIVE
           else f"the native core is not available ({WITHHELD})")
    assert st.runtime is None and st.runtime_missing == why
    assert st.classes == (objcprefork.ClassStatus("FXOne", "not loaded", "install()"),)
    text = str(st)
    assert f"objcprefork: {'installed' if NATIVE else 'not installed'}" in text
    assert f"runtime: none ({why})" in text
    assert "not loaded (1): FXOne" in text
    assert st.names("not loaded") == ("FXOne",)
    with pytest.raises(ValueError, match="unknown state 'loaded'"):
        st.names("loaded")  # type: ignore[arg-type]
    with pytest.raises(AttributeError, match="read-only"):
        st.installed = False  # type: ignore[misc]


def test_default_classes_come_from_the_data_file():
    data = rows()
    assert tuple(r["class"] for r in data if r["default"] == "yes") == objcprefork.DEFAULT_CLASSES
    assert {"__NSCFConstantString", "NSPlaceholderMutableString",
            "__NSPlaceholderSet"} <= set(objcprefork.DEFAULT_CLASSES)
    assert "NSMethodSignature" not in objcprefork.DEFAULT_CLASSES
    for row in data:
        validate_name(row["class"])
        assert row["default"] in ("yes", "no") and row["framework"] and row["evidence"], row
        # A class no crash message names says why it is there, or why it is not.
        assert int(row["reports"]) >= 1 or row["why"], row
        assert row["default"] == "yes" or row["why"], row


def test_split_names():
    assert split_names(" A, B\tC,,D \n") == ("A", "B", "C", "D")
    assert split_names("") == ()
    with pytest.raises(ValueError, match="'A-B'"):
        split_names("Good, A-B")


def test_inert_core_when_the_extension_is_missing(tmp_path):
    # Shadow the extension with a module that fails to import, as on a machine
    # where it could not be built: the API still works and says why.
    code = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "objcprefork._objcprefork":
            raise ImportError("blocked for the test")
sys.meta_path.insert(0, Block())
import objcprefork
st = objcprefork.install(["NSString"], defaults=False)
assert not st.installed and not objcprefork.is_installed() and st.runtime is None, st
assert "native core is not available" in st.runtime_missing, st
assert objcprefork.classes() == ("NSString",)
assert objcprefork.uninstall() is False
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path.parent)
    assert out.stdout.strip() == "ok", out.stderr


def test_close_names_finds_typos_only():
    from objcprefork._names import MAX_GUESSED, close_names

    known = ["NSDate", "NSData", "NSURL", "NSString", "NSMutableString", "FXAlpha"]
    assert close_names(["NSDaet", "NSUrl", "NSStrnig", "Unrelated", "NSDate"], known) == {
        "NSDaet": "NSDate", "NSUrl": "NSURL", "NSStrnig": "NSString"}
    assert close_names([], known) == {}
    typos = [f"FXAlph{letter}" for letter in "bcdefghijklmnopqrstuvwxyz"]
    assert len(close_names(typos, known)) == MAX_GUESSED < len(typos)
