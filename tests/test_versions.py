"""Version schemes: every ordering in relreg goes through them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relreg.registry.versions import VersionError, scheme_named

SEMVER_ASCENDING = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
                    "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"]
NATURAL_ASCENDING = ["1.2", "1.2.0.1", "1.2.1rc1", "1.2.1rc2", "1.2.1", "11.0.0.6", "2022.01.3", "2022.1.10"]


@pytest.mark.parametrize("name, ascending", [("semver", SEMVER_ASCENDING), ("natural", NATURAL_ASCENDING)])
def test_scheme_orders_versions(name: str, ascending: list[str]) -> None:
    scheme = scheme_named(name)
    shuffled = list(reversed(ascending))
    assert sorted(shuffled, key=lambda text: scheme.parse(text).key) == ascending


def test_semver_ignores_build_metadata_for_identity() -> None:
    scheme = scheme_named("semver")
    assert scheme.parse("1.2.3+build.5").same_as(scheme.parse("1.2.3"))


def test_natural_trailing_zeros_are_the_same_version() -> None:
    scheme = scheme_named("natural")
    assert scheme.parse("1.2").same_as(scheme.parse("1.2.0"))
    assert scheme.parse("1.2.0rc1").is_prerelease


@pytest.mark.parametrize("name, text", [("semver", "1.2"), ("semver", "v1.2.3"), ("semver", "01.2.3"),
                                        ("natural", "release-1"), ("natural", "1..2"),
                                        ("natural", "1.2\n"), ("semver", "1.2.3\n")])
def test_invalid_versions_are_refused(name: str, text: str) -> None:
    with pytest.raises(VersionError):
        scheme_named(name).parse(text)


def _semver_library_reading(text: str):
    """What SemVerScheme.parse gave before its fast path for plain MAJOR.MINOR.PATCH: the semver library's reading."""
    import semver

    from relreg.registry.versions import Version, _identifier_key

    parsed = semver.Version.parse(text)
    prerelease = tuple(_identifier_key(part) for part in parsed.prerelease.split(".")) if parsed.prerelease else ()
    return Version(text=text, key=(parsed.major, parsed.minor, parsed.patch, 0 if prerelease else 1, prerelease),
                   is_prerelease=bool(prerelease), numbers=(parsed.major, parsed.minor, parsed.patch))


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(
    st.builds(lambda a, b, c: f"{a}.{b}.{c}", *[st.integers(0, 10**20)] * 3),
    st.from_regex(r"[0-9٠-٩]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(-[a-z0-9.]{1,4})?(\+[a-z0-9]{1,3})?\n?", fullmatch=True)))
def test_semver_fast_path_reads_as_the_semver_library(text: str) -> None:
    from relreg.registry.versions import SemVerScheme, VersionError

    try:
        expected = _semver_library_reading(text)
    except (ValueError, TypeError):
        expected = None
    try:
        got = SemVerScheme().parse(text)
    except VersionError:
        got = None
    assert got == expected and (got is None or got.numbers == expected.numbers)  # type: ignore[union-attr]
