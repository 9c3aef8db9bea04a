"""Device-facing update documents: the static update channel (see docs/devices.md).

For every cohort, hardware version and software type (a *channel*):

    api/v1/devices/<cohort>/<hardware>/<software_type or _>/candidates.json
        every candidate release with what the rules need, so a client decides
        locally for any current version, even one the registry never saw
    api/v1/devices/<cohort>/<hardware>/<software_type or _>/from/<version>.json
        the precomputed answer for a device on a known version (every release
        with an image for that hardware and software type, yanked ones too);
        its offers say only whether they are staged (below 100 %)
    api/v1/devices/<cohort>/<hardware>/<software_type or _>/rollouts.json
        the percent of every staged candidate of the channel: a rollout change
        rewrites this file and candidates.json, not the thousands of answers
    api/v1/devices/index.json
        the URL templates, the rollout hash and the list of channels

Every answer comes from `relreg.devices.update`, the same code the reference client
runs. Work is linear: a channel's candidates are gathered once, and each
per-version answer costs O(candidates of the cohort), not O(releases).
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from itertools import chain
from typing import Any, Sequence
from urllib.parse import quote

from relreg.devices.paths import DEVICES, NO_SOFTWARE_TYPE, candidates_path, channel_folder, index_path, rollouts_path
from relreg.devices.update import (
    BUCKETS,
    Candidate,
    Channel,
    Payload,
    UpdatePlan,
    barriers_of,
    plan_update,
    rollout_entries,
    rollout_threshold,
)
from relreg.registry.model import Release
from relreg.site.jobs import (
    KeyedJob,
    KeyedSection,
    PlanJob,
    ReleaseView,
    SiteInputs,
    by_id_chunks,
    format_date,
    job_key,
    merge_jobs,
    percent_number,
    views_digest,
)
from relreg.site.paths import release_path

Slot = tuple[str, "str | None"]  # (hardware version, software type)


def _encode(value: Any) -> bytes:
    """Compact UTF-8 JSON, as relreg.site.plan encodes every document."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class _ReleaseImages:
    """Which releases have images for which (hardware, software type), from one pass over the artifacts.

    Payloads (with their absolute URLs) are made only for releases that become candidates.
    """

    def __init__(self, releases: tuple[Release, ...], artifact_base_url: str,
                 image_slots: Sequence[frozenset[Slot]] | None = None) -> None:
        """`image_slots`: each release's Release.image_slots, when the caller has them (ReleaseFacts)."""
        self._base = artifact_base_url
        self.known: dict[Slot, list[Release]] = {}  # releases with an image for the slot, ascending
        self.software_types: dict[str, set[str | None]] = {}
        # Releases are gathered by their set of slots (the one Release.has_image reads, made once per
        # release for both; a registry has few), then each slot takes the releases of the sets that have
        # it: no pass over every artifact here, and none over every release for each slot.
        sets: dict[frozenset[Slot], list[int]] = {}  # slots -> the positions of the releases that have them
        for position, release in enumerate(releases):
            slots = image_slots[position] if image_slots is not None else release.image_slots
            found = sets.get(slots)
            if found is None:
                sets[slots] = [position]
            else:
                found.append(position)
        for slot in set().union(*sets):
            lists = [positions for slots, positions in sets.items() if slot in slots]
            positions = lists[0] if len(lists) == 1 else sorted(chain.from_iterable(lists))
            # ascending by version, as `releases` is
            self.known[slot] = list(releases) if len(positions) == len(releases) else [releases[p] for p in positions]
            self.software_types.setdefault(slot[0], set()).add(slot[1])
        self._payloads: dict[tuple[str, Slot], tuple[Payload | None, tuple[Payload, ...]]] = {}

    def slots_of(self, hardware_version: str, default_software_type: str | None = None) -> list[Slot]:
        types = set(self.software_types.get(hardware_version) or {None})
        if default_software_type is not None:
            types.add(None)  # devices reporting none take the default type's images
        return [(hardware_version, t) for t in sorted(types, key=lambda t: (t is not None, t or ""))]

    def known_for(self, slot: Slot, default_software_type: str | None) -> list[Release]:
        """Releases with an image a device of the channel takes, ascending (see Release.image_software_type)."""
        exact = self.known.get(slot, [])
        if slot[1] is not None or default_software_type is None:
            return exact
        fallback = [r for r in self.known.get((slot[0], default_software_type), [])
                    if not r.has_image(slot[0], None)]
        if not fallback:
            return exact
        return sorted(exact + fallback, key=lambda r: r.parsed_version.key)

    def payloads(self, release: Release, slot: Slot) -> tuple[Payload | None, tuple[Payload, ...]]:
        """(full image, delta images) of a release for a slot."""
        cached = self._payloads.get((release.version, slot))
        if cached is not None:
            return cached
        full = None
        deltas = []
        for artifact in release.artifacts:
            if (artifact.hardware_version, artifact.software_type) != slot:
                continue
            payload = Payload(
                hardware_version=artifact.hardware_version,
                software_type=artifact.software_type,
                filename=artifact.filename,
                size=artifact.size,
                build_id=artifact.build_id,
                sha256=artifact.sha256,
                url=artifact.absolute_url(self._base),
                delta_from=artifact.delta_from if artifact.is_delta else None,
            )
            if payload.is_delta:
                deltas.append(payload)
            else:
                full = payload
        deltas.sort(key=lambda p: (p.delta_from or "", p.build_id))
        result = (full, tuple(deltas))
        self._payloads[(release.version, slot)] = result
        return result


