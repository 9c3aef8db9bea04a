"""The manifest: a header line, an index line, then every job's record as bytes, read back through a map.

Records are written one after the other as they are (never joined into one string, so memory stays
bounded), and a build reads back only the records it asks for."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from relreg.site.manifest import MANIFEST_FORMAT, read_header, read_manifest, write_manifest

_line = st.tuples(st.text(alphabet=st.characters(blacklist_characters="\t\n\r", blacklist_categories=("Cs",)),
                          min_size=1), st.text(alphabet="0123456789abcdef", max_size=64),
                  st.text(alphabet="0123456789abcdef:key", max_size=70))
_record = st.lists(_line, max_size=5).map(lambda lines: "".join(f"{a}\t{b}\t{c}\n" for a, b, c in lines).encode())


@settings(max_examples=150, deadline=None)
@given(records=st.dictionaries(st.text(min_size=1), _record, max_size=6), loose=_record,
       summaries=st.dictionaries(st.text(), st.lists(st.integers(), max_size=3), max_size=4))
def test_records_summaries_and_loose_files_round_trip(tmp_path_factory, records: dict, loose: bytes,
                                                      summaries: dict) -> None:
    folder = tmp_path_factory.mktemp("manifest")
    header = {"fingerprint": "f", "source": None, "releases": 1, "files": 2}
    write_manifest(str(folder), header, records, summaries, loose)
    assert read_header(folder) == {**header, "format": MANIFEST_FORMAT}
    read = read_manifest(folder)
    assert read is not None
    read_header_line, body = read
    assert read_header_line == {**header, "format": MANIFEST_FORMAT}
    assert body["loose"] == loose.decode() and body["summaries"] == summaries
    assert set(body["jobs"]) == set(records)
    assert {key: body["jobs"].raw(key) for key in body["jobs"]} == records
    assert {key: body["jobs"][key] for key in body["jobs"]} == {key: value.decode() for key, value in records.items()}


def test_a_manifest_whose_records_do_not_fit_its_index_is_not_trusted(tmp_path: Path) -> None:
    records = {"release:1.0.0": b"api/v1/releases/1.0.0.json\tab12\tkey\nreleases/1.0.0/index.html\tcd34\t\n"}
    write_manifest(str(tmp_path), {"fingerprint": None, "source": None, "releases": 1, "files": 2}, records, {}, b"")
    manifest = tmp_path / ".relreg-manifest.json"
    whole = manifest.read_bytes()
    assert read_manifest(tmp_path) is not None
    manifest.write_bytes(whole[:-1])
    assert read_manifest(tmp_path) is None
    manifest.write_bytes(whole + b"\n")
    assert read_manifest(tmp_path) is None


@settings(max_examples=60, deadline=None)
@given(records=st.dictionaries(st.text(min_size=1), _record, max_size=6), loose=_record)
def test_records_kept_out_of_memory_write_the_manifest_their_bytes_write(tmp_path_factory, records: dict,
                                                                         loose: bytes) -> None:
    """A build keeps the records of the jobs it ran in a spool file and those it carried in the manifest they
    came from (site/write.py and site/spool.py, Kept), not in memory: the manifest written from them is the
    same, byte for byte."""
    from relreg.site.spool import Kept, Spool
    from relreg.site.write import _carried

    folder = tmp_path_factory.mktemp("manifest")
    header = {"fingerprint": "f", "source": None, "releases": 1, "files": 2}
    summaries = {key: [index] for index, key in enumerate(records)}
    (folder / "bytes").mkdir()
    write_manifest(str(folder / "bytes"), header, records, summaries, loose)
    spool = Spool(folder)
    spooled = {key: spool.keep(record) for key, record in records.items()}
    assert all(isinstance(record, Kept) for record in spooled.values())
    (folder / "spooled").mkdir()
    write_manifest(str(folder / "spooled"), header, spooled, summaries, loose)
    read = read_manifest(folder / "bytes")
    assert read is not None
    carried = {key: _carried(read[1]["jobs"], key) for key in records}
    (folder / "carried").mkdir()
    write_manifest(str(folder / "carried"), header, carried, summaries, loose)
    spool.close()
    written = [(folder / name / ".relreg-manifest.json").read_bytes() for name in ("bytes", "spooled", "carried")]
    assert written[0] == written[1] == written[2]


_PATHS = st.text(alphabet="abc/é.", min_size=1, max_size=6)
_ENTRY = st.tuples(_PATHS, st.text(alphabet="0123456789abcdef", max_size=4), st.text(alphabet="0123456789abcdef", max_size=4))


@settings(max_examples=150, deadline=None)
@given(records=st.lists(st.lists(_ENTRY, max_size=5), max_size=6), kept=st.sets(st.integers(0, 5)),
       loose=st.lists(_ENTRY, max_size=3), colliding=st.booleans(), asked=st.lists(_PATHS, max_size=8))
def test_the_index_of_a_previous_builds_files_answers_as_a_dict_of_its_lines(
        records: list[list[tuple[str, str, str]]], kept: set[int], loose: list[tuple[str, str, str]],
        colliding: bool, asked: list[str]) -> None:
    """write._FileIndex (hashes of paths and where their lines lie in the mapped manifest, read again when
    asked) gives what a dict of every line of the records not kept, then the loose ones, gives: the later
    line of a path wins, a path of a kept record or of none is not found, and paths sharing a hash are told
    apart."""
    import relreg.site.write as write
    from relreg.site.manifest import Records
    from relreg.site.write import _FileIndex, _record_text

    texts = [_record_text(entries).encode() for entries in records]
    index, offset = {}, 0
    for number, text in enumerate(texts):
        index[f"job{number}"] = (offset, len(text))
        offset += len(text)
    blob = b"header\n" + b"".join(texts)
    keys = [f"job{number}" for number in range(len(records)) if number not in kept]
    expected: dict[str, tuple[str, str]] = {}
    for number, entries in enumerate(records):
        if number not in kept:
            expected.update({path: (digest, key) for path, digest, key in entries})
    expected.update({path: (digest, key) for path, digest, key in loose})
    real_hash = write._path_hash
    write._path_hash = (lambda path: len(path) % 2) if colliding else real_hash
    try:
        found = _FileIndex(Records(blob, len(b"header\n"), index), keys, _record_text(loose))
        for path in [*expected, *asked]:
            assert found.get(path) == expected.get(path), path
    finally:
        write._path_hash = real_hash
