"""relreg.registry.rules as it was before its fast paths (commit 27d3213): the reference the differential test compares with.

Only the rules that gained a fast path, or were split in two (file_names_match: cohorts apart), are kept
here as they were; the rest are imported.

Each rule is a function from the registry (plus source positions) to
diagnostics; `ALL_RULES` lists them in the order their findings read best.
The model is already schema-valid when these run.
"""

from __future__ import annotations

import re
import sys
from typing import Callable, Iterable, Iterator, TypeVar

from relreg.registry.diagnostics import Diagnostic, Severity
from relreg.registry.model import HardwareVersion, Release
from relreg.registry.versions import VersionError
from relreg.registry.rules import (  # unchanged by the fast paths: the same code serves both sides
    RuleContext,
    _collisions,
    _delta_source,
    _groups,
    _POST_RELEASE,
    _NATURAL_SPLIT,
    _prerelease,
    _split_identifier,
    activation_hardware,
    _stem,
    cohorts_name_live_releases,
    min_version_not_above_version,
)


Rule = Callable[[RuleContext], Iterable[Diagnostic]]
_UNTRACKED = sys.maxsize  # recency of a file the caller knows nothing of: newest of all
_T = TypeVar("_T")


def file_names_match(ctx: RuleContext) -> Iterator[Diagnostic]:
    items: list[tuple[str, str, str]] = [(r.source_path, "version", r.version) for r in ctx.registry.releases]
    items += [(h.source_path, "name", h.name) for h in ctx.registry.hardware]
    items += [(c.source_path, "slug", c.slug) for c in ctx.registry.cohorts]
    for source_path, field_name, value in items:
        if _stem(source_path) != value:
            yield ctx.at(source_path, (field_name,),
                         f"{field_name} '{value}' does not match the file name '{_stem(source_path)}.yaml': "
                         f"rename the file to {value}.yaml or fix the {field_name}", "file-name-mismatch")


def versions_parse(ctx: RuleContext) -> Iterator[Diagnostic]:
    scheme = ctx.registry.scheme
    for release in ctx.registry.releases:
        if release.min_version is not None:
            try:
                scheme.parse(release.min_version)
            except VersionError as error:
                yield ctx.at(release.source_path, ("min_version",), f"min_version: {error}", "version-scheme")
        for index, artifact in enumerate(release.artifacts):
            if artifact.delta_from is not None and ctx.parse(artifact.delta_from) is None:
                yield ctx.at(release.source_path, ("artifacts", index, "delta_from"),
                             f"delta_from: '{artifact.delta_from}' is not a {scheme.name} version", "version-scheme")
    for cohort in ctx.registry.cohorts:
        for index, activation in enumerate(cohort.releases):
            if ctx.parse(activation.version) is None:
                yield ctx.at(cohort.source_path, ("releases", index, "version"),
                             f"'{activation.version}' is not a {scheme.name} version", "version-scheme")


def versions_unique(ctx: RuleContext) -> Iterator[Diagnostic]:
    """Each version is released once; a duplicate is reported at the newer file, naming the older."""
    for group in _groups((r.parsed_version.key, r) for r in ctx.registry.releases):
        first, *others = sorted(group, key=lambda r: ctx.age(r.source_path))
        for release in others:
            yield ctx.at(release.source_path, ("version",),
                         f"version '{release.version}' is the same version as '{first.version}' "
                         f"({first.source_path}); each version may be released once", "version-unique")
    yield from _collisions(ctx, ((r.source_path, ("version",), r.version)
                                 for r in sorted(ctx.registry.releases, key=lambda r: r.source_path)),
                           "version", "path-collision")


