"""Parsing and ordering of release versions.

Every comparison of versions in relreg (rules, orderings, the update decision)
goes through this module. A registry names its scheme in `registry.yaml`:

- `semver` (default): strict SemVer 2.0 precedence; build metadata is ignored
  for ordering and for uniqueness.
- `natural`: dot-separated numbers with an optional suffix (`11.0.0.6`,
  `2022.01.3`, `1.2.0rc1`), compared part by part numerically; a suffixed
  version sorts before the same numbers without a suffix, so release
  candidates come before the release. Trailing `.0` parts do not count, so
  `1.2` and `1.2.0` are the same version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import semver

SCHEME_NAMES = ("semver", "natural")

# A part of a sort key: numbers order before words, as SemVer prescribes for
# prerelease identifiers; natural suffixes follow the same convention.
KeyPart = tuple[int, int | str]


class VersionError(ValueError):
    """A version string that the registry's scheme cannot parse."""


@dataclass(frozen=True, slots=True)
class Version:
    text: str
    key: tuple  # total order; equal keys mean "the same version"
    is_prerelease: bool
    numbers: tuple[int, ...] = ()  # the numeric part (MAJOR, MINOR, PATCH; natural: without trailing zeros)

    def __lt__(self, other: "Version") -> bool:
        return self.key < other.key

    def __le__(self, other: "Version") -> bool:
        return self.key <= other.key

    def __gt__(self, other: "Version") -> bool:
        return self.key > other.key

    def __ge__(self, other: "Version") -> bool:
        return self.key >= other.key

    def same_as(self, other: "Version") -> bool:
        return self.key == other.key


class VersionScheme(Protocol):
    name: str

    def parse(self, text: str) -> Version: ...


def _identifier_key(identifier: str) -> KeyPart:
    return (0, int(identifier)) if identifier.isdigit() else (1, identifier)


# MAJOR.MINOR.PATCH without prerelease or build metadata, as SemVer 2.0 writes them (no leading zeros).
_PLAIN_SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\Z")


class SemVerScheme:
    name = "semver"

    # Versions are immutable and a registry names each one many times (delta_from, min_version, cohorts).
    @lru_cache(maxsize=1 << 16)
    def parse(self, text: str) -> Version:
        plain = _PLAIN_SEMVER.match(text)
        if plain:  # most versions: what semver gives them, without its cost (10,000 releases per run)
            numbers = (int(plain[1]), int(plain[2]), int(plain[3]))
            return Version(text=text, key=(*numbers, 1, ()), is_prerelease=False, numbers=numbers)
        try:
            parsed = semver.Version.parse(text)
        except (ValueError, TypeError):
            raise VersionError(
                f"'{text}' is not a SemVer 2.0 version (MAJOR.MINOR.PATCH, e.g. 1.4.2 or 2.0.0-rc.1); "
                "set version_scheme: natural in registry.yaml for other schemes") from None
        prerelease = tuple(_identifier_key(part) for part in parsed.prerelease.split(".")) \
            if parsed.prerelease else ()
        # A release without prerelease sorts after all of its prereleases.
        key = (parsed.major, parsed.minor, parsed.patch, 0 if prerelease else 1, prerelease)
        return Version(text=text, key=key, is_prerelease=bool(prerelease),
                       numbers=(parsed.major, parsed.minor, parsed.patch))


# \Z, not $: "$" also matches before a final newline, and "1.2\n" is no version (the C client agrees).
_NATURAL = re.compile(r"^(?P<numbers>[0-9]+(?:\.[0-9]+)*)(?:[-.+~_]?(?P<suffix>[A-Za-z][0-9A-Za-z.+-]*))?\Z")
_SUFFIX_PART = re.compile(r"[0-9]+|[A-Za-z]+")


class NaturalScheme:
    name = "natural"

    @lru_cache(maxsize=1 << 16)
    def parse(self, text: str) -> Version:
        match = _NATURAL.match(text)
        if not match:
            raise VersionError(
                f"'{text}' is not a natural version (dot-separated numbers with an optional suffix, "
                "e.g. 11.0.0.6, 2022.01.3 or 1.2.0rc1)")
        numbers = [int(part) for part in match["numbers"].split(".")]
        while len(numbers) > 1 and numbers[-1] == 0:
            numbers.pop()
        suffix = match["suffix"]
        suffix_key = tuple(_identifier_key(part) for part in _SUFFIX_PART.findall(suffix.lower())) \
            if suffix else ()
        key = (tuple(numbers), 0 if suffix else 1, suffix_key)
        return Version(text=text, key=key, is_prerelease=bool(suffix), numbers=tuple(numbers))


_SCHEMES: dict[str, VersionScheme] = {"semver": SemVerScheme(), "natural": NaturalScheme()}


def scheme_named(name: str) -> VersionScheme:
    try:
        return _SCHEMES[name]
    except KeyError:
        raise VersionError(f"unknown version scheme '{name}' (known: {', '.join(SCHEME_NAMES)})") from None
