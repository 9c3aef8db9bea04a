"""The work cache in .git/relreg: a few new entries are appended to a journal, not the whole cache rewritten."""

from __future__ import annotations

import marshal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relreg.history.cache import PART_ENTRIES, REWRITE_SHARE, WorkCache

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


def test_facts_asked_for_together_are_found_and_kept_as_when_asked_for_one_by_one(tmp_path: Path) -> None:
    """`facts` answers as `fact` does for each key, and keeps what it found (and only that) when the cache
    is rewritten; a key not in the cache does not stop the rewrite."""
    cache = WorkCache.open(tmp_path, FINGERPRINT)
    for number in range(100):
        cache.store_fact(f"facts:release:{number}", b"%d" % number)
    cache.save()
    cache = WorkCache.open(tmp_path, FINGERPRINT)
    keys = [f"facts:release:{number}" for number in (3, 500, 40)]
    assert cache.facts(keys) == [cache.fact(key) for key in keys] == [b"3", None, b"40"]
    cache = WorkCache.open(tmp_path, FINGERPRINT)
    assert cache.facts(keys) == [b"3", None, b"40"]
    cache.save()  # 98 of 100 unused: rewritten
    reopened = WorkCache.open(tmp_path, FINGERPRINT)
    assert set(reopened.documents) == {"fact:facts:release:3", "fact:facts:release:40"}


def test_documents_read_from_the_mapped_file_are_those_stored_and_survive_a_rewrite(tmp_path: Path) -> None:
    """Documents and facts come back as stored after the cache is rewritten and reopened (read from the
    memory-mapped file), and the object that rewrote it still answers."""
    cache = WorkCache.open(tmp_path, FINGERPRINT)
    stored = {f"blob{number}": {"version": f"1.0.{number}", "notes": "é" * number, "artifacts": [{"size": number}]}
              for number in range(50)}
    for blob_id, data in stored.items():
        cache.store_document("release", blob_id, data)
    cache.store_fact("verdict", b"\0" * 7)
    cache.save()
    reopened = WorkCache.open(tmp_path, FINGERPRINT)
    assert all(isinstance(reopened.documents[f"release:{blob_id}"], tuple) for blob_id in stored)  # not read yet
    assert {blob_id: reopened.document("release", blob_id) for blob_id in stored} == stored
    assert reopened.fact("verdict") == b"\0" * 7 and reopened.facts(["verdict", "other"]) == [b"\0" * 7, None]
    reopened = WorkCache.open(tmp_path, FINGERPRINT)
    for number in range(40):  # a fifth of the cache unused: the next save rewrites it
        reopened.document("release", f"blob{number + 10}")
    reopened.store_document("release", "new", {"version": "2.0.0"})
    reopened.save()
    assert not reopened.path.with_suffix(".journal").exists()
    assert reopened.document("release", "blob20") == stored["blob20"]
    again = WorkCache.open(tmp_path, FINGERPRINT)
    assert again.document("release", "blob20") == stored["blob20"] and again.document("release", "new") is not None
    assert again.document("release", "blob0") is None and again.fact("verdict") is None  # unused: dropped


@pytest.mark.parametrize("entries", [0, 1, PART_ENTRIES - 1, PART_ENTRIES, 2 * PART_ENTRIES + 3])
def test_the_cache_file_holds_every_entry_across_its_parts(tmp_path: Path, entries: int) -> None:
    cache = WorkCache.open(tmp_path, FINGERPRINT)
    for number in range(entries):
        cache.store_document("release", f"blob{number}", {"version": f"1.0.{number}"})
        cache.store_notes(f"notes{number}", f"<p>{number}</p>")
        cache.remember_blob_id(f"/r/{number}.yaml", (number, 1, 2, 3, 4), f"blob{number}")
    cache.save()
    reopened = WorkCache.open(tmp_path, FINGERPRINT)
    assert set(reopened.documents) == set(cache.documents) and reopened.notes == cache.notes
    assert reopened.blob_ids == cache.blob_ids
    assert [reopened.document("release", f"blob{n}") for n in range(entries)] == \
        [{"version": f"1.0.{n}"} for n in range(entries)]
    assert len(reopened.documents) == entries


@pytest.mark.parametrize("damage", ["cut in a part", "cut in a length", "cut in the documents",
                                    "old single-marshal format", "empty"])
def test_a_damaged_cache_file_reads_as_an_empty_cache(tmp_path: Path, damage: str) -> None:
    cache = _filled(tmp_path, PART_ENTRIES + 10)
    content = cache.path.read_bytes()
    damaged = {"cut in a part": content[:len(content) // 2],
               "cut in a length": content + b"\x05\x00\x00",  # three bytes of a length after the last part
               "cut in the documents": content[:len(content) // 10],
               "old single-marshal format": marshal.dumps((cache.documents, cache.notes, cache.blob_ids)),
               "empty": b""}[damage]
    cache.path.write_bytes(damaged)
    reopened = WorkCache.open(tmp_path, FINGERPRINT)
    assert reopened.documents == {} and reopened.notes == {} and reopened.blob_ids == {}
    reopened.store_document("release", "fresh", {"version": "9.9.9"})
    reopened.save()
    assert WorkCache.open(tmp_path, FINGERPRINT).document("release", "fresh") == {"version": "9.9.9"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(notes=st.dictionaries(st.text(alphabet="0123456789abcdef", min_size=1, max_size=4), st.text(max_size=40),
                             max_size=30),
       kept=st.integers(0, 30), journaled=st.booleans())
def test_rendered_notes_are_kept_on_disk_and_read_back_as_stored(
        tmp_path_factory: pytest.TempPathFactory, notes: dict[str, str], kept: int, journaled: bool) -> None:
    """Rendered notes (any text: non-ASCII, lone surrogates) are read back as stored, in the run that stores
    them, after a rewrite of the cache and after a journal record; the cache holds where they lie, not the
    HTML (at 100,000 releases, 140 MB). Notes a run neither read nor asked about are dropped by a rewrite."""
    folder = tmp_path_factory.mktemp("cache")
    _filled(folder, 400 if journaled else 3)  # a few entries more than 400 go to the journal; 3 rewrite the cache
    cache = WorkCache.open(folder, FINGERPRINT)
    for key, html in notes.items():
        cache.store_notes(key, html)
    assert not any(isinstance(stored, str) for stored in cache.notes.values())
    assert {key: cache.rendered_notes(key) for key in notes} == notes
    cache.keep_documents()
    cache.save()
    assert not any(isinstance(stored, str) for stored in cache.notes.values())
    assert {key: cache.rendered_notes(key) for key in notes} == notes  # the object stays usable after a save
    reopened = WorkCache.open(folder, FINGERPRINT)
    assert {key: reopened.rendered_notes(key) for key in notes} == notes
    assert reopened.rendered_notes("not stored") is None
    if journaled:
        return
    asked = sorted(notes)[:kept]
    again = WorkCache.open(folder, FINGERPRINT)
    again.keep_documents()
    assert all(again.has_notes(key) for key in asked)  # asked about, not read: kept as if read
    again.save(prune=True)
    last = WorkCache.open(folder, FINGERPRINT)
    remaining = {key: last.rendered_notes(key) for key in notes if last.has_notes(key)}
    assert {key: notes[key] for key in asked}.items() <= remaining.items()
    if len(notes) - len(asked) > REWRITE_SHARE * (len(notes) + 3):  # enough unused to rewrite the cache
        assert set(remaining) == set(asked)