def build_ids_unique(ctx: RuleContext) -> Iterator[Diagnostic]:
    """A build id names one binary; a reuse is reported at the newer file (or later artifact), naming the first."""
    places = ((a.build_id, (r, i)) for r in ctx.registry.releases for i, a in enumerate(r.artifacts))
    for group in _groups(places):
        (first, first_index), *others = sorted(group, key=lambda place: (ctx.age(place[0].source_path), place[1]))
        for release, index in others:
            yield ctx.at(release.source_path, ("artifacts", index, "build_id"),
                         f"build_id '{release.artifacts[index].build_id}' is already used by "
                         f"{first.source_path} artifacts[{first_index}]; "
                         "a build id identifies exactly one binary", "build-id-unique")


def artifact_urls_consistent(ctx: RuleContext) -> Iterator[Diagnostic]:
    """One download URL, one file: artifacts whose URLs resolve to the same absolute URL agree on size and sha256.

    URLs are compared after resolving relative ones against artifact_base_url,
    so `latest.bin` and the same address written in full are one URL. The same
    file listed twice (same size and sha256) is allowed. A mismatch is reported
    at the newer artifact, naming the older one: devices given one of the two
    would fail to verify what the URL serves.
    """
    base = ctx.registry.config.artifact_base_url
    places = ((a.absolute_url(base), (r, i)) for r in ctx.registry.releases for i, a in enumerate(r.artifacts))
    for group in _groups(places):
        (first, first_index), *others = sorted(group, key=lambda place: (ctx.age(place[0].source_path), place[1]))
        reference = first.artifacts[first_index]
        for release, index in others:
            artifact = release.artifacts[index]
            differs = [f"{name} {getattr(artifact, name)} instead of {getattr(reference, name)}"
                       for name in ("size", "sha256") if getattr(artifact, name) != getattr(reference, name)]
            if differs:
                url = artifact.absolute_url(base)
                resolved = "" if url == artifact.url else f" (resolves to {url})"
                yield ctx.at(release.source_path, ("artifacts", index, "url"),
                             f"url '{artifact.url}'{resolved} is also the url of {first.source_path} "
                             f"artifacts[{first_index}], with {' and '.join(differs)}: one URL serves one file, "
                             "so devices given one of them fail to verify it. Give this artifact its own URL "
                             f"(e.g. one with {release.version} in its path)", "artifact-url-unique")


def artifacts_well_formed(ctx: RuleContext) -> Iterator[Diagnostic]:
    """One full artifact per (hardware, software type); one delta per source; deltas are sound."""
    for release in ctx.registry.releases:
        seen: dict[tuple, int] = {}
        for index, artifact in enumerate(release.artifacts):
            slot = (artifact.hardware_version, artifact.software_type, artifact.type, artifact.delta_from)
            if slot in seen:
                software = f", software_type '{artifact.software_type}'" if artifact.software_type else ""
                kind = f"delta from '{artifact.delta_from}'" if artifact.is_delta else "full"
                yield ctx.at(release.source_path, ("artifacts", index),
                             f"a second {kind} artifact for hardware_version '{artifact.hardware_version}'"
                             f"{software} (the first is artifacts[{seen[slot]}]); a device must get one answer",
                             "artifact-unique")
            seen.setdefault(slot, index)
            if artifact.is_delta and artifact.delta_from is not None:
                yield from _delta_source(ctx, release, index)


def hardware_exists(ctx: RuleContext) -> Iterator[Diagnostic]:
    known = {hardware.name for hardware in ctx.registry.hardware}
    exists = known | ctx.unloaded_hardware
    hint = f"known: {', '.join(sorted(known))}" if known else "hardware/ is empty"
    for release in ctx.registry.releases:
        for index, artifact in enumerate(release.artifacts):
            if artifact.hardware_version not in exists:
                yield ctx.at(release.source_path, ("artifacts", index, "hardware_version"),
                             f"hardware_version '{artifact.hardware_version}' has no file "
                             f"hardware/{artifact.hardware_version}.yaml ({hint})", "hardware-exists")
    for cohort in ctx.registry.cohorts:
        for index, name in enumerate(cohort.hardware_versions):
            if name not in exists:
                yield ctx.at(cohort.source_path, ("hardware_versions", index),
                             f"hardware_version '{name}' has no file hardware/{name}.yaml ({hint})",
                             "hardware-exists")


