"""Releases the daemon makes before a command asks for them (relreg/registry/warm.py, relreg/daemon.py).

What a command takes from them must be what it would have made: the same model, the same findings, the
same work cache saved. These tests run the daemon's side in this process (its warming, its pipe of
offers) and validation on a real work cache; tests/test_daemon.py runs the whole through real processes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest
from conftest import BASE_REGISTRY
from git_helpers import committed_registry

from relreg import daemon
from relreg.history.cache import WorkCache, work_cache_for
from relreg.registry import model, warm
from relreg.registry.model import Release
from relreg.registry.source import read_worktree
from relreg.registry.validate import validate_files
from relreg.registry.versions import scheme_named


@pytest.fixture(autouse=True)
def nothing_kept() -> Iterator[None]:
    warm.forget()
    yield
    warm.forget()
    warm.on_offer = None


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """The base registry in a git repository, validated once (its work cache saved)."""
    folder = committed_registry(tmp_path / "repo", BASE_REGISTRY) / "registry"
    cache = work_cache_for(folder)
    assert validate_files(read_worktree(folder), cache).ok
    cache.save()
    return folder


def _warm_as_the_daemon_does(cache_file: Path, scheme: str = "semver", limit: int = 1000,
                             meanwhile: Callable[[], None] = lambda: None) -> None:
    """What the daemon does with a command's offer (the last line of its pipe): start warming, then a slice
    per turn of its loop; `meanwhile` runs between the two."""
    served = daemon._Daemon(str(cache_file.parent / "unused.sock"), 1.0, limit)
    try:
        served.start_warming(b'["x", "semver"]\n' + f'["{cache_file}", "{scheme}"]\n'.encode())
        assert served.warming is not None  # the cache could be read: the daemon looks over its documents
        meanwhile()
        while served.warming is not None:
            served.warm_some()
    finally:
        served.listener.close()
        os.close(served.wake_read)
        os.close(served.wake_write)


def _model_and_cache(folder: Path) -> tuple[object, set[str], list[Release]]:
    cache = work_cache_for(folder)
    result = validate_files(read_worktree(folder), cache)
    assert result.registry is not None
    return result, set(cache._used_documents), list(result.registry.releases)


def test_a_validation_takes_the_kept_releases_and_gives_what_it_would_have_made(registry: Path) -> None:
    cold, cold_used, cold_releases = _model_and_cache(registry)
    _warm_as_the_daemon_does(work_cache_for(registry).path)  # type: ignore[arg-type]
    kept = {key: release for key, (_, release) in warm._RELEASES.items()}
    assert len(kept) == len(cold_releases) >= 2
    warmed, warm_used, warm_releases = _model_and_cache(registry)
    assert warm_releases == cold_releases
    assert [r.source_path for r in warm_releases] == [r.source_path for r in cold_releases]
    assert [r.notes for r in warm_releases] == [r.notes for r in cold_releases]
    assert warmed.diagnostics == cold.diagnostics  # type: ignore[attr-defined]
    assert warm_used == cold_used  # the cache it saves is the one it would have saved
    # Taken, not made again: each release shares its artifacts with the one the daemon made.
    shared = {id(release.artifacts) for release in kept.values()}
    assert all(id(release.artifacts) in shared for release in warm_releases)


def test_a_kept_release_is_taken_only_where_the_cache_holds_its_document(registry: Path, tmp_path: Path) -> None:
    _warm_as_the_daemon_does(work_cache_for(registry).path)  # type: ignore[arg-type]
    shared = {id(release.artifacts) for _, release in warm._RELEASES.values()}
    shutil.rmtree(registry.parent / ".git" / "relreg")  # the cache is gone: every file is read again
    cache = work_cache_for(registry)
    result = validate_files(read_worktree(registry), cache)
    assert result.ok
    assert not any(id(release.artifacts) in shared for release in result.registry.releases)  # type: ignore[union-attr]
    assert cache.holds_document("release", next(iter(warm._RELEASES))[0])  # stored, as without the daemon


def test_a_changed_file_is_made_again_and_the_others_are_taken(registry: Path) -> None:
    _warm_as_the_daemon_does(work_cache_for(registry).path)  # type: ignore[arg-type]
    shared = {id(release.artifacts) for _, release in warm._RELEASES.values()}
    changed = sorted((registry / "releases").glob("*.yaml"))[0]
    changed.write_text(changed.read_text() + "\n# a comment: new bytes, a new blob id\n")
    result = validate_files(read_worktree(registry), work_cache_for(registry))
    assert result.ok
    taken = {release.source_path for release in result.registry.releases  # type: ignore[union-attr]
             if id(release.artifacts) in shared}
    assert changed.name not in {Path(path).name for path in taken}
    assert len(taken) == len(result.registry.releases) - 1  # type: ignore[union-attr]


def test_keeping_stops_at_the_limit_and_a_pass_lets_go_of_files_it_did_not_name(registry: Path) -> None:
    cache = WorkCache.at(work_cache_for(registry).path, mapped=False)  # type: ignore[arg-type]
    blob_ids = sorted(cache.held_blob_ids("release"))
    stored = lambda blob_id: cache.stored_document("release", blob_id)  # noqa: E731
    warm.begin()
    assert warm.keep(blob_ids, stored, "semver", limit=1) == 1
    warm.end()
    assert sorted(blob for blob, _ in warm._RELEASES) == blob_ids[:1]
    warm.begin()
    warm.keep(blob_ids[1:], stored, "semver", limit=100)
    warm.end()
    assert sorted(blob for blob, _ in warm._RELEASES) == blob_ids[1:]
    # Bytes that are not a release's compact form, or that are missing, are left out.
    warm.begin()
    warm.keep(["nothing", "garbled", blob_ids[0]], lambda blob_id: {"nothing": None, "garbled": b"\xff\x00"}.get(
        blob_id, stored(blob_id)), "semver", limit=100)
    warm.end()
    assert [blob for blob, _ in warm._RELEASES] == [blob_ids[0]]
    found = warm.kept(blob_ids[0], scheme_named("semver"))
    assert found is not None and found[0] == cache.document_digest("release", blob_ids[0])
    assert warm.kept(blob_ids[0], scheme_named("natural")) is None


def _damage(cache_file: Path, old: bytes, new: bytes) -> None:
    data = cache_file.read_bytes()
    assert old in data and len(old) == len(new)
    cache_file.write_bytes(data.replace(old, new))


def test_a_release_made_of_a_damaged_cache_is_not_taken_once_the_cache_is_good(registry: Path, tmp_path: Path) -> None:
    # The daemon made its releases of a cache damaged in place; the command's own cache (rebuilt here, or
    # another repository's with the same files) holds other bytes, so it makes its releases itself.
    cache_file = work_cache_for(registry).path
    good = cache_file.read_bytes()  # type: ignore[union-attr]
    _damage(cache_file, b"1.1.0/evt1.bin", b"1.1.0/evt9.bin")  # type: ignore[arg-type]
    _warm_as_the_daemon_does(cache_file)  # type: ignore[arg-type]
    assert any("evt9" in repr(release.artifacts) for _, release in warm._RELEASES.values())
    cache_file.write_bytes(good)  # type: ignore[union-attr]
    result = validate_files(read_worktree(registry), work_cache_for(registry))
    assert "evt9" not in repr(result.registry.releases)  # type: ignore[union-attr]
    shutil.rmtree(registry.parent / ".git" / "relreg")
    result = validate_files(read_worktree(registry), work_cache_for(registry))
    assert "evt9" not in repr(result.registry.releases)  # type: ignore[union-attr]


def test_a_cache_cut_short_while_the_daemon_reads_it_is_read_short_not_mapped(registry: Path) -> None:
    # A mapped file cut short in place kills its reader with SIGBUS; the daemon reads with pread.
    cache_file = work_cache_for(registry).path
    _warm_as_the_daemon_does(cache_file, meanwhile=lambda: os.truncate(cache_file, 64))  # type: ignore[arg-type]
    assert not warm._RELEASES


@pytest.mark.parametrize("cache_file", ["/tmp/repo/.git/relreg/work-cache-1.marshal", "/tmp/a\nb/\udcff/c.marshal"])
def test_an_offer_reaches_the_daemon_whole_through_its_pipe(cache_file: str) -> None:
    read, write = os.pipe()
    try:
        os.set_blocking(read, False)
        daemon._pass_offers_to(write)
        warm.offer("/first/offer.marshal", "natural")
        warm.offer(cache_file, "semver")
        offered = daemon._read_all(read)
        assert json.loads(offered.rsplit(b"\n", 2)[-2]) == [cache_file, "semver"]  # the last one
        assert offered.count(b"\n") == 2
    finally:
        os.close(read)
        os.close(write)


def test_a_release_at_another_path_shares_every_value() -> None:
    data = {"version": "1.0.0", "notes": "n" * 500, "extra_info": {"a": 1}, "artifacts": [
        {"hardware_version": "evt", "build_id": "ab", "url": "a.bin", "size": 1, "sha256": "cd"}]}
    release = Release.from_dict(data, scheme_named("semver"), "a.yaml")
    moved = release.at_path("b.yaml")
    assert moved.source_path == "b.yaml" and release.source_path == "a.yaml"
    assert moved == release and moved.notes == release.notes and moved.extra_info is release.extra_info
    assert moved.artifacts is release.artifacts and moved.parsed_version is release.parsed_version
    assert release.at_path("a.yaml") is release
    # Every slot, those added later too (the notes' own slot, not the property that reads them).
    release.hardware_versions, release.image_slots  # made on first use: copied as they are
    moved = release.at_path("c.yaml")
    for name in Release.__slots__:
        slot = model._notes_slot if name == "notes" else Release.__dict__[name]
        if name != "source_path":
            assert slot.__get__(moved) is slot.__get__(release), name
