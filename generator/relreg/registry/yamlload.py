"""Strict YAML loading with source positions.

Registry files are data, not programs, so the loader accepts only the part of
YAML that maps onto JSON: no anchors or aliases (no billion laughs, no shared
objects), no tags, no duplicate keys, and plain scalars resolved as in YAML
1.2's JSON-compatible core schema (so `1.10` is the number 1.1, which the
validator then reports with a hint to quote it).

A plain scalar that a YAML 1.1 reader (PyYAML's `yaml.safe_load`, which many
CI scripts use) reads as another type or value than YAML 1.2 does is refused
at its position, with the fix: `010` (8 or 10), `0x10`, `0b1`, `1_000`,
`1:30` (90), `yes`/`on`/`off`, `2024-01-02` (a date), `1e5`, `09`. Hex and
octal forms are refused even where both read the same number, because JSON
has neither. What is accepted is read alike by YAML 1.1, YAML 1.2 and JSON.

The document is built from PyYAML's event stream (C parser where available);
every value and key keeps its line and column so later stages can point at it.

`fast_load` is the quick way for the common case, a plainly fine file: it
reads the data with rapidyaml (C++, ~10x faster than building from PyYAML's
events) and gives up (None) at anything the careful reader might refuse or
read otherwise, which then decides, with positions. tests/test_yamlload_fast.py
checks that both give the same data, on valid and invalid files alike.
"""

from __future__ import annotations

import codecs
import json
import math
import re
import unicodedata
from json.decoder import scanstring as _scan_json_string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from orjson import loads as _orjson_loads

# PyYAML is loaded (_load_pyyaml) when a file is read carefully or a scalar is read as YAML 1.1 reads
# it: the fast path reads a plainly fine registry without it (a thirtieth of a second of every cold
# `relreg validate`). These names are PyYAML's once it is loaded.
yaml: Any = None
_Loader: Any = None
AliasEvent: Any = None
MappingEndEvent: Any = None
MappingStartEvent: Any = None
ScalarEvent: Any = None
SequenceEndEvent: Any = None
SequenceStartEvent: Any = None
StreamEndEvent: Any = None
_YAML11_RESOLVERS: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}
_YAML11_CONSTRUCTOR: Any = None


def _load_pyyaml() -> None:
    global yaml, _Loader, AliasEvent, MappingEndEvent, MappingStartEvent, ScalarEvent, SequenceEndEvent
    global SequenceStartEvent, StreamEndEvent, _YAML11_RESOLVERS, _YAML11_CONSTRUCTOR
    if yaml is not None:
        return
    import yaml as pyyaml
    from yaml import events
    from yaml.constructor import SafeConstructor

    try:  # the C parser is ~9x faster than the pure-Python one
        _Loader = pyyaml.CSafeLoader
    except AttributeError:  # pragma: no cover - depends on how PyYAML was built
        _Loader = pyyaml.SafeLoader
    AliasEvent, MappingEndEvent, MappingStartEvent = events.AliasEvent, events.MappingEndEvent, events.MappingStartEvent
    ScalarEvent, SequenceEndEvent = events.ScalarEvent, events.SequenceEndEvent
    SequenceStartEvent, StreamEndEvent = events.SequenceStartEvent, events.StreamEndEvent
    # YAML 1.1's implicit types, as PyYAML resolves and constructs them: the reading
    # every accepted plain scalar must agree with.
    _YAML11_RESOLVERS = pyyaml.SafeLoader.yaml_implicit_resolvers
    _YAML11_CONSTRUCTOR = SafeConstructor()
    yaml = pyyaml

MAX_FILE_BYTES = 1024 * 1024
# Levels of nested lists and mappings, the file's own mapping included. Registry files are shallow
# (extra_info is the only free-form part); deeper data would only overflow the recursion of the
# JSON encoders and readers that handle it later.
MAX_DEPTH = 32

JsonPath = tuple[str | int, ...]

_INT = re.compile(r"^[-+]?[0-9]+$")
_INT_OCT = re.compile(r"^0o[0-7]+$")
_INT_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_FLOAT_SPECIAL = re.compile(r"^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$")
# The words YAML 1.2's core schema reads as null and booleans; nothing else (not yes/no/on/off).
_WORDS: dict[str, bool | None] = {"": None, "~": None, "null": None, "Null": None, "NULL": None,
                                  "true": True, "True": True, "TRUE": True,
                                  "false": False, "False": False, "FALSE": False}
_NUMBER_START = frozenset("-+.0123456789")

