"""The strict YAML loader: JSON-compatible values, positions, and traps refused."""

from __future__ import annotations

import pytest

from relreg.registry.yamlload import Position, YamlLoadError, parse_yaml


def test_values_resolve_as_yaml_1_2_core_schema() -> None:
    doc = parse_yaml(b"a: 'on'\nb: n\nc: '2024-01-02'\nd: 1.10\ne: true\nf: ~\ng: '007'\nh: 31\n", "f.yaml")
    assert doc.data == {"a": "on", "b": "n", "c": "2024-01-02", "d": 1.1, "e": True, "f": None,
                        "g": "007", "h": 31}
    assert doc.plain_text[("d",)] == "1.10"  # kept so that a type error can quote what was typed


def test_every_value_and_key_keeps_its_position() -> None:
    doc = parse_yaml(b"top:\n  list:\n    - x: 1\n      y: [2, 3]\n", "f.yaml")
    assert doc.position(("top", "list", 0, "y", 1)) == Position(4, 14)
    assert doc.key_position(("top", "list", 0, "y")) == Position(4, 7)
    assert doc.position(("top", "missing")) == Position(2, 3)  # nearest known ancestor


@pytest.mark.parametrize("source, rule, position", [
    (b"a: 1\nb:\n  c: 2\n  c: 3\n", "yaml-duplicate-key", Position(4, 3)),
    (b"a: &x [1]\n", "yaml-anchor", Position(1, 4)),
    (b"a: .nan\n", "yaml-number", Position(1, 4)),
    (b"a: 1\nb: 1.0e+309\n", "yaml-number", Position(2, 4)),  # read as infinity: not JSON
    (b'name: "Beta\\x1b[31m"\n', "yaml-control-character", Position(1, 7)),  # an escape for what YAML refuses raw
    (b'notes: "a\\0b"\n', "yaml-control-character", Position(1, 8)),
    (b'notes: "a\\x7fb"\n', "yaml-control-character", Position(1, 8)),  # DEL; NEL (\\x85) is text in YAML 1.2
    (b'"k\\a": 1\n', "yaml-control-character", Position(1, 1)),
    (b"a: 1\nb: x\x07y\n", "yaml-syntax", Position(2, 5)),
    (b"a: [1, -2e400]\n", "yaml-number", Position(1, 8)),
    (b"? [a]\n: 1\n", "yaml-key", Position(1, 3)),
    (b"\n\n", "yaml-empty", Position(1, 1)),
    (b"just text\n", "yaml-not-mapping", Position(1, 1)),
    (b"a: 'x'\nb:\t\n  \tc: 1\n", "yaml-tab", Position(3, 3)),
    (b'version: "1.2.0"\nnotes: "a\x00b"\n', "yaml-syntax", Position(2, 10)),  # at the character, not at 1:1
    (b"a: 1\nb: x\x07y\n", "yaml-syntax", Position(2, 5)),
])
def test_traps_are_refused_with_their_position(source: bytes, rule: str, position: Position) -> None:
    with pytest.raises(YamlLoadError) as caught:
        parse_yaml(source, "f.yaml")
    assert caught.value.rule == rule
    assert caught.value.position == position


def test_billion_laughs_is_refused_before_expansion() -> None:
    bomb = b"a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\n"
    with pytest.raises(YamlLoadError) as caught:
        parse_yaml(bomb, "f.yaml")
    assert caught.value.rule == "yaml-anchor"


def test_a_character_yaml_forbids_is_named_without_the_readers_jargon() -> None:
    with pytest.raises(YamlLoadError) as caught:
        parse_yaml(b'a: 1\nnotes: "a\x00b"\n', "f.yaml")
    assert caught.value.message == "invalid YAML: the character U+0000 is not allowed in YAML text; remove it"


def test_every_problem_reading_can_go_on_after_is_reported_in_one_run() -> None:
    """A duplicate key, ambiguous scalars and numbers JSON lacks are noted and the reading goes on, so a
    file with four of them takes one edit, not four runs; a problem of structure (a tag) stops it there."""
    source = (b"a: 1\nextra:\n  a: 1\n  a: [0x10]\n  b: yes\n  c: 2024-01-02\n  d: .nan\n  e: 1e400\n"
              b"  on: 1\nz: !tag x\nlater: yes\n")
    with pytest.raises(YamlLoadError) as caught:
        parse_yaml(source, "f.yaml")
    found = [(p.rule, p.position) for p in caught.value.problems]
    assert found == [("yaml-duplicate-key", Position(4, 3)), ("yaml-ambiguous", Position(4, 7)),
                     ("yaml-ambiguous", Position(5, 6)), ("yaml-ambiguous", Position(6, 6)),
                     ("yaml-number", Position(7, 6)), ("yaml-number", Position(8, 6)),
                     ("yaml-ambiguous", Position(9, 3)), ("yaml-tag", Position(10, 4))]
    assert caught.value is caught.value.problems[0]  # the first, as callers that show one expect


def test_tabs_and_line_breaks_written_as_escapes_are_text() -> None:
    assert parse_yaml(b'notes: "a\\tb\\nc\\r\\n"\nname: "caf\\u00e9"\n', "f.yaml").data == \
        {"notes": "a\tb\nc\r\n", "name": "caf\u00e9"}


def test_one_key_in_two_unicode_normalizations_is_a_duplicate_key() -> None:
    """'café' as é (U+00E9) and as e + U+0301 are two keys to YAML, one to anything that normalizes text."""
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    with pytest.raises(YamlLoadError) as caught:
        parse_yaml(f"extra_info:\n  {composed}: 1\n  {decomposed}: 2\n".encode(), "f.yaml")
    assert (caught.value.rule, caught.value.position) == ("yaml-duplicate-key", Position(3, 3))
    assert "another normalization" in caught.value.message
    assert parse_yaml(f"extra_info:\n  {composed}: 1\n  na\u00efve: 2\n".encode(), "f.yaml").data == \
        {"extra_info": {composed: 1, "na\u00efve": 2}}