def _offers_bytes(plan: UpdatePlan, cache: dict[tuple[str, str, str], bytes]) -> bytes:
    parts = []
    for offer in plan.offers:
        key = (offer.candidate.version, offer.payload.build_id, offer.reason)
        encoded = cache.get(key)
        if encoded is None:
            encoded = b"".join((b'{"staged":true' if offer.staged else b'{"staged":false',
                                b',"release":', _encode(offer.response()), b"}"))
            cache[key] = encoded
        parts.append(encoded)
    return b"[" + b",".join(parts) + b"]"


class _AnswerEncoder:
    """Encodes a channel's per-version answers: the constant parts once, each answer by concatenation.

    The bytes are exactly `encode_json({"data": ...})` of the answer (a test holds it to that).
    """

    def __init__(self, channel: Channel, scheme_name: str) -> None:
        head = _encode({"cohort": channel.cohort, "hardware_version": channel.hardware_version,
                        "software_type": channel.software_type, "version_scheme": scheme_name})
        self._head = b'{"data":' + head[:-1] + b',"current_version":'
        self._offers: dict[tuple[str, str, str], bytes] = {}
        self._reasons: dict[str, bytes] = {}

    def encode(self, plan: UpdatePlan) -> bytes:
        version = _encode(plan.current_version)
        reason = plan.up_to_date_reason
        if reason is None:
            up_to_date = b"null"
        else:
            encoded_reason = self._reasons.get(reason)
            if encoded_reason is None:
                encoded_reason = self._reasons[reason] = _encode(reason)
            up_to_date = b'{"up_to_date":true,"current_version":' + version + b',"reason":' + encoded_reason + b"}"
        return b"".join((self._head, version, b',"offers":', _offers_bytes(plan, self._offers),
                         b',"up_to_date":', up_to_date, b"}}\n"))


def answer_document(channel: Channel, plan: UpdatePlan, scheme_name: str) -> dict[str, Any]:
    """The precomputed answer for one known current version (what the encoded file holds). It names the
    registry's version scheme, so that a client can refuse an offer that is not above the current version."""
    return {"data": {
        "cohort": channel.cohort, "hardware_version": channel.hardware_version,
        "software_type": channel.software_type, "version_scheme": scheme_name,
        "current_version": plan.current_version,
        "offers": [{"staged": o.staged, "release": o.response()} for o in plan.offers],
        "up_to_date": plan.up_to_date(),
    }}


def device_documents(inputs: "SiteInputs", views: list["ReleaseView"]) -> dict[str, bytes]:
    """Every device document of the site, by path."""
    return merge_jobs(device_jobs(inputs, views))


def device_section(inputs: "SiteInputs", views: list["ReleaseView"]) -> KeyedSection:
    """device_jobs as one section, known by all they read: the registry's settings, hardware versions and
    cohorts, and of each release its facts but the notes (ReleaseFacts.shape), id and created date. A notes
    fix, a device count or an updated date leaves it as it was: the writer then carries its files without
    planning it."""
    key = device_section_key(inputs, views)
    return KeyedSection(key, partial(device_jobs, inputs, views))


