"""Rules a schema cannot say, checked across the whole registry.

Each rule is a function from the registry (plus source positions) to
diagnostics; `ALL_RULES` lists them, those that read cohorts last (callers
sort the findings by file and position). The model is already schema-valid
when these run.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Callable, Hashable, Iterable, Iterator, Mapping, TypeVar

from relreg.registry.diagnostics import Diagnostic, Severity
from relreg.registry.model import Cohort, HardwareVersion, Registry, Release
from relreg.registry.versions import Version, VersionError
from relreg.registry.yamlload import JsonPath, SourceDocument


@dataclass(frozen=True)
class RuleContext:
    registry: Registry
    documents: dict[str, SourceDocument]  # by display path
    # Versions whose release file exists but failed to load; rules that look a
    # release up skip these, since the file's own errors already say what is wrong.
    unloaded_versions: frozenset[str] = frozenset()
    unloaded_hardware: frozenset[str] = frozenset()
    # How recent each file is, by display path: a larger number is newer. The
    # caller decides (git history for validate, "changed by the pull request"
    # for check); a file not in it counts as newest (untracked). When two files
    # conflict, the newer one is reported and the older one named. May be
    # computed lazily: it is only read when a conflict or a version order needs it.
    recency: Mapping[str, int] = field(default_factory=dict)

    def at(self, source_path: str, path: JsonPath, message: str, rule: str, *, key: bool = False,
           severity: Severity = Severity.ERROR) -> Diagnostic:
        doc = self.documents[source_path]
        position = doc.key_position(path) if key else doc.position(path)
        return Diagnostic(source_path, position.line, position.column, message, rule, severity)

    def age(self, source_path: str) -> tuple[int, str]:
        """Sort key, oldest first: recency, then path (so that files of equal recency order stably)."""
        return self.recency.get(source_path, _UNTRACKED), source_path

    def older(self, left: str, right: str) -> bool:
        """True when the file `left` is known to be older than `right` (not merely first by path)."""
        return self.recency.get(left, _UNTRACKED) < self.recency.get(right, _UNTRACKED)

    def parse(self, text: str) -> Version | None:
        try:
            return self.registry.scheme.parse(text)
        except VersionError:
            return None


Rule = Callable[[RuleContext], Iterable[Diagnostic]]
_UNTRACKED = sys.maxsize  # recency of a file the caller knows nothing of: newest of all
_T = TypeVar("_T")


def _stem(source_path: str) -> str:
    return source_path.rsplit("/", 1)[-1].removesuffix(".yaml")


def file_names_match(ctx: RuleContext) -> Iterator[Diagnostic]:
    """Each release's version and hardware's name is its file's name (cohorts: `cohort_file_names_match`)."""
    items: list[tuple[str, str, str]] = [(r.source_path, "version", r.version) for r in ctx.registry.releases]
    items += [(h.source_path, "name", h.name) for h in ctx.registry.hardware]
    return _names_match(ctx, items)


def cohort_file_names_match(ctx: RuleContext) -> Iterator[Diagnostic]:
    """Each cohort's slug is its file's name."""
    return _names_match(ctx, [(c.source_path, "slug", c.slug) for c in ctx.registry.cohorts])


def _names_match(ctx: RuleContext, items: list[tuple[str, str, str]]) -> Iterator[Diagnostic]:
    for source_path, field_name, value in items:
        if _stem(source_path) != value:
            yield ctx.at(source_path, (field_name,),
                         f"{field_name} '{value}' does not match the file name '{_stem(source_path)}.yaml': "
                         f"rename the file to {value}.yaml or fix the {field_name}", "file-name-mismatch")


