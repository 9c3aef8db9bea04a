"""Pull-request policy: what a change may do to a registry that is already published.

`check_policy(base, head)` is a pure function from two snapshots of a registry
(the published base and the proposed head: models, raw files and source
positions) to diagnostics. It reads no disk and no git; `check.py` gathers the
snapshots. The rules (from the registry's point of view, git history is the
audit log, and devices, caches and links may already hold what was published):

- A published release is immutable: its version, revision and artifacts may
  not change. Notes (and notes_format) and extra_info may be corrected, and a
  release may be yanked or un-yanked (un-yanking is a warning: the withdrawn
  release becomes deployable again).
- Gates may be added to a published release, never removed: turning
  must_pass_through on, or adding or raising min_version, is a warning that
  says what changes for devices; turning it off, or lowering or removing
  min_version, is an error (devices could skip a migration).
- A published release, hardware version or cohort may not be deleted or
  renamed; a release is withdrawn with `yanked:`.
- Changing registry.yaml's version_scheme, artifact_base_url or site_url changes what
  published releases mean or where devices find them; each is reported as a warning (a scheme change
  names the published versions whose order it changes), and the summary
  names every changed setting.
- A release newly deployed to a cohort (or to more of its hardware, when a hold
  per board is released) that has no full artifact for some of that hardware
  is reported as a warning (those devices get nothing). Holding back or
  releasing hardware is otherwise an ordinary cohort change.
- A published board's `default_software_type` set or changed is a warning:
  what devices without a software type are offered changes.

Cohorts naming missing or yanked releases, or releases without artifacts for
any of the cohort's hardware, are errors of `relreg validate` already
(cohort-release-*), which `relreg check` runs on the head too; they are not
reported twice.

Releases are matched by version, hardware by name, cohorts by slug, not by
path, so moving a release file into a subfolder (releases/1.4/1.4.2.yaml) is
not a change. A file that exists at the head but does not load is never
reported as deleted: its own errors say what is wrong.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from typing import Any, Collection, Iterator, Mapping

from relreg.devices.reach import NO_CHANNEL, Side, Stranded, stranded, stuck_on_yanked
from relreg.devices.update import REASON_LATEST
from relreg.registry.diagnostics import Diagnostic, Severity
from relreg.registry.model import Artifact, Cohort, HardwareVersion, RegistryConfig, Release
from relreg.registry.source import RawFile
from relreg.registry.versions import VersionError, VersionScheme, scheme_named
from relreg.registry.yamlload import JsonPath, SourceDocument

# How alike (difflib ratio over lines) a removed and an added file must be to
# count as one file renamed, as git's rename detection does at 50%.
RENAME_SIMILARITY = 0.5

KINDS = ("release", "hardware", "cohort")


@dataclass(frozen=True)
class Snapshot:
    """One side of the comparison: what loaded, and every file that exists."""

    root: str  # display path of the registry folder ("" or "." when it is the current folder)
    config: RegistryConfig | None
    releases: Mapping[str, Release]  # by version
    hardware: Mapping[str, HardwareVersion]  # by name
    cohorts: Mapping[str, Cohort]  # by slug
    files: Mapping[str, RawFile] = field(default_factory=dict)  # by path relative to the registry folder
    documents: Mapping[str, SourceDocument] = field(default_factory=dict)  # by display path (head only)

    @classmethod
    def of(cls, root: str, config: RegistryConfig | None, releases: list[Release],
           hardware: list[HardwareVersion], cohorts: list[Cohort], files: list[RawFile],
           documents: Mapping[str, SourceDocument] | None = None) -> "Snapshot":
        by_version: dict[str, Release] = {}
        for release in sorted(releases, key=lambda r: r.source_path):
            by_version.setdefault(release.version, release)
        by_name: dict[str, HardwareVersion] = {}
        for item in sorted(hardware, key=lambda h: h.source_path):
            by_name.setdefault(item.name, item)
        by_slug: dict[str, Cohort] = {}
        for cohort in sorted(cohorts, key=lambda c: c.source_path):
            by_slug.setdefault(cohort.slug, cohort)
        return cls(root, config, by_version, by_name, by_slug,
                   {file.registry_path: file for file in files}, documents if documents is not None else {})

    def items(self, kind: str) -> Mapping[str, Any]:
        return {"release": self.releases, "hardware": self.hardware, "cohort": self.cohorts}[kind]

    def display(self, registry_path: str) -> str:
        return f"{self.root}/{registry_path}" if self.root not in ("", ".") else registry_path

    def registry_path(self, display_path: str) -> str:
        prefix = f"{self.root}/" if self.root not in ("", ".") else ""
        return display_path[len(prefix):] if prefix and display_path.startswith(prefix) else display_path

    def unloaded_names(self, kind: str) -> frozenset[str]:
        """Stems of `kind` files that exist here but did not load."""
        loaded = {item.source_path for item in self.items(kind).values()}
        return frozenset(file.stem for file in self.files.values() if file.kind == kind and file.path not in loaded)


@dataclass(frozen=True)
class Changes:
    """What the head changes against the base, for the summary line."""

    added: dict[str, list[str]]
    changed: dict[str, list[str]]
    removed: dict[str, list[str]]
    settings: list[str] = field(default_factory=list)  # registry.yaml fields that changed

    def describe(self) -> str:
        parts = []
        for kind, plural in (("release", "releases"), ("hardware", "hardware versions"), ("cohort", "cohorts")):
            counts = [(len(self.added[kind]), "added"), (len(self.changed[kind]), "changed"),
                      (len(self.removed[kind]), "removed")]
            said = [f"{count} {what}" for count, what in counts if count]
            if said:
                parts.append(f"{plural}: {', '.join(said)}")
        if self.settings:
            parts.insert(0, f"registry.yaml: {', '.join(self.settings)} changed")
        return "; ".join(parts) if parts else "no registry changes"


class _Context:
    def __init__(self, base: Snapshot, head: Snapshot, formerly: Mapping[str, Collection[str]]) -> None:
        self.base = base
        self.head = head
        self.formerly = formerly

    def at(self, source_path: str, path: JsonPath, message: str, rule: str, *, key: bool = False,
           severity: Severity = Severity.ERROR) -> Diagnostic:
        if self.head.registry_path(source_path) not in self.head.files:  # a deleted file
            return Diagnostic(source_path, 1, 1, message, rule, severity)
        document = self.head.documents[source_path]  # parsed with positions on first use
        position = document.key_position(path) if key else document.position(path)
        return Diagnostic(source_path, position.line, position.column, message, rule, severity)


def check_policy(base: Snapshot, head: Snapshot,
                 formerly: Mapping[str, Collection[str]] | None = None) -> list[Diagnostic]:
    """Every policy problem of `head` judged against the published `base`.

    `formerly`: what the git history adds to the two snapshots, the cohorts (slugs) that deployed a release
    earlier than `base`, for the releases the change yanks that no cohort of `base` deploys (see
    relreg.devices.reach.stuck_on_yanked); none by default."""
    ctx = _Context(base, head, formerly or {})
    diagnostics: list[Diagnostic] = []
    diagnostics += _removed_or_renamed(ctx)
    for version, published in sorted(base.releases.items()):
        proposed = head.releases.get(version)
        if proposed is not None:
            diagnostics += _release_immutable(ctx, published, proposed)
    diagnostics += _registry_settings(ctx)
    diagnostics += _scheme_change(ctx)
    diagnostics += _unyanked(ctx)
    diagnostics += _yanked_pass_through(ctx)
    diagnostics += _yanked_without_successor(ctx)
    diagnostics += _stranded_devices(ctx)
    diagnostics += _cohort_coverage(ctx)
    diagnostics += _default_software_types(ctx)
    return diagnostics


def changes(base: Snapshot, head: Snapshot) -> Changes:
    added: dict[str, list[str]] = {}
    changed: dict[str, list[str]] = {}
    removed: dict[str, list[str]] = {}
    for kind in KINDS:
        before, after = base.items(kind), head.items(kind)
        added[kind] = sorted(set(after) - set(before))
        removed[kind] = sorted(set(before) - set(after) - head.unloaded_names(kind))
        changed[kind] = sorted(name for name in set(before) & set(after)
                               if _differ(base, before[name], head, after[name]))
    return Changes(added, changed, removed, _settings_changed(base, head))


def _settings_changed(base: Snapshot, head: Snapshot) -> list[str]:
    """Names of registry.yaml settings that differ between base and head (in the order of RegistryConfig)."""
    if base.config is None or head.config is None:
        return []
    return [item.name for item in fields(RegistryConfig)
            if getattr(base.config, item.name) != getattr(head.config, item.name)]


# --- deleted and renamed files ---------------------------------------------------------------

_IDENTITY_FIELD = {"release": "version", "hardware": "name", "cohort": "slug"}
_WHAT = {"release": "release", "hardware": "hardware version", "cohort": "cohort"}


def _content(snapshot: Snapshot, item: Any) -> bytes:
    file = snapshot.files.get(snapshot.registry_path(item.source_path))
    return file.content if file is not None else b""


def _differ(base: Snapshot, old: Any, head: Snapshot, new: Any) -> bool:
    """Whether the files of `old` (in base) and `new` (in head) hold different bytes: equal blob ids say
    they do not without reading either (a base read from git is read only when asked)."""
    old_file = base.files.get(base.registry_path(old.source_path))
    new_file = head.files.get(head.registry_path(new.source_path))
    if old_file is not None and new_file is not None and old_file.blob_id == new_file.blob_id:
        return False
    return _content(base, old) != _content(head, new)


def _similarity(left: bytes, right: bytes) -> float:
    return difflib.SequenceMatcher(None, left.splitlines(), right.splitlines(), autojunk=False).ratio()


def _rename_target(ctx: _Context, kind: str, name: str, old: Any, added: list[str]) -> str | None:
    """The added item that the removed `name` most likely became, if any."""
    if kind == "release":
        fingerprints = {a.build_id for a in old.artifacts} | {a.sha256 for a in old.artifacts}
        for candidate in added:
            new = ctx.head.releases[candidate]
            if fingerprints & ({a.build_id for a in new.artifacts} | {a.sha256 for a in new.artifacts}):
                return candidate
    old_content = _content(ctx.base, old)
    scored = [(_similarity(old_content, _content(ctx.head, ctx.head.items(kind)[candidate])), candidate)
              for candidate in added]
    scored = [item for item in scored if item[0] >= RENAME_SIMILARITY]
    return max(scored)[1] if scored else None


def _removed_or_renamed(ctx: _Context) -> Iterator[Diagnostic]:
    for kind in KINDS:
        before, after = ctx.base.items(kind), ctx.head.items(kind)
        unloaded = ctx.head.unloaded_names(kind)
        added = sorted(set(after) - set(before))
        what, field_name = _WHAT[kind], _IDENTITY_FIELD[kind]
        for name in sorted(set(before) - set(after) - unloaded):
            old = before[name]
            old_path = ctx.base.registry_path(old.source_path)
            target = _rename_target(ctx, kind, name, old, added)
            if target is not None:
                added.remove(target)
                new = after[target]
                new_path = ctx.head.registry_path(new.source_path)
                yield ctx.at(new.source_path, (field_name,),
                             f"published {what} '{name}' ({old_path}) was renamed to '{target}' ({new_path}): "
                             f"{_keep_reason(kind)} {_rename_fix(kind, name, old_path)}", f"{kind}-renamed")
            else:
                yield ctx.at(ctx.head.display(old_path), (),
                             f"published {what} '{name}' was deleted ({old_path}): {_keep_reason(kind)} "
                             f"{_delete_fix(kind, name, old_path)}", f"{kind}-deleted")


def _keep_reason(kind: str) -> str:
    return {
        "release": "a published release stays in the registry for good, since devices, caches, links and "
                   "crash reports may refer to its version and build ids.",
        "hardware": "devices of a published hardware version stay in the field, and published releases "
                    "and their URLs refer to it.",
        "cohort": "devices are assigned to a published cohort by its slug and fetch its documents by URL.",
    }[kind]


def _delete_fix(kind: str, name: str, old_path: str) -> str:
    if kind == "release":
        return f"Restore {old_path}; to withdraw {name}, set `yanked: <reason>` in it instead."
    if kind == "hardware":
        return f"Restore {old_path}; a retired board can say so in its description."
    return f"Restore {old_path}; to stop a deployment, remove its entries from `releases:` (an empty list is fine)."


def _rename_fix(kind: str, name: str, old_path: str) -> str:
    if kind == "release":
        return (f"Restore {old_path} unchanged; to withdraw {name}, set `yanked: <reason>` in it, and publish "
                "the new version as a new release with its own artifacts (relreg new-release).")
    if kind == "hardware":
        return f"Restore {old_path}; add the new hardware version as a file of its own."
    return f"Restore {old_path}; add the new cohort as a file of its own."


# --- immutable releases ----------------------------------------------------------------------

_FIXED_FIELDS = ("revision",)  # min_version and must_pass_through: see _gates


def _shown(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"'{value}'" if isinstance(value, str) else str(value)


def _withdraw_hint(release: Release) -> str:
    hint = "restore the published value. To ship something else, publish a new release (relreg new-release)"
    if not release.is_yanked:
        hint += f", and to withdraw {release.version}, set `yanked: <reason>`"
    return hint + "."


def _slot(artifact: Artifact) -> tuple[str, str | None, str, str | None]:
    return (artifact.hardware_version, artifact.software_type, artifact.type, artifact.delta_from)


def _describe_slot(artifact: Artifact) -> str:
    text = f"hardware_version '{artifact.hardware_version}'"
    if artifact.software_type:
        text += f", software_type '{artifact.software_type}'"
    if artifact.is_delta:
        text += f", delta from {artifact.delta_from}"
    return text


_ARTIFACT_FIELDS = ("build_id", "url", "size", "sha256")


def _release_immutable(ctx: _Context, published: Release, proposed: Release) -> Iterator[Diagnostic]:
    where = proposed.source_path
    version = published.version
    for name in _FIXED_FIELDS:
        before, after = getattr(published, name), getattr(proposed, name)
        if name == "must_pass_through":
            before, after = bool(before), bool(after)
        if before != after:
            yield ctx.at(where, (name,),
                         f"{name} of published release {version} changed from {_shown(before)} to {_shown(after)}: "
                         f"a published release is immutable apart from notes, extra_info and yanked; "
                         f"{_withdraw_hint(proposed)}", "release-immutable")
    yield from _gates(ctx, published, proposed)
    old_slots = {_slot(a): (index, a) for index, a in enumerate(published.artifacts)}
    new_slots = {_slot(a): (index, a) for index, a in enumerate(proposed.artifacts)}
    for slot, (old_index, old) in old_slots.items():
        if slot not in new_slots:
            yield ctx.at(where, ("artifacts",),
                         f"the artifact for {_describe_slot(old)} (published as artifacts[{old_index}], "
                         f"url {old.url}) was removed from published release {version}: devices may already be "
                         f"downloading it; {_withdraw_hint(proposed)}", "release-immutable")
            continue
        new_index, new = new_slots[slot]
        for name in _ARTIFACT_FIELDS:
            before, after = getattr(old, name), getattr(new, name)
            if before != after:
                yield ctx.at(where, ("artifacts", new_index, name),
                             f"artifacts[{new_index}].{name} ({_describe_slot(new)}) of published release {version} "
                             f"changed from {_shown(before)} to {_shown(after)}: a published artifact is immutable, "
                             f"since devices, caches and crash reports may already hold the old file; "
                             f"{_withdraw_hint(proposed)}", "release-immutable")
    for slot, (new_index, new) in sorted(new_slots.items(), key=lambda item: item[1][0]):
        if slot not in old_slots:
            yield ctx.at(where, ("artifacts", new_index),
                         f"artifacts[{new_index}] ({_describe_slot(new)}) was added to published release {version}: "
                         f"the artifacts of a published release are fixed. Remove it and publish it in a new "
                         f"release (relreg new-release).", "release-immutable")


# --- gates: may be added to a published release, never removed --------------------------------

def _gates(ctx: _Context, published: Release, proposed: Release) -> Iterator[Diagnostic]:
    """Tightening a gate of a published release is a warning; loosening it is an error.

    Turning `must_pass_through` on, or adding or raising `min_version`, only
    makes devices take more steps (e.g. when later releases dropped an old
    migration), so it is allowed and the warning says what changes for
    devices. Turning it off, or lowering or removing `min_version`, lets
    devices skip a step they were told they need: a migration may be lost.
    """
    version = proposed.version
    where = proposed.source_path
    before, after = bool(published.must_pass_through), bool(proposed.must_pass_through)
    if not before and after:
        yield ctx.at(where, ("must_pass_through",), _pass_through_added(ctx, proposed), "release-gate-added",
                     severity=Severity.WARNING)
    elif before and not after:
        yield ctx.at(where, ("must_pass_through",),
                     f"must_pass_through of published release {version} was turned off: devices below {version} "
                     f"could then skip it, and the migration it carries, on their way to newer releases. A gate "
                     f"on a published release can be added, never removed: restore `must_pass_through: true`.",
                     "release-gate-removed")
    old_min, new_min = published.min_version, proposed.min_version
    if old_min == new_min:
        return
    scheme = scheme_named(ctx.head.config.version_scheme if ctx.head.config else "semver")
    try:
        old_key = scheme.parse(old_min).key if old_min else None
        new_key = scheme.parse(new_min).key if new_min else None
    except VersionError:
        yield ctx.at(where, ("min_version",),
                     f"min_version of published release {version} changed from {_shown(old_min)} to "
                     f"{_shown(new_min)}: {_withdraw_hint(proposed)}", "release-immutable")
        return
    if new_key is None:
        yield ctx.at(where, ("version",),
                     f"min_version '{old_min}' was removed from published release {version}: devices below "
                     f"{old_min} could then install {version} directly and skip the releases they need first. "
                     f"A gate on a published release can be raised, never lowered or removed: restore "
                     f"`min_version: \"{old_min}\"`.", "release-gate-removed")
    elif old_key is not None and new_key < old_key:
        yield ctx.at(where, ("min_version",),
                     f"min_version of published release {version} was lowered from '{old_min}' to '{new_min}': "
                     f"devices from {new_min} up to below {old_min} could then install {version} directly and skip "
                     f"the releases they need first. A gate on a published release can be raised, never lowered "
                     f"or removed: restore '{old_min}'.", "release-gate-removed")
    elif old_key is None or new_key > old_key:
        was = f" (it was {old_min})" if old_min else ""
        yield ctx.at(where, ("min_version",),
                     f"min_version of published release {version} raised to {new_min}{was}: devices below {new_min} "
                     f"will now install a release of at least {new_min} before {version} (where no cohort offers "
                     f"them one, a devices-stranded warning says so).",
                     "release-gate-added", severity=Severity.WARNING)


def _pass_through_added(ctx: _Context, release: Release) -> str:
    version = release.version
    newer = sorted((r for r in ctx.head.releases.values()
                    if r.parsed_version > release.parsed_version and not r.is_yanked),
                   key=lambda r: r.parsed_version.key)
    after = f"before {newer[0].version} and later" if newer else "before any newer release"
    # Which cohorts that leaves blocked is the devices-stranded warning's (_stranded_devices), per cohort.
    return (f"must_pass_through of published release {version} turned on: devices below {version} will now "
            f"stop at {version} {after}.")


# --- registry settings -----------------------------------------------------------------------

def _registry_settings(ctx: _Context) -> Iterator[Diagnostic]:
    before, after = ctx.base.config, ctx.head.config
    if before is None or after is None:
        return
    source = ctx.head.display("registry.yaml")
    if before.artifact_base_url != after.artifact_base_url:
        relative = sum(1 for release in ctx.base.releases.values() for a in release.artifacts
                       if not a.url.startswith("https://"))
        if relative:
            yield ctx.at(source, ("artifact_base_url",),
                         f"artifact_base_url changed from '{before.artifact_base_url}' to "
                         f"'{after.artifact_base_url}': the download URL of {relative} published artifacts with "
                         "relative urls changes with it. Make sure every file is served at the new location "
                         "before this is published.", "registry-artifact-base-url", severity=Severity.WARNING)
    if before.site_url != after.site_url:
        yield ctx.at(source, ("site_url",),
                     f"site_url changed from '{before.site_url}' to '{after.site_url}': devices, TUF clients and "
                     "links reach the site at its URL, and every published document (release_url, the entry point) "
                     "names it. Serve the site at the new URL, and keep the old one answering (or redirecting) "
                     "until every device has moved.", "registry-site-url", severity=Severity.WARNING)


def _order_changes(versions: list[str], before: VersionScheme, after: VersionScheme) -> list[str]:
    """How the order of `versions` changes from `before` to `after`: "b now sorts before a", in `before`'s order.

    One pass over the versions sorted the old way, keeping the highest new key
    so far: a version whose new key is not above it moved. O(n log n), so a
    registry of 10,000 releases is judged at once.
    """
    parsed = []
    for text in versions:
        try:
            parsed.append((before.parse(text).key, after.parse(text).key, text))
        except VersionError:
            continue  # not a version under the new scheme: validate reports it
    parsed.sort()
    moved: list[str] = []
    highest: tuple | None = None
    highest_text = ""
    for _, new_key, text in parsed:
        if highest is not None and new_key < highest:
            moved.append(f"{text} now sorts before {highest_text}")
        elif highest is not None and new_key == highest:
            moved.append(f"{text} is now the same version as {highest_text}")
        if highest is None or new_key > highest:
            highest, highest_text = new_key, text
    return moved


def _scheme_change(ctx: _Context) -> Iterator[Diagnostic]:
    """A changed version_scheme, with the published versions whose order it changes."""
    before, after = ctx.base.config, ctx.head.config
    if before is None or after is None or before.version_scheme == after.version_scheme:
        return
    try:
        old_scheme, new_scheme = scheme_named(before.version_scheme), scheme_named(after.version_scheme)
    except VersionError:
        return  # an unknown scheme is an error of validate
    moved = _order_changes(sorted(ctx.base.releases), old_scheme, new_scheme)
    if moved:
        listed = "; ".join(moved[:8])
        more = f" and {len(moved) - 8} more" if len(moved) > 8 else ""
        effect = (f"it changes the order of published releases ({listed}{more}), and so which update devices "
                  "are offered. Keep the scheme of a published registry, or switch only if the new order is the "
                  "one you mean.")
    else:
        effect = (f"the {len(ctx.base.releases)} published releases keep their order, but new versions will be "
                  "compared the new way.")
    yield ctx.at(ctx.head.display("registry.yaml"), ("version_scheme",),
                 f"version_scheme changed from '{before.version_scheme}' to '{after.version_scheme}': {effect}",
                 "registry-version-scheme", severity=Severity.WARNING)


def _unyanked(ctx: _Context) -> Iterator[Diagnostic]:
    """A published release whose `yanked:` the change removes: it becomes deployable again."""
    for version, published in sorted(ctx.base.releases.items()):
        proposed = ctx.head.releases.get(version)
        if published.is_yanked and proposed is not None and not proposed.is_yanked:
            yield ctx.at(proposed.source_path, ("version",),
                         f"release {version} was yanked ({published.yanked!r}) and this change removes `yanked:`: "
                         "it can be deployed again, and devices may be offered it. Make sure the reason no longer "
                         "holds; to ship a fix, publish a new release instead.", "release-unyanked",
                         severity=Severity.WARNING)


# --- deployments -----------------------------------------------------------------------------

def _cohort_coverage(ctx: _Context) -> Iterator[Diagnostic]:
    """Warn when a newly deployed release leaves some of the cohort's hardware without a full image."""
    for slug, cohort in sorted(ctx.head.cohorts.items()):
        if not cohort.hardware_versions:
            continue
        published = ctx.base.cohorts.get(slug)
        # A hold per board is an ordinary cohort change: releasing held-back hardware deploys the
        # release to it, so only the hardware a release newly reaches is looked at.
        before = {a.version: set(a.hardware_versions if a.hardware_versions is not None
                                 else published.hardware_versions or cohort.hardware_versions)
                  for a in published.releases} if published else {}
        for index, activation in enumerate(cohort.releases):
            release = ctx.head.releases.get(activation.version)
            if release is None or release.is_yanked:
                continue  # an error that validate reports
            targets = activation.hardware_versions if activation.hardware_versions is not None \
                else cohort.hardware_versions
            reached = before.get(activation.version, set())
            if not set(targets) - reached:
                continue  # unchanged, or a hold added
            covered = {a.hardware_version for a in release.artifacts if not a.is_delta}
            if not covered & set(cohort.hardware_versions):
                continue  # cohort-release-hardware, an error of validate
            missing = [name for name in targets if name not in covered and name not in reached]
            if missing:
                yield ctx.at(cohort.source_path, ("releases", index, "version"),
                             f"release {activation.version} has no full artifact for {', '.join(missing)} of "
                             f"cohort '{slug}': those devices are not offered it. Add the artifacts in a new "
                             "release, or accept that they stay on their current release.",
                             "cohort-release-coverage", severity=Severity.WARNING)


