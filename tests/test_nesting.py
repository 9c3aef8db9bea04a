"""Data nested deeper than yamlload.MAX_DEPTH is refused at its line, by either reader, before any
JSON encoder or reader can overflow its recursion on it; data within the limit builds."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import BASE_REGISTRY, run_relreg
from git_helpers import commit_all, init_repo
from hypothesis import given
from hypothesis import strategies as st

from relreg.registry.validate import quick_check_file
from relreg.registry.yamlload import MAX_DEPTH, nested_within

BASE_RELEASE = (BASE_REGISTRY / "releases" / "1.0.0.yaml").read_text()


def _flow(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def _block(depth: int) -> str:
    lines = []
    for level in range(depth):
        lines.append("  " * (level + 2) + f"k{level}:")
    return "\n" + "\n".join(lines) + " 1"


def _release_with_extra_info(value: str) -> str:
    return BASE_RELEASE + f"extra_info:\n  deep: {value}\n"


# extra_info is level 2 (the file's mapping is level 1) and `deep` adds one: depth d of `deep`'s
# value puts its innermost list or mapping at level 2 + d.
WITHIN = MAX_DEPTH - 2


@pytest.mark.parametrize("name, value, refused", [
    ("flow within", _flow(WITHIN), False),
    ("flow one over", _flow(WITHIN + 1), True),
    ("flow 500", _flow(500), True),
    ("flow 5000", _flow(5000), True),
    ("block within", _block(WITHIN), False),
    ("block one over", _block(WITHIN + 1), True),
    ("block 900", _block(900), True),
])
def test_nesting_is_refused_at_its_line_or_built(tmp_path: Path, name: str, value: str, refused: bool) -> None:
    repo = init_repo(tmp_path / "repo")
    registry = repo / "registry"
    shutil.copytree(BASE_REGISTRY, registry)
    (registry / "releases" / "1.0.0.yaml").write_text(_release_with_extra_info(value))
    commit_all(repo, "deep", "2024-01-01T10:00:00+00:00")
    validated = run_relreg("validate", "--registry", registry)
    built = run_relreg("build", "--registry", registry, "--out", tmp_path / "out")
    for result in (validated, built):
        assert "Traceback" not in result.output and not isinstance(result.exception, RecursionError), name
    if refused:
        assert validated.exit_code == 1 and built.exit_code == 1, name
        where = re.search(r"releases/1\.0\.0\.yaml:(\d+):(\d+): error", validated.output)
        assert where and int(where[1]) >= 17, validated.output  # at the nesting, not at the top of the file
        # Past 1,000 levels libyaml's own limit speaks first, at the same place.
        assert (f"nested more than {MAX_DEPTH} levels deep" in validated.output and "[yaml-depth]" in validated.output) \
            or "exceeded maximum nesting depth" in validated.output, validated.output
        assert not (tmp_path / "out").exists()
    else:
        assert validated.exit_code == 0, validated.output
        assert built.exit_code == 0, built.output


def test_both_readers_refuse_alike() -> None:
    """The fast reader hands data beyond the limit to the careful one, which refuses it."""
    for value in (_flow(WITHIN + 1), _block(WITHIN + 1)):
        data, problems = quick_check_file("release", "releases/1.0.0.yaml", _release_with_extra_info(value).encode())
        assert data is None and [p.rule for p in problems] == ["yaml-depth"]
        assert problems[0].line >= 17


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


_json = st.recursive(st.one_of(st.none(), st.integers(), st.text(max_size=3)),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
                     max_leaves=20)


@given(value=_json, levels=st.integers(min_value=0, max_value=8))
def test_nested_within_is_depth_at_most(value: Any, levels: int) -> None:
    assert nested_within(value, levels) == (_depth(value) <= levels)