def path_values_distinct(ctx: RuleContext) -> Iterator[Diagnostic]:
    hardware: list[HardwareVersion] = sorted(ctx.registry.hardware, key=lambda h: h.source_path)
    yield from _collisions(ctx, ((h.source_path, ("name",), h.name) for h in hardware),
                           "hardware version", "path-collision")
    revisions = ((r.source_path, ("revision",), r.revision)
                 for r in sorted(ctx.registry.releases, key=lambda r: r.source_path) if r.revision)
    yield from _collisions(ctx, revisions, "revision", "path-collision")  # type: ignore[arg-type]
    software_types = ((r.source_path, ("artifacts", index, "software_type"), a.software_type)
                      for r in sorted(ctx.registry.releases, key=lambda r: r.source_path)
                      for index, a in enumerate(r.artifacts) if a.software_type)
    yield from _collisions(ctx, software_types, "software_type", "path-collision")  # type: ignore[arg-type]


# A suffix that names a fix or update of its base, which people expect to sort after it.
_POST_RELEASE = re.compile(r"^(?:hotfix|bugfix|fix|patch|post|pl|sp|p)(?![a-z])", re.IGNORECASE)
_NATURAL_SPLIT = re.compile(r"^(?P<numbers>[0-9]+(?:\.[0-9]+)*)[-.+~_]?(?P<suffix>[A-Za-z].*)$")
_RUNS = re.compile(r"[0-9]+|[^0-9]+")


def _order_fix(ctx: RuleContext, release: Release) -> str | None:
    """The warning (and fix) for a version whose own text sorts other than people read it; None when it does not."""
    version = release.version
    numbers = ".".join(str(n) for n in release.parsed_version.numbers)
    if ctx.registry.scheme.name == "semver":
        prerelease = _prerelease(version)
        if not prerelease:
            return None
        identifiers = prerelease.split(".")
        if _POST_RELEASE.match(identifiers[0]):
            major, minor, patch = release.parsed_version.numbers
            return (f"prerelease '{prerelease}' reads like a fix after {numbers}, but a SemVer prerelease sorts "
                    f"before its release: {version} < {numbers}, so devices on {numbers} are never offered it and "
                    f"devices on it are offered {numbers}. Release it as {major}.{minor}.{patch + 1}")
        mixed = [part for part in identifiers if not part.isdigit() and any(c.isdigit() for c in part)
                 and any(c.isalpha() for c in part)]
        if mixed:
            suggested = ".".join(_split_identifier(part) if part in mixed else part for part in identifiers)
            build = version.partition("+")[2]
            suggestion = f"{version.partition('-')[0]}-{suggested}" + (f"+{build}" if build else "")
            return (f"prerelease identifier '{mixed[0]}' mixes letters and digits, which SemVer compares as text, "
                    "character by character (rc10 sorts below rc9): write "
                    f"{suggestion} so that the number compares as a number")
        return None
    match = _NATURAL_SPLIT.match(version)
    if match and _POST_RELEASE.match(match["suffix"]):
        base = match["numbers"]
        return (f"suffix '{match['suffix']}' reads like a fix after {base}, but under version_scheme natural a "
                f"suffixed version sorts before the same numbers without one: {version} < {base}, so devices on "
                f"{base} are never offered it and devices on it are offered {base}. Number it after its base "
                f"instead: {base}.1")
    return None


