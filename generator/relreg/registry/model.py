"""The registry's typed, immutable model.

Objects are built from data that already passed schema validation
(`from_dict`, or a release's compact form, `from_compact`), so constructors only
apply defaults and derive values; the cross-file rules live in `rules.py`.
Nothing here does I/O.

A registry of 100,000 releases holds a million artifacts, and the build must fit
1 GiB: releases and their artifacts are compact (slots, tuples, digests as bytes,
shared names, long notes compressed) while their attributes read as plain values.
"""

from __future__ import annotations

import re
import sys
import zlib
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any
from urllib.parse import urljoin

from relreg.registry.versions import Version, VersionScheme

_new_object = object.__new__

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


# Artifact fields, in the order an Artifact (a tuple) holds them.
ARTIFACT_FIELDS = ("hardware_version", "build_id", "url", "size", "sha256", "software_type", "type", "delta_from")


def _digest_stored(text: str) -> bytes | str:
    """A digest as the model holds it: lowercase hex of even length as its bytes (half the size, a third
    less memory), anything else as it is. `_digest_text` gives the text back."""
    if len(text) % 2 == 0:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            return text
        if raw.hex() == text:  # not upper case, no spaces (which fromhex skips)
            return raw
    return text


def _digest_text(stored: bytes | str) -> str:
    return stored.hex() if stored.__class__ is bytes else stored  # type: ignore[union-attr,return-value]


def _interned(text: str | None) -> str | None:
    return text if text is None else sys.intern(text)


class Artifact(tuple):
    """One artifact of a release: `hardware_version`, `build_id`, `url` (as written: absolute, or relative
    to the artifact base URL), `size` (bytes), `sha256`, `software_type`, `type` ("full" or "delta"),
    `delta_from` (a version, for a delta).

    A tuple of its fields in the order of ARTIFACT_FIELDS, with the two digests held as bytes when they
    are lowercase hex (`build_id` and `sha256` give the text) and the names shared (interned): a registry
    of 100,000 releases has a million artifacts, and as frozen dataclasses (a dict each) they were two
    thirds of the model's memory. Made from the compact form (`compact_release`) in C, without a call per
    artifact. Equal, hashed, pickled and shown as the frozen dataclass it replaces."""

    __slots__ = ()

    def __new__(cls, hardware_version: str, build_id: str, url: str, size: int, sha256: str,
                software_type: str | None = None, type: str = "full", delta_from: str | None = None) -> "Artifact":
        return _tuple_new(cls, _compact_artifact(hardware_version, build_id, url, size, sha256, software_type,
                                                 type, delta_from))

    hardware_version: str = property(itemgetter(0))  # type: ignore[assignment]
    url: str = property(itemgetter(2))  # type: ignore[assignment]
    size: int = property(itemgetter(3))  # type: ignore[assignment]
    software_type: str | None = property(itemgetter(5))  # type: ignore[assignment]
    type: str = property(itemgetter(6))  # type: ignore[assignment]
    delta_from: str | None = property(itemgetter(7))  # type: ignore[assignment]

    @property
    def build_id(self) -> str:
        return _digest_text(self[1])

    # Equal for two artifacts exactly when their build ids are (bytes only for lowercase hex, which is
    # never held as text), without making the text: for comparing a million of them.
    build_id_key: bytes | str = property(itemgetter(1))  # type: ignore[assignment]

    @property
    def sha256(self) -> str:
        return _digest_text(self[4])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Artifact":
        """The artifact of one schema-valid `artifacts` item."""
        return cls(**data)

    def __getnewargs__(self) -> tuple[Any, ...]:  # pickle and copy: the fields as given
        return tuple(getattr(self, name) for name in ARTIFACT_FIELDS)

    def __repr__(self) -> str:
        return "Artifact(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in ARTIFACT_FIELDS) + ")"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return tuple.__eq__(self, other)  # type: ignore[arg-type]

    def __ne__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return tuple.__ne__(self, other)  # type: ignore[arg-type]

    __hash__ = tuple.__hash__

    @property
    def is_delta(self) -> bool:
        return self[6] == "delta"

    @property
    def filename(self) -> str:
        """The last segment of the URL's path, without a query (`https://cdn/fw/a.bin?v=2` -> `a.bin`)."""
        return self[2].partition("?")[0].rstrip("/").rsplit("/", 1)[-1]

    def absolute_url(self, artifact_base_url: str) -> str:
        url = self[2]
        if url.startswith("https://"):
            return url
        # What urljoin gives for plain relative paths, without its cost, which
        # shows on registries with 100,000 artifacts.
        if artifact_base_url.endswith("/") and _PLAIN_PATH.match(url):
            return artifact_base_url + url
        return urljoin(artifact_base_url, url)


@dataclass(frozen=True)
class _ArtifactFields:
    """The fields of an Artifact as a dataclass declares them: lent to Artifact, so that dataclasses.fields,
    replace and asdict treat it as the frozen dataclass it was."""

    hardware_version: str
    build_id: str
    url: str
    size: int
    sha256: str
    software_type: str | None = None
    type: str = "full"
    delta_from: str | None = None


