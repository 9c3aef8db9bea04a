"""The update decision: which release a device should install next, and which file.

This module is pure (no I/O, no clock) and is the only place the rules live.
The generator uses it to precompute answers into static documents
(`devices.py`), and the reference client (`client.py`) uses the very same
functions to decide locally from a channel's candidate list, so the two can
never disagree.

A *channel* is what one kind of device sees: a cohort, a hardware version and
an optional software type. Its *candidates* are the releases active in the
cohort *for that hardware version* (an activation that names
`hardware_versions` holds the others back), not yanked, with an image for
that hardware version and software type (an artifact matches only when its
software type equals the device's, both absent counting as equal: a device is
never handed another component's image; the one exception is declared, not
guessed: a device without a software type takes the images of its
hardware's `default_software_type` from releases that have no image without
one). The channel is built by the generator (site/device_documents.py); the
rules below see only its candidates, so a device whose hardware is held back
is offered the best of what is deployed to it, and never a downgrade.

For a device on version V with serial N (versions compared by the registry's
scheme):

1. Gates: a candidate R is *installable* from V when R > V, V >= R.min_version
   (when R has one), and R has a full image, or a delta image whose
   `delta_from` is exactly V.
2. Must-pass-through: the *barrier* is the lowest release above V marked
   `must_pass_through` (not yanked, with an image for the channel), whether or
   not the cohort deploys it. Nothing above the barrier is offered until the
   device runs it; the barrier itself is offered when it is a candidate.
3. Staged rollout: a candidate deployed at p < 100 % is offered to the device
   only when bucket(N, cohort, version) < p x 100, where the bucket is the
   first 8 bytes of sha256("N\\0cohort\\0version") as a big-endian integer,
   mod 10,000. Raising p never removes a device.
4. The target is the highest installable candidate in (V, barrier] that the
   device is in the rollout of. So a device outside a rollout gets the next
   best candidate (the previous release), and a device below a min_version
   gate climbs hop by hop. No target: up to date. Never a downgrade.
5. The payload is the target's delta whose `delta_from` equals V, else its
   full image. A delta is a cheaper way to the same target, never a way
   around a gate.

Because the barrier and the gates do not depend on the serial, the answer for
a known V is an ordered list of *offers* (highest first, ending at the first
one deployed to 100 %; paused ones included, taken by nobody): the device takes
the first offer whose rollout it is in. Which offers there are depends on the
percents only through "below 100 % or not", so a precomputed answer names its
staged offers and the percents live in one small document per channel. `plan_update` computes that list; `choose` walks it; `decide` is both.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Mapping, Sequence

from relreg.registry.versions import Version, VersionScheme

BUCKETS = 10_000  # rollout resolution: 0.01 %
FULL_ROLLOUT = BUCKETS
# What a device document's whole numbers may be: the C client reads them as int64 (clients/c).
_INT64_MAX = 2**63 - 1
_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")


def document_int(value: Any, name: str) -> int:
    """A whole number of a device document (file_size, rollout_threshold): a JSON integer, written
    without a decimal point or exponent, from 0 to 2^63 - 1, as the C client takes it. Raises ValueError."""
    if value.__class__ is not int or not 0 <= value <= _INT64_MAX:
        raise ValueError(f"{name} is a whole number from 0 to 2^63 - 1, not {value!r}")
    return value

# Why the answer is what it is (the seed's `reason` field).
REASON_LATEST = "latest"  # nothing newer is deployed to the cohort
REASON_OUTSIDE_ROLLOUT = "outside_rollout"  # a newer candidate exists, the device is outside its rollout
REASON_MIN_VERSION = "min_version"  # a newer candidate needs a higher current version: a step on the path
REASON_MUST_PASS_THROUGH = "must_pass_through"  # newer releases wait until the device runs a barrier release
REASON_BLOCKED = "blocked"  # up to date only because every newer candidate is out of reach
OFFER_REASONS = (REASON_LATEST, REASON_OUTSIDE_ROLLOUT, REASON_MIN_VERSION, REASON_MUST_PASS_THROUGH)
UP_TO_DATE_REASONS = (REASON_LATEST, REASON_OUTSIDE_ROLLOUT, REASON_BLOCKED)


def rollout_threshold(percent: float) -> int:
    """A rollout percent (at most two decimals) as a whole number of buckets, 0..10,000."""
    return max(0, min(BUCKETS, round(float(percent) * 100)))


def bucket(serial: str, cohort: str, version: str) -> int:
    """The device's place, 0..9,999, in the rollout of one release to one cohort.

    Independent per release, so being early in one rollout says nothing about
    the next; stable, so raising the percent keeps everyone who was in.
    """
    digest = hashlib.sha256(f"{serial}\0{cohort}\0{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_rollout(threshold: int, serial: str, cohort: str, version: str) -> bool:
    return threshold >= FULL_ROLLOUT or (threshold > 0 and bucket(serial, cohort, version) < threshold)


@dataclass(frozen=True)
class Payload:
    """One downloadable image, as the device response names it."""

    hardware_version: str
    software_type: str | None
    filename: str
    size: int
    build_id: str
    sha256: str
    url: str  # absolute
    delta_from: str | None = None  # None: a full image

    @property
    def is_delta(self) -> bool:
        return self.delta_from is not None

    def document(self) -> dict[str, Any]:
        """The artifact of the seed's device response (`file_size` is the seed's name for the size)."""
        return {
            "hardware_version": self.hardware_version,
            "software_type": self.software_type,
            "filename": self.filename,
            "file_size": self.size,
            "build_id": self.build_id,
            "sha256": self.sha256,
            "url": self.url,
            "delta_from": self.delta_from,
        }

    @classmethod
    def from_document(cls, data: Mapping[str, Any]) -> "Payload":
        """The payload of a device document's artifact. Raises KeyError, or ValueError for a size or digest
        the C client refuses too (a decimal or negative size, a digest that is not 64 lowercase hex digits)."""
        sha256 = data["sha256"]
        if not isinstance(sha256, str) or not _SHA256_HEX.match(sha256):
            raise ValueError(f"sha256 is 64 lowercase hex digits, not {sha256!r}")
        return cls(
            hardware_version=data["hardware_version"],
            software_type=data["software_type"],
            filename=data["filename"],
            size=document_int(data["file_size"], "file_size"),
            build_id=data["build_id"],
            sha256=sha256,
            url=data["url"],
            delta_from=data["delta_from"],
        )


@dataclass(frozen=True)
class Candidate:
    """A release deployed to a channel, with what the rules need."""

    version: str
    key: tuple = field(repr=False)  # the version's sort key in the registry's scheme
    id: int
    revision: str
    min_version: str | None
    min_key: tuple | None = field(repr=False)
    must_pass_through: bool
    created_date: str
    release_url: str
    rollout_percent: float
    full: Payload | None  # the full image for the channel, if the release has one
    deltas: tuple[Payload, ...] = ()  # delta images for the channel

    @cached_property
    def threshold(self) -> int:
        return rollout_threshold(self.rollout_percent)

    def payload_from(self, current_version: str) -> Payload | None:
        """The delta from exactly this version when there is one, else the full image (None: neither)."""
        for delta in self.deltas:
            if delta.delta_from == current_version:
                return delta
        return self.full

    def installable_from(self, current: Version) -> bool:
        return self.key > current.key and (self.min_key is None or current.key >= self.min_key) \
            and self.payload_from(current.text) is not None

    def document(self) -> dict[str, Any]:
        """The candidate as the channel document lists it."""
        return {
            "version": self.version,
            "id": self.id,
            "revision": self.revision,
            "min_version": self.min_version or "",
            "must_pass_through": self.must_pass_through,
            "created_date": self.created_date,
            "release_url": self.release_url,
            "rollout_percent": self.rollout_percent,
            "rollout_threshold": self.threshold,
            "artifacts": [p.document() for p in ((self.full,) if self.full else ()) + self.deltas],
        }

    @classmethod
    def from_document(cls, data: Mapping[str, Any], scheme: VersionScheme) -> "Candidate":
        payloads = [Payload.from_document(item) for item in data["artifacts"]]
        fulls = [p for p in payloads if not p.is_delta]
        if len(fulls) > 1:
            raise ValueError(f"candidate {data['version']}: more than one full artifact")
        min_version = data["min_version"] or None
        return cls(
            version=data["version"],
            key=scheme.parse(data["version"]).key,
            id=data["id"],
            revision=data["revision"],
            min_version=min_version,
            min_key=scheme.parse(min_version).key if min_version else None,
            must_pass_through=data["must_pass_through"],
            created_date=data["created_date"],
            release_url=data["release_url"],
            rollout_percent=data["rollout_percent"],
            full=fulls[0] if fulls else None,
            deltas=tuple(p for p in payloads if p.is_delta),
        )


@dataclass(frozen=True)
class Channel:
    """Everything a device of one cohort, hardware version and software type is decided from."""

    cohort: str
    hardware_version: str
    software_type: str | None
    candidates: tuple[Candidate, ...]  # ascending by version
    barriers: tuple[str, ...] = ()  # versions of must-pass-through releases for this hardware, ascending
    barrier_keys: tuple[tuple, ...] = field(default=(), repr=False)  # their sort keys, same order

    def __post_init__(self) -> None:
        keys = [c.key for c in self.candidates]
        if keys != sorted(keys) or len(set(keys)) != len(keys):
            raise ValueError("channel candidates must be distinct versions in ascending order")
        if len(self.barrier_keys) != len(self.barriers) or list(self.barrier_keys) != sorted(self.barrier_keys):
            raise ValueError("channel barriers must come with their keys, in ascending order")

    def barrier_above(self, current: Version) -> tuple | None:
        """The sort key of the lowest must-pass-through release above the current version, if any."""
        index = bisect.bisect_right(self.barrier_keys, current.key)
        return self.barrier_keys[index] if index < len(self.barrier_keys) else None

    def document(self, version_scheme: str) -> dict[str, Any]:
        return {
            "cohort": self.cohort,
            "hardware_version": self.hardware_version,
            "software_type": self.software_type,
            "version_scheme": version_scheme,
            "must_pass_through": list(self.barriers),
            "candidates": [c.document() for c in self.candidates],
        }

    @classmethod
    def from_document(cls, data: Mapping[str, Any], scheme: VersionScheme) -> "Channel":
        if data["version_scheme"] != scheme.name:
            raise ValueError(f"the channel uses version scheme {data['version_scheme']!r}, not {scheme.name!r}")
        barriers = tuple(data["must_pass_through"])
        return cls(
            cohort=data["cohort"],
            hardware_version=data["hardware_version"],
            software_type=data["software_type"],
            candidates=tuple(Candidate.from_document(item, scheme) for item in data["candidates"]),
            barriers=barriers,
            barrier_keys=tuple(scheme.parse(version).key for version in barriers),
        )


@dataclass(frozen=True)
class Offer:
    """One possible answer: install `payload` of `candidate`, if the device is in its rollout."""

    candidate: Candidate
    payload: Payload
    reason: str

    @property
    def threshold(self) -> int:
        return self.candidate.threshold

    @property
    def staged(self) -> bool:
        """Whether the device must look the release up in the channel's rollouts document (below 100 %)."""
        return self.candidate.threshold < FULL_ROLLOUT

    def response(self) -> dict[str, Any]:
        """The seed's device response (not wrapped in `data`), with the single image to fetch."""
        candidate = self.candidate
        return {
            "id": candidate.id,
            "version": candidate.version,
            "revision": candidate.revision,
            "min_version": candidate.min_version or "",
            "is_delta": self.payload.is_delta,
            "must_pass_through": candidate.must_pass_through,
            "reason": self.reason,
            "created_date": candidate.created_date,
            "release_url": candidate.release_url,
            "artifacts": [self.payload.document()],
        }


