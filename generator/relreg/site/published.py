"""What a build publishes that API consumers key on, compared with the previous build of the same folder.

A release's `id` is permanent for consumers (ids number releases in order of creation, see
jobs.release_views), and a published version's images never change. A build cannot stop a
history rewrite or a deleted release file (that is `relreg check`'s job, and the publish
workflow's), but it can notice that the site it replaces said otherwise, and warn.

The previous build's table lives in the index line of its manifest (site/manifest.py), which a
rebuild reads anyway, as one string (a JSON string costs next to nothing to read): a line per
release, "<version>\\t<id>\\t<file blob id>\\t<digest of its artifacts>\\t<created date>" (seconds; empty for
a release dated by the build, its file not committed; tables of older builds have no date). The artifacts' digest is
made again only for a release whose file changed (another blob id): the table of a rebuild costs a
sort and a string per release. Only a build that writes something compares: an unchanged rebuild
stops before (uptodate.py, and the fingerprint in build.py).
"""

from __future__ import annotations

import hashlib
import time
from typing import AbstractSet, Any, Iterable, Mapping

from relreg.registry.model import Artifact
from relreg.site.jobs import creation_order

_SHOWN = 8  # releases named in one warning; the rest are counted


def artifacts_digest(artifacts: Iterable[Artifact]) -> str:
    """A short digest of what identifies a release's images: board, software type, kind, sha256 and size.

    Kept in the manifest and compared with the next build's, so its text never changes: one line per
    artifact, `hardware_version/software_type/type/delta_from=sha256:size` (a missing name empty), sorted.
    Read from the artifact's fields in their order (model.ARTIFACT_FIELDS), its sha256 stored as bytes
    or text, without a property call per field: a third of the time, over every artifact of a full build."""
    lines = []
    for hardware_version, _, _, size, sha256, software_type, kind, delta_from in artifacts:
        lines.append(f"{hardware_version}/{software_type or ''}/{kind}/{delta_from or ''}"
                     f"={sha256 if sha256.__class__ is str else sha256.hex()}:{size}")
    lines.sort()
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def parse_table(text: object) -> dict[str, str]:
    """{version: "id\\tblob\\tdigest\\tcreated"} from a manifest's table ("id\\tblob\\tdigest" from a build of
    older code); empty for anything else (older manifests)."""
    if not isinstance(text, str):
        return {}
    table = {}
    for line in text.splitlines():
        version, _, rest = line.partition("\t")
        if rest.count("\t") in (2, 3):
            table[version] = rest
    return table


def published_table(releases: Iterable[Any], release_dates: Mapping[str, Any], blob_ids: Mapping[str, str],
                    previous: Mapping[str, str], undated: AbstractSet[str] = frozenset()) -> dict[str, str]:
    """This build's table, {version: "id\\tblob\\tdigest\\tcreated"}: ids as release_views numbers them.

    `blob_ids`: each release file's blob id by version (a release without one is digested);
    `previous`: the previous build's table (parse_table), whose digests are taken for unchanged files;
    `undated`: the versions dated by the build, not by git (their created date is left empty).
    """
    by_creation = creation_order(releases, release_dates)
    table = {}
    for number, release in enumerate(by_creation, start=1):
        version = release.version
        blob = f"\t{blob_ids.get(version, '')[:16]}\t"
        created = "" if version in undated else release_dates[version].created
        before = previous.get(version)
        if before is not None and len(blob) > 2 and blob in before:  # the same file: the same artifacts
            digest = before.rpartition(blob)[2].partition("\t")[0]
        else:
            digest = artifacts_digest(release.artifacts)
        table[version] = f"{number}{blob}{digest}\t{created}"
    return table


def table_text(table: Mapping[str, str]) -> str:
    """The table as the manifest keeps it (parse_table reads it)."""
    return "".join(f"{version}\t{row}\n" for version, row in table.items())


def _day(seconds: str) -> str:
    """A created date of the table (seconds) as people read it, to the second (UTC)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(seconds))) if seconds.isdigit() else seconds


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f", and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def changes_since(previous: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """Warnings for what the previous build published and this one changes: ids, vanished releases, images,
    created dates.

    Both tables as published_table gives them; an empty `previous` (a build of older code kept
    none) warns of nothing, nor does a date either build left empty or did not keep. Adding
    releases and editing anything but artifacts warn of nothing.
    """
    shifted: list[tuple[int, str]] = []
    gone: list[str] = []
    edited: list[str] = []
    redated: list[str] = []
    for version, row in previous.items():
        now = current.get(version)
        if now == row:
            continue
        if now is None:
            gone.append(version)
            continue
        old_id, _, old_digest, old_created = (row.split("\t") + [""])[:4]
        new_id, _, new_digest, new_created = (now.split("\t") + [""])[:4]
        if old_id != new_id:
            shifted.append((int(old_id) if old_id.isdigit() else 0, f"{version}: {old_id} -> {new_id}"))
        if old_digest != new_digest:
            edited.append(version)
        if old_created and new_created and old_created != new_created:
            redated.append(f"{version}: {_day(old_created)} -> {_day(new_created)}")
    warnings = []
    if shifted:
        shifted.sort()  # in the order of the old ids
        warnings.append(f"release ids changed since the previous build ({_listed([text for _, text in shifted])}): "
                        "published ids are permanent for API consumers; a history rewrite or a deleted release "
                        "file causes this")
    if gone:
        warnings.append(f"releases of the previous build are gone ({_listed(sorted(gone))}): their pages and API "
                        "documents are removed and devices may be offered other releases; a published release is "
                        "never deleted (yank it instead)")
    if redated:
        warnings.append(f"release created dates changed since the previous build ({_listed(sorted(redated))}): "
                        "they come from the first-parent git history, which was rewritten (a rebase, a squash, a "
                        "fresh import), lost a release file's commits, or took them in by a merge (a `git pull` "
                        "without --rebase that main then took, or a branch built before it was merged: a release "
                        "is dated by the merge that brought it to the built branch); API consumers sort and query "
                        "releases by created_date")
    if edited:
        warnings.append(f"published images changed since the previous build ({_listed(sorted(edited))}): another "
                        "sha256 or size, or an image removed or added, for a version devices may already have; "
                        "publish a new version instead")
    return warnings
