"""Which devices a registry change strands: the update decision run on both sides of a change.

`stranded(before, after)` takes two registries (releases by version, hardware
by name, cohorts by slug, and the version scheme) and returns every group of
device states, (cohort, hardware version, software type) and the versions they
run, that could update before the change (the update decision of
`relreg.devices.update` offers them something) and cannot after it: they have
no update channel any more (their hardware left the cohort), or every newer
release of their channel is out of reach (`reason: blocked`). A device whose
channel simply has nothing newer (a newest release yanked, a deployment
withdrawn) is up to date, not stranded.

Devices run released versions, so only the versions of releases with an image
for the channel's hardware and software type (yanked ones too) are looked at,
and only on channels whose candidates or barriers the change touches; so the
work is per (cohort, hardware, software type) over the versions below the
channel's newest candidate, not a product of every release with everything.
The channels are built as the generator builds them (site/device_documents.py):
a candidate is a release deployed to the cohort for the hardware, not yanked,
with an image for the slot; a barrier is a must-pass-through release with an
image for the slot, not yanked, deployed or not.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Collection, Mapping, Sequence

from relreg.devices.update import REASON_BLOCKED, Candidate, Channel, Payload, barriers_of, plan_update
from relreg.registry.model import Cohort, HardwareVersion, Release
from relreg.registry.versions import Version, VersionError, VersionScheme

Slot = tuple[str, "str | None"]  # (hardware version, software type)

_FULL = Payload("", None, "", 0, "", "", "")  # stands for the full image of a candidate

NO_CHANNEL = "no-channel"
BLOCKED = "blocked"


@dataclass(frozen=True)
class Side:
    """One registry, as far as the update decision needs it."""

    scheme: VersionScheme
    releases: Mapping[str, Release]  # by version
    hardware: Mapping[str, HardwareVersion]  # by name
    cohorts: Mapping[str, Cohort]  # by slug


@dataclass(frozen=True)
class Stranded:
    """Devices of one channel that could update before the change and cannot after it.

    `kind`: NO_CHANNEL (the channel is gone) or BLOCKED (newer releases are out of reach).
    `obstacle`: for BLOCKED, why, as ("barrier", version) (a must-pass-through release the channel
    does not offer), ("min_version", version, min_version) or ("image", version) (only deltas from
    other versions); for NO_CHANNEL, ().
    `versions`: the versions the devices run, ascending (empty for NO_CHANNEL when no device of the
    channel had anything left to install: it still loses its channel).
    `newest`: the newest release the channel offered before the change.
    """

    cohort: str
    hardware_version: str
    software_type: str | None
    kind: str
    obstacle: tuple
    versions: tuple[str, ...]
    newest: str | None
    lost: tuple[str, ...] = ()  # candidates of the channel before the change that it no longer has
    new_barriers: tuple[str, ...] = ()  # must-pass-through releases of the channel that are new to it
    new_gates: tuple[str, ...] = ()  # candidates whose min_version the change sets or changes


@dataclass(frozen=True)
class StuckOnYanked:
    """Devices of one channel (cohort, hardware version, software type) that may run `version`, a release the
    change yanks, and to which the channel offers nothing they can install after it: they stay on the yanked
    release, since a device never installs an older one. `reason`: their answers' (`latest`: nothing newer is
    deployed; `blocked`: what is newer needs another version first, or has only deltas from others)."""

    cohort: str
    hardware_version: str
    software_type: str | None
    version: str
    reason: str
    formerly: bool = False  # the cohort deployed it earlier in the history, not just before the change


class _Images:
    """Releases with an image per (hardware, software type), ascending, from one pass over the releases."""

    def __init__(self, side: Side) -> None:
        self.side = side
        ordered = sorted(side.releases.values(), key=lambda r: r.parsed_version.key)
        self.known: dict[Slot, list[Release]] = {}
        for release in ordered:
            for slot in release.image_slots:
                self.known.setdefault(slot, []).append(release)
        self.types: dict[str, set[str | None]] = {}
        for hardware, software_type in self.known:
            self.types.setdefault(hardware, set()).add(software_type)
        self._barriers: dict[Slot, tuple[tuple[str, ...], tuple[tuple, ...]]] = {}
        self._known_for: dict[Slot, list[Release]] = {}
        self._images: dict[str, dict[Slot, tuple[Payload | None, tuple[Payload, ...]]]] = {}
        self._deltas: dict[tuple[Slot, str], Payload] = {}

    def default(self, hardware: str) -> str | None:
        item = self.side.hardware.get(hardware)
        return item.default_software_type if item is not None else None

    def slots_of(self, hardware: str) -> list[Slot]:
        types = set(self.types.get(hardware) or {None})
        if self.default(hardware) is not None:
            types.add(None)
        return [(hardware, t) for t in sorted(types, key=lambda t: (t is not None, t or ""))]

    def known_for(self, slot: Slot) -> list[Release]:
        """Releases whose images a device of the slot takes, ascending (as _ReleaseImages.known_for)."""
        found = self._known_for.get(slot)
        if found is None:
            exact = self.known.get(slot, [])
            default = self.default(slot[0])
            found = exact
            if slot[1] is None and default is not None:
                fallback = [r for r in self.known.get((slot[0], default), []) if not r.has_image(slot[0], None)]
                if fallback:
                    found = sorted(exact + fallback, key=lambda r: r.parsed_version.key)
            self._known_for[slot] = found
        return found

    def barriers(self, slot: Slot) -> tuple[tuple[str, ...], tuple[tuple, ...]]:
        found = self._barriers.get(slot)
        if found is None:
            found = self._barriers[slot] = barriers_of(
                (r.version, r.parsed_version.key) for r in self.known_for(slot) if r.must_pass_through and not r.is_yanked)
        return found

    def images(self, release: Release, slot: Slot) -> tuple[Payload | None, tuple[Payload, ...]]:
        """Only what the decision reads of a release's images for a slot: whether there is a full image,
        and which versions its deltas start from (a changed digest of a published artifact is an error of
        the policy already). Made once per release, from one pass over its artifacts."""
        found = self._images.get(release.version)
        if found is None:
            fulls: set[Slot] = set()
            froms: dict[Slot, list[str]] = {}
            for artifact in release.artifacts:
                if artifact.is_delta:
                    froms.setdefault((artifact[0], artifact[5]), []).append(artifact.delta_from)
                else:
                    fulls.add((artifact[0], artifact[5]))
            found = self._images[release.version] = {
                each: (_FULL if each in fulls else None,
                       tuple(self._delta(each, origin) for origin in sorted(froms.get(each, ()))))
                for each in release.image_slots}
        return found.get(slot, (None, ()))

    def _delta(self, slot: Slot, origin: str) -> Payload:
        key = (slot, origin)
        found = self._deltas.get(key)
        if found is None:
            found = self._deltas[key] = Payload(slot[0], slot[1], "", 0, "", "", "", origin)
        return found

    def hardware_of(self, cohort: Cohort) -> tuple[str, ...]:
        return cohort.hardware_versions or tuple(sorted(self.side.hardware))

    def channel(self, cohort: Cohort, slot: Slot) -> Channel:
        hardware, software_type = slot
        default = self.default(hardware)
        deployed = []
        for activation in cohort.releases:
            release = self.side.releases.get(activation.version)
            if release is None or release.is_yanked or not activation.deploys_to(hardware):
                continue
            image_type = release.image_software_type(hardware, software_type, default)
            if not release.has_image(hardware, image_type):
                continue
            full, deltas = self.images(release, (hardware, image_type))
            minimum = None
            if release.min_version:
                try:
                    minimum = self.side.scheme.parse(release.min_version).key
                except VersionError:
                    continue  # an error of validate
            deployed.append(Candidate(
                version=release.version, key=release.parsed_version.key, id=0, revision="",
                min_version=release.min_version, min_key=minimum, must_pass_through=release.must_pass_through,
                created_date="", release_url="", rollout_percent=activation.rollout_percent, full=full,
                deltas=deltas))
        deployed.sort(key=lambda c: c.key)
        unique = [c for i, c in enumerate(deployed) if i == 0 or deployed[i - 1].key != c.key]
        versions, keys = self.barriers(slot)
        return Channel(cohort.slug, hardware, software_type, tuple(unique), versions, keys)


def _obstacle(channel: Channel, current: Version) -> tuple:
    """Why nothing newer in `channel` is installable from `current` (the plan says blocked)."""
    barrier = channel.barrier_above(current)
    in_range = [c for c in channel.candidates if c.key > current.key and (barrier is None or c.key <= barrier)]
    if not in_range and barrier is not None:
        index = channel.barrier_keys.index(barrier)
        return ("barrier", channel.barriers[index])
    highest = in_range[-1]
    if highest.min_key is not None and current.key < highest.min_key:
        return ("min_version", highest.version, highest.min_version)
    return ("image", highest.version)


def stranded(before: Side, after: Side) -> list[Stranded]:
    """Every group of device states the change from `before` to `after` strands (see the module's text)."""
    old, new = _Images(before), _Images(after)
    found: list[Stranded] = []
    for slug, cohort in sorted(before.cohorts.items()):
        head_cohort = after.cohorts.get(slug)
        if head_cohort is None:
            continue  # a deleted cohort is an error of the policy already
        head_hardware = set(new.hardware_of(head_cohort))
        for hardware in old.hardware_of(cohort):
            if hardware not in after.hardware:
                continue  # a deleted hardware version is an error of the policy already
            head_slots = set(new.slots_of(hardware)) if hardware in head_hardware else set()
            for slot in old.slots_of(hardware):
                base_channel = old.channel(cohort, slot)
                if not base_channel.candidates:
                    continue  # nobody could update here before
                head_channel = new.channel(head_cohort, slot) if slot in head_slots else None
                if head_channel is not None and head_channel.candidates == base_channel.candidates \
                        and head_channel.barrier_keys == base_channel.barrier_keys:
                    continue  # the channel is untouched
                found += _compare(slot, base_channel, head_channel, old.known_for(slot), after)
    return found


def _compare(slot: Slot, base: Channel, head: Channel | None, known: Sequence[Release],
             after: Side) -> list[Stranded]:
    newest = base.candidates[-1]
    # The answer for a device on V depends only on the candidates and barriers above V: the versions that
    # matter are those below the newest candidate (devices at or above it had nothing to install), and,
    # when the channel stays, below the highest candidate or barrier that the change touches.
    limit = newest.key
    if head is not None:
        differing = [c.key for c in set(base.candidates).symmetric_difference(head.candidates)] \
            + list(set(base.barrier_keys).symmetric_difference(head.barrier_keys))
        limit = min(limit, max(differing)) if differing else limit
    keys = [r.parsed_version.key for r in known]
    below = known[:bisect.bisect_left(keys, limit)]
    groups: dict[tuple, list[str]] = {}
    for release in below:
        if head is not None:
            head_release = after.releases.get(release.version)
            try:
                current = head_release.parsed_version if head_release is not None \
                    else after.scheme.parse(release.version)
            except VersionError:
                continue
            plan = plan_update(head, current)
            if plan.offers or plan.up_to_date_reason != REASON_BLOCKED:
                continue  # not blocked after the change (the common case: decided without the base)
        if not plan_update(base, release.parsed_version).offers:
            continue  # nothing to install before the change either
        if head is None:
            groups.setdefault((NO_CHANNEL, ()), []).append(release.version)
        else:
            groups.setdefault((BLOCKED, _obstacle(head, current)), []).append(release.version)
    if head is None and not groups:
        groups[(NO_CHANNEL, ())] = []
    lost: tuple[str, ...] = ()
    new_barriers: tuple[str, ...] = ()
    new_gates: tuple[str, ...] = ()
    if head is not None:
        head_versions = {c.version: c for c in head.candidates}
        lost = tuple(c.version for c in base.candidates if c.version not in head_versions)
        new_barriers = tuple(v for v in head.barriers if v not in base.barriers)
        new_gates = tuple(c.version for c in base.candidates
                          if c.version in head_versions and head_versions[c.version].min_version != c.min_version)
    return [Stranded(base.cohort, slot[0], slot[1], kind, obstacle, tuple(versions), newest.version,
                     lost, new_barriers, new_gates)
            for (kind, obstacle), versions in groups.items()]


def stuck_on_yanked(before: Side, after: Side,
                    formerly: Mapping[str, Collection[str]] | None = None) -> list[StuckOnYanked]:
    """Every channel whose candidates before the change include a release the change yanks, and where the
    update decision (relreg.devices.update.plan_update) offers a device on that release nothing after the
    change (see StuckOnYanked). A channel the change takes away is left to `stranded` (NO_CHANNEL).

    `formerly`: releases the change yanks that no cohort deploys before it, each with the slugs of the
    cohorts that deployed them earlier in the history (a rollout withdrawn in one change, the release
    yanked in a later one): the devices that installed them then are looked at on those cohorts' boards
    after the change, as StuckOnYanked with `formerly`."""
    yanked = {version for version, release in after.releases.items() if release.is_yanked
              and version in before.releases and not before.releases[version].is_yanked}
    if not yanked:
        return []
    old, new = _Images(before), _Images(after)
    found: list[StuckOnYanked] = []

    def look(head: Channel, release: Release, slug: str, slot: Slot, earlier: bool) -> None:
        """Add the devices of `slot` on `release` when the head channel offers them nothing."""
        plan = plan_update(head, release.parsed_version)
        if not plan.offers:
            found.append(StuckOnYanked(slug, slot[0], slot[1], release.version,
                                       plan.up_to_date_reason or REASON_BLOCKED, formerly=earlier))

    for slug, cohort in sorted(before.cohorts.items()):
        head_cohort = after.cohorts.get(slug)
        if head_cohort is None:
            continue
        head_hardware = set(new.hardware_of(head_cohort))
        for hardware in old.hardware_of(cohort):
            if hardware not in head_hardware or hardware not in after.hardware:
                continue
            head_slots = set(new.slots_of(hardware))
            for slot in old.slots_of(hardware):
                hit = [c for c in old.channel(cohort, slot).candidates if c.version in yanked]
                if not hit or slot not in head_slots:
                    continue
                head = new.channel(head_cohort, slot)
                for candidate in hit:
                    look(head, after.releases[candidate.version], slug, slot, False)
    for version, slugs in sorted((formerly or {}).items()):
        release = after.releases.get(version)
        if version not in yanked or release is None:
            continue
        for slug in sorted(slugs):
            head_cohort = after.cohorts.get(slug)
            if head_cohort is None:
                continue
            for hardware in new.hardware_of(head_cohort):
                if hardware not in after.hardware:
                    continue
                for slot in new.slots_of(hardware):
                    if not release.has_image(hardware, release.image_software_type(hardware, slot[1],
                                                                                  new.default(hardware))):
                        continue  # no device of this slot could have installed it
                    look(new.channel(head_cohort, slot), release, slug, slot, True)
    return found
