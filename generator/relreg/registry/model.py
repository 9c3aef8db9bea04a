"""The registry's typed, immutable model.

Objects are built from data that already passed schema validation
(`from_dict`), so constructors only apply defaults and derive values; the
cross-file rules live in `rules.py`. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from itertools import repeat
from typing import Any
from urllib.parse import urljoin

from relreg.registry.versions import Version, VersionScheme

_new_object = object.__new__
_set_attribute = object.__setattr__

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
        """The artifact of one schema-valid `artifacts` item, which becomes the artifact's own: the
        caller must not change it afterwards."""
        return _adopt(cls, [data])[0]

    @property
    def is_delta(self) -> bool:
        return self.type == "delta"

    @property
    def filename(self) -> str:
        """The last segment of the URL's path, without a query (`https://cdn/fw/a.bin?v=2` -> `a.bin`)."""
        return self.url.partition("?")[0].rstrip("/").rsplit("/", 1)[-1]

    def absolute_url(self, artifact_base_url: str) -> str:
        url = self.url
        if url.startswith("https://"):
            return url
        # What urljoin gives for plain relative paths, without its cost, which
        # shows on registries with 100,000 artifacts.
        if artifact_base_url.endswith("/") and _PLAIN_PATH.match(url):
            return artifact_base_url + url
        return urljoin(artifact_base_url, url)


def _adopt(cls: type, dicts: list[dict[str, Any]]) -> tuple[Any, ...]:
    """Objects of the frozen dataclass `cls` whose attributes are `dicts`, one each, taken as they are.

    The same objects as cls(**item) (tests/test_model.py checks it), but for a field left out of an
    item, which the class attribute holding its default answers (fields with a default_factory have
    none: the caller sets those). Made in C, without the dataclass __init__ and its object.__setattr__
    per field, nor a copy of each dict: building 100,000 artifacts is most of building a large model.
    The schemas allow no key that is not a field."""
    made = tuple(map(_new_object, repeat(cls, len(dicts))))
    deque(map(_set_attribute, made, repeat("__dict__"), dicts), maxlen=0)
    return made


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
        """The release of one schema-valid release file's data, whose `artifacts` items become the
        artifacts' own (see `_adopt`): the caller must not change them afterwards.

        Raises VersionError when `version` does not parse under `scheme`."""
        fields = dict(data)  # `data` itself stays as it was: validate.py reads what the rules read from it
        fields["parsed_version"] = scheme.parse(data["version"])
        fields["artifacts"] = _adopt(Artifact, data["artifacts"])
        fields["source_path"] = source_path
        if "extra_info" not in fields:
            fields["extra_info"] = {}
        release = _new_object(cls)
        _set_attribute(release, "__dict__", fields)
        return release

    @property
    def is_yanked(self) -> bool:
        return self.yanked is not None

    @cached_property
    def hardware_versions(self) -> tuple[str, ...]:
        return tuple(sorted({artifact.hardware_version for artifact in self.artifacts}))

    @cached_property
    def image_slots(self) -> frozenset[tuple[str, str | None]]:
        """(hardware version, software type) of every artifact, full or delta: see `has_image`."""
        return frozenset((a.hardware_version, a.software_type) for a in self.artifacts)

    def has_image(self, hardware_version: str, software_type: str | None) -> bool:
        """Whether an artifact (full or delta) exists for exactly this hardware version and software type."""
        return (hardware_version, software_type) in self.image_slots

    def image_software_type(self, hardware_version: str, software_type: str | None,
                            default_software_type: str | None = None) -> str | None:
        """The software type of the images a device reporting `software_type` takes from this release.

        A device that reports one takes exactly that type. A device that
        reports none takes the images without a software type; when the
        release has none for its hardware, it takes those of the hardware's
        `default_software_type` (if the release has them). The caller checks
        `has_image` on the result: a release may have nothing for the device.
        """
        if software_type is not None or default_software_type is None:
            return software_type
        if self.has_image(hardware_version, None):
            return None
        return default_software_type if self.has_image(hardware_version, default_software_type) else None


@dataclass(frozen=True)
class HardwareVersion:
    """One hardware version (board revision).

    `default_software_type`: the software type whose image a device of this
    hardware that reports none is offered, for releases without an image
    that has no software type (see docs/devices.md, "Devices without a
    software type"). None: such devices see only images without a software type.
    """

    name: str
    source_path: str = field(compare=False)
    description: str = ""
    default_software_type: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], source_path: str) -> "HardwareVersion":
        return cls(name=data["name"], source_path=source_path, description=data.get("description", ""),
                   default_software_type=data.get("default_software_type"))


@dataclass(frozen=True)
class Activation:
    """A release active in a cohort, for a share of its devices.

    `hardware_versions`: the hardware versions it is deployed to, as written;
    None (the field left out) means all of the cohort's hardware. The
    cohort's other hardware versions are *held back*: their devices keep
    seeing only the other releases deployed to them.
    """

    version: str
    rollout_percent: float = 100.0
    hardware_versions: tuple[str, ...] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Activation":
        names = data.get("hardware_versions")
        return cls(version=data["version"], rollout_percent=float(data.get("rollout_percent", 100)),
                   hardware_versions=tuple(names) if names is not None else None)

    def deploys_to(self, hardware_version: str) -> bool:
        """Whether devices of this hardware version are offered the release (when the cohort has them)."""
        return self.hardware_versions is None or hardware_version in self.hardware_versions

    def held_back(self, cohort_hardware: "tuple[str, ...] | list[str]") -> tuple[str, ...]:
        """The hardware versions of `cohort_hardware` this activation does not deploy to, in that order."""
        return tuple(name for name in cohort_hardware if not self.deploys_to(name))


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

    def deployed_to(self, hardware_version: str) -> tuple[Activation, ...]:
        """The activations whose release is deployed to devices of this hardware version."""
        return tuple(a for a in self.releases if a.deploys_to(hardware_version))


@dataclass(frozen=True)
class Registry:
    config: RegistryConfig
    scheme: VersionScheme = field(compare=False, repr=False)
    releases: tuple[Release, ...]  # sorted by version, lowest first
    hardware: tuple[HardwareVersion, ...]  # sorted by name
    cohorts: tuple[Cohort, ...]  # sorted by slug

    def release(self, version: str) -> Release | None:
        """The release of that version, or None. (Rules call this ~100,000 times: one lookup once the map is made.)"""
        by_version = self.__dict__.get("_by_version")
        return (by_version if by_version is not None else self.releases_by_version).get(version)

    @property
    def releases_by_version(self) -> dict[str, Release]:
        """The releases by version (made on first use, then kept: not to be changed). Two releases of the
        same version are an error (rules.versions_unique); the map then holds the last by version order."""
        cached = self.__dict__.get("_by_version")
        if cached is None:
            cached = {release.version: release for release in self.releases}
            object.__setattr__(self, "_by_version", cached)
        return cached
