"""Releases made before a command asks for them: relreg's daemon keeps them for the processes it forks.

A rebuild of a large registry spends a fifth of its time making the model's releases again from the work
cache (10,000 `marshal.loads` and `Release.from_compact` at 10,000 releases), though only a file or two
changed. relreg's daemon (`relreg.daemon`, opt-in), once a command it served has ended well, makes a release
of every release document in the work cache that command used, in its own memory; the next command's
process, forked from it, takes each unchanged release from there (`release`) instead of making it again.
This is the Bazel server's in-memory state, kept safe by what it is keyed by:

- a release document is a function of the file's bytes (its git blob id) and of relreg's code, and a
  release a function of its document and the version scheme's name: the table is keyed by both, so it never
  holds a release its file would not make. A daemon stops when relreg's code changes (`daemon.code_snapshot`).
- the path is not part of the key: a release is taken at the path of the file that asks for it (`Release.at_path`).
- a command takes a release from here only for a file whose document the work cache holds, and marks that
  document as used, so the cache it saves is the one it would save without the daemon.

Without the daemon, nothing here holds anything and `release` always answers None.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from relreg.registry.model import Release
from relreg.registry.versions import VersionError, VersionScheme, scheme_named

# (blob id of a release file, version scheme name) -> the release its document makes, at path "".
_RELEASES: dict[tuple[str, str], Release] = {}

# The keys named by the pass of `keep` under way (see begin, end).
_current: set[tuple[str, str]] = set()

# Set by the daemon in the process it forks for a command: called with (work cache file, version scheme name)
# when the command has made a model from that cache (see `offer`).
on_offer: Callable[[str, str], None] | None = None


def release(blob_id: str, scheme: VersionScheme, source_path: str) -> Release | None:
    """The release the file of `blob_id` makes under `scheme`, at `source_path`; None when none is kept."""
    found = _RELEASES.get((blob_id, scheme.name))
    return found.at_path(source_path) if found is not None else None


def offer(cache_file: str, scheme_name: str) -> None:
    """Say that this process made a model from the work cache at `cache_file` under `scheme_name` (a no-op
    but in a process the daemon forked, which passes it on to the daemon)."""
    if on_offer is not None:
        on_offer(cache_file, scheme_name)


def keep(blob_ids: Iterable[str], document: Callable[[str], Any], scheme_name: str, limit: int) -> int:
    """Keep the release of each file of `blob_ids` under `scheme_name` (made of `document(blob_id)`, its
    compact form from a work cache, unless kept already), up to `limit` releases in all (their memory: about
    6 KB each at the benchmark's shape). A document that is missing, not a compact form, or whose version does
    not parse is left out: its file is made as usual. Returns how many blob ids were looked at (fewer than
    given once the limit is reached). Raises VersionError for an unknown scheme name."""
    scheme = scheme_named(scheme_name)
    seen = 0
    for blob_id in blob_ids:
        key = (blob_id, scheme_name)
        _current.add(key)
        seen += 1
        if key in _RELEASES:
            continue
        if len(_RELEASES) >= limit:
            return seen - 1
        try:
            _RELEASES[key] = Release.from_compact(document(blob_id), scheme, "")
        except (VersionError, ValueError, TypeError):
            continue
    return seen


def begin() -> None:
    """Start a pass of `keep` over one work cache: `end` then lets go of the releases the pass did not name."""
    _current.clear()


def end() -> None:
    """Keep only the releases named since `begin` (those of files no longer in the cache go)."""
    for key in [key for key in _RELEASES if key not in _current]:
        del _RELEASES[key]
    _current.clear()


def forget() -> None:
    """Keep no release."""
    _RELEASES.clear()
    _current.clear()
