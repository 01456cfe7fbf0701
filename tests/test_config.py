"""Configuration sources, their precedence and their errors (in this process)."""

from __future__ import annotations

import sys
import textwrap

import pytest

import objcprefork
from objcprefork._config import ConfigError, launcher_sources, load, user_config_path
from objcprefork._frameworks import validate_framework_names

pytestmark = pytest.mark.usefixtures("clean_objcprefork")


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.mark.parametrize("text, words", [
    ('classes = ["A"\n', "line 1"),
    ('classes = ["A"]\nclases = ["B"]\n', "line 2: clases: unknown key"),
    ('defaults = "no"\n', "line 1: defaults: must be true or false, not 'no'"),
    ('classes = "NSString"\n', "line 1: classes: must be a list of strings, not 'NSString'"),
    ('classes = [1]\n', "classes: must be a list of strings; 1 is not a string"),
    ('classes = [\n  "Good",\n  "Bad Name",\n]\n', "line 3: classes: invalid Objective-C class "
                                                 "name 'Bad Name': it contains whitespace"),
    ('frameworks = ["/usr/lib/libobjc.so.4"]\n', "line 1: frameworks: invalid framework "
                                                "'/usr/lib/libobjc.so.4': a path is accepted "
                                                "only through the Python API"),
    ('frameworks = ["Foo;rm"]\n', "invalid framework name 'Foo;rm'"),
])
def test_file_errors_name_the_file_and_line(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load({"OBJCPREFORK_CONFIG": str(path)})
    assert str(caught.value).startswith(str(path))
    assert words in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_launcher_label_is_shown_escaped_and_never_fails_the_table():
    # Labels are only shown; a NUL would make the core refuse the whole list.
    labels = launcher_sources({"OBJCPREFORK_LAUNCHER": '{"a\\u0000b\\u001b[2J": ["FXA"]}'})
    assert labels == {"FXA": "a\\x00b\\x1b[2J"}
    objcprefork._install(labels)
    assert objcprefork.status().classes[0].source == "a\\x00b\\x1b[2J"


def test_binary_garbage_file(tmp_path):
    path = tmp_path / "garbage.toml"
    path.write_bytes(b"\xff\xfe\x00classes")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load({"OBJCPREFORK_CONFIG": str(path)})


def test_precedence(tmp_path):
    path = write(tmp_path, """
        classes = ["FromFile", "Both"]
        defaults = false
        frameworks = ["libgnustep-base.so.1.28"]
    """)
    env = {"OBJCPREFORK_CONFIG": str(path), "OBJCPREFORK_CLASSES": "Both, FromEnv"}
    config = load(env)
    assert config.classes == ("FromFile", "Both", "FromEnv")
    assert config.defaults is False and config.frameworks == ("libgnustep-base.so.1.28",)
    assert config.class_list(("FromApi",)) == ("FromFile", "Both", "FromEnv", "FromApi")
    config = load({**env, "OBJCPREFORK_DEFAULTS": "1"})
    assert config.class_list()[:len(objcprefork.DEFAULT_CLASSES)] == objcprefork.DEFAULT_CLASSES


def test_lenient_loading_skips_only_the_bad_source(tmp_path):
    path = write(tmp_path, 'classes = ["FromFile"]\n')
    seen = []
    config = load({"OBJCPREFORK_CONFIG": str(path), "OBJCPREFORK_CLASSES": "A B-C",
                   "OBJCPREFORK_DEFAULTS": "0"}, on_error=seen.append)
    assert config.classes == ("FromFile",) and config.defaults is False
    assert [str(e) for e in seen] == [
        "OBJCPREFORK_CLASSES: invalid Objective-C class name 'B-C': it holds other characters: "
        "a class name is a letter, _ or $, then letters, digits, _ and $ (with . between the "
        "parts of Swift's Module.Class)"]


@pytest.mark.parametrize("value, limit", [("0", False), ("no", False), ("false", False),
                                          ("1", None), ("yes", None)])
def test_child_cores_takes_the_switch_words(value, limit):
    assert load({"OBJCPREFORK_CHILD_CORES": value}).child_core_dumps is limit


def test_user_config_location(tmp_path):
    assert user_config_path({"XDG_CONFIG_HOME": "/x"}) == "/x/objcprefork/config.toml"
    assert user_config_path({}).endswith("/.config/objcprefork/config.toml")
    # A missing default file is fine; a missing named one is an error.
    assert load({"XDG_CONFIG_HOME": str(tmp_path)}).path is None
    with pytest.raises(ConfigError, match="cannot read it"):
        load({"OBJCPREFORK_CONFIG": str(tmp_path / "missing.toml")})


def test_install_from_config_raises_and_changes_nothing(tmp_path):
    objcprefork.set_classes(["Kept"])
    with pytest.raises(ValueError, match="OBJCPREFORK_DEFAULTS='sometimes'"):
        objcprefork.install_from_config({"OBJCPREFORK_DEFAULTS": "sometimes"})
    for bad in [{"OBJCPREFORK_CHILD_CORES": "false-ish"}, 5]:
        with pytest.raises((TypeError, ValueError), match=r"false-ish|not 5"):
            objcprefork.install_from_config(bad)  # type: ignore[arg-type]
    assert objcprefork.classes() == ("Kept",) and not objcprefork.is_installed()
    st = objcprefork.install_from_config({"OBJCPREFORK_CLASSES": "Extra",
                                          "OBJCPREFORK_DEFAULTS": "no"})
    # Added to what was there, never replacing it; each class says where it came from.
    assert [(c.name, c.source) for c in st.classes] == [("Kept", "set_classes()"),
                                                         ("Extra", "OBJCPREFORK_CLASSES")]


def test_install_from_config_adds_the_api_arguments_last(tmp_path):
    path = write(tmp_path, 'classes = ["FromFile"]\ndefaults = true\n')
    env = {"OBJCPREFORK_CONFIG": str(path), "OBJCPREFORK_CLASSES": "FromEnv"}
    st = objcprefork.install_from_config(env, classes=["FromApi", "FromEnv"], defaults=False)
    assert [(c.name, c.source) for c in st.classes] == [
        ("FromFile", f"config file {path}"), ("FromEnv", "OBJCPREFORK_CLASSES"),
        ("FromApi", "install_from_config()")]
    with pytest.raises(TypeError, match="defaults must be True, False or None"):
        objcprefork.install_from_config(env, defaults="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'Bad Name'"):
        objcprefork.install_from_config(env, classes=["Bad Name"])
    assert objcprefork.classes() == ("FromFile", "FromEnv", "FromApi")
    objcprefork.uninstall()


def test_framework_names():
    name = "Foundation" if sys.platform == "darwin" else "libgnustep-base.so.1.28"
    assert validate_framework_names([name, "libobjc.so.4", name]) == (name, "libobjc.so.4")
    assert validate_framework_names(["/a/b.dylib"], allow_paths=True) == ("/a/b.dylib",)
    for bad in ["", ".hidden", "a b", "../x"]:
        with pytest.raises(ValueError):
            validate_framework_names([bad])
    with pytest.raises(TypeError, match="wrap a single name"):
        validate_framework_names("Foundation")


def test_install_with_a_framework_that_cannot_load_changes_nothing():
    objcprefork.set_classes(["Kept"])
    with pytest.raises(ValueError, match=r"cannot load framework 'libnothing-objcprefork\.so\.9'"):
        objcprefork.install(["New"], frameworks=["libnothing-objcprefork.so.9"])
    assert objcprefork.classes() == ("Kept",) and not objcprefork.is_installed()


@pytest.mark.skipif(sys.platform == "darwin", reason="short library names are the Linux rule")
def test_a_framework_name_means_the_same_everywhere(tmp_path, gnustep):
    from objcprefork._cli import main
    from objcprefork._frameworks import candidates

    path = write(tmp_path, 'frameworks = ["gnustep-base"]\n')
    assert load({"OBJCPREFORK_CONFIG": str(path)}).frameworks == ("gnustep-base",)
    assert load({"OBJCPREFORK_FRAMEWORKS": "gnustep-base"}).frameworks == ("gnustep-base",)
    paths, tried = candidates("gnustep-base")
    assert tried == "libgnustep-base.so*" and paths, paths
    assert all("/libgnustep-base.so" in p for p in paths)
    objcprefork.install([], defaults=False, frameworks=["gnustep-base"])
    # Loaded, then scanned (whatever this process's core finds): not refused as usage.
    assert main(["scan", "--framework", "gnustep-base", "--json"]) in (0, 1)


def test_the_documented_config_file_is_accepted(tmp_path):
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    config = load({"OBJCPREFORK_CONFIG": str(write(tmp_path, example))})
    assert config.classes and config.frameworks


def test_command_line_messages_say_what_is_wrong(tmp_path, capsys):
    from objcprefork._cli import main

    assert main(["run", "--classes", "1Bad", "--", "true"]) == 2
    assert "'1Bad': it starts with a digit: a class name is a letter" in capsys.readouterr().err
    target = tmp_path / "no-such-folder" / "x.toml"
    assert main(["scan", "--write", str(target)]) == 3
    assert f"cannot write {target}: no folder {target.parent}" in capsys.readouterr().err
    assert not target.parent.exists()
    crash = write(tmp_path, "objc[7]: +[FXTypo initialize] may have been in progress in "
                            "another thread when fork() was called.\n")
    assert main(["explain", str(crash), "--append", "--config", str(tmp_path / "c.toml")]) == 0
    out = capsys.readouterr()
    assert "FXTypo" in out.out and "--append" not in out.out
    assert "added to" in out.err


def test_exit_status_3_is_a_file_that_cannot_be_read_for_every_subcommand(tmp_path, capsys):
    from objcprefork._cli import main

    missing = str(tmp_path / "missing.toml")
    assert main(["run", "--config", missing, "--", "true"]) == 3
    assert main(["explain", missing]) == 3
    bad = write(tmp_path, "defaults = maybe\n")  # readable, refused: usage or configuration
    assert main(["run", "--config", str(bad), "--", "true"]) == 2
    log = tmp_path / "log"
    log.write_text("")
    assert main(["explain", str(log), "--config", str(bad)]) == 2
    assert capsys.readouterr().err.count("\n") == 4


def test_every_subcommand_has_a_description_and_its_own_usage(capsys):
    import argparse

    from objcprefork._cli import main, parser

    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        assert command.description, name
        assert all(action.help for action in command._actions), name
    with pytest.raises(SystemExit) as caught:
        main(["doctor", "--jsn"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: objcprefork doctor") and "unrecognized arguments: --jsn" in err


def test_scan_says_no_loaded_image_matches(run_python):
    run = run_python("""
        load()
        from objcprefork._cli import main
        raise SystemExit(main(["scan", "--image", "NOPE"]))
    """, check=False)
    assert run.returncode == 1
    assert run.stdout.startswith("no loaded image matches 'NOPE' (") and "runtime" not in run.stdout
