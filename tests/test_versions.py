"""Version schemes: every ordering in relreg goes through them."""

from __future__ import annotations

import pytest

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
