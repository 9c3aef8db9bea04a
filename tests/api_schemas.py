"""Which output schema (schemas/api/) every generated JSON document must satisfy.

Each output schema names the documents it covers in `x-documents`, a list of
regular expressions over paths relative to the site root. Every JSON file under
api/ must be covered by exactly one schema.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

API_SCHEMA_DIR = Path(__file__).parent.parent / "schemas" / "api"


@lru_cache(maxsize=1)
def _schemas() -> tuple[dict[str, Draft202012Validator], list[tuple[re.Pattern[str], str]]]:
    schemas = {path.name: json.loads(path.read_text()) for path in sorted(API_SCHEMA_DIR.glob("*.schema.json"))}
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values())
    validators = {}
    patterns = []
    for name, schema in schemas.items():
        Draft202012Validator.check_schema(schema)
        validators[name] = Draft202012Validator(schema, registry=registry)
        patterns += [(re.compile(pattern), name) for pattern in schema.get("x-documents", [])]
    return validators, patterns


def schema_names_for(relative_path: str) -> list[str]:
    return [name for pattern, name in _schemas()[1] if pattern.match(relative_path)]


def api_schema_errors(site: Path) -> list[str]:
    """Every problem of every JSON document under site/api/, as readable lines; [] when all conform."""
    validators = _schemas()[0]
    problems = []
    for path in sorted((site / "api").rglob("*.json")):
        relative = path.relative_to(site).as_posix()
        names = schema_names_for(relative)
        if len(names) != 1:
            problems.append(f"{relative}: covered by {len(names)} output schemas ({names}), expected exactly 1")
            continue
        document = json.loads(path.read_bytes())
        for error in validators[names[0]].iter_errors(document):
            problems.append(f"{relative}: {list(error.absolute_path)}: {error.message}")
    return problems