# The first characters of PyYAML's implicit resolvers (its SafeLoader.yaml_implicit_resolvers, which
# tests/test_yamlload_fast.py holds these equal to): a plain scalar starting otherwise is text to it.
_YAML11_FIRST = frozenset("!&*+-.0123456789<=FNOTYfnoty~")
_STR_TAG = "tag:yaml.org,2002:str"
# The only words YAML 1.1 reads otherwise than 1.2 (as booleans); other plain text starting with a
# letter is text to both, which decides most scalars with one set lookup.
_YAML11_WORDS = frozenset(variant for word in ("yes", "no", "on", "off")
                          for variant in (word, word.capitalize(), word.upper()))
# Plain scalars that can only be ambiguous when they start like a number, merge key or value key.
_SUSPECT_START = frozenset("-+.0123456789<=!&*")
# Every YAML 1.1 implicit type but str in one expression: text it does not match is text to YAML 1.1.
# PyYAML's own patterns (verbose), as written in its resolver (tests/test_yamlload_fast.py holds them equal).
_YAML11_PATTERNS = (
    "^(?: ~\n                    |null|Null|NULL\n                    | )$",
    "^(?:!|&|\\*)$",
    "^(?:<<)$",
    "^(?:=)$",
    "^(?:[-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+][0-9]+)?\n                    |\\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
    "\n                    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*\n                    |[-+]?\\.(?:inf|Inf|INF)"
    "\n                    |\\.(?:nan|NaN|NAN))$",
    "^(?:[-+]?0b[0-1_]+\n                    |[-+]?0[0-7_]+\n                    |[-+]?(?:0|[1-9][0-9_]*)"
    "\n                    |[-+]?0x[0-9a-fA-F_]+\n                    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
    "^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]\n                    |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?"
    "\n                     (?:[Tt]|[ \\t]+)[0-9][0-9]?\n                     :[0-9][0-9] :[0-9][0-9] (?:\\.[0-9]*)?"
    "\n                     (?:[ \\t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
    "^(?:yes|Yes|YES|no|No|NO\n                    |true|True|TRUE|false|False|FALSE\n                    |on|On|ON|off|Off|OFF)$",
)
_YAML11_NOT_TEXT = re.compile("|".join(sorted(f"(?:{pattern})" for pattern in _YAML11_PATTERNS)), re.VERBOSE)
_RADIX = re.compile(r"^[-+]?0[xXoObB]")
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9_]")


class Position(NamedTuple):
    line: int  # 1-based
    column: int  # 1-based


class YamlLoadError(Exception):
    """A file that cannot be read as strict YAML; carries where and why (its first problem), and in
    `problems` every problem found in the file, in order of position."""

    def __init__(self, message: str, position: Position, rule: str) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.rule = rule
        self.problems: list[YamlLoadError] = [self]


@dataclass
class SourceDocument:
    """A loaded file: plain JSON-compatible data plus where each part came from."""

    path: str
    data: dict[str, Any]
    value_positions: dict[JsonPath, Position] = field(default_factory=dict)
    key_positions: dict[JsonPath, Position] = field(default_factory=dict)
    # Source text of plain scalars that resolved to a number or boolean, so a
    # type error can show what the author typed (`1.10`, not `1.1`).
    plain_text: dict[JsonPath, str] = field(default_factory=dict)

    def position(self, path: JsonPath) -> Position:
        """Position of the value at `path`, or of its nearest known ancestor."""
        while path not in self.value_positions and path:
            path = path[:-1]
        return self.value_positions.get(path, Position(1, 1))

    def key_position(self, path: JsonPath) -> Position:
        """Position of the key naming the value at `path` (falls back to the value)."""
        return self.key_positions.get(path) or self.position(path)


def _position(mark: Any) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def _resolve_plain(text: str) -> Any:
    if text in _WORDS:
        return _WORDS[text]
    if text[0] not in _NUMBER_START:
        return text  # the common case, decided without a regular expression
    if _INT.match(text):
        return int(text)
    if _INT_OCT.match(text):
        return int(text[2:], 8)
    if _INT_HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    return text


class _Unreadable:
    """What a YAML 1.1 reader makes of a scalar it fails on."""


_UNREADABLE = _Unreadable()


def _yaml11_reading(text: str) -> tuple[str, Any]:
    """(tag, value) of a plain scalar as YAML 1.1 reads it (PyYAML's resolver and SafeConstructor)."""
    _load_pyyaml()
    for tag, regexp in _YAML11_RESOLVERS.get(text[:1], ()):
        if regexp.match(text):
            if tag.endswith((":merge", ":value")):
                return tag, _UNREADABLE  # `<<` and `=`: no value at all, PyYAML fails on them
            try:
                return tag, _YAML11_CONSTRUCTOR.construct_object(yaml.ScalarNode(tag, text))
            except (ValueError, yaml.YAMLError):  # e.g. `0b_`, which PyYAML resolves as an int but cannot read
                return tag, _UNREADABLE
    return _STR_TAG, text


