"""Strict YAML loading with source positions.

Registry files are data, not programs, so the loader accepts only the part of
YAML that maps onto JSON: no anchors or aliases (no billion laughs, no shared
objects), no tags, no duplicate keys, and plain scalars resolved as in YAML
1.2's JSON-compatible core schema (so `on` stays a string and `1.10` is the
number 1.1, which the validator then reports with a hint to quote it).

The document is built from PyYAML's event stream (C parser where available);
every value and key keeps its line and column so later stages can point at it.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

try:  # the C parser is ~9x faster than the pure-Python one
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_FILE_BYTES = 1024 * 1024

JsonPath = tuple[str | int, ...]

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_TRUE = re.compile(r"^(?:true|True|TRUE)$")
_FALSE = re.compile(r"^(?:false|False|FALSE)$")
_INT = re.compile(r"^[-+]?[0-9]+$")
_INT_OCT = re.compile(r"^0o[0-7]+$")
_INT_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_FLOAT_SPECIAL = re.compile(r"^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$")


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


class YamlLoadError(Exception):
    """A file that cannot be read as strict YAML; carries where and why."""

    def __init__(self, message: str, position: Position, rule: str) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.rule = rule


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
    if _NULL.match(text):
        return None
    if _TRUE.match(text):
        return True
    if _FALSE.match(text):
        return False
    if _INT.match(text):
        return int(text)
    if _INT_OCT.match(text):
        return int(text[2:], 8)
    if _INT_HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    return text


class _Builder:
    """Turns one document's events into data, recording positions."""

    def __init__(self, events: Iterator[Any], doc: SourceDocument) -> None:
        self.events = events
        self.doc = doc

    def value(self, event: Any, path: JsonPath) -> Any:
        position = _position(event.start_mark)
        if isinstance(event, yaml.AliasEvent):
            raise YamlLoadError(
                f"alias '*{event.anchor}' is not allowed: write the value out in full",
                position, "yaml-alias")
        if getattr(event, "anchor", None):
            raise YamlLoadError(
                f"anchor '&{event.anchor}' is not allowed: registry files may not share values",
                position, "yaml-anchor")
        tag = getattr(event, "tag", None)
        if tag is not None and not (isinstance(event, yaml.ScalarEvent) and tag == "!"):
            raise YamlLoadError(f"tag '{tag}' is not allowed: use plain values", position, "yaml-tag")
        self.doc.value_positions[path] = position
        if isinstance(event, yaml.ScalarEvent):
            return self.scalar(event, path, position)
        if isinstance(event, yaml.SequenceStartEvent):
            items = []
            for event in self.events:
                if isinstance(event, yaml.SequenceEndEvent):
                    return items
                items.append(self.value(event, path + (len(items),)))
        if isinstance(event, yaml.MappingStartEvent):
            return self.mapping(path)
        raise YamlLoadError(f"unexpected YAML event {type(event).__name__}", position, "yaml-syntax")

    def scalar(self, event: Any, path: JsonPath, position: Position) -> Any:
        if event.style:  # quoted or block scalar: always a string
            return event.value
        if _FLOAT_SPECIAL.match(event.value):
            raise YamlLoadError(
                f"'{event.value}' is not a JSON number; quote it if you mean the text",
                position, "yaml-number")
        resolved = _resolve_plain(event.value)
        if not isinstance(resolved, str) and resolved is not None:
            self.doc.plain_text[path] = event.value
        return resolved

    def mapping(self, path: JsonPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for event in self.events:
            if isinstance(event, yaml.MappingEndEvent):
                return result
            key_position = _position(event.start_mark)
            if not isinstance(event, yaml.ScalarEvent):
                if isinstance(event, yaml.AliasEvent):
                    self.value(event, path)  # raises the alias error
                raise YamlLoadError("mapping keys must be plain strings", key_position, "yaml-key")
            key = self.value(event, path + ("\0key",))
            del self.doc.value_positions[path + ("\0key",)]
            self.doc.plain_text.pop(path + ("\0key",), None)
            if not isinstance(key, str):
                raise YamlLoadError(
                    f"key {event.value!r} is read as a {type(key).__name__}, keys must be strings: "
                    f"quote it (\"{event.value}\")", key_position, "yaml-key")
            if key in result:
                first = self.doc.key_positions[path + (key,)]
                raise YamlLoadError(
                    f"duplicate key '{key}' (first defined at line {first.line}): "
                    "a later value would silently replace the earlier one",
                    key_position, "yaml-duplicate-key")
            self.doc.key_positions[path + (key,)] = key_position
            result[key] = self.value(next(self.events), path + (key,))
        raise AssertionError("unterminated mapping")  # the parser guarantees an end event


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


def _syntax_error(error: yaml.YAMLError) -> YamlLoadError:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    position = _position(mark) if mark is not None else Position(1, 1)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    return YamlLoadError(message, position, "yaml-syntax")


def parse_yaml(raw: bytes, path: str) -> SourceDocument:
    """Parse the bytes of one registry file strictly. Raises YamlLoadError."""
    if len(raw) > MAX_FILE_BYTES:
        raise YamlLoadError(f"file is {len(raw)} bytes, over the limit of {MAX_FILE_BYTES} (1 MiB)",
                            Position(1, 1), "file-too-large")
    text = _decode(raw)
    _check_tabs(text)
    doc = SourceDocument(path=path, data={})
    try:
        events = iter(yaml.parse(text, Loader=_Loader))
        next(events)  # StreamStart
        first = next(events)
        if isinstance(first, yaml.StreamEndEvent):
            raise YamlLoadError("file is empty: it must hold a mapping of fields", Position(1, 1), "yaml-empty")
        root_event = next(events)  # after DocumentStart
        data = _Builder(events, doc).value(root_event, ())
        next(events)  # DocumentEnd
        trailing = next(events)
        if not isinstance(trailing, yaml.StreamEndEvent):
            raise YamlLoadError("a registry file holds exactly one YAML document; remove the extra '---'",
                                _position(trailing.start_mark), "yaml-multiple-documents")
    except yaml.YAMLError as error:
        raise _syntax_error(error) from None
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