def versions_parse(ctx: RuleContext) -> Iterator[Diagnostic]:
    """Each min_version and delta_from parses under the registry's scheme (cohorts: `cohort_versions_parse`)."""
    scheme = ctx.registry.scheme
    releases = ctx.registry.releases
    # Each distinct text is parsed once; a release's own version parses, so only a delta_from naming
    # none needs parsing. The releases are gone through again only when one of them does not parse.
    minimums: dict[str, str] = {}
    for text in {release.min_version for release in releases}:
        if text is not None:
            try:
                scheme.parse(text)
            except VersionError as error:
                minimums[text] = str(error)
    sources = {artifact.delta_from for release in releases for artifact in release.artifacts}
    sources.difference_update(ctx.registry.releases_by_version, (None,))
    unparsed = {text for text in sources if ctx.parse(text) is None}
    if not minimums and not unparsed:
        return
    for release in releases:
        if release.min_version in minimums:
            yield ctx.at(release.source_path, ("min_version",), f"min_version: {minimums[release.min_version]}",
                         "version-scheme")
        for index, artifact in enumerate(release.artifacts):
            if artifact.delta_from in unparsed:
                yield ctx.at(release.source_path, ("artifacts", index, "delta_from"),
                             f"delta_from: '{artifact.delta_from}' is not a {scheme.name} version", "version-scheme")


def cohort_versions_parse(ctx: RuleContext) -> Iterator[Diagnostic]:
    """Each version a cohort activates parses under the registry's scheme."""
    scheme = ctx.registry.scheme
    for cohort in ctx.registry.cohorts:
        for index, activation in enumerate(cohort.releases):
            if ctx.parse(activation.version) is None:
                yield ctx.at(cohort.source_path, ("releases", index, "version"),
                             f"'{activation.version}' is not a {scheme.name} version", "version-scheme")


def _collisions(ctx: RuleContext, items: Iterable[tuple[str, JsonPath, str]], what: str,
                rule: str) -> Iterator[Diagnostic]:
    """Values that differ but would land on the same file on a case-insensitive file system.

    Like every conflict between two files, each is reported at the newer file (`ctx.age`), naming the
    oldest one of its letter case; `items` of one file keep their order. The files' recency is read only
    for the values that collide.
    """
    groups: dict[str, list[tuple[str, JsonPath, str]]] = {}
    for item in items:
        groups.setdefault(item[2].casefold(), []).append(item)
    for group in groups.values():
        if len({value for _, _, value in group}) < 2:
            continue
        (first_path, _, first_value), *others = sorted(group, key=lambda item: ctx.age(item[0]))  # stable
        for source_path, path, value in others:
            if value != first_value:
                yield ctx.at(source_path, path,
                             f"{what} '{value}' differs from '{first_value}' ({first_path}) only in letter case; "
                             "both would map to the same file on case-insensitive file systems", rule)


def _folds_apart(values: Iterable[str]) -> bool:
    """True when no two different values of `values` have the same casefold (`_collisions` then finds nothing)."""
    distinct = set(values)
    return len({value.casefold() for value in distinct}) == len(distinct)


def _repeated_groups(keys: list[Hashable], item_of: Callable[[int], _T]) -> list[list[_T]]:
    """`_groups` of (keys[i], item_of(i)): the same groups, with one set built when every key is unique."""
    if len(set(keys)) == len(keys):
        return []  # the common case, decided in C
    seen: set[Hashable] = set()
    repeated = {key for key in keys if key in seen or seen.add(key)}  # type: ignore[func-returns-value]
    return _groups((key, item_of(index)) for index, key in enumerate(keys) if key in repeated)


def _artifact_places(releases: Iterable[Release]) -> list[tuple[Release, int]]:
    """(release, artifact index) of every artifact, in the order of the registry's releases and their artifacts."""
    return [(release, index) for release in releases for index in range(len(release.artifacts))]


def _artifact_place(releases: Iterable[Release]) -> Callable[[int], tuple[Release, int]]:
    """The (release, artifact index) of the n-th artifact; the list is made on the first call, so a
    registry without repeats never builds it."""
    places: list[tuple[Release, int]] = []

    def place(index: int) -> tuple[Release, int]:
        if not places:
            places.extend(_artifact_places(releases))
        return places[index]
    return place


# What model.py's _PLAIN_PATH refuses, for many URLs at once (each after a line break): a character
# outside its segments, an empty segment, or a '.' or '..' segment.
_PLAIN_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~%+-/\n"
_NOT_PLAIN_SEGMENTS = (b"//", b"\n/", b"/\n", b"\n\n", b"/./", b"/.\n", b"\n./", b"\n.\n", b"/../", b"/..\n",
                       b"\n../", b"\n..\n")