def _default_software_types(ctx: _Context) -> Iterator[Diagnostic]:
    """Warn when a published board's `default_software_type` changes: what devices without one take changes."""
    for name, hardware in sorted(ctx.head.hardware.items()):
        published = ctx.base.hardware.get(name)
        if published is None or published.default_software_type == hardware.default_software_type:
            continue
        before, after = published.default_software_type, hardware.default_software_type
        if before is None:
            effect = (f"devices of {name} that report no software type will now be offered the '{after}' images of "
                      "releases that have no image without a software type")
        elif after is None:
            effect = (f"devices of {name} that report no software type will no longer be offered the '{before}' "
                      "images: those on a release without a software type may be stranded (relreg validate warns)")
        else:
            effect = (f"devices of {name} that report no software type will be offered the '{after}' images "
                      f"instead of the '{before}' images: make sure a '{after}' image installs over a '{before}' one")
        yield ctx.at(hardware.source_path, ("default_software_type",) if after else ("name",),
                     f"default_software_type of published hardware version {name} changed from {_shown(before)} to "
                     f"{_shown(after)}: {effect}.", "hardware-default-software-type", severity=Severity.WARNING)


def _yanked_pass_through(ctx: _Context) -> Iterator[Diagnostic]:
    """A published must-pass-through release that the change yanks: devices below it will skip its step."""
    for version, published in sorted(ctx.base.releases.items()):
        proposed = ctx.head.releases.get(version)
        if published.must_pass_through and not published.is_yanked and proposed is not None \
                and proposed.must_pass_through and proposed.is_yanked:
            yield ctx.at(proposed.source_path, ("yanked",),
                         f"yanking {version}, a must_pass_through release: devices below {version} will now skip "
                         f"its required step and install newer releases directly (a yanked release holds nobody "
                         f"back). If it migrates data, publish a fixed release with must_pass_through instead, "
                         f"and yank {version} only once that release is deployed.", "release-yanked-pass-through",
                         severity=Severity.WARNING)