Artifact.__dataclass_fields__ = _ArtifactFields.__dataclass_fields__  # type: ignore[attr-defined]
Artifact.__dataclass_params__ = _ArtifactFields.__dataclass_params__  # type: ignore[attr-defined]
_tuple_new = tuple.__new__
# The hardware versions and image slots of releases, one object for each value: most releases of a registry
# have the same, and a frozenset of five slots is 700 bytes (100 MB over 100,000 releases).
_SHARED: dict[Any, Any] = {}


def _compact_artifact(hardware_version: str, build_id: str, url: str, size: int, sha256: str,
                      software_type: str | None = None, type: str = "full", delta_from: str | None = None
                      ) -> tuple[Any, ...]:
    return (sys.intern(hardware_version), _digest_stored(build_id), url, size, _digest_stored(sha256),
            _interned(software_type), sys.intern(type), _interned(delta_from))


# The fields of a release file, in the order its compact form holds them, with their defaults (for a
# field left out; extra_info's is {}); the artifacts come after them.
RELEASE_FIELDS: tuple[tuple[str, Any], ...] = (
    ("version", None), ("min_version", None), ("revision", None), ("notes", ""), ("notes_format", "markdown"),
    ("extra_info", None), ("must_pass_through", False), ("yanked", None))
_INTERNED_FIELDS = frozenset({"version", "min_version", "notes_format"})


# Notes of at least this many characters are held compressed (see _notes_stored).
COMPRESSED_NOTES = 256


def _notes_stored(text: str) -> str | bytes:
    """Notes as a release holds them: long ones zlib-compressed when that is smaller (a tenth of the
    benchmark's repetitive notes, a half of ordinary prose), read back by `Release.notes` (a few
    microseconds, once per build: they are needed only to render them)."""
    if text.__class__ is not str or len(text) < COMPRESSED_NOTES:
        return text
    # A 4 KiB window and a small hash table: a fifth of zlib.compress's time on notes of a few KiB (it sets
    # up 256 KiB of state for each), for about as many bytes. zlib.decompress reads any window size.
    packer = zlib.compressobj(1, zlib.DEFLATED, 12, 4)
    packed = packer.compress(text.encode("utf-8", "surrogatepass")) + packer.flush()
    return packed if len(packed) < len(text) else text


def _notes_text(stored: str | bytes) -> str:
    return stored if stored.__class__ is not bytes else zlib.decompress(stored).decode("utf-8", "surrogatepass")  # type: ignore[arg-type,return-value]


def compact_release(data: dict[str, Any]) -> tuple[Any, ...]:
    """The compact form of one schema-valid release file's data: a tuple of the RELEASE_FIELDS values
    (defaults for those left out), then a tuple of the artifacts, each a tuple of ARTIFACT_FIELDS values with
    the digests as bytes where they are lowercase hex (see Artifact), and long notes compressed (see
    _notes_stored).

    Made of what marshal writes, names and versions interned (marshal keeps that, so a loaded registry
    holds each once): the work cache keeps this form, and `Release.from_compact` makes a release of it
    with no call per artifact. Equal data give equal forms; data that make different releases give
    different forms. `data` is not changed."""
    get = data.get
    fields = [_interned(get(name, default)) if name in _INTERNED_FIELDS else get(name, default)
              for name, default in RELEASE_FIELDS]
    if fields[5] is None:
        fields[5] = {}
    elif fields[5]:  # its names are shared by most releases
        fields[5] = {sys.intern(name): value for name, value in fields[5].items()}
    fields[3] = _notes_stored(fields[3])
    fields.append(_compact_artifacts(data["artifacts"]))
    return tuple(fields)


def _compact_artifacts(items: list[dict[str, Any]]) -> tuple[tuple[Any, ...], ...]:
    """`_compact_artifact` of each artifact item, without a call per item or digest: a third of the time,
    on the path of every release of a cold validation."""
    intern, fromhex = sys.intern, bytes.fromhex
    compact = []
    try:
        for item in items:
            get = item.get
            build_id, sha256 = item["build_id"], item["sha256"]
            build_id_stored = build_id if len(build_id) & 1 else fromhex(build_id)
            sha256_stored = sha256 if len(sha256) & 1 else fromhex(sha256)
            if build_id_stored.__class__ is bytes and build_id_stored.hex() != build_id \
                    or sha256_stored.__class__ is bytes and sha256_stored.hex() != sha256:
                raise ValueError("not lowercase hex")
            software_type, delta_from = get("software_type"), get("delta_from")
            compact.append((intern(item["hardware_version"]), build_id_stored, item["url"], item["size"],
                            sha256_stored, software_type if software_type is None else intern(software_type),
                            intern(get("type", "full")), delta_from if delta_from is None else intern(delta_from)))
    except ValueError:  # a digest that is not lowercase hex: held as text (see _digest_stored)
        return tuple(_compact_artifact(**item) for item in items)
    return tuple(compact)


