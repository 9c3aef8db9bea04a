"""Releases made before a command asks for them: relreg's daemon keeps them for the processes it forks.

A rebuild of a large registry spends a fifth of its time making the model's releases again from the work
cache (10,000 `marshal.loads` and `Release.from_compact` at 10,000 releases), though only a file or two
changed. relreg's daemon (`relreg.daemon`, opt-in), once a command it served has ended well, makes a release
of every release document in the work cache that command used, in its own memory; the next command's
process, forked from it, takes each unchanged release from there (`kept`) instead of making it again.
This is the Bazel server's in-memory state, kept safe by what it is keyed by:

- a release is a function of its document's bytes and the version scheme's name; a document is a
  function of the file's bytes (its git blob id) and of relreg's code, and a daemon stops when relreg's code
  changes (`daemon.code_snapshot`). The table is keyed by blob id and scheme name.
- the path is not part of the key: a release is taken at the path of the file that asks for it (`Release.at_path`).
- a command takes a release from here only for a file whose document its work cache holds with the same
  bytes as those the release was made of (a digest of them is kept beside it), and marks that document as
  used: it takes what it would have made of its own cache (a damaged cache, or another repository's, gives
  nothing to another), and the cache it saves is the one it would save without the daemon.

Without the daemon, nothing here holds anything and `kept` always answers None.
"""

from __future__ import annotations

import hashlib
import marshal
from typing import Callable, Iterable

from relreg.registry.model import Release
from relreg.registry.versions import VersionError, VersionScheme, scheme_named

# (blob id of a release file, version scheme name) -> (digest of the document's stored bytes it was made of,
# the release, at path "").
_RELEASES: dict[tuple[str, str], tuple[bytes, Release]] = {}

# The keys named by the pass of `keep` under way (see begin, end).
_current: set[tuple[str, str]] = set()

# Set by the daemon in the process it forks for a command: called with (work cache file, version scheme name)
# when the command has made a model from that cache (see `offer`).
on_offer: Callable[[str, str], None] | None = None


def kept(blob_id: str, scheme: VersionScheme) -> tuple[bytes, Release] | None:
    """(digest of the document's stored bytes, release at path "") kept for the file of `blob_id` under
    `scheme`; None when none is. The caller takes the release (`Release.at_path`) only when its work cache
    holds a document of that digest (`WorkCache.document_digest`): a cache damaged once, or another
    repository's, never makes what another cache gives."""
    return _RELEASES.get((blob_id, scheme.name))


def offer(cache_file: str, scheme_name: str) -> None:
    """Say that this process made a model from the work cache at `cache_file` under `scheme_name` (a no-op
    but in a process the daemon forked, which passes it on to the daemon)."""
    if on_offer is not None:
        on_offer(cache_file, scheme_name)


def stored_digest(stored: bytes | memoryview) -> bytes:
    """The digest that names a document's stored bytes in a work cache (history/cache.py): blake2b, 16 bytes."""
    return hashlib.blake2b(stored, digest_size=16).digest()


def keep(blob_ids: Iterable[str], stored: Callable[[str], bytes | None], scheme_name: str, limit: int) -> int:
    """Keep the release of each file of `blob_ids` under `scheme_name`, made of `stored(blob_id)` (its
    document's bytes in a work cache: marshal of its compact form) unless one of those bytes is kept
    already, up to `limit` releases in all (their memory: about 6 KB each at the benchmark's shape). A
    document that is missing, not a compact form, or whose version does not parse is left out: its file is
    made as usual. Returns how many blob ids were looked at (fewer than given once the limit is reached).
    Raises VersionError for an unknown scheme name."""
    scheme = scheme_named(scheme_name)
    seen = 0
    for blob_id in blob_ids:
        key = (blob_id, scheme_name)
        held = _RELEASES.get(key)
        if held is None and len(_RELEASES) >= limit:
            return seen
        seen += 1
        data = stored(blob_id)
        if data is None:
            continue
        digest = stored_digest(data)
        _current.add(key)
        if held is not None and held[0] == digest:
            continue
        try:
            _RELEASES[key] = (digest, Release.from_compact(marshal.loads(data), scheme, ""))
        except (VersionError, ValueError, TypeError, EOFError):
            _RELEASES.pop(key, None)
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