def _all_plain(urls: list[str]) -> bool:
    """True when every URL matches model.py's _PLAIN_PATH (so an absolute URL, with its ':', never does)."""
    text = "\n" + "\n".join(urls) + "\n"
    if not text.isascii() or text.count("\n") != len(urls) + 1:  # a URL holding a line break is no plain path
        return False
    data = text.encode("ascii")
    if data.translate(None, _PLAIN_BYTES) or b"//" in data or b"\n/" in data or b"/\n" in data or b"\n\n" in data:
        return False
    return not ((b"/." in data or b"\n." in data) and any(part in data for part in _NOT_PLAIN_SEGMENTS))


def _url_keys(releases: Iterable[Release], base: str) -> list[str]:
    """A key per artifact, in `_artifact_places` order, equal for two artifacts exactly when their
    `absolute_url(base)` are: the URLs as written when all are plain relative paths and `base` ends
    in '/' (appending one base keeps them apart), else the absolute URLs."""
    urls = [artifact.url for release in releases for artifact in release.artifacts]
    if base.endswith("/") and _all_plain(urls):
        return urls
    return [artifact.absolute_url(base) for release in releases for artifact in release.artifacts]


def _groups(items: Iterable[tuple[Hashable, _T]]) -> list[list[_T]]:
    """Items with the same key, for keys that more than one item has, in first-seen order."""
    # Keys are almost always unique (100,000 build ids): remember only the first
    # item of each and start a list at the second, rather than a list per key.
    first: dict[Hashable, tuple[int, _T]] = {}
    repeated: dict[Hashable, list[_T]] = {}
    for key, item in items:
        seen = first.get(key)
        if seen is None:
            first[key] = (len(first), item)
        elif key in repeated:
            repeated[key].append(item)
        else:
            repeated[key] = [seen[1], item]
    return [repeated[key] for key in sorted(repeated, key=lambda key: first[key][0])]


def versions_unique(ctx: RuleContext) -> Iterator[Diagnostic]:
    """Each version is released once; a duplicate is reported at the newer file, naming the older."""
    releases = ctx.registry.releases
    for group in _repeated_groups([r.parsed_version.key for r in releases], releases.__getitem__):
        first, *others = sorted(group, key=lambda r: ctx.age(r.source_path))
        for release in others:
            yield ctx.at(release.source_path, ("version",),
                         f"version '{release.version}' is the same version as '{first.version}' "
                         f"({first.source_path}); each version may be released once", "version-unique")
    if _folds_apart(r.version for r in releases):
        return
    yield from _collisions(ctx, ((r.source_path, ("version",), r.version)
                                 for r in sorted(ctx.registry.releases, key=lambda r: r.source_path)),
                           "version", "path-collision")


def min_version_not_above_version(ctx: RuleContext) -> Iterator[Diagnostic]:
    for release in ctx.registry.releases:
        minimum = ctx.parse(release.min_version) if release.min_version else None
        if minimum is not None and minimum > release.parsed_version:
            yield ctx.at(release.source_path, ("min_version",),
                         f"min_version '{release.min_version}' is above the release's own version "
                         f"'{release.version}': no device could ever install it", "min-version")


def build_ids_unique(ctx: RuleContext) -> Iterator[Diagnostic]:
    """A build id names one binary; a reuse is reported at the newer file (or later artifact), naming the first."""
    releases = ctx.registry.releases
    build_ids = [artifact.build_id_key for release in releases for artifact in release.artifacts]
    for group in _repeated_groups(build_ids, _artifact_place(releases)):
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
    releases = ctx.registry.releases
    urls = _url_keys(releases, base)
    for group in _repeated_groups(urls, _artifact_place(releases)):
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
    release_named = ctx.registry.releases_by_version.get
    # Fields by position (model.ARTIFACT_FIELDS), not by name: this looks at every artifact of the registry.
    slot_of = itemgetter(0, 5, 6, 7)  # hardware_version, software_type, type, delta_from
    for release in ctx.registry.releases:
        artifacts = release.artifacts
        if len(set(map(slot_of, artifacts))) != len(artifacts):
            yield from _artifacts_twice(ctx, release)
        key = None
        for index, (hardware_version, _, _, _, _, software_type, kind, delta_from) in enumerate(artifacts):
            if kind == "delta" and delta_from is not None:
                source = release_named(delta_from)
                key = release.parsed_version.key if key is None else key
                # Only a delta whose source is missing or wrong goes through _delta_source, which words why.
                if source is None or not source.parsed_version.key < key \
                        or (hardware_version, software_type) not in source.image_slots:
                    yield from _delta_source(ctx, release, index)


