"""The registry's typed, immutable model.

Objects are built from data that already passed schema validation
(`from_dict`), so constructors only apply defaults and derive values; the
cross-file rules live in `rules.py`. Nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urljoin

from relreg.registry.versions import Version, VersionScheme

# Segments of characters that urljoin copies as they are; no '.', '..' or empty segment.
_PLAIN_PATH = re.compile(r"(?!\.\.?(?:/|$))[A-Za-z0-9._~%+-]+(?:/(?!\.\.?(?:/|$))[A-Za-z0-9._~%+-]+)*\Z")


@dataclass(frozen=True)
class RegistryConfig:
    name: str
    site_url: str
    artifact_base_url: str
    description: str = ""
    repository_url: str | None = None
    version_scheme: str = "semver"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RegistryConfig":
        return cls(
            name=data["name"],
            site_url=data["site_url"],
            artifact_base_url=data["artifact_base_url"],
            description=data.get("description", ""),
            repository_url=data.get("repository_url"),
            version_scheme=data.get("version_scheme", "semver"),
        )

    def commit_url(self, revision: str) -> str | None:
        return self.repository_url.replace("{revision}", revision) if self.repository_url else None


@dataclass(frozen=True)
class Artifact:
    hardware_version: str
    build_id: str
    url: str  # as written: absolute, or relative to the artifact base URL
    size: int
    sha256: str
    software_type: str | None = None
    type: str = "full"
    delta_from: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Artifact":
        return cls(
            hardware_version=data["hardware_version"],
            build_id=data["build_id"],
            url=data["url"],
            size=data["size"],
            sha256=data["sha256"],
            software_type=data.get("software_type"),
            type=data.get("type", "full"),
            delta_from=data.get("delta_from"),
        )

    @property
    def is_delta(self) -> bool:
        return self.type == "delta"

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def absolute_url(self, artifact_base_url: str) -> str:
        url = self.url
        if url.startswith("https://"):
            return url
        # What urljoin gives for plain relative paths, without its cost, which
        # shows on registries with 100,000 artifacts.
        if artifact_base_url.endswith("/") and _PLAIN_PATH.match(url):
            return artifact_base_url + url
        return urljoin(artifact_base_url, url)


@dataclass(frozen=True)
class Release:
    version: str
    parsed_version: Version = field(compare=False, repr=False)
    artifacts: tuple[Artifact, ...]
    source_path: str = field(compare=False)
    min_version: str | None = None
    revision: str | None = None
    notes: str = ""
    notes_format: str = "markdown"
    extra_info: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    must_pass_through: bool = False
    yanked: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], scheme: VersionScheme, source_path: str) -> "Release":
        return cls(
            version=data["version"],
            parsed_version=scheme.parse(data["version"]),
            artifacts=tuple(Artifact.from_dict(item) for item in data["artifacts"]),
            source_path=source_path,
            min_version=data.get("min_version"),
            revision=data.get("revision"),
            notes=data.get("notes") or "",
            notes_format=data.get("notes_format", "markdown"),
            extra_info=data.get("extra_info") or {},
            must_pass_through=data.get("must_pass_through", False),
            yanked=data.get("yanked"),
        )

    @property
    def is_yanked(self) -> bool:
        return self.yanked is not None

    @cached_property
    def hardware_versions(self) -> tuple[str, ...]:
        return tuple(sorted({artifact.hardware_version for artifact in self.artifacts}))


@dataclass(frozen=True)
class HardwareVersion:
    name: str
    source_path: str = field(compare=False)
    description: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], source_path: str) -> "HardwareVersion":
        return cls(name=data["name"], source_path=source_path, description=data.get("description", ""))


@dataclass(frozen=True)
class Activation:
    """A release active in a cohort, for a share of its devices."""

    version: str
    rollout_percent: float = 100.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Activation":
        return cls(version=data["version"], rollout_percent=float(data.get("rollout_percent", 100)))


@dataclass(frozen=True)
class Cohort:
    slug: str
    name: str
    source_path: str = field(compare=False)
    description: str = ""
    hardware_versions: tuple[str, ...] = ()
    releases: tuple[Activation, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any], source_path: str) -> "Cohort":
        return cls(
            slug=data["slug"],
            name=data["name"],
            source_path=source_path,
            description=data.get("description", ""),
            hardware_versions=tuple(data.get("hardware_versions", ())),
            releases=tuple(Activation.from_dict(item) for item in data.get("releases", ())),
        )


@dataclass(frozen=True)
class Registry:
    config: RegistryConfig
    scheme: VersionScheme = field(compare=False, repr=False)
    releases: tuple[Release, ...]  # sorted by version, lowest first
    hardware: tuple[HardwareVersion, ...]  # sorted by name
    cohorts: tuple[Cohort, ...]  # sorted by slug

    def release(self, version: str) -> Release | None:
        return self._releases_by_version.get(version)

    @property
    def _releases_by_version(self) -> dict[str, Release]:
        cached = self.__dict__.get("_by_version")
        if cached is None:
            cached = {release.version: release for release in self.releases}
            object.__setattr__(self, "_by_version", cached)
        return cached
