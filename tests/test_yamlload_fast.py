"""The fast reader (`fast_load`) against the careful one (`parse_yaml`): a differential test.

The property, on valid and invalid files alike: when the fast reader gives
data, the careful reader accepts the file and gives equal data, with the same
types (True is not 1) and the same key order; whenever the careful reader
refuses a file, the fast reader gives None. And a whole file check
(`quick_check_file`) gives the same data and the same diagnostics as the
careful `check_file`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relreg.registry.validate import _native_stderr_silenced, check_file, quick_check_file
from relreg.registry.yamlload import YamlLoadError, fast_load, parse_yaml

FIXTURES = Path(__file__).parent / "fixtures"


def _typed(value: Any) -> Any:
    """`value` with every scalar tagged by its type and every mapping's key order kept, to compare strictly."""
    if isinstance(value, dict):
        return ("dict", [(key, _typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(item) for item in value])
    return (type(value).__name__, value)


def _careful(raw: bytes) -> Any:
    try:
        return parse_yaml(raw, "x.yaml").data
    except YamlLoadError:
        return None


def _assert_agree(raw: bytes) -> None:
    with _native_stderr_silenced():
        fast = fast_load(raw)
    careful = _careful(raw)
    if fast is not None:
        assert careful is not None, f"fast reader accepted what the careful one refuses: {raw!r}"
        assert _typed(fast) == _typed(careful), raw


RELEASE = b"""version: "1.2.3"
revision: 5ea664819c9a13b883dffe1d0a5412a5bd771231
notes: |
  ## Release 1.2.3

  - Fixed issue #1: the radio no longer drops packets.
extra_info:
  ci_system: bench
  build_time_s: 300
artifacts:
  - hardware_version: evt1
    build_id: 6fa4cee153931b988f66b85e0c5f07102e459a5d
    url: 1.2.3/evt1.bin
    size: 400000
    sha256: 73df717ace6f76096c0235ab1ff81cae25453495d431b8f9b4e487550ee28533
"""

# Each line is a whole file; they cover what the careful reader refuses or reads in its own way.
TABLE = [
    "a: 1", "a: -0", "a: +1", "a: 010", "a: 0x10", "a: 0o17", "a: 0b1", "a: 1_000", "a: 1:30", "a: 1e5", "a: 1.10",
    "a: 1.", "a: .5", "a: .inf", "a: -.inf", "a: .nan", "a: ~", "a: null", "a: Null", "a: NULL", "a:", "a: true",
    "a: True", "a: TRUE", "a: yes", "a: Yes", "a: no", "a: on", "a: off", "a: y", "a: n", "a: 2024-01-02",
    "a: 2024-01-02T10:20:30Z", "a: '10'", 'a: "10"', "a: 'true'", 'a: "yes"', "a: '0x10'", 'a: "~"', "a: '*x'",
    "a: &x 1\nb: *x", "a: *x", "a: !!str 1", "a: !x 1", "! a: 1", "a: 1\na: 2", "a: 1\n'a': 2", "1: x", "'1': x",
    "true: x", "null: x", "~: x", "<<: x", "=: x", "'<<': x", "? a\n: 1", "? [a]\n: 1", "[a]: 1", "{a: 1}: 2",
    "a: 1\n---\nb: 2", "---\na: 1", "a: 1\n...\n", "%YAML 1.2\n---\na: 1", "", "# only a comment\n", "[1, 2]",
    "just text", "a: [1, '2', yes]", "a: {b: 1, b: 2}", "a: [[1, 0x1]]", "a: [x, [y, '010', 010]]",
    "a: |\n  x\n", "a: |-\n  x\n", "a: |+\n  x\n\n", "a: >\n  x\n  y\n", "a: >-\n  x\n\n  y\n", "a: |2\n   x\n",
    "a: b\n  c", "a: 'x\n  y'", 'a: "x\n  y"', 'a: "x\\ty"', 'a: "\\u00e9"', "a: 'it''s'", "a:\tb", "a: b\r\nc: d",
    "\ufeffa: 1", "a: b # c", "a: b#c", "a: 'b' # c", "a: -", "a: - b", "a:\n- b\n- c", "a:\n  - b: 1\n    c: 2",
    "a: \u00e9t\u00e9", "a: \u2028", "a: x\u0085y", "a: \x07", "a: \x7f", "a: caf\u00e9\nb: \U0001f600",
    "a: 9999999999999999999999", "a: -1", "a: 00", "a: 0", "a: 08", "a: 1.0.0", "a: 123abc", "a: 12:30:00",
    "a: 1 2", "a: x: y", "a: 'unterminated", "a: [1, 2", "a: }", "  a: 1\n b: 2", "a:\n  b: 1\n c: 2",
    "a: @x", "a: `x", "a: %x", "a: |x", "a: >x", "a: \"x\" y", "a: 'x' 'y'", "a: b\n# c\nd: e",
    "a: ''", 'a: ""', "a: ' '", "a: [ ]", "a: { }", "{}", "{a: 1}", "a: {b: [c, {d: e}]}",
    "a: [,]", "a: [a,,b]", "a: [a, ]", "a: {,}", "a: {b: ]}", "a: [b, ]c]", "a:\n- ]", "a: x\n  ]",
    "a:\n | x", "a:\n  |\n  x", "a: |\n  x", "a: >\n  x", "a: |+\n  x", "a: |-\n  x", "a: |\n  x\n\n", "a:\n  > - x", "a: b\n| x", "a:\n  - |\n    x\n  - >- y",
    "{a:!x}", '{"a":!x}', '{"a":&x 1}', "a: [!x]", "a: [&x 1]", "a: {b: !x}", "a:!x", "- !x", "a: b !x",
    # orjson reads these (the fast path counts keys against the JSON's `":` and looks for floats)
    "a: [{b: 1, b: 2}]", "a:\n  - b: 1\n    b: 2", "a: {b: {c: 1, c: 1}}", "a: ':x'\nb: 1\nb: 2",
    "a: ':x'\nb: 1", "a: 'x\":y'\nb: 1\nb: 2", "a: [1, 2.5]", "a: {b: [1e3]}", "a: [[0.0]]",
    "a: 18446744073709551615", "a: 18446744073709551616", "a: -9223372036854775809", "a: [1, -0]",
    "a: '2024-01-02'\nb: -0", 'a: "\\ud800"', "a: 'x'\na: 'x'", "'a:': 1\nb: 2",
]


@pytest.mark.parametrize("text", TABLE)
def test_table_of_tricky_files(text: str) -> None:
    _assert_agree(text.encode("utf-8", errors="surrogatepass"))


def test_a_plain_release_takes_the_fast_path() -> None:
    """The fast path must actually be taken for ordinary files, or the speed is lost."""
    assert fast_load(RELEASE) == parse_yaml(RELEASE, "x.yaml").data
    for path in sorted(FIXTURES.rglob("*.yaml")):
        _assert_agree(path.read_bytes())


# Tokens that mean something to YAML, numbers and words of both YAML versions, text and odd characters.
_TOKENS = ["yes", "No", "on", "OFF", "true", "False", "null", "~", "<<", "=", ".inf", ".NaN", "0", "-0", "+1",
           "010", "08", "0x1F", "0o7", "0b1", "1_0", "1:30", "1e5", "1.0e+5", "1.10", "1.", ".5", "2024-01-02",
           "1.2.3", "abc", "x y", "é", "\U0001f600", "#", " #", ":", ": ", "-", "- ", "?", "? ", "&a", "*a", "!t",
           "!!str", "'", '"', "\\", "\\n", "\\t", "\\x41", "|", ">", "[", "]", "{", "}", ",", "%", "@", "`",
           "\t", "\r", "\n", "\n  ", "\n- ", "\n---", "\n...", "\u2028", "\x85", "\x00", "\ufeff", "  "]
_text = st.lists(st.sampled_from(_TOKENS), max_size=6).map("".join)


@st.composite
def _scalar(draw: st.DrawFn) -> str:
    text = draw(_text)
    style = draw(st.sampled_from(["plain", "single", "double", "literal", "folded", "flow"]))
    if style == "single":
        return "'" + text.replace("'", "''") + "'"
    if style == "double":
        return '"' + text.replace('"', '\\"') + '"'
    if style in ("literal", "folded"):
        chomp = draw(st.sampled_from(["", "-", "+"]))
        lines = text.split("\n") or [""]
        return ("|" if style == "literal" else ">") + chomp + "\n" + "".join(f"    {line}\n" for line in lines)
    if style == "flow":
        return "[" + ", ".join(draw(st.lists(_text, max_size=3))) + "]"
    return text


@st.composite
def _document(draw: st.DrawFn) -> str:
    keys = draw(st.lists(st.one_of(st.sampled_from(["version", "notes", "url", "size", "a", "a"]), _text),
                         min_size=1, max_size=5))
    lines = []
    for key in keys:
        value = draw(_scalar())
        if draw(st.booleans()):
            nested = draw(_scalar())
            lines.append(f"{key}:\n  - k: {nested}\n    {key}: {value}")
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n"]))


@given(_document())
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_files_read_alike(text: str) -> None:
    _assert_agree(text.encode("utf-8", errors="surrogatepass"))


@given(st.integers(min_value=0, max_value=len(RELEASE)), st.sampled_from(_TOKENS + ["a", "1", " ", "\n  x: 1"]))
@settings(max_examples=600, deadline=None)
def test_a_release_with_something_inserted_reads_alike(at: int, token: str) -> None:
    _assert_agree(RELEASE[:at] + token.encode("utf-8", errors="surrogatepass") + RELEASE[at:])


@given(st.integers(min_value=0, max_value=len(RELEASE)), st.sampled_from(_TOKENS + ["a", "1", " ", "\n  x: 1"]))
@settings(max_examples=300, deadline=None)
def test_quick_check_gives_the_careful_check(at: int, token: str) -> None:
    """Data and diagnostics (file, line, column, wording, rule) of the whole file check agree."""
    raw = RELEASE[:at] + token.encode("utf-8", errors="surrogatepass") + RELEASE[at:]
    with _native_stderr_silenced():
        quick = quick_check_file("release", "releases/1.2.3.yaml", raw)
    careful = check_file("release", "releases/1.2.3.yaml", raw)
    assert _typed(quick[0]) == _typed(careful[0])
    assert quick[1] == careful[1]


@given(st.one_of(_text, st.text(max_size=12), st.sampled_from(_TOKENS)))
@settings(max_examples=2000, deadline=None)
def test_every_string_that_needs_a_second_look_is_found_in_the_json(text: str) -> None:
    """The scan of rapidyaml's JSON finds every string the careful reader might read otherwise.

    (Text starting with , ] } : ? % ! or & is refused earlier, in the YAML source, where it starts a
    plain scalar: an indicator, a tag, an anchor. A plain scalar never ends with a line break.)
    """
    from relreg.registry.yamlload import _FAST_JSON_SUSPECT, _plain_reads_otherwise

    if _plain_reads_otherwise(text) and text[:1] not in ",]}:?%!&" and not text.endswith("\n"):
        assert _FAST_JSON_SUSPECT.search(json.dumps(text, ensure_ascii=False)), text


def _plain_start_refused_by_pairs(text: str) -> bool:
    """The check as it was written first: a search for each (character before, indicator) pair."""
    from relreg.registry.yamlload import _FAST_PLAIN_START_REFUSED

    if text[:1] in _FAST_PLAIN_START_REFUSED:
        return True
    if not any(indicator in text and any(before + indicator in text for before in " \n[{,")
               for indicator in _FAST_PLAIN_START_REFUSED):
        return False
    for at, character in enumerate(text):
        if character in _FAST_PLAIN_START_REFUSED:
            end = at
            while end and text[end - 1] == " ":
                end -= 1
            if end == 0 or text[end - 1] in ":-\n[{,":
                return True
    return False


@given(st.one_of(_text, _document(), st.text(alphabet=",]}:?%@` \n[{-ax", max_size=16)))
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_indicator_check_agrees_with_the_pair_search(text: str) -> None:
    from relreg.registry.yamlload import _fast_plain_start_refused

    assert _fast_plain_start_refused(text) == _plain_start_refused_by_pairs(text)


@pytest.mark.parametrize("text", [RELEASE.decode(), "a: 1", "{}", "a:\n" + "- x\n" * 5000,
                                  "".join(" " * depth + "b:\n" for depth in range(40)) + " " * 40 + "c: 1\n"])
@pytest.mark.parametrize("size", [None, 1, 100])
def test_json_written_into_a_buffer_is_rapidyamls_json(text: str, size: int | None) -> None:
    """A buffer too small for the JSON (a guess of 1 or 100 bytes) is written again at the size rapidyaml asks for."""
    import ryml

    from relreg.registry.yamlload import _emitted_json

    tree = ryml.parse_in_arena(text.encode())
    assert _emitted_json(tree, size) == ryml.emit_json_malloc(tree, tree.root_id())


def test_yaml_1_1_patterns_are_pyyamls() -> None:
    """The fast path judges plain scalars with PyYAML's implicit resolvers, copied so that it need not load
    PyYAML: the copy is PyYAML's own patterns and first characters."""
    import yaml

    from relreg.registry.yamlload import _YAML11_FIRST, _YAML11_PATTERNS

    resolvers = yaml.SafeLoader.yaml_implicit_resolvers
    assert sorted(_YAML11_PATTERNS) == sorted({regexp.pattern for items in resolvers.values() for _, regexp in items})
    assert _YAML11_FIRST == frozenset(key for key in resolvers if key)


def test_a_plainly_fine_file_is_read_without_loading_pyyaml() -> None:
    """(In a process of its own: this one has PyYAML loaded.) A file the careful reader must judge loads it."""
    import subprocess
    import sys

    script = ("import sys; from relreg.registry.yamlload import fast_load, parse_yaml; "
              f"assert fast_load({RELEASE!r}) is not None; print('yaml' in sys.modules); "
              "parse_yaml(b'a: 1\\n', 'x.yaml'); print('yaml' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