def device_section_key(inputs: "SiteInputs", views: Sequence["ReleaseView"]) -> str:
    """The key of everything the device documents depend on (see device_section)."""
    registry = inputs.registry
    return job_key(inputs, "device documents", inputs.site_url, repr(registry.config), repr(registry.hardware),
                   repr(registry.cohorts), views_digest(views, "id", "created"))


def device_jobs(inputs: "SiteInputs", views: list["ReleaseView"]) -> list[PlanJob]:
    """The device documents as plan jobs: the index and every channel's candidates and rollouts in one
    small job, and each channel's answers in KeyedJobs of known versions grouped by release id (see
    jobs.by_id_chunks).

    An answer depends only on its channel (which its candidates document states in full: cohort,
    hardware, software type, scheme, barriers, candidates with their images and rollouts) and the
    device's version, and on each rollout only through "below 100 % or not" (the percents are in
    rollouts.json). So a group's key is the digest of the candidates document with every rollout
    reduced to that (`_answers_digest`) and the versions it answers: a new release that no cohort
    deploys changes the group that holds it, a staged rollout moved or paused changes no answer, and a
    release reaching 100 % the answers of that cohort only.
    """
    registry = inputs.registry
    site_url = inputs.site_url
    scheme_name = registry.config.version_scheme
    views_by_version = {view.version: view for view in views}
    images = _ReleaseImages(registry.releases, registry.config.artifact_base_url,
                            [views_by_version[release.version].facts.image_slots for release in registry.releases])
    all_hardware = [hardware.name for hardware in registry.hardware]

    defaults = {hardware.name: hardware.default_software_type for hardware in registry.hardware}
    known_of: dict[Slot, list[Release]] = {}
    barriers: dict[Slot, tuple[tuple[str, ...], tuple[tuple, ...]]] = {}
    for name in all_hardware:
        for slot in images.slots_of(name, defaults[name]):
            releases = known_of[slot] = images.known_for(slot, defaults[name])
            barriers[slot] = barriers_of((r.version, r.parsed_version.key) for r in releases
                                         if r.must_pass_through and not r.is_yanked)

    groups_of: dict[object, list[tuple[list[Release], str]]] = {}

    def answer_groups(slot: Slot, known: list[Release]) -> list[tuple[list[Release], str]]:
        """The known versions of a slot in groups by release id (see jobs.by_id_chunks), each as its releases in
        version order and the digest of their versions (what the group's answers are for): made once for the
        channels of a slot, and once for every slot whose images every release has."""
        memo = "every release" if len(known) == len(views) else slot  # known holds each release once
        found = groups_of.get(memo)
        if found is None:
            if len(known) == len(views):
                newest_first = views
            else:  # newest first (by id, as views are): a pass over the views, not a sort
                known_versions = {release.version for release in known}
                newest_first = [view for view in views if view.version in known_versions]
            found = groups_of[memo] = []
            for group in by_id_chunks(newest_first):
                releases = sorted((view.release for view in group), key=lambda r: r.parsed_version.key)
                found.append((releases, hashlib.sha256(repr([release.version for release in releases]).encode())
                               .hexdigest()))
        return found

    small: dict[str, bytes] = {}  # the index and the candidates of every channel
    answer_jobs: list[PlanJob] = []
    channels: list[dict[str, Any]] = []
    for cohort in registry.cohorts:
        deployed = []
        for activation in cohort.releases:
            release = registry.release(activation.version)
            if release is not None and not release.is_yanked:
                deployed.append((release, activation))
        deployed.sort(key=lambda item: item[0].parsed_version.key)
        for hardware in cohort.hardware_versions or all_hardware:
            default = defaults.get(hardware)
            for slot in images.slots_of(hardware, default):
                candidates = []
                for release, activation in deployed:
                    if not activation.deploys_to(hardware):
                        continue  # held back on this hardware
                    percent = activation.rollout_percent
                    full, deltas = images.payloads(
                        release, (hardware, release.image_software_type(hardware, slot[1], default)))
                    if full is None and not deltas:
                        continue
                    view = views_by_version[release.version]
                    minimum = registry.scheme.parse(release.min_version) if release.min_version else None
                    candidates.append(Candidate(
                        version=release.version,
                        key=release.parsed_version.key,
                        id=view.id,
                        revision=release.revision or "",
                        min_version=release.min_version,
                        min_key=minimum.key if minimum else None,
                        must_pass_through=release.must_pass_through,
                        created_date=format_date(view.dates.created),
                        release_url=site_url + release_path(quote(release.version, safe="")),  # "+" as %2B in a URL
                        rollout_percent=percent_number(percent),
                        full=full,
                        deltas=deltas,
                    ))
                barrier_versions, barrier_keys = barriers.get(slot, ((), ()))
                channel = Channel(cohort=cohort.slug, hardware_version=hardware, software_type=slot[1],
                                  candidates=tuple(candidates), barriers=barrier_versions, barrier_keys=barrier_keys)
                data = channel.document(scheme_name)
                small[candidates_path(*_channel_key(channel))] = _encode({"data": data}) + b"\n"
                small[rollouts_path(*_channel_key(channel))] = _encode({"data": {
                    "cohort": channel.cohort, "hardware_version": channel.hardware_version,
                    "software_type": channel.software_type, "rollouts": rollout_entries(channel)}}) + b"\n"
                digest = _answers_digest(data)
                known = known_of.get(slot, [])
                for releases, versions in answer_groups(slot, known):
                    answer_jobs.append(KeyedJob(job_key(inputs, "device answers", digest, versions),
                                                partial(_answers, channel, scheme_name, releases)))
                channels.append({
                    "cohort": cohort.slug,
                    "hardware_version": hardware,
                    "software_type": slot[1],
                    "candidates": [c.version for c in candidates],
                    "known_versions": len(known),
                    "candidates_url": site_url + candidates_path(*_channel_key(channel)),
                    "rollouts_url": site_url + rollouts_path(*_channel_key(channel)),
                })
    small[index_path()] = _encode({"data": _index(site_url, scheme_name, channels)}) + b"\n"
    # Made here already: known by their own bytes.
    small_key = job_key(inputs, "device channels", hashlib.sha256(b"".join(
        hashlib.sha256(path.encode() + b"\0" + content).digest() for path, content in small.items())).hexdigest())
    return [KeyedJob(small_key, lambda: small), *answer_jobs]