def _artifacts_twice(ctx: RuleContext, release: Release) -> Iterator[Diagnostic]:
    """A second artifact for the same slot (hardware, software type, type, delta source) of one release."""
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


def _delta_source(ctx: RuleContext, release: Release, index: int) -> Iterator[Diagnostic]:
    artifact = release.artifacts[index]
    path = ("artifacts", index, "delta_from")
    source = ctx.registry.release(artifact.delta_from)  # type: ignore[arg-type]
    if source is None and artifact.delta_from in ctx.unloaded_versions:
        return
    if source is None:
        yield ctx.at(release.source_path, path,
                     f"delta_from '{artifact.delta_from}' is not a release in this registry", "delta-from")
        return
    if not source.parsed_version < release.parsed_version:
        yield ctx.at(release.source_path, path,
                     f"delta_from '{artifact.delta_from}' is not lower than {release.version}: "
                     "a delta upgrades from an older release", "delta-from")
    if not any(a.hardware_version == artifact.hardware_version and a.software_type == artifact.software_type
               for a in source.artifacts):
        types = sorted({a.software_type or "" for a in source.artifacts
                        if a.hardware_version == artifact.hardware_version})
        if not types:
            yield ctx.at(release.source_path, path,
                         f"release {source.version} has no artifact for hardware_version "
                         f"'{artifact.hardware_version}', so no device can apply a delta from it", "delta-from")
            return
        image = f"software_type '{artifact.software_type}'" if artifact.software_type else "no software_type"
        has = ", ".join(f"'{t}'" if t else "none" for t in types)
        named = [f"'{t}'" for t in types if t]
        fix = f"; give this delta the software_type of the image it patches ({' or '.join(named)})" \
            if not artifact.software_type and named else ""
        yield ctx.at(release.source_path, path,
                     f"release {source.version} has no '{artifact.hardware_version}' image with {image} "
                     f"(its '{artifact.hardware_version}' software types: {has}), so no device can apply "
                     f"a delta from it{fix}", "delta-from")


def _hardware_known(ctx: RuleContext) -> tuple[set[str], str]:
    """The hardware versions that have a file (loaded or not), and the hint naming those that loaded."""
    known = {hardware.name for hardware in ctx.registry.hardware}
    return known | ctx.unloaded_hardware, f"known: {', '.join(sorted(known))}" if known else "hardware/ is empty"


def hardware_exists(ctx: RuleContext) -> Iterator[Diagnostic]:
    """Each artifact's hardware version has a file (cohorts: `cohort_hardware_exists`)."""
    exists, hint = _hardware_known(ctx)
    named = {artifact.hardware_version for release in ctx.registry.releases for artifact in release.artifacts}
    for release in ctx.registry.releases if not named <= exists else ():
        for index, artifact in enumerate(release.artifacts):
            if artifact.hardware_version not in exists:
                yield ctx.at(release.source_path, ("artifacts", index, "hardware_version"),
                             f"hardware_version '{artifact.hardware_version}' has no file "
                             f"hardware/{artifact.hardware_version}.yaml ({hint})", "hardware-exists")


def cohort_hardware_exists(ctx: RuleContext) -> Iterator[Diagnostic]:
    """Each hardware version a cohort names has a file."""
    exists, hint = _hardware_known(ctx)
    for cohort in ctx.registry.cohorts:
        for index, name in enumerate(cohort.hardware_versions):
            if name not in exists:
                yield ctx.at(cohort.source_path, ("hardware_versions", index),
                             f"hardware_version '{name}' has no file hardware/{name}.yaml ({hint})",
                             "hardware-exists")


