"""The work cache in .git/relreg: a few new entries are appended to a journal, not the whole cache rewritten."""

from __future__ import annotations

import marshal
from pathlib import Path

import pytest
from relreg.history.cache import PART_ENTRIES, WorkCache

FINGERPRINT = "code"


def _filled(folder: Path, entries: int) -> WorkCache:
    cache = WorkCache.open(folder, FINGERPRINT)
    for number in range(entries):
        cache.store_document("release", f"blob{number}", {"version": f"1.0.{number}"})
    cache.save()
    return cache


@pytest.mark.parametrize("new, journaled", [(1, True), (5, True), (20, False), (80, False)])
def test_few_new_entries_go_to_the_journal_many_rewrite_the_cache(tmp_path: Path, new: int, journaled: bool) -> None:
    base = _filled(tmp_path, 100)
    cache_bytes = base.path.read_bytes()
    cache = WorkCache.open(tmp_path, FINGERPRINT)
    for number in range(100):
        assert cache.document("release", f"blob{number}") is not None
    for number in range(new):
        cache.store_document("release", f"new{number}", {"version": f"2.0.{number}"})
    cache.save()
    assert (base.path.read_bytes() == cache_bytes) is journaled
    assert base.path.with_suffix(".journal").exists() is journaled

    reopened = WorkCache.open(tmp_path, FINGERPRINT)
    assert [reopened.document("release", f"new{n}") for n in range(new)] == [{"version": f"2.0.{n}"} for n in range(new)]
    assert reopened.document("release", "blob7") == {"version": "1.0.7"}


def test_a_journal_record_cut_short_is_ignored_and_the_rest_kept(tmp_path: Path) -> None:
    base = _filled(tmp_path, 100)
    for name in ("first", "second"):
        cache = WorkCache.open(tmp_path, FINGERPRINT)
        for number in range(100):
            cache.document("release", f"blob{number}")
        cache.store_document("release", name, {"version": name})
        cache.save()
    journal = base.path.with_suffix(".journal")
    journal.write_bytes(journal.read_bytes()[:-5])  # a run killed while appending the second record

    reopened = WorkCache.open(tmp_path, FINGERPRINT)
    assert reopened.document("release", "first") == {"version": "first"}
    assert reopened.document("release", "second") is None
    assert reopened.document("release", "blob99") == {"version": "1.0.99"}


def test_unused_entries_are_dropped_when_the_cache_is_rewritten(tmp_path: Path) -> None:
    _filled(tmp_path, 100)
    cache = WorkCache.open(tmp_path, FINGERPRINT)
    for number in range(50):  # half the registry went away
        cache.document("release", f"blob{number}")
    cache.save()
    reopened = WorkCache.open(tmp_path, FINGERPRINT)
    assert reopened.document("release", "blob10") is not None and reopened.document("release", "blob60") is None


def test_relreg_validate_keeps_the_rendered_notes_and_drops_unused_documents(tmp_path: Path) -> None:
    """Validation renders no notes: a save that keeps them leaves the next build nothing to render again."""
    base = _filled(tmp_path, 100)
    for number in range(100):
        base.store_notes(f"note{number}", f"<p>{number}</p>")
    base.save()
    cache = WorkCache.open(tmp_path, FINGERPRINT)
    for number in range(50):
        cache.document("release", f"blob{number}")
    cache.save(keep_notes=True)
    reopened = WorkCache.open(tmp_path, FINGERPRINT)
    assert reopened.rendered_notes("note70") == "<p>70</p>"
    assert reopened.document("release", "blob10") is not None and reopened.document("release", "blob60") is None


@pytest.mark.parametrize("entries", [0, 1, PART_ENTRIES - 1, PART_ENTRIES, 2 * PART_ENTRIES + 3])
def test_the_cache_file_holds_every_entry_across_its_parts(tmp_path: Path, entries: int) -> None:
    cache = WorkCache.open(tmp_path, FINGERPRINT)
    for number in range(entries):
        cache.store_document("release", f"blob{number}", {"version": f"1.0.{number}"})
        cache.store_notes(f"notes{number}", f"<p>{number}</p>")
        cache.remember_blob_id(f"/r/{number}.yaml", (number, 1, 2, 3, 4), f"blob{number}")
    cache.save()
    reopened = WorkCache.open(tmp_path, FINGERPRINT)
    assert reopened.documents == cache.documents and reopened.notes == cache.notes
    assert reopened.blob_ids == cache.blob_ids
    assert len(reopened.documents) == entries


@pytest.mark.parametrize("damage", ["cut in a part", "cut in a length", "old single-marshal format", "empty"])
def test_a_damaged_cache_file_reads_as_an_empty_cache(tmp_path: Path, damage: str) -> None:
    cache = _filled(tmp_path, PART_ENTRIES + 10)
    content = cache.path.read_bytes()
    damaged = {"cut in a part": content[:len(content) // 2],
               "cut in a length": content + b"\x05\x00\x00",  # three bytes of a length after the last part
               "old single-marshal format": marshal.dumps((cache.documents, cache.notes, cache.blob_ids)),
               "empty": b""}[damage]
    cache.path.write_bytes(damaged)
    reopened = WorkCache.open(tmp_path, FINGERPRINT)
    assert reopened.documents == {} and reopened.notes == {} and reopened.blob_ids == {}
    reopened.store_document("release", "fresh", {"version": "9.9.9"})
    reopened.save()
    assert WorkCache.open(tmp_path, FINGERPRINT).document("release", "fresh") == {"version": "9.9.9"}