def _describe_reading(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text \"{value}\""
    return f"a {type(value).__name__} ({value})"


def _ambiguity_hint(text: str, yaml12: Any, yaml11: Any) -> str:
    quoted = f'quote it ("{text}")'
    if _RADIX.match(text):
        number = yaml12 if isinstance(yaml12, int) else yaml11
        if isinstance(number, int) and not isinstance(number, bool):
            return f"{quoted}, or write the decimal number {number}"
        return f"{quoted}, or write the number in decimal"
    if isinstance(yaml11, bool) or isinstance(yaml12, bool):
        return f"write true or false for a boolean, or {quoted} for the text"
    if _LEADING_ZERO.match(text) and isinstance(yaml12, (int, float)) and "_" not in text:
        return f"{quoted}, or write {yaml12!r} without leading zeros"
    if "_" in text and isinstance(yaml11, (int, float)):
        return f"{quoted}, or write {yaml11!r} without underscores"
    if isinstance(yaml12, (int, float)):
        return f"{quoted}, or write it as {float(yaml12)!r}"
    return quoted


def ambiguity(text: str, yaml12: Any, *, key: bool = False) -> str | None:
    """Why plain scalar `text` (read as `yaml12` by relreg) must be refused, or None when it is unambiguous.

    Refused: any scalar whose YAML 1.1 type or value (PyYAML's reading)
    differs from its YAML 1.2 core-schema reading, and hex, octal and binary
    numbers, which JSON does not have. `key` words the fix for a mapping key,
    which can only be quoted.
    """
    if yaml12.__class__ is int and str(yaml12) == text:
        return None  # plain decimal: read alike by every YAML and JSON
    if text[:1] not in _YAML11_FIRST:
        return None  # a string to YAML 1.1 as well (and to 1.2, whose types start the same way)
    tag, yaml11 = _yaml11_reading(text)
    special = yaml11 is _UNREADABLE
    agree = not special and yaml11.__class__ is yaml12.__class__ and yaml11 == yaml12
    radix = _RADIX.match(text) is not None and not (isinstance(yaml11, str) and isinstance(yaml12, str))
    if agree and not radix:
        return None
    if agree:
        why = f"'{text}' is a {'hexadecimal' if text.lstrip('+-')[1] in 'xX' else 'non-decimal'} number, " \
              "which JSON does not have"
    else:
        yaml11_text = ("a merge key" if tag.endswith(":merge") else f"an error ({tag.rpartition(':')[2]} "
                       "that PyYAML cannot read)") if special else _describe_reading(yaml11)
        why = f"'{text}' is {_describe_reading(yaml12)} to YAML 1.2 (and relreg) but {yaml11_text} " \
              "to YAML 1.1 readers such as PyYAML's yaml.safe_load"
    return f"{why}: {'quote it' if key else _ambiguity_hint(text, yaml12, yaml11)}"


class _Builder:
    """Turns one document's events into data, recording positions.

    This loop runs for every node of every file of a cold validate, so it
    pulls events from the C parser directly and compares event types by
    identity.
    """

    def __init__(self, parser: Any, doc: SourceDocument) -> None:
        self.next_event = parser.get_event
        self.doc = doc
        self.value_positions = doc.value_positions
        # Problems after which reading can go on (a duplicate key, an ambiguous or out-of-range scalar):
        # noted, so that one run reports them all; the others stop the reading at once.
        self.found: list[YamlLoadError] = []

    def value(self, event: Any, path: JsonPath) -> Any:
        kind = type(event)
        mark = event.start_mark
        position = Position(mark.line + 1, mark.column + 1)
        if kind is AliasEvent:
            raise YamlLoadError(
                f"alias '*{event.anchor}' is not allowed: write the value out in full",
                position, "yaml-alias")
        if event.anchor:
            raise YamlLoadError(
                f"anchor '&{event.anchor}' is not allowed: registry files may not share values",
                position, "yaml-anchor")
        tag = event.tag
        if tag is not None and not (kind is ScalarEvent and tag == "!"):
            raise YamlLoadError(f"tag '{tag}' is not allowed: use plain values", position, "yaml-tag")
        self.value_positions[path] = position
        if kind is ScalarEvent:
            return self.scalar(event, path, position)
        if len(path) >= MAX_DEPTH:
            raise YamlLoadError(f"nested more than {MAX_DEPTH} levels deep: keep registry data (and extra_info) "
                                "flatter", position, "yaml-depth")
        if kind is SequenceStartEvent:
            items: list[Any] = []
            next_event = self.next_event
            while True:
                event = next_event()
                if type(event) is SequenceEndEvent:
                    return items
                items.append(self.value(event, path + (len(items),)))
        if kind is MappingStartEvent:
            return self.mapping(path)
        raise YamlLoadError(f"unexpected YAML event {kind.__name__}", position, "yaml-syntax")

    def scalar(self, event: Any, path: JsonPath, position: Position) -> Any:
        text = event.value
        if event.style:  # quoted or block scalar: always a string
            control = _ESCAPED_CONTROL.search(text) if event.style == '"' else None
            if control is not None:
                self.found.append(YamlLoadError(_control_problem(control[0], key=False), position,
                                                "yaml-control-character"))
            return text
        if text[:1] in ("-", "+", ".") and _FLOAT_SPECIAL.match(text):
            self.found.append(YamlLoadError(
                f"'{text}' is not a JSON number; quote it if you mean the text",
                position, "yaml-number"))
            return text
        resolved = _resolve_plain(text)
        if resolved.__class__ is float and not math.isfinite(resolved):
            self.found.append(YamlLoadError(
                f"'{text}' is beyond the range of a JSON number (a 64-bit float, at most about 1.8e308, "
                "reads it as infinity); quote it if you mean the text", position, "yaml-number"))
            return text
        if text[:1] in _SUSPECT_START or text in _YAML11_WORDS:  # the rest reads alike, without a call
            problem = ambiguity(text, resolved)
            if problem is not None:
                self.found.append(YamlLoadError(problem, position, "yaml-ambiguous"))
        if resolved is not None and resolved.__class__ is not str:
            self.doc.plain_text[path] = text
        return resolved

    def mapping(self, path: JsonPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        key_positions = self.doc.key_positions
        next_event = self.next_event
        while True:
            event = next_event()
            kind = type(event)
            if kind is MappingEndEvent:
                return result
            key_position = _position(event.start_mark)
            if kind is not ScalarEvent:
                if kind is AliasEvent:
                    self.value(event, path)  # raises the alias error
                raise YamlLoadError("mapping keys must be plain strings", key_position, "yaml-key")
            if event.anchor or (event.tag is not None and event.tag != "!"):
                self.value(event, path)  # raises the anchor or tag error
            key = event.value if event.style else _resolve_plain(event.value)
            control = _ESCAPED_CONTROL.search(key) if event.style == '"' else None
            if control is not None:
                self.found.append(YamlLoadError(_control_problem(control[0], key=True), key_position,
                                                "yaml-control-character"))
            if not event.style and key.__class__ is str and (key[:1] in _SUSPECT_START or key in _YAML11_WORDS):
                problem = ambiguity(event.value, key, key=True)
                if problem is not None:
                    self.found.append(YamlLoadError(f"key {problem}", key_position, "yaml-ambiguous"))
            if key.__class__ is not str:
                raise YamlLoadError(
                    f"key {event.value!r} is read as {_describe_reading(key)}, keys must be strings: "
                    f"quote it (\"{event.value}\")", key_position, "yaml-key")
            twin = None if key.isascii() else _normalization_twin(key, result)
            if twin is not None:
                first = key_positions[path + (twin,)]
                self.found.append(YamlLoadError(
                    f"key '{key}' is the key '{twin}' of line {first.line} written with other Unicode code points "
                    "(another normalization): readers that normalize text would see one key twice; use one spelling",
                    key_position, "yaml-duplicate-key"))
            if key in result:
                first = key_positions[path + (key,)]
                self.found.append(YamlLoadError(
                    f"duplicate key '{key}' (first defined at line {first.line}): "
                    "a later value would silently replace the earlier one",
                    key_position, "yaml-duplicate-key"))
                self.value(next_event(), path + (key, len(result)))  # read for its problems, then dropped
                continue
            key_path = path + (key,)
            key_positions[key_path] = key_position
            result[key] = self.value(next_event(), key_path)


def _decode(raw: bytes) -> str:
    if raw.startswith(codecs.BOM_UTF8):
        raise YamlLoadError("file starts with a UTF-8 byte order mark (BOM): save it as UTF-8 without BOM",
                            Position(1, 1), "yaml-bom")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        before = raw[: error.start]
        line = before.count(b"\n") + 1
        column = error.start - (before.rfind(b"\n") + 1) + 1
        raise YamlLoadError(
            f"byte 0x{raw[error.start]:02x} is not valid UTF-8: save the file as UTF-8",
            Position(line, column), "yaml-encoding") from None


def _check_tabs(text: str) -> None:
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.lstrip(" \t")
        indent = line[: len(line) - len(stripped)]
        if "\t" in indent:
            raise YamlLoadError("tab character in indentation: YAML indents with spaces",
                                Position(number, indent.index("\t") + 1), "yaml-tab")


def _syntax_error(error: yaml.YAMLError, text: str) -> YamlLoadError:
    if isinstance(error, yaml.reader.ReaderError) and isinstance(error.position, int):
        # The reader names a character index in its own words ('in "<unicode string>", position 1532').
        before = text[:error.position]
        position = Position(before.count("\n") + 1, error.position - before.rfind("\n"))
        code = error.character if isinstance(error.character, int) else ord(str(error.character)[:1] or "\0")
        return YamlLoadError(f"invalid YAML: the character U+{code:04X} is not allowed in YAML text; remove it",
                             position, "yaml-syntax")
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    position = _position(mark) if mark is not None else Position(1, 1)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    return YamlLoadError(message, position, "yaml-syntax")


def _all_of(found: list[YamlLoadError]) -> YamlLoadError:
    """The first of `found` by position, carrying them all in `problems`."""
    ordered = sorted(found, key=lambda error: error.position)
    first = ordered[0]
    first.problems = ordered
    return first


def parse_yaml(raw: bytes, path: str) -> SourceDocument:
    """Parse the bytes of one registry file strictly. Raises YamlLoadError."""
    _load_pyyaml()
    if len(raw) > MAX_FILE_BYTES:
        raise YamlLoadError(f"file is {len(raw)} bytes, over the limit of {MAX_FILE_BYTES} (1 MiB)",
                            Position(1, 1), "file-too-large")
    text = _decode(raw)
    _check_tabs(text)
    doc = SourceDocument(path=path, data={})
    parser = _Loader(text)
    try:
        parser.get_event()  # StreamStart
        first = parser.get_event()
        if type(first) is StreamEndEvent:
            raise YamlLoadError("file is empty: it must hold a mapping of fields", Position(1, 1), "yaml-empty")
        root_event = parser.get_event()  # after DocumentStart
        builder = _Builder(parser, doc)
        try:
            data = builder.value(root_event, ())
            parser.get_event()  # DocumentEnd
            trailing = parser.get_event()
            if type(trailing) is not StreamEndEvent:
                raise YamlLoadError("a registry file holds exactly one YAML document; remove the extra '---'",
                                    _position(trailing.start_mark), "yaml-multiple-documents")
        except yaml.YAMLError as error:
            builder.found.append(_syntax_error(error, text))
        except YamlLoadError as error:
            builder.found.append(error)
        if builder.found:
            raise _all_of(builder.found)
    except yaml.YAMLError as error:
        raise _syntax_error(error, text) from None
    finally:
        parser.dispose()
    if data is None:
        raise YamlLoadError("file is empty: it must hold a mapping of fields", Position(1, 1), "yaml-empty")
    if not isinstance(data, dict):
        raise YamlLoadError(f"the top level must be a mapping of fields, not a {type(data).__name__}",
                            doc.position(()), "yaml-not-mapping")
    doc.data = data
    return doc


def read_registry_file(file: Path, display_path: str) -> bytes:
    """Read a registry file from disk, refusing symlinks and oversized files before reading."""
    if file.is_symlink():
        raise YamlLoadError("file is a symbolic link: registry files must be regular files",
                            Position(1, 1), "file-symlink")
    size = file.stat().st_size
    if size > MAX_FILE_BYTES:
        raise YamlLoadError(f"file is {size} bytes, over the limit of {MAX_FILE_BYTES} (1 MiB)",
                            Position(1, 1), "file-too-large")
    return file.read_bytes()


# --- The fast path -----------------------------------------------------------------------------------------

try:
    import ryml as _ryml
except ImportError:  # pragma: no cover - a dependency; without it every file takes the careful path
    _ryml = None

# Text the fast reader does not judge: characters PyYAML refuses or reads as line breaks (controls,
# NEL, U+2028/9, BOM, surrogates), tabs and carriage returns, backslashes (double-quoted escapes),
# anchors and tags (`&x`, `!tag` where a node can start), directives and document markers at the
# start of a line, complex keys (`? `), block scalar headers with more than a chomping
# indicator, and `,` `]` `}` where a plain scalar starts. Any of these sends the file to the
# careful reader; in notes they are rare enough to cost little.
_FAST_ODD_CHARACTER_PATTERN = \
    r"[^\n\x20-\x5b\x5d-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"


@lru_cache(maxsize=1)
def _fast_odd_character() -> re.Pattern[str]:
    """_FAST_ODD_CHARACTER_PATTERN, compiled when a file first holds non-ASCII text (compiling it takes
    longer than reading a hundred files)."""
    return re.compile(_FAST_ODD_CHARACTER_PATTERN)


_FAST_ASCII_REFUSED = bytes(code for code in range(128) if code < 0x20 and code != 0x0A or code in (0x5C, 0x7F))
_FAST_NODE_PROPERTY = re.compile(r"[&!]")  # an anchor or tag where a node starts: after space or [ ] { } ,
_FAST_COMPLEX_KEY = re.compile(r"\?(?=[ \n]|\Z)")  # `? ` after nothing but indentation and `- `
# Indicators that cannot start a plain scalar and that rapidyaml reads as text where PyYAML refuses
# them (`a: ]`, `[:x]`, `[%]`).
_FAST_PLAIN_START_REFUSED = ",]}:?%@`"


# The characters before an indicator that show where a plain scalar could start with it ("": the
# indicator itself, for `,,`).
_FAST_BEFORE_START = {indicator: frozenset(" \n[{,") | ({""} if indicator in " \n[{," else set())
                      for indicator in _FAST_PLAIN_START_REFUSED}


# Each byte as "b" when a plain scalar can start after it, "c" for the colon, else "x": a colon after a
# "b" is then one search of the translated bytes, where splitting the text at its colons (one or more
# on every line) would make a string of each line.
_FAST_COLON_CLASSES = bytes(ord("b") if chr(code) in _FAST_BEFORE_START[":"] else ord("c") if code == ord(":")
                            else ord("x") for code in range(256))


def _fast_plain_start_refused(text: str, raw: bytes | None = None) -> bool:
    """Whether an indicator of _FAST_PLAIN_START_REFUSED may start a plain scalar in `text` (`raw`: its
    UTF-8 bytes, when the caller has them)."""
    if text[:1] in _FAST_PLAIN_START_REFUSED:
        return True
    if raw is None:
        raw = text.encode("utf-8", "surrogatepass")
    if b"bc" not in raw.translate(_FAST_COLON_CLASSES):
        for indicator, before_start in _FAST_BEFORE_START.items():
            # The characters just before each occurrence, from one split: a search for each pair (`" ,"
            # in text`) stops at every space.
            if indicator != ":" and indicator in text \
                    and not before_start.isdisjoint([piece[-1:] for piece in text.split(indicator)[:-1]]):
                break
        else:
            return False
    for at, character in enumerate(text):  # rare: look at each (`a: ]`, `[, ]`; not `a ]`)
        if character in _FAST_PLAIN_START_REFUSED:
            end = at
            while end and text[end - 1] == " ":
                end -= 1
            if end == 0 or text[end - 1] in ":-\n[{,":
                return True
    return False


def _fast_refused_syntax(text: str, raw: bytes | None = None) -> bool:
    """Whether `text` (of UTF-8 bytes `raw`, when the caller has them) may hold an anchor, tag, complex
    key, unusual block scalar header or flow end.

    Python's regular expressions cost ~10 ns a character even when nothing
    matches, so characters are looked for with `in` and `find`: one character
    first (memchr), a pair only when the rarer character of it is there.
    """
    if ("]" in text and ":]" in text) or ("}" in text and ":}" in text) or ("," in text and ":," in text):
        return True  # `[yes:]`: rapidyaml reads the text `yes:`, PyYAML a flow mapping it then refuses
    if "&" in text or "!" in text:
        for match in _FAST_NODE_PROPERTY.finditer(text):
            start = match.start()
            if start == 0 or text[start - 1] in " \n[]{},:":  # `{"a":&x 1}`: an anchor after a JSON-like key
                return True
    if "?" in text:
        for match in _FAST_COMPLEX_KEY.finditer(text):
            start = match.start()
            line = text[text.rfind("\n", 0, start) + 1:start]
            if line.strip(" -") == "":
                return True
    if _fast_plain_start_refused(text, raw):
        return True
    # A block scalar header other than `|`, `>-`, `|+`... after `:` or `- `, or first on its line (the value
    # of a key that ends the line above: `artifacts:\n | - x`, which rapidyaml reads and PyYAML refuses; a
    # Markdown table or quote in notes is then judged by the careful reader). rapidyaml reads `|1.2.3` as `|1`.
    for indicator in "|>":
        at = text.find(indicator)
        while at >= 0:
            after = text[at + 1:at + 3]
            if not (after[:1] == "\n" or after in ("-\n", "+\n")):
                end = at
                while end and text[end - 1] == " ":
                    end -= 1
                if not end or text[end - 1] in ":\n" or text[end - 1] == "-" and (end == 1 or text[end - 2] in " \n"):
                    return True
            at = text.find(indicator, at + 1)
    return False


# First characters that PyYAML refuses at the start of a plain scalar while rapidyaml reads them as
# text (`*x`, an alias, it even gives as the text "*x"); a block scalar or a quoted one may start with them.
_FAST_QUOTED_ONLY = frozenset("*]},@`:?")  # `[:x]`: PyYAML refuses it, rapidyaml reads ":x"


class _Unsure(Exception):
    """The fast reader cannot vouch for this file."""


_FAST_WORDS = frozenset(_WORDS) | _YAML11_WORDS
# Text that some reading (YAML 1.2's, YAML 1.1's, or the refused special floats) takes for other than text.
_FAST_NOT_TEXT = re.compile("|".join(f"(?:{pattern})" for pattern in (
    _INT.pattern, _INT_OCT.pattern, _INT_HEX.pattern, _FLOAT.pattern, _FLOAT_SPECIAL.pattern,
    _YAML11_NOT_TEXT.pattern)), re.VERBOSE)
def _plain_reads_otherwise(text: str) -> bool:
    """True when `text`, written as a plain scalar, is not simply this text to the careful reader.

    The fast reader does not know whether a string was quoted; a string the
    careful reader would take as written either way needs no second look.
    """
    known = _PLAIN_READINGS.get(text)
    if known is None:
        if len(_PLAIN_READINGS) >= 4096:  # bounded: most strings looked at are keys and versions seen before
            _PLAIN_READINGS.clear()
        known = _PLAIN_READINGS[text] = _reads_otherwise(text)
    return known


# Answers of _plain_reads_otherwise by text: the same keys ("type", "notes") and versions recur in every file.
_PLAIN_READINGS: dict[str, bool] = {}


def _reads_otherwise(text: str) -> bool:
    if text in _FAST_WORDS:
        return True
    first = text[:1]
    if first in _FAST_QUOTED_ONLY:
        return True
    if first in _SUSPECT_START and _FAST_NOT_TEXT.match(text):
        if _resolve_plain(text).__class__ is not str or _FLOAT_SPECIAL.match(text):
            return True
        return ambiguity(text, text) is not None
    return False


# In rapidyaml's JSON, the strings that may need a second look: those whose first character only
# a quoted scalar or an alias gives (and the empty string: rapidyaml gives an empty plain key as
# "", where PyYAML reads null), a hexadecimal number, a word some reading takes for a boolean or
# null, and text made only of the characters YAML's numbers, dates, times, .inf/.nan, `<<` and
# `=` are made of. Any other string is text to every reading. Only an opening quote can be
# followed by these first characters (a closing one is followed by , : ] } or space), and a
# string holding a quote or backslash is text, so matching up to the next quote is enough.
# The words are those of _FAST_WORDS (the others are text to every reading: "type" and "notes", keys of
# every release, are not looked at again); the lookahead lets most quotes fail at one character class.
_FAST_JSON_SUSPECT = re.compile(
    r'"(?=[-*@`~"+.0-9<=yYnNoOtTfF])(?:[*@`~"]|[-+]?0[xX]|(?:'
    + "|".join(sorted((word for word in _FAST_WORDS if word.isalpha()), key=lambda word: (-len(word), word)))
    + r')"|[-+.0-9<=][-+.0-9_:<=eEoObBxXtTzZ iInNfFaA]*")')


# Control characters a double-quoted scalar can hold as escapes ("\x1b", "\0", "\a"), which YAML refuses
# written raw: they would reach HTML pages and terminals as they are. Tab and line breaks are text.
_ESCAPED_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f]")  # YAML 1.2 c-printable: NEL is text


def _control_problem(character: str, *, key: bool) -> str:
    return (f"{'key' if key else 'text'} holds the control character U+{ord(character):04X} (written as an escape): "
            "remove it; registry text is printable")


def _normalization_twin(key: str, mapping: dict[str, Any]) -> str | None:
    """A key of `mapping` that is `key` under Unicode NFC normalization but other code points, if any."""
    folded = unicodedata.normalize("NFC", key)
    return next((other for other in mapping
                 if other != key and not other.isascii() and unicodedata.normalize("NFC", other) == folded), None)


def _fast_mapping_non_ascii(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = _fast_mapping(pairs)
    if any(not key.isascii() for key in result):
        raise _Unsure  # keys that may be one key in two normalizations: the careful reader judges them
    return result


def _fast_mapping(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Unsure  # a duplicate key
    return result


def _fast_int(text: str) -> int:
    value = int(text)
    if str(value) != text:  # `-0`, or text rapidyaml rewrote: let the careful reader see the original
        raise _Unsure
    return value


def _fast_refuse(text: str) -> Any:
    raise _Unsure  # floats and NaN/Infinity are rare in registry files: the careful reader judges them


_FAST_DECODER = json.JSONDecoder(object_pairs_hook=_fast_mapping, parse_int=_fast_int,
                                 parse_float=_fast_refuse, parse_constant=_fast_refuse)
# JSON's integers read back as written but for `-0`: without one, C's int() reads them, not _fast_int.
_FAST_DECODER_NON_ASCII = json.JSONDecoder(object_pairs_hook=_fast_mapping_non_ascii, parse_int=_fast_int,
                                           parse_float=_fast_refuse, parse_constant=_fast_refuse)
_FAST_DECODER_NO_MINUS_ZERO = json.JSONDecoder(object_pairs_hook=_fast_mapping, parse_float=_fast_refuse,
                                               parse_constant=_fast_refuse)


def _keys_unless_float(data: dict[str, Any]) -> int:
    """How many keys the mappings in `data` hold together, or -1 when it holds a float.

    In rapidyaml's JSON every key is a string followed by `":`, and `":` elsewhere needs a string
    holding an escaped quote or starting with a colon: the JSON's count of `":` is at least its
    number of keys, and equals this count only when no key was a duplicate (which orjson dropped).
    """
    keys = 0
    containers: list[Any] = [data]
    while containers:
        container = containers.pop()
        if container.__class__ is dict:
            keys += len(container)
            container = container.values()
        for value in container:
            kind = value.__class__
            if kind is dict or kind is list:
                containers.append(value)
            elif kind is float:
                return -1
    return keys


def _emitted_json(tree: Any, size: int | None = None) -> str:
    """rapidyaml's JSON of `tree`, written into a buffer of a likely size (`size` bytes, when given): half
    the time of emit_json_malloc, which measures the output in a first pass. Written again at the size
    rapidyaml asks for when the guess was short (JSON's indentation is rarely over twice YAML's)."""
    size = size or 4096 + 3 * tree.arena_size()
    for _ in range(2):
        buffer = bytearray(size)
        failed, size = _ryml.emit_json_to_substr(tree, tree.root_id(), buffer)
        if not failed:
            return str(memoryview(buffer)[:size], "utf-8")
    return _ryml.emit_json_malloc(tree, tree.root_id())


def nested_within(value: Any, levels: int) -> bool:
    """True when `value` holds lists and mappings at most `levels` deep (a scalar: 0 levels)."""
    frontier = [value]
    for _ in range(levels):
        containers = [node for node in frontier if isinstance(node, (dict, list))]
        if not containers:
            return True
        frontier = [item for node in containers for item in (node.values() if isinstance(node, dict) else node)]
    return not any(isinstance(node, (dict, list)) for node in frontier)


def fast_load(raw: bytes) -> dict[str, Any] | None:
    """The data of a plainly fine registry file, or None when `parse_yaml` must decide.

    Whenever this returns data, `parse_yaml(raw, ...).data` gives the same data
    (equal, with the same types and key order); it returns None for every file
    `parse_yaml` refuses, and for some it accepts. rapidyaml prints its own
    parse errors to the process's stderr (fd 2); callers that care silence it.
    """
    if _ryml is None or len(raw) > MAX_FILE_BYTES or raw.startswith(codecs.BOM_UTF8):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    ascii_text = text.isascii()
    if ascii_text:
        if len(raw.translate(None, _FAST_ASCII_REFUSED)) != len(raw):
            return None
    elif _fast_odd_character().search(text):
        return None
    if text.startswith(("%", "---", "...")) or ("%" in text and "\n%" in text) or "\n---" in text \
            or "\n..." in text or _fast_refused_syntax(text, raw):
        return None
    if not text.endswith("\n") and ("|" in text or ">" in text):
        return None  # a block scalar ending the file without a line break: rapidyaml adds one, PyYAML does not
    global _FAST_TREE
    try:
        tree = _FAST_TREE
        if tree is None:
            tree = _FAST_TREE = _ryml.Tree()
        else:
            tree.clear()
            tree.clear_arena()
        _ryml.parse_csubstr(raw, tree)  # parse_in_arena(raw, tree), without a wrapper call
        emitted = _emitted_json(tree)
        for match in _FAST_JSON_SUSPECT.finditer(emitted):
            if _plain_reads_otherwise(_scan_json_string(emitted, match.start() + 1)[0]):
                return None
        if not ascii_text or "-0" in emitted:
            data = (_FAST_DECODER_NON_ASCII if not ascii_text else _FAST_DECODER).decode(emitted)
        else:
            # orjson reads in a third of the time of json's decoder with a hook per mapping, but keeps the
            # last of duplicate keys and reads floats: both are found by counting.
            data = _orjson_loads(emitted)
            if data.__class__ is not dict or _keys_unless_float(data) != emitted.count('":'):
                return None
    except Exception:  # noqa: BLE001 - rapidyaml's errors, JSON it could not emit, _Unsure: all mean "ask parse_yaml"
        _FAST_TREE = None  # not reused after an error, whatever state it was left in
        return None
    return data if data.__class__ is dict else None


# One tree, cleared and reused for each file: making one costs as much as clearing it does not.
_FAST_TREE: Any = None