def _yanked_without_successor(ctx: _Context) -> Iterator[Diagnostic]:
    """A release the change yanks, deployed where nothing newer is deployed after the change: the devices that
    installed it stay on it (relreg.devices.reach.stuck_on_yanked). One warning per release and cohort."""
    before, after = _side(ctx.base), _side(ctx.head)
    if before is None or after is None:
        return
    boards: dict[tuple[str, str, str, bool], list[str]] = {}
    for group in stuck_on_yanked(before, after, ctx.formerly):
        board = group.hardware_version + (f" ({group.software_type})" if group.software_type else "")
        found = boards.setdefault((group.version, group.cohort, group.reason, group.formerly), [])
        if board not in found:
            found.append(board)
    for (version, slug, reason, formerly), names in sorted(boards.items()):
        why = "nothing newer is deployed to them, and their update answers say 'latest'" if reason == REASON_LATEST \
            else ("what is newer cannot be installed from it (a min_version above it, a must_pass_through release "
                  "not deployed, or only deltas from other versions), and their update answers say 'blocked'")
        yield ctx.at(ctx.head.releases[version].source_path, ("yanked",),
                     f"yanking {version} leaves the devices of cohort '{slug}' that installed it "
                     f"{'when the cohort deployed it earlier ' if formerly else ''}({', '.join(names)}) "
                     f"with nothing to install: {why}. They stay on the yanked release, since a device never "
                     f"installs an older one. Deploy a fixed release above {version} that installs from it to cohort "
                     f"'{slug}', in this change or soon after.", "release-yanked-without-successor",
                     severity=Severity.WARNING)


