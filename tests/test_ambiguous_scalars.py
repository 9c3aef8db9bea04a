"""Plain scalars that YAML 1.1 and YAML 1.2/JSON read differently are refused, everywhere, with the fix.

The property: for any plain scalar, either relreg refuses it, or PyYAML's
YAML 1.1 reading (`yaml.safe_load`, what many CI scripts use) and relreg's
reading agree in type and value. So no accepted file means one thing to
relreg and another to a script reading the same file.
"""

from __future__ import annotations

import yaml
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from relreg.registry.yamlload import Position, YamlLoadError, parse_yaml

# Characters that make up YAML 1.1 and 1.2 numbers, booleans, nulls, dates and merge keys, and some text.
_ALPHABET = "0123456789+-._:eExXoObBaAfFnNyYsStTlLrRuU~<=: "
_WORDS = ["yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "y", "n", "Y", "N",
          "true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL", "~", "<<", "=",
          ".inf", "-.Inf", ".NaN", "0", "-0", "+0", "00", "0.", ".0", "1e5", "1E+5", "1.0e+5", "1.0e5", "0o17",
          "0x1F", "0X1F", "0b101", "1_000", "1:30", "190:20:30", "2024-01-02", "2024-01-02T10:20:30Z",
          "2001-12-14 21:59:43.10 -5", "1.10", "010", "08", "0100", "02142", "+.5", "-.5", "1__0"]


def _plain_scalar_in(document: str) -> str | None:
    """The plain scalar PyYAML sees as the value of `v` (or of `v`'s only list item or key `k`), if that is one."""
    try:
        node = yaml.compose(document, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
        return None
    value = node.value[0][1]
    if isinstance(value, yaml.MappingNode):
        if len(value.value) != 1 or value.value[0][0].value != "k":
            return None
        value = value.value[0][1]
    if isinstance(value, yaml.SequenceNode):
        if len(value.value) != 1:
            return None
        value = value.value[0]
    if not isinstance(value, yaml.ScalarNode) or value.style is not None:
        return None
    return value.value


def _same(left: object, right: object) -> bool:
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right))
    return type(left) is type(right) and left == right


_SCALARS = st.one_of(st.sampled_from(_WORDS), st.text(_ALPHABET, min_size=1, max_size=12),
                     st.from_regex(r"[-+]?[0-9_]{1,6}(\.[0-9_]{0,4})?([eE][-+]?[0-9]{1,3})?", fullmatch=True),
                     st.from_regex(r"[-+]?0[xXoObB][0-9a-fA-F_]{1,6}", fullmatch=True),
                     st.from_regex(r"[0-9]{1,3}(:[0-9]{1,2}){1,3}(\.[0-9]{0,3})?", fullmatch=True))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(_SCALARS, st.sampled_from(["v: {}\n", "v: [{}]\n", "v: {{k: {}}}\n"]))
@example("010", "v: {}\n")
@example("0x10", "v: [{}]\n")
@example("yes", "v: {{k: {}}}\n")
def test_accepted_plain_scalars_read_alike_in_yaml_1_1_and_relreg(text: str, template: str) -> None:
    document = template.format(text)
    shown = _plain_scalar_in(document)
    assume(shown is not None and shown == text.strip())
    try:
        relreg = parse_yaml(document.encode(), "f.yaml").data
    except YamlLoadError as error:
        assert error.rule in ("yaml-ambiguous", "yaml-number"), (text, error.rule, error.message)
        assert error.position.line == 1
        return
    pyyaml = yaml.safe_load(document)  # must not fail: relreg accepted it
    assert _same(relreg, pyyaml), (text, relreg, pyyaml)


@pytest.mark.parametrize("source, column, fix", [
    (b"rollout_percent: 010\n", 18, 'quote it ("010"), or write 10 without leading zeros'),
    (b"size: 0100\n", 7, 'quote it ("0100"), or write 100 without leading zeros'),
    (b"extra_info: {site_zip: 02142}\n", 24, 'quote it ("02142"), or write 2142 without leading zeros'),
    (b"a: 0x10\n", 4, 'quote it ("0x10"), or write the decimal number 16'),
    (b"a: 0o17\n", 4, 'quote it ("0o17"), or write the decimal number 15'),
    (b"a: 0b101\n", 4, 'quote it ("0b101"), or write the decimal number 5'),
    (b"a: 1_000\n", 4, 'quote it ("1_000"), or write 1000 without underscores'),
    (b"a: 1:30\n", 4, 'quote it ("1:30")'),
    (b"a: [1, 09]\n", 8, 'quote it ("09"), or write 9 without leading zeros'),
    (b"a: off\n", 4, 'write true or false for a boolean, or quote it ("off") for the text'),
    (b"a: 2024-01-02\n", 4, 'quote it ("2024-01-02")'),
    (b"a: 1e5\n", 4, 'quote it ("1e5"), or write it as 100000.0'),
    (b"a: <<\n", 4, 'quote it ("<<")'),
    (b"a:\n  - x\n  - On\n", 5, 'quote it ("On") for the text'),
    (b"extra:\n  yes: 1\n", 3, "quote it"),
])
def test_ambiguous_scalars_are_refused_with_the_fix(source: bytes, column: int, fix: str) -> None:
    with pytest.raises(YamlLoadError) as caught:
        parse_yaml(source, "f.yaml")
    assert caught.value.rule == "yaml-ambiguous"
    assert caught.value.position == Position(source.count(b"\n"), column)
    assert caught.value.message.endswith(fix), caught.value.message
    assert "YAML 1.1" in caught.value.message or "JSON does not have" in caught.value.message


@pytest.mark.parametrize("source, value", [
    (b"a: 10\n", 10), (b"a: -3\n", -3), (b"a: +5\n", 5), (b"a: 0\n", 0), (b"a: 1.5\n", 1.5), (b"a: .5\n", 0.5),
    (b"a: 1.0e+5\n", 100000.0), (b"a: '010'\n", "010"), (b'a: "0x10"\n', "0x10"), (b"a: n\n", "n"),
    (b"a: true\n", True), (b"a: ~\n", None), (b"a: 1.2.3\n", "1.2.3"), (b"a: release 1:30\n", "release 1:30"),
])
def test_unambiguous_scalars_load(source: bytes, value: object) -> None:
    assert _same(parse_yaml(source, "f.yaml").data["a"], value)
    assert _same(yaml.safe_load(source)["a"], value)
