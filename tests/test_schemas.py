"""The two schema validators: jsonschema-rs answers "valid?", jsonschema explains.

The fast path may only skip jsonschema when jsonschema would find nothing, so
every registry file the tests know of, valid or not, must get the same verdict
from both, except where Python's regex `$` is laxer than JSON Schema's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import EXAMPLE_REGISTRY, FIXTURES

from relreg.registry.schemas import default_schemas
from relreg.registry.yamlload import YamlLoadError, parse_yaml

KIND_BY_FOLDER = {"releases": "release", "hardware": "hardware", "cohorts": "cohort"}
ROOT = Path(__file__).parent.parent


def _loadable(path: Path) -> bool:
    try:
        parse_yaml(path.read_bytes(), str(path))
    except YamlLoadError:
        return False  # the loader traps never reach the schemas
    return True


def _registry_files() -> list[tuple[str, Path]]:
    found = []
    for top in (FIXTURES, EXAMPLE_REGISTRY, ROOT / "generator" / "relreg" / "templates_init"):
        for path in sorted(top.rglob("*.yaml")):
            kind = "registry" if path.name == "registry.yaml" else KIND_BY_FOLDER.get(path.parent.name)
            if kind is not None and _loadable(path):
                found.append((kind, path))
    return found


FILES = _registry_files()


def test_the_corpus_holds_valid_and_invalid_files_of_every_kind() -> None:
    schemas = default_schemas()
    verdicts = set()
    for kind, path in FILES:
        document = parse_yaml(path.read_bytes(), str(path))
        verdicts.add((kind, not list(schemas.validators[kind].iter_errors(document.data))))
    assert {("release", True), ("release", False), ("hardware", True), ("cohort", True),
            ("cohort", False), ("registry", True), ("registry", False)} <= verdicts


@pytest.mark.parametrize(("kind", "path"), FILES, ids=[str(p.relative_to(ROOT)) for _, p in FILES])
def test_whatever_jsonschema_rejects_the_fast_validator_rejects(kind: str, path: Path) -> None:
    document = parse_yaml(path.read_bytes(), str(path))
    schemas = default_schemas()
    python_errors = list(schemas.validators[kind].iter_errors(document.data))
    fast_valid = schemas.fast_validators[kind].is_valid(document.data)
    if python_errors:
        assert not fast_valid, [error.message for error in python_errors]
    found = schemas.check(kind, document)
    if fast_valid:  # only what JSON Schema cannot say: a whole number written as a decimal (size: 1200.0)
        assert all(d.rule == "schema-type" and "must be a whole number" in d.message for d in found), found
    else:
        assert found


def test_the_integer_fields_are_found_in_the_schemas() -> None:
    """A decimal is refused wherever a schema says integer, found by walking the schema: adding an
    integer field to a schema needs no change elsewhere."""
    schemas = default_schemas()
    assert schemas.integer_paths("release") == [("artifacts", None, "size")]
    assert schemas.integer_paths("cohort") == schemas.integer_paths("hardware") == []


def test_a_value_ending_in_a_line_break_is_refused_with_the_reason(base_registry: Path) -> None:
    release = base_registry / "releases" / "1.1.0.yaml"
    text = release.read_text()
    sha = next(line for line in text.splitlines() if "sha256:" in line)
    indent = sha[: len(sha) - len(sha.lstrip())]
    value = sha.split("sha256:")[1].strip()
    release.write_text(text.replace(sha, f"{indent}sha256: |\n{indent}  {value}"))
    document = parse_yaml(release.read_bytes(), "releases/1.1.0.yaml")

    problems = default_schemas().check("release", document)

    assert [p.rule for p in problems] == ["schema-pattern"]
    assert "ends with a line break" in problems[0].message
    assert problems[0].line == text.splitlines().index(sha) + 1