# --- devices stranded by the change ------------------------------------------------------------

_LISTED_VERSIONS = 8


def _side(snapshot: Snapshot) -> Side | None:
    try:
        scheme = scheme_named(snapshot.config.version_scheme if snapshot.config else "semver")
    except VersionError:
        return None
    return Side(scheme, snapshot.releases, snapshot.hardware, snapshot.cohorts)


def _listed(versions: tuple[str, ...] | list[str]) -> str:
    shown = ", ".join(versions[:_LISTED_VERSIONS])
    more = len(versions) - _LISTED_VERSIONS
    return shown + (f" and {more} more" if more > 0 else "")


def _stranded_devices(ctx: _Context) -> Iterator[Diagnostic]:
    """Devices that could update before the change and are blocked, or have no channel, after it.

    The update decision (relreg.devices.update) is run on both sides for the versions that matter
    (relreg.devices.reach); this covers every change at once: yanks and un-yanks, gates raised, releases
    removed from or held back in a cohort, hardware removed from a cohort, releases deleted.
    """
    if ctx.base.config is not None and ctx.head.config is not None \
            and ctx.base.config.version_scheme != ctx.head.config.version_scheme:
        return  # the order of versions changes: registry-version-scheme says so
    before, after = _side(ctx.base), _side(ctx.head)
    if before is None or after is None:
        return
    # One warning per stranded group; boards of a cohort stranded alike, by the same change, share one.
    alike: dict[tuple, list[Stranded]] = {}
    for group in stranded(before, after):
        causes = _causes(ctx, group)
        key = (group.cohort, group.software_type, group.kind, group.obstacle, group.versions, group.newest,
               tuple((phrase, where) for phrase, where, _ in causes))
        alike.setdefault(key, []).append(group)
    for groups in alike.values():
        yield _stranded_diagnostic(ctx, groups)