def up_to_date_document(current_version: str, reason: str) -> dict[str, Any]:
    """What a device that should install nothing is told (the seed answers 204 No Content)."""
    return {"up_to_date": True, "current_version": current_version, "reason": reason}


@dataclass(frozen=True)
class UpdatePlan:
    """The answer for every device of a channel on one version: the first offer it is in, else up to date."""

    cohort: str
    current_version: str
    offers: tuple[Offer, ...]  # highest first; only the last may be deployed to 100 %
    up_to_date_reason: str | None  # why a device that takes no offer is up to date; None: every device takes one

    def choose(self, serial: str) -> Offer | None:
        """The device's answer: the first offer whose rollout it is in; None means up to date."""
        index = choose_index([(o.candidate.version, o.threshold) for o in self.offers], serial, self.cohort)
        return None if index is None else self.offers[index]

    def answer(self, serial: str) -> dict[str, Any]:
        offer = self.choose(serial)
        if offer is not None:
            return offer.response()
        assert self.up_to_date_reason is not None
        return up_to_date_document(self.current_version, self.up_to_date_reason)

    def up_to_date(self) -> dict[str, Any] | None:
        """The document for devices that take no offer; None when every device takes one."""
        if self.up_to_date_reason is None:
            return None
        return up_to_date_document(self.current_version, self.up_to_date_reason)