def untyped_devices_stranded(ctx: RuleContext) -> Iterator[Diagnostic]:
    """Warn when devices that report no software type are never offered the newer releases of their cohort.

    For each cohort and hardware version H: U is the newest release (not
    yanked) with an image for H without a software type, the last one such a
    device can be running. A release deployed to H above U that has images
    for H only under software types, none of which the device takes (see
    `Release.image_software_type` and hardware's `default_software_type`),
    is one that device is never offered: it is "up to date" for good.
    """
    hardware = {h.name: h for h in ctx.registry.hardware}
    for cohort in ctx.registry.cohorts:
        stranded: dict[tuple[int, str], list[str]] = {}  # (activation index, U) -> hardware versions
        for name in cohort.hardware_versions or sorted(hardware):
            if name in ctx.unloaded_hardware or name not in hardware:
                continue  # no file, or one that did not load: its default_software_type is unknown, not unset
            untyped = [r for r in ctx.registry.releases if not r.is_yanked and r.has_image(name, None)]
            if not untyped:
                continue
            newest = untyped[-1]  # releases are sorted by version
            default = hardware[name].default_software_type if name in hardware else None
            for index, activation in enumerate(cohort.releases):
                release = ctx.registry.release(activation.version)
                if release is None or release.is_yanked or not activation.deploys_to(name) \
                        or not release.parsed_version > newest.parsed_version \
                        or name not in release.hardware_versions:
                    continue
                if release.has_image(name, release.image_software_type(name, None, default)):
                    continue
                stranded.setdefault((index, newest.version), []).append(name)
        for (index, untyped_version), names in sorted(stranded.items()):
            release = ctx.registry.release(cohort.releases[index].version)
            assert release is not None
            types = sorted({a.software_type for a in release.artifacts
                            if a.hardware_version in names and a.software_type})
            yield ctx.at(cohort.source_path, ("releases", index, "version"),
                         f"devices on {untyped_version} without a software type are never offered "
                         f"{release.version} ({', '.join(types)}) in cohort '{cohort.slug}' "
                         f"({', '.join(names)}): they are told they are up to date for good. Set "
                         f"`default_software_type` in {', '.join(f'hardware/{n}.yaml' for n in names)} to the "
                         "software type they take (docs/devices.md, \"Devices without a software type\")", "untyped-stranded",
                         severity=Severity.WARNING)


def version_orders_that_surprise(ctx: RuleContext) -> Iterator[Diagnostic]:
    """Warnings for versions whose documented order is not the one people expect.

    - a SemVer prerelease identifier mixing letters and digits (`rc10` sorts
      below `rc9`: compared as text);
    - a suffix that reads like a post-release (`hotfix1`, `patch`, `post`,
      `p1`, `fix`): it sorts before its base in both schemes;
    - a release that sorts below an older release with the same numbers
      (older by the caller's recency, e.g. git history), so devices on the
      older one are never offered the newer.
    """
    for release in ctx.registry.releases:
        fix = _order_fix(ctx, release)
        if fix is not None:
            yield ctx.at(release.source_path, ("version",), fix, "version-order", severity=Severity.WARNING)
    by_numbers = _groups((r.parsed_version.numbers, r) for r in ctx.registry.releases)
    for group in by_numbers:
        ordered = sorted(group, key=lambda r: r.parsed_version.key)
        for position, release in enumerate(ordered):
            above = [other for other in ordered[position + 1:]
                     if other.parsed_version > release.parsed_version and ctx.older(other.source_path, release.source_path)]
            if above:
                other = above[0]
                yield ctx.at(release.source_path, ("version",),
                             f"{release.version} is newer than {other.version} ({other.source_path}) but sorts "
                             f"below it: devices on {other.version} are not offered {release.version}, and a cohort "
                             f"that deploys only {release.version} tells them they are up to date. Give it a "
                             f"version above {other.version}", "version-order", severity=Severity.WARNING)


ALL_RULES: tuple[Rule, ...] = (
    file_names_match,
    versions_parse,
    versions_unique,
    min_version_not_above_version,
    build_ids_unique,
    artifact_urls_consistent,
    artifacts_well_formed,
    hardware_exists,
    path_values_distinct,
    cohorts_name_live_releases,
    activation_hardware,
    untyped_devices_stranded,
    version_orders_that_surprise,
)


def check_rules(ctx: RuleContext) -> list[Diagnostic]:
    return [diagnostic for rule in ALL_RULES for diagnostic in rule(ctx)]