def path_values_distinct(ctx: RuleContext) -> Iterator[Diagnostic]:
    hardware: list[HardwareVersion] = sorted(ctx.registry.hardware, key=lambda h: h.source_path)
    releases = ctx.registry.releases
    yield from _collisions(ctx, ((h.source_path, ("name",), h.name) for h in hardware),
                           "hardware version", "path-collision")
    revisions = ((r.source_path, ("revision",), r.revision)
                 for r in sorted(ctx.registry.releases, key=lambda r: r.source_path) if r.revision)
    if not _folds_apart([r.revision for r in releases if r.revision]):
        yield from _collisions(ctx, revisions, "revision", "path-collision")  # type: ignore[arg-type]
    software_types = ((r.source_path, ("artifacts", index, "software_type"), a.software_type)
                      for r in sorted(ctx.registry.releases, key=lambda r: r.source_path)
                      for index, a in enumerate(r.artifacts) if a.software_type)
    if not _folds_apart({a.software_type for r in releases for a in r.artifacts}.difference((None, ""))):
        yield from _collisions(ctx, software_types, "software_type", "path-collision")  # type: ignore[arg-type]


def cohorts_name_live_releases(ctx: RuleContext) -> Iterator[Diagnostic]:
    cohort: Cohort
    for cohort in ctx.registry.cohorts:
        listed: dict[str, int] = {}
        for index, activation in enumerate(cohort.releases):
            path = ("releases", index, "version")
            release = ctx.registry.release(activation.version)
            if activation.version in listed:
                yield ctx.at(cohort.source_path, path,
                             f"release {activation.version} is listed twice (first at releases[{listed[activation.version]}])",
                             "cohort-release-unique")
            listed.setdefault(activation.version, index)
            percent = activation.rollout_percent
            if abs(round(percent, 2) - percent) > 1e-9:
                yield ctx.at(cohort.source_path, ("releases", index, "rollout_percent"),
                             f"rollout_percent {percent} has more than two decimals; devices are bucketed "
                             "in steps of 0.01%", "rollout-precision")
            if release is None and activation.version in ctx.unloaded_versions:
                continue
            if release is None:
                yield ctx.at(cohort.source_path, path,
                             f"release '{activation.version}' does not exist (no releases/{activation.version}.yaml)",
                             "cohort-release-exists")
            elif release.is_yanked:
                yield ctx.at(cohort.source_path, path,
                             f"release {activation.version} is yanked ({release.yanked}); "
                             "remove it from the cohort or activate another release", "cohort-release-yanked")
            elif cohort.hardware_versions and not set(cohort.hardware_versions) & set(release.hardware_versions):
                yield ctx.at(cohort.source_path, path,
                             f"release {activation.version} has no artifact for any hardware of cohort "
                             f"'{cohort.slug}' ({', '.join(cohort.hardware_versions)})", "cohort-release-hardware")