def _boards(groups: list[Stranded]) -> str:
    group = groups[0]
    names = ", ".join(g.hardware_version for g in groups)
    return names + (f", software type {group.software_type}" if group.software_type else "")


def _causes(ctx: _Context, group: Stranded) -> list[tuple[str, str, JsonPath]]:
    """What the change did to the group's channel: (phrase, file, path) for each, in a stable order."""
    slug, hardware = group.cohort, group.hardware_version
    base_cohort, head_cohort = ctx.base.cohorts[slug], ctx.head.cohorts[slug]
    causes: list[tuple[str, str, JsonPath]] = []
    if group.kind == NO_CHANNEL:
        if base_cohort.hardware_versions and hardware not in head_cohort.hardware_versions:
            causes.append((f"removing {hardware} from the hardware_versions of cohort '{slug}'",
                           head_cohort.source_path, ("hardware_versions",)))
        else:
            causes.append((f"the change to the images of {hardware}", head_cohort.source_path, ("slug",)))
        return causes
    head_activations = {a.version: (index, a) for index, a in enumerate(head_cohort.releases)}
    for version in group.lost:
        base_release, head_release = ctx.base.releases.get(version), ctx.head.releases.get(version)
        if head_release is None:
            causes.append((f"deleting release {version}", head_cohort.source_path, ("releases",)))
        elif head_release.is_yanked and base_release is not None and not base_release.is_yanked:
            causes.append((f"yanking {version}", head_release.source_path, ("yanked",)))
        elif version not in head_activations:
            causes.append((f"removing {version} from cohort '{slug}'", head_cohort.source_path, ("releases",)))
        elif not head_activations[version][1].deploys_to(hardware):
            causes.append((f"holding {version} back from {hardware} in cohort '{slug}'", head_cohort.source_path,
                           ("releases", head_activations[version][0], "hardware_versions")))
        else:
            causes.append((f"changing where {version} is deployed", head_cohort.source_path, ("releases",)))
    for version in group.new_barriers:
        base_release, head_release = ctx.base.releases.get(version), ctx.head.releases[version]
        if base_release is None:
            causes.append((f"adding {version} with must_pass_through", head_release.source_path,
                           ("must_pass_through",)))
        elif base_release.is_yanked:
            causes.append((f"un-yanking {version} (must_pass_through)", head_release.source_path, ("version",)))
        else:
            causes.append((f"turning on must_pass_through of {version}", head_release.source_path,
                           ("must_pass_through",)))
    for version in group.new_gates:
        head_release, base_release = ctx.head.releases[version], ctx.base.releases.get(version)
        verb = "raising" if base_release is not None and base_release.min_version else "setting"
        causes.append((f"{verb} the min_version of {version} to {head_release.min_version}", head_release.source_path,
                       ("min_version",)))
    if not causes:
        causes.append(("this change", head_cohort.source_path, ("releases",)))
    return causes