def choose_index(offers: Sequence[tuple[str, int]], serial: str, cohort: str) -> int | None:
    """Which of the (version, rollout threshold) offers, in order, a device takes; None: none.

    This is all the logic a device needs when it reads a precomputed answer.
    """
    for index, (version, threshold) in enumerate(offers):
        if in_rollout(threshold, serial, cohort, version):
            return index
    return None


def rollout_entries(channel: Channel) -> list[dict[str, Any]]:
    """The channel's rollouts document's entries: every staged candidate (below 100 %, paused ones too),
    ascending, as {version, rollout_percent, rollout_threshold}."""
    return [{"version": c.version, "rollout_percent": c.rollout_percent, "rollout_threshold": c.threshold}
            for c in channel.candidates if c.threshold < FULL_ROLLOUT]


def answer_thresholds(offers: Sequence[Mapping[str, Any]], rollouts: Sequence[Mapping[str, Any]] | None
                      ) -> list[tuple[str, int]]:
    """(version, rollout threshold) of an answer's offers, in order, for `choose_index`.

    An offer with `"staged": false` reaches every device; a staged one takes the threshold its version
    has in the channel's rollouts entries, and 0 (nobody) when it is not listed there: a rollouts
    document older than the answer (a cache between two builds) holds devices back, never pushes them.
    Raises KeyError, TypeError or ValueError on a malformed offer or rollouts entry.
    """
    thresholds = {entry["version"]: document_int(entry["rollout_threshold"], "rollout_threshold")
                  for entry in rollouts or ()}
    found = []
    for offer in offers:
        version = offer["release"]["version"]
        staged = offer["staged"]
        if not isinstance(staged, bool) or not isinstance(version, str):
            raise TypeError("an offer's staged is a boolean and its release's version a string")
        found.append((version, thresholds.get(version, 0) if staged else FULL_ROLLOUT))
    return found