@dataclass(frozen=True, slots=True)
class Release:
    """One release. Slots, not a dict per release (100,000 of them in a large registry); its artifacts
    are `Artifact` tuples."""

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
    # Made on first use (see hardware_versions, image_slots): not fields of the release.
    _hardware_versions: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)
    _image_slots: frozenset[tuple[str, str | None]] | None = field(default=None, init=False, repr=False,
                                                                    compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], scheme: VersionScheme, source_path: str) -> "Release":
        """The release of one schema-valid release file's data (`data` is not changed).

        Raises VersionError when `version` does not parse under `scheme`."""
        return cls.from_compact(compact_release(data), scheme, source_path)

    @classmethod
    def from_compact(cls, compact: tuple[Any, ...], scheme: VersionScheme, source_path: str) -> "Release":
        """The release of a release file's compact form (`compact_release`), whose parts it takes as they are.

        Raises VersionError when the version does not parse under `scheme`."""
        version, min_version, revision, notes, notes_format, extra_info, must_pass_through, yanked, artifacts = compact
        release = _new_object(cls)
        _set_version(release, version)
        _set_parsed_version(release, scheme.parse(version))
        _set_artifacts(release, tuple(map(_tuple_new, repeat(Artifact), artifacts)))
        _set_source_path(release, source_path)
        _set_min_version(release, min_version)
        _set_revision(release, revision)
        _set_notes(release, notes)
        _set_notes_format(release, notes_format)
        _set_extra_info(release, extra_info)
        _set_must_pass_through(release, must_pass_through)
        _set_yanked(release, yanked)
        _set_hardware_versions(release, None)
        _set_image_slots(release, None)
        return release

    def at_path(self, source_path: str) -> "Release":
        """This release as the same bytes make it at `source_path`: itself when that is its path, else a
        release sharing each of its values (registry/warm.py, where releases are kept without a path)."""
        if source_path == self.source_path:
            return self
        release = _new_object(Release)  # each slot written out: a loop over them took three times as long
        _set_version(release, self.version)
        _set_parsed_version(release, self.parsed_version)
        _set_artifacts(release, self.artifacts)
        _set_source_path(release, source_path)
        _set_min_version(release, self.min_version)
        _set_revision(release, self.revision)
        _set_notes(release, _get_notes(self))
        _set_notes_format(release, self.notes_format)
        _set_extra_info(release, self.extra_info)
        _set_must_pass_through(release, self.must_pass_through)
        _set_yanked(release, self.yanked)
        _set_hardware_versions(release, self._hardware_versions)
        _set_image_slots(release, self._image_slots)
        return release

    def compact(self) -> tuple[Any, ...]:
        """The compact form this release is made of (`compact_release`), its artifacts as plain tuples."""
        return (self.version, self.min_version, self.revision, _notes_slot.__get__(self), self.notes_format, self.extra_info,
                self.must_pass_through, self.yanked, tuple(map(tuple, self.artifacts)))

    @property
    def is_yanked(self) -> bool:
        return self.yanked is not None

    @property
    def hardware_versions(self) -> tuple[str, ...]:
        """The hardware versions of its artifacts, sorted (made on first use, then kept)."""
        found = self._hardware_versions
        if found is None:
            found = tuple(sorted({artifact[0] for artifact in self.artifacts}))
            found = _SHARED.setdefault(found, found)
            _set_hardware_versions(self, found)
        return found

    @property
    def image_slots(self) -> frozenset[tuple[str, str | None]]:
        """(hardware version, software type) of every artifact, full or delta: see `has_image`."""
        found = self._image_slots
        if found is None:
            found = frozenset((a[0], a[5]) for a in self.artifacts)
            found = _SHARED.setdefault(found, found)
            _set_image_slots(self, found)
        return found

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


# The slots' own setters: a release is made without the dataclass __init__ and its checks of frozen.
_set_version = Release.version.__set__  # type: ignore[attr-defined]
_set_parsed_version = Release.parsed_version.__set__  # type: ignore[attr-defined]
_set_artifacts = Release.artifacts.__set__  # type: ignore[attr-defined]
_set_source_path = Release.source_path.__set__  # type: ignore[attr-defined]
_set_min_version = Release.min_version.__set__  # type: ignore[attr-defined]
_set_revision = Release.revision.__set__  # type: ignore[attr-defined]
_notes_slot = Release.notes  # the slot, holding the notes as _notes_stored gives them
_set_notes = _notes_slot.__set__  # type: ignore[attr-defined]
# `notes` reads the slot as text; set through it (the dataclass __init__, unpickling), it stores them compressed.
Release.notes = property(lambda self: _notes_text(_notes_slot.__get__(self)),  # type: ignore[assignment,attr-defined]
                         lambda self, text: _set_notes(self, _notes_stored(text)), doc="The notes, as written.")
_set_notes_format = Release.notes_format.__set__  # type: ignore[attr-defined]
_set_extra_info = Release.extra_info.__set__  # type: ignore[attr-defined]
_set_must_pass_through = Release.must_pass_through.__set__  # type: ignore[attr-defined]
_set_yanked = Release.yanked.__set__  # type: ignore[attr-defined]
_set_hardware_versions = Release._hardware_versions.__set__  # type: ignore[attr-defined]
_set_image_slots = Release._image_slots.__set__  # type: ignore[attr-defined]
_get_notes = _notes_slot.__get__


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
