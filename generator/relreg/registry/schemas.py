"""JSON Schema validation of registry files, with messages that point at the source.

Validators are built once per schema (Draft 2020-12) and reused for every
file. jsonschema's errors are turned into diagnostics that name the field as
the author wrote it, at the line and column of the offending key or value.

Most files are valid, and proving that is the hot path of a cold validate of
a large registry: jsonschema-rs (a compiled Draft 2020-12 validator, ~30x
faster) answers "valid?" first, and only a file it rejects goes through
jsonschema, whose errors carry what the messages need. A file is valid only
when both agree: Python's `$` also matches before a final line break, so
jsonschema alone would let `sha256: |` (a block scalar ending in a newline)
through, where JSON Schema's ECMA-262 patterns do not.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from typing import TYPE_CHECKING

import jsonschema_rs

if TYPE_CHECKING:  # jsonschema itself is imported when a file is invalid: it costs a tenth of a second
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

from relreg.registry.diagnostics import Diagnostic
from relreg.registry.yamlload import JsonPath, SourceDocument

# A path in a schema's terms: property names, None for any item of a list.
SchemaPath = tuple[str | None, ...]
from relreg.resources import schema_dir

INPUT_SCHEMAS = {
    "registry": "registry.schema.json",
    "release": "release.schema.json",
    "hardware": "hardware.schema.json",
    "cohort": "cohort.schema.json",
}

_JSON_TYPES = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
               int: "a number", float: "a number", type(None): "empty (null)"}


def field_name(path: JsonPath) -> str:
    """`artifacts[1].delta_from` for ('artifacts', 1, 'delta_from')."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "the file"