def plan_update(channel: Channel, current: Version) -> UpdatePlan:
    """The offers for every device of the channel on `current`, in O(candidates)."""
    barrier = channel.barrier_above(current)
    offers: list[Offer] = []
    declined = False  # an installable candidate above the one offered next (the device must be outside it)
    gated = False  # a candidate in range that is not installable (min_version, no image for this version)
    held = False  # a candidate above the barrier
    for candidate in reversed(channel.candidates):
        if candidate.key <= current.key:
            break
        if barrier is not None and candidate.key > barrier:
            held = True
            continue
        if not candidate.installable_from(current):
            gated = True
            continue
        # A paused (0 %) candidate is offered too, to nobody: so pausing or resuming a rollout changes
        # only the channel's rollouts document, never the answers (docs/devices.md#staged-rollouts).
        reason = REASON_OUTSIDE_ROLLOUT if declined else REASON_MIN_VERSION if gated \
            else REASON_MUST_PASS_THROUGH if held else REASON_LATEST
        payload = candidate.payload_from(current.text)
        assert payload is not None
        offers.append(Offer(candidate, payload, reason))
        if candidate.threshold >= FULL_ROLLOUT:
            return UpdatePlan(channel.cohort, current.text, tuple(offers), None)
        declined = True
    reason = REASON_OUTSIDE_ROLLOUT if declined else REASON_BLOCKED if gated or held else REASON_LATEST
    return UpdatePlan(channel.cohort, current.text, tuple(offers), reason)


def decide(channel: Channel, current: Version, serial: str) -> Offer | None:
    """What one device should install next; None means it is up to date."""
    return plan_update(channel, current).choose(serial)


def answer(channel: Channel, current: Version, serial: str) -> dict[str, Any]:
    """The device response document: the seed's release response, or the up-to-date document."""
    return plan_update(channel, current).answer(serial)


@dataclass(frozen=True)
class DeviceIdentity:
    """What a device knows about itself."""

    cohort: str
    hardware_version: str
    current_version: str
    serial: str
    software_type: str | None = None


def barriers_of(versions: Iterable[tuple[str, tuple]]) -> tuple[tuple[str, ...], tuple[tuple, ...]]:
    """(versions, keys) of must-pass-through releases in ascending order, for a Channel."""
    ordered = sorted(versions, key=lambda item: item[1])
    return tuple(v for v, _ in ordered), tuple(k for _, k in ordered)
