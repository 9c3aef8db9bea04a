"""Version orderings that surprise people: warnings (not errors) from `relreg validate`, with the fix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import run_relreg
from hypothesis import given, settings
from hypothesis import strategies as st

from relreg.registry.versions import scheme_named

RELEASE = """version: "{version}"
artifacts:
  - hardware_version: evt1
    build_id: "{build_id}"
    url: "{version}/evt1.bin"
    size: 1500
    sha256: "{sha}"
"""


def _warnings(registry: Path, versions: list[str], scheme: str = "semver") -> list[dict]:
    if scheme != "semver":
        config = registry / "registry.yaml"
        config.write_text(config.read_text() + f"version_scheme: {scheme}\n")
    for index, version in enumerate(versions):
        digit = "0123456789abcdef"[index]
        (registry / "releases" / f"{version}.yaml").write_text(
            RELEASE.format(version=version, build_id=digit * 40, sha=digit * 64))
    result = run_relreg("validate", "--registry", registry, "--format", "json")
    assert result.exit_code == 0, result.output
    return [d for d in json.loads(result.output)["diagnostics"] if d["rule"] == "version-order"]


# (scheme, version, part of the warning, or None for no warning)
CASES = [
    ("semver", "2.0.0-rc10", "write 2.0.0-rc.10 so that the number compares as a number"),
    ("semver", "2.0.0-rc1", "write 2.0.0-rc.1 so"),
    ("semver", "2.0.0-beta2.1", "write 2.0.0-beta.2.1 so"),
    ("semver", "2.0.0-rc10+build.5", "write 2.0.0-rc.10+build.5 so"),
    ("semver", "2.0.0-rc.01a", "write 2.0.0-rc.1.a so"),
    ("semver", "2.0.0-1rc", "write 2.0.0-1.rc so"),
    ("semver", "1.2.3-hotfix1", "reads like a fix after 1.2.3, but a SemVer prerelease sorts before its release: "
                                "1.2.3-hotfix1 < 1.2.3"),
    ("semver", "1.2.3-patch.1", "Release it as 1.2.4"),
    ("semver", "1.2.3-p1", "reads like a fix after 1.2.3"),
    ("semver", "1.2.3-post.2", "reads like a fix after 1.2.3"),
    ("semver", "1.2.3-FIX", "reads like a fix after 1.2.3"),
    ("semver", "2.0.0-rc.10", None),
    ("semver", "2.0.0-alpha", None),
    ("semver", "2.0.0-preview.1", None),
    ("semver", "2.0.0-pre.3", None),
    ("semver", "2.0.0+build7", None),
    ("semver", "2.0.0", None),
    ("natural", "2.3.1-hotfix1", "under version_scheme natural a suffixed version sorts before the same numbers "
                                 "without one: 2.3.1-hotfix1 < 2.3.1, so devices on 2.3.1 are never offered it"),
    ("natural", "2.3.1-hotfix1", "Number it after its base instead: 2.3.1.1"),
    ("natural", "2.3.1.post1", "reads like a fix after 2.3.1"),
    ("natural", "2.3.1p1", "reads like a fix after 2.3.1"),
    ("natural", "2.3.1-fix", "reads like a fix after 2.3.1"),
    ("natural", "2.3.1+patch2", "reads like a fix after 2.3.1"),
    ("natural", "2.3.1rc10", None),  # natural compares rc10 and rc9 as numbers
    ("natural", "2.3.1-pre1", None),
    ("natural", "2.3.1-beta", None),
    ("natural", "11.0.0.6", None),
]


@pytest.mark.parametrize("scheme, version, words", CASES)
def test_version_order_warning(base_registry: Path, scheme: str, version: str, words: str | None) -> None:
    found = _warnings(base_registry, [version], scheme)
    if words is None:
        assert found == []
        return
    assert [(d["path"].rsplit("/", 2)[-2:], d["line"], d["column"], d["severity"]) for d in found] == \
        [(["releases", f"{version}.yaml"], 1, 10, "warning")]
    assert words in found[0]["message"]


@settings(max_examples=60, deadline=None)
@given(st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.integers(0, 999), st.integers(0, 999))
def test_the_suggested_prerelease_orders_numbers_as_numbers(letters: str, low: int, high: int) -> None:
    """Whatever the letters and numbers, `letters.N` (the fix) orders by N, and keeps the release's numbers."""
    from relreg.registry.rules import _split_identifier

    low, high = sorted((low, high))
    scheme = scheme_named("semver")
    fixed_low = scheme.parse(f"1.2.3-{_split_identifier(f'{letters}{low}')}")
    fixed_high = scheme.parse(f"1.2.3-{_split_identifier(f'{letters}{high}')}")
    assert fixed_low.numbers == fixed_high.numbers == (1, 2, 3)
    assert (fixed_low < fixed_high) == (low < high)
    assert fixed_low.same_as(fixed_high) == (low == high)
    assert re.fullmatch(r"[a-z]+\.[0-9]+", _split_identifier(f"{letters}{low}"))


_SEMVER_TEXT = st.builds(
    lambda numbers, pre, build: ".".join(map(str, numbers)) + (f"-{pre}" if pre else "") + (f"+{build}" if build else ""),
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
    st.one_of(st.none(), st.from_regex(r"(rc|beta|hotfix)(\.?(0|[1-9][0-9]?))?", fullmatch=True)),
    st.one_of(st.none(), st.from_regex(r"b[0-9]", fullmatch=True)))


@settings(max_examples=200, deadline=None)
@given(st.lists(_SEMVER_TEXT, min_size=1, max_size=12, unique=True))
def test_a_scheme_change_reports_an_order_change_exactly_when_some_pair_inverts(versions: list[str]) -> None:
    """Oracle: every pair compared under both schemes; the one-pass report is empty exactly when no pair inverts."""
    from relreg.release.policy import _order_changes

    old, new = scheme_named("semver"), scheme_named("natural")
    inverted = any(old.parse(a) < old.parse(b) and not new.parse(a) < new.parse(b)
                   for a in versions for b in versions)
    assert bool(_order_changes(versions, old, new)) == inverted