def _answers_digest(candidates_data: dict[str, Any]) -> str:
    """The digest of everything a channel's answers depend on: its candidates document with each
    rollout reduced to staged (below 100 %) or not, since an answer names its staged offers and the
    percents are in rollouts.json. A rollout moving between 0 and 99.99 % keeps every answer's key."""
    data = dict(candidates_data)
    data["candidates"] = [{**candidate, "rollout_percent": None,
                           "rollout_threshold": candidate["rollout_threshold"] >= rollout_threshold(100)}
                          for candidate in candidates_data["candidates"]]
    return hashlib.sha256(_encode(data)).hexdigest()


def _answers(channel: Channel, scheme_name: str, releases: Sequence[Release]) -> dict[str, bytes]:
    """The precomputed answers of a channel for devices on `releases` (by path)."""
    encoder = _AnswerEncoder(channel, scheme_name)
    folder = channel_folder(*_channel_key(channel)) + "/from/"
    return {f"{folder}{release.version}.json": encoder.encode(plan_update(channel, release.parsed_version))
            for release in releases}


def _channel_key(channel: Channel) -> tuple[str, str, str | None]:
    return channel.cohort, channel.hardware_version, channel.software_type


def _index(site_url: str, scheme_name: str, channels: list[dict[str, Any]]) -> dict[str, Any]:
    template = site_url + f"{DEVICES}/{{cohort}}/{{hardware_version}}/{{software_type}}"
    return {
        "version_scheme": scheme_name,
        "no_software_type": NO_SOFTWARE_TYPE,
        "urls": {
            "candidates": template + "/candidates.json",
            "answer": template + "/from/{current_version}.json",
            "rollouts": template + "/rollouts.json",
        },
        "rollout": {
            "hash": "sha256",
            "input": "{serial}\u0000{cohort}\u0000{version}",
            "bucket": f"first 8 bytes of the digest as a big-endian unsigned integer, mod {BUCKETS}",
            "in_rollout": "bucket < rollout_threshold (rollout_threshold = rollout_percent x 100)",
            "buckets": BUCKETS,
            "full_rollout_threshold": rollout_threshold(100),
        },
        "channels": channels,
    }