def _not_below(ctx: _Context, minimum: str, release: Release) -> bool:
    side = _side(ctx.head)
    try:
        return side is not None and side.scheme.parse(minimum).key >= release.parsed_version.key
    except VersionError:
        return False


def _stranded_diagnostic(ctx: _Context, groups: list[Stranded]) -> Diagnostic:
    group = groups[0]
    slug, hardware, boards = group.cohort, " and ".join(g.hardware_version for g in groups), _boards(groups)
    causes = _causes(ctx, group)
    cause = " and ".join(phrase for phrase, _, _ in causes)
    cause = cause[0].upper() + cause[1:]
    where, path = causes[0][1], causes[0][2]
    versions = _listed(group.versions)
    if group.kind == NO_CHANNEL:
        if group.versions:
            who = (f"devices on {versions} could still update to {group.newest} and are stranded there for good "
                   f"(relreg has no channel to offer them anything)")
        else:
            who = (f"devices on {group.newest}, the newest release it offered them, can never be offered a fix "
                   f"again")
        text = (f"{cause} takes the update channel away from the devices of {boards} in cohort '{slug}' (their "
                f"update requests fail): {who}. To end the life of a board, keep it in the cohort: releases without "
                f"an image for {hardware} are simply not offered to it.")
        return ctx.at(where, path, text, "devices-stranded", key=True, severity=Severity.WARNING)
    kind = group.obstacle[0]
    if kind == "barrier":
        barrier = group.obstacle[1]
        why = (f"{barrier} is a must_pass_through release they must install before anything newer, and the cohort "
               f"does not offer it to {hardware}")
        fix = f"deploy {barrier} to cohort '{slug}' for {hardware}"
        if any(phrase.startswith(f"un-yanking {barrier} ") for phrase, _, _ in causes):
            fix += f", or keep {barrier} yanked"
        elif any(phrase.startswith(f"adding {barrier} ") for phrase, _, _ in causes):
            fix += f", or publish {barrier} without must_pass_through"
    elif kind == "min_version":
        target, minimum = group.obstacle[1], group.obstacle[2]
        why = (f"{target} needs min_version {minimum}, and no release from {minimum} up to below {target} is offered "
               f"to them any more")
        fix = f"deploy a release from {minimum} up to below {target} to cohort '{slug}' (again)"
        target_release = ctx.head.releases.get(target)
        if target_release is not None and minimum is not None and _not_below(ctx, minimum, target_release):
            why = f"{target} needs min_version {minimum}, which is not below {target}: no device below it can install it"
            fix = f"publish a release with a min_version below {minimum} and deploy it to cohort '{slug}'"
        elif target not in ctx.base.releases:
            fix += f", or lower {target}'s min_version"
        elif any(phrase.startswith("yanking ") for phrase, _, _ in causes):
            fix += " or publish a fixed stepping stone in its place"
    else:
        target = group.obstacle[1]
        why = f"{target} has no full image for {boards}, and no delta from their versions"
        fix = f"deploy a release with a full image for {hardware} to cohort '{slug}'"
    text = (f"{cause} blocks devices on {versions} in cohort '{slug}' ({boards}): {why}; they could update "
            f"before this change and are now told they are up to date (reason: blocked). To fix, {fix}.")
    return ctx.at(where, path, text, "devices-stranded", key=True, severity=Severity.WARNING)