def activation_hardware(ctx: RuleContext) -> Iterator[Diagnostic]:
    """A hold per board: an activation's `hardware_versions` names hardware of the cohort, once, with images.

    Each name must be a hardware version of the cohort (any file in hardware/
    when the cohort lists none), appear once, and have an image (full or
    delta) in the release, or devices of that board would be "deployed"
    something they can never install.
    """
    known = {hardware.name for hardware in ctx.registry.hardware} | ctx.unloaded_hardware
    for cohort in ctx.registry.cohorts:
        allowed = set(cohort.hardware_versions) if cohort.hardware_versions else known
        for index, activation in enumerate(cohort.releases):
            if activation.hardware_versions is None:
                continue
            release = ctx.registry.release(activation.version)
            seen: dict[str, int] = {}
            for position, name in enumerate(activation.hardware_versions):
                path = ("releases", index, "hardware_versions", position)
                if name in seen:
                    yield ctx.at(cohort.source_path, path,
                                 f"hardware_version '{name}' is listed twice for release {activation.version} "
                                 f"(first at hardware_versions[{seen[name]}])", "activation-hardware-unique")
                    continue
                seen[name] = position
                if name not in allowed:
                    if cohort.hardware_versions:
                        yield ctx.at(cohort.source_path, path,
                                     f"hardware_version '{name}' is not a hardware version of cohort "
                                     f"'{cohort.slug}' ({', '.join(cohort.hardware_versions)}): a release can only "
                                     "be deployed to, or held back on, the cohort's own hardware",
                                     "activation-hardware")
                    else:
                        yield ctx.at(cohort.source_path, path,
                                     f"hardware_version '{name}' has no file hardware/{name}.yaml", "activation-hardware")
                    continue
                if release is not None and not release.is_yanked and name not in release.hardware_versions:
                    yield ctx.at(cohort.source_path, path,
                                 f"release {activation.version} has no image for hardware_version '{name}' "
                                 f"(it has images for {', '.join(release.hardware_versions)}): devices of {name} "
                                 "could never install it", "activation-hardware-image")


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
    newest_untyped: dict[str, Release | None] = {}
    for cohort in ctx.registry.cohorts:
        stranded: dict[tuple[int, str], list[str]] = {}  # (activation index, U) -> hardware versions
        for name in cohort.hardware_versions or sorted(hardware):
            if name in ctx.unloaded_hardware or name not in hardware:
                continue  # no file, or one that did not load: its default_software_type is unknown, not unset
            if name not in newest_untyped:  # releases are sorted by version: the first from the top is U
                newest_untyped[name] = next((r for r in reversed(ctx.registry.releases)
                                             if not r.is_yanked and r.has_image(name, None)), None)
            newest = newest_untyped[name]
            if newest is None:
                continue
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


# A suffix that names a fix or update of its base, which people expect to sort after it.
_POST_RELEASE = re.compile(r"^(?:hotfix|bugfix|fix|patch|post|pl|sp|p)(?![a-z])", re.IGNORECASE)
_NATURAL_SPLIT = re.compile(r"^(?P<numbers>[0-9]+(?:\.[0-9]+)*)[-.+~_]?(?P<suffix>[A-Za-z].*)$")
_RUNS = re.compile(r"[0-9]+|[^0-9]+")


def _split_identifier(identifier: str) -> str:
    """`rc10` -> `rc.10`: letters and numbers as separate SemVer identifiers (numbers without leading zeros)."""
    return ".".join(str(int(run)) if run.isdigit() else run for run in _RUNS.findall(identifier))


def _prerelease(version: str) -> str:
    return version.split("+", 1)[0].partition("-")[2]


def _order_fix(ctx: RuleContext, release: Release) -> str | None:
    """The warning (and fix) for a version whose own text sorts other than people read it; None when it does not."""
    version = release.version
    if ctx.registry.scheme.name == "semver":
        prerelease = _prerelease(version)
        if not prerelease:
            return None  # the common case, decided before the numbers are written out
        numbers = ".".join(str(n) for n in release.parsed_version.numbers)
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
    releases = ctx.registry.releases
    by_numbers = _repeated_groups([r.parsed_version.numbers for r in releases], releases.__getitem__)
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


# The rules that read no cohort (tests/test_validate_incremental.py checks it): their findings are a
# function of the registry, release and hardware files alone, so registry/validate.py keeps them
# across a rollout change (a cohort file edited) and runs only COHORT_RULES again.
RULES_WITHOUT_COHORTS: tuple[Rule, ...] = (
    file_names_match,
    versions_parse,
    versions_unique,
    min_version_not_above_version,
    build_ids_unique,
    artifact_urls_consistent,
    artifacts_well_formed,
    hardware_exists,
    path_values_distinct,
    version_orders_that_surprise,
)
COHORT_RULES: tuple[Rule, ...] = (
    cohort_file_names_match,
    cohort_versions_parse,
    cohort_hardware_exists,
    cohorts_name_live_releases,
    activation_hardware,
    untyped_devices_stranded,
)
ALL_RULES: tuple[Rule, ...] = RULES_WITHOUT_COHORTS + COHORT_RULES


def check_rules(ctx: RuleContext, rules: tuple[Rule, ...] = ALL_RULES) -> list[Diagnostic]:
    """The findings of `rules` (all of them by default), in that order; callers sort them."""
    return [diagnostic for rule in rules for diagnostic in rule(ctx)]
