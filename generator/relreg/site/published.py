"""What a build publishes that API consumers key on, compared with the previous build of the same folder.

A release's `id` is permanent for consumers (ids number releases in order of creation, see
jobs.release_views), and a published version's images never change. A build cannot stop a
history rewrite or a deleted release file (that is `relreg check`'s job, and the publish
workflow's), but it can notice that the site it replaces said otherwise, and warn.

The previous build's table lives in the index line of its manifest (site/manifest.py), which a
rebuild reads anyway: {version: [id, artifacts]}, `artifacts` one string per release
("<hardware>/<software type>/<type>/<delta from>=<sha256 prefix>:<size>" joined by spaces), so
that the usual comparison is of two strings. Only a build that writes something compares: an
unchanged rebuild stops before (uptodate.py, and the fingerprint in build.py).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

PublishedTable = dict[str, list[Any]]  # version -> [id, artifacts text]

_SHOWN = 8  # releases named in one warning; the rest are counted


def _artifacts_text(artifacts: Iterable[Any]) -> str:
    return " ".join(sorted(
        f"{a.hardware_version}/{a.software_type or ''}/{a.type}/{a.delta_from or ''}={a.sha256[:16]}:{a.size}"
        for a in artifacts))


def published_table(releases: Iterable[Any], release_dates: Mapping[str, Any]) -> PublishedTable:
    """The table of this build: each release's id (as release_views numbers them) and its artifacts' digests."""
    by_creation = sorted(releases, key=lambda r: (release_dates[r.version].created, r.parsed_version.key))
    return {release.version: [number, _artifacts_text(release.artifacts)]
            for number, release in enumerate(by_creation, start=1)}


def _artifact_map(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(" ") if "=" in item)


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f", and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def changes_since(previous: Mapping[str, Any], current: PublishedTable) -> list[str]:
    """Warnings for what the previous build published and this one changes: ids, vanished releases, images.

    `previous`: the previous build's table (empty or malformed entries are skipped: a build of older
    code kept none). Adding releases and editing anything but artifacts warn of nothing.
    """
    shifted: list[tuple[Any, str]] = []
    gone: list[str] = []
    edited: list[str] = []
    for version, entry in previous.items():
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str)):
            continue
        now = current.get(version)
        if now is None:
            gone.append(version)
            continue
        if now[0] != entry[0]:
            shifted.append((entry[0], f"{version}: {entry[0]} -> {now[0]}"))
        if now[1] != entry[1]:
            before, after = _artifact_map(entry[1]), _artifact_map(now[1])
            boards = sorted(key.split("/", 1)[0] for key in before.keys() & after.keys() if before[key] != after[key])
            removed = sorted(key.split("/", 1)[0] for key in before.keys() - after.keys())
            if boards or removed:
                edited.append(f"{version} ({', '.join(sorted(set(boards + removed)))})")
    warnings = []
    if shifted:
        shifted.sort(key=lambda item: item[0] if isinstance(item[0], int) else 0)  # in the order of the old ids
        warnings.append(f"release ids changed since the previous build ({_listed([text for _, text in shifted])}): "
                        "published ids are "
                        "permanent for API consumers; a history rewrite or a deleted release file causes this")
    if gone:
        warnings.append(f"releases of the previous build are gone ({_listed(gone)}): their pages and API documents "
                        "are removed and devices may be offered other releases; a published release is never deleted "
                        "(yank it instead)")
    if edited:
        warnings.append(f"published images changed since the previous build ({_listed(edited)}): another sha256 or "
                        "size (or a removed image) for a version devices may already have; publish a new version "
                        "instead")
    return warnings