def _describe(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


class SchemaSet:
    """The input schemas of a registry, compiled once."""

    def __init__(self, directory: Path | None = None) -> None:
        directory = directory or schema_dir()
        self.schemas: dict[str, Any] = {}
        self.fast_validators: dict[str, Any] = {}
        self._validators: dict[str, Draft202012Validator] | None = None
        self._integer_paths: dict[str, list[SchemaPath]] = {}
        digest = hashlib.sha256()
        for kind, filename in INPUT_SCHEMAS.items():
            text = (directory / filename).read_text(encoding="utf-8")
            schema = json.loads(text)
            self.schemas[kind] = schema
            self.fast_validators[kind] = jsonschema_rs.Draft202012Validator(schema)
            digest.update(text.encode())
        self.fingerprint = digest.hexdigest()

    @property
    def validators(self) -> dict[str, Draft202012Validator]:
        """jsonschema's validators (their errors word the diagnostics), built on first use."""
        if self._validators is None:
            from jsonschema import Draft202012Validator

            validators = {}
            for kind, schema in self.schemas.items():
                Draft202012Validator.check_schema(schema)
                validators[kind] = Draft202012Validator(schema)
            self._validators = validators
        return self._validators

    def check(self, kind: str, doc: SourceDocument) -> list[Diagnostic]:
        """The problems of `doc`, a file of `kind` ("release", "cohort", ...), as diagnostics at their lines."""
        fast = self.fast_validators[kind]
        if fast.is_valid(doc.data):
            return _decimal_whole_numbers(self.integer_paths(kind), doc)
        found = [diagnostic
                 for error in self.validators[kind].iter_errors(doc.data)
                 for diagnostic in _diagnostics_for(error, doc)]
        return found or [self._strict_diagnostic(kind, error, doc) for error in fast.iter_errors(doc.data)]

    def integer_paths(self, kind: str) -> list[SchemaPath]:
        """Where the schema of `kind` wants an integer: paths of property names, None standing for any list index."""
        found = self._integer_paths.get(kind)
        if found is None:
            found = self._integer_paths[kind] = sorted(set(_integer_paths(self.schemas[kind], self.schemas[kind], ())),
                                                       key=str)
        return found

    def _strict_diagnostic(self, kind: str, error: Any, doc: SourceDocument) -> Diagnostic:
        """A problem only the ECMA-262 reading of the schema finds (in practice: a trailing line break)."""
        path: JsonPath = tuple(error.instance_path)
        keyword = error.schema_path[-1] if error.schema_path else "schema"
        schema: Any = self.validators[kind].schema
        for part in error.schema_path[:-1]:
            schema = schema[part]
        hint = schema.get("x-hint") if isinstance(schema, dict) else None
        value = error.instance
        if keyword == "pattern" and isinstance(value, str):
            ending = " (it ends with a line break: use a plain or quoted value, not a '|' block)" \
                if value.endswith("\n") else ""
            message = f"{field_name(path)} {json.dumps(value)} is not valid{ending}: " \
                      f"expected {hint or 'text matching ' + str(schema.get('pattern'))}"
        else:
            message = f"{field_name(path)}: {error.message}"
        position = doc.position(path)
        return Diagnostic(path=doc.path, line=position.line, column=position.column, message=message,
                          rule=f"schema-{keyword}")


def _integer_paths(node: Any, root: dict[str, Any], path: SchemaPath, depth: int = 0) -> Iterator[SchemaPath]:
    """The paths under `node` (a schema, its local $refs followed) whose type is integer."""
    if not isinstance(node, dict) or depth > 32:
        return
    if node.get("type") == "integer":
        yield path
    reference = node.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/"):
        target: Any = root
        for part in reference[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        yield from _integer_paths(target, root, path, depth + 1)
    for name, child in node.get("properties", {}).items():
        yield from _integer_paths(child, root, path + (name,), depth + 1)
    yield from _integer_paths(node.get("items"), root, path + (None,), depth + 1)
    for keyword in ("allOf", "anyOf", "oneOf"):
        for child in node.get(keyword, ()):
            yield from _integer_paths(child, root, path, depth + 1)
    for keyword in ("then", "else"):
        yield from _integer_paths(node.get(keyword), root, path, depth + 1)


def _decimal_whole_numbers(integer_paths: list[SchemaPath], doc: SourceDocument) -> list[Diagnostic]:
    """Values where an integer is wanted that were written as decimals (`size: 832896.0`).

    JSON Schema counts 832896.0 as an integer (draft 2020-12, "type"), but the model and the served
    JSON would carry the float: the Memfault API gives sizes as integers, and C clients parse them so.
    """
    found = []
    for pattern in integer_paths:
        values: list[tuple[JsonPath, Any]] = [((), doc.data)]
        for part in pattern:
            if part is None:
                values = [(at + (index,), item) for at, value in values if isinstance(value, list)
                          for index, item in enumerate(value)]
            else:
                values = [(at + (part,), value[part]) for at, value in values
                          if isinstance(value, dict) and part in value]
        for at, value in values:
            if value.__class__ is float:
                written = doc.plain_text.get(at, repr(value))
                found.append(_diagnostic(doc, doc.position(at),
                                         f"{field_name(at)} must be a whole number, not the decimal {written}: "
                                         f"write {int(value)}", "schema-type"))
    return found


def _diagnostic(doc: SourceDocument, position: Any, message: str, rule: str) -> Diagnostic:
    return Diagnostic(path=doc.path, line=position.line, column=position.column, message=message, rule=rule)


def _diagnostics_for(error: ValidationError, doc: SourceDocument) -> list[Diagnostic]:
    path: JsonPath = tuple(error.absolute_path)
    name = field_name(path)
    value = error.instance
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    hint = schema.get("x-hint")

    if kind == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        results = []
        for key in sorted(set(value) - set(known)):
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            suggestion = f"; did you mean '{close[0]}'?" if close else f"; known fields: {', '.join(known)}"
            where = f" in {name}" if path else ""
            results.append(_diagnostic(doc, doc.key_position(path + (key,)),
                                       f"unknown field '{key}'{where}{suggestion}", "schema-unknown-field"))
        return results
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        where = f" in {name}" if path else ""
        return [_diagnostic(doc, doc.position(path), f"missing required field '{missing}'{where}",
                            "schema-required")]
    if kind == "type":
        expected = error.validator_value
        typed = doc.plain_text.get(path)
        if typed is not None and "string" in (expected if isinstance(expected, list) else [expected]):
            # A list item has no key to show: the fix is the quoted item itself.
            fix = f"\"{typed}\"" if path and isinstance(path[-1], int) else f"{path[-1] if path else name}: \"{typed}\""
            message = f"{name}: {typed} is read as {_describe(value)}, not text; quote it: {fix}"
        elif expected == "boolean" and isinstance(value, str):
            message = f"{name} must be true or false, not the text '{value}' (YAML 1.2 reads yes/no/on/off as text)"
        else:
            message = f"{name} must be {' or '.join(expected) if isinstance(expected, list) else expected}, " \
                      f"not {_describe(value)}"
        return [_diagnostic(doc, doc.position(path), message, "schema-type")]
    if kind == "pattern":
        expected = hint or f"text matching {error.validator_value}"
        return [_diagnostic(doc, doc.position(path), f"{name} '{value}' is not valid: expected {expected}",
                            "schema-pattern")]
    if kind == "enum":
        choices = ", ".join(json.dumps(choice) for choice in error.validator_value)
        return [_diagnostic(doc, doc.position(path), f"{name} {json.dumps(value)} is not one of: {choices}",
                            "schema-enum")]
    if kind == "not" and isinstance(error.validator_value, dict) and "required" in error.validator_value:
        results = []
        for key in error.validator_value["required"]:
            reason = f": {hint}" if hint else ""
            results.append(_diagnostic(doc, doc.key_position(path + (key,)),
                                       f"field '{key}' is not allowed here{reason}", "schema-not-allowed"))
        return results
    message = f"{name}: {error.message}"
    if hint:
        message += f" (expected {hint})"
    return [_diagnostic(doc, doc.position(path), message, f"schema-{kind}")]


@lru_cache(maxsize=1)
def default_schemas() -> SchemaSet:
    return SchemaSet()
