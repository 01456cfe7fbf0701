"""Property-based tests: whatever comes in, the result is a clean value or the
documented error (TypeError/ValueError, ConfigError for configuration), never
anything in between."""

from __future__ import annotations

import os
import tempfile

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from objcprefork._config import Config, ConfigError, load, quick_parse, read_file  # noqa: E402
from objcprefork._crashlog import read_report  # noqa: E402
from objcprefork._names import MAX_NAME_BYTES, split_names, validate_name, validate_names  # noqa: E402

anything = st.one_of(st.text(), st.binary(), st.integers(), st.none(), st.floats(),
                     st.lists(st.text(max_size=5), max_size=3))
name_like = st.one_of(st.text(), st.from_regex(r"[A-Za-z_$][A-Za-z0-9_$.]{0,300}", fullmatch=True))


def assert_valid(name: str) -> None:
    assert name and "\0" not in name and not any(c.isspace() for c in name)
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES


@settings(max_examples=500, deadline=None)
@given(name_like)
def test_validate_name(name):
    try:
        assert validate_name(name) == name
    except ValueError as exc:
        assert repr(name)[:20] in str(exc)
    else:
        assert_valid(name)


@settings(max_examples=300, deadline=None)
@given(st.one_of(anything, st.lists(anything, max_size=6), st.sets(st.text(max_size=8))))
def test_validate_names(names):
    try:
        result = validate_names(names)
    except (TypeError, ValueError):
        return
    assert isinstance(result, tuple) and len(set(result)) == len(result)
    for name in result:
        assert_valid(name)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_split_names(text):
    try:
        result = split_names(text)
    except ValueError:
        return
    for name in result:
        assert_valid(name)
        assert "," not in name


environment_keys = st.sampled_from(["OBJCPREFORK", "OBJCPREFORK_CLASSES", "OBJCPREFORK_DEFAULTS",
                                    "OBJCPREFORK_DEBUG", "XDG_CONFIG_HOME"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(environment_keys, st.text(alphabet=st.characters(exclude_characters="\0"))))
def test_environment_parsing(environ):
    environ = {**environ, "XDG_CONFIG_HOME": "/nonexistent-objcprefork"}
    try:
        load(environ)
        raised = False
    except ConfigError:
        raised = True
    problems: list[ConfigError] = []
    config = load(environ, on_error=problems.append)  # start-up: never raises
    # The API refuses exactly when start-up reports a problem and goes on.
    assert raised == bool(problems)
    for name in config.class_list():
        assert_valid(name)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=2000), st.text(max_size=2000).map(str.encode),
                 st.lists(st.sampled_from(['classes = ["A"]', "defaults = true", "frameworks = []",
                                           'classes = ["B C"]', "[table]", "x = 1", "classes = [",
                                           '"]', "# c", "defaults = 1"]),
                          max_size=6).map(lambda lines: "\n".join(lines).encode())))
def test_config_file_parsing(content):
    with tempfile.NamedTemporaryFile(suffix=".toml", delete=False) as f:
        f.write(content)
    try:
        config = Config()
        read_file(f.name, config)
    except ConfigError as exc:
        assert str(exc).startswith(f.name)
    else:
        for name in config.classes:
            assert_valid(name)
    finally:
        os.unlink(f.name)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=5000))
def test_crash_reports(data):
    findings = read_report(data)
    assert findings.format in ("ips", "crash", "text")
    for name in findings.classes:
        assert_valid(name)
        assert name.encode() in data or findings.format == "ips"  # found, not made up


def test_huge_and_hostile_inputs(tmp_path):
    with pytest.raises(ValueError, match="longer than 255 bytes"):
        validate_name("A" * 10**6)
    many = [f"C{i}" for i in range(100_000)]
    assert len(validate_names(many)) == 100_000
    assert len(split_names(",".join(many))) == 100_000
    big = tmp_path / "big.toml"
    big.write_text("classes = [" + ",".join(f'"C{i}"' for i in range(8_000)) + "]\n")
    config = Config()
    read_file(str(big), config)  # 64 KiB at most: read whole
    assert len(config.classes) == 8_000
    big.write_text("classes = [" + ",".join(f'"C{i}"' for i in range(100_000)) + "]\n")
    with pytest.raises(ConfigError, match="larger than 64 KiB"):
        read_file(str(big), Config())
    deep = tmp_path / "deep.toml"
    deep.write_text("classes = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError):
        read_file(str(deep), Config())
    assert read_report(b"{" * 100_000 + b"\n" + b"[" * 100_000).classes == ()
    for depth in (900, 990, 5000):  # parses, or nearly: then walked without recursing out
        nested = b"[" * depth + b'"+[Deep initialize] may have been in progress in another ' \
            b'thread when fork()"' + b"]" * depth
        assert read_report(b'{"bug_type": "309"}\n' + nested).classes == ("Deep",)


# The config file's quick reader answers only where it agrees with tomllib.
_piece = st.sampled_from(["classes", "defaults", "frameworks", "x-1", "a.b", " ", "\t", "=",
                          "[", "]", ",", "\n", "#", "true", "false", "1", '"', "'", "\\",
                          '"NSString"', "'NSDate'", '"a#b"', '"\\u0041"', "\r", "\x01",
                          "{", "}", '"""', "é"])
_toml_like = st.lists(_piece, max_size=40).map("".join)
_plain = st.lists(st.tuples(
    st.sampled_from(["classes", "frameworks", "defaults"]),
    st.one_of(st.booleans(), st.lists(st.from_regex(r"[A-Za-z_.#é -]{0,12}", fullmatch=True),
                                      max_size=4)))).map(
    lambda pairs: "".join(f"{k} = {str(v).lower() if isinstance(v, bool) else v!r}\n"
                          for k, v in dict(pairs).items()))


@settings(max_examples=1500, deadline=None)
@given(st.one_of(_toml_like, _plain))
def test_quick_config_reader_agrees_with_tomllib(text):
    try:
        import tomllib
    except ImportError:  # 3.10: the reader objcprefork uses there
        import tomli as tomllib

    quick = quick_parse(text)
    if quick is None:
        return  # tomllib decides, and its errors are the messages
    assert quick == tomllib.loads(text)


def test_quick_config_reader_takes_what_objcprefork_writes(tmp_path):
    from objcprefork._files import append_classes

    path = tmp_path / "c.toml"
    path.write_text("# mine\ndefaults = false\n")
    append_classes(str(path), ["NSDate", "__NSCFConstantString"])
    assert quick_parse(path.read_text()) == {
        "defaults": False, "classes": ["NSDate", "__NSCFConstantString"]}
