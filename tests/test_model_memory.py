"""The model and the validation stay small: what a release costs in memory, on releases shaped like the
benchmark's (five boards, a full and a delta image each, 1-2 KiB of notes).

At 100,000 releases the build must fit 1 GiB. A release of the dict-based model took about 10,300 bytes,
and validation held the files' bytes, their parsed data and the cache's copy beside the model (about
17,000 bytes a release at its peak). The bounds below sit well above what the compact model needs and
well below either.
"""

from __future__ import annotations

import hashlib
import marshal
import tracemalloc
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from relreg.history.cache import WorkCache
from relreg.registry.model import ARTIFACT_FIELDS, Artifact, Release, compact_release
from relreg.registry.source import read_worktree
from relreg.registry.validate import validate_files
from relreg.registry.versions import scheme_named
from relreg.registry.yamlload import fast_load

BOARDS = ("evt1", "dvt1", "dvt2", "pvt", "pvt-b")
RELEASES = 300


def _hex(*parts: object, length: int = 64) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:length]


def _version(index: int) -> str:
    return f"{index // 100 + 1}.{index // 10 % 10}.{index % 10}"


def _release_yaml(index: int) -> str:
    version = _version(index)
    lines = [f'version: "{version}"', f"revision: {_hex('rev', index, length=40)}", "notes: |",
             f"  ## Release {version}", "",
             *[f"  - Fixed issue #{index * 10 + line}: the scheduler no longer drops work item {line} when the "
               f"radio wakes during a flash erase." for line in range(12)],
             "extra_info:", "  ci_system: bench", f"  build_time_s: {300 + index % 97}", "artifacts:"]
    for board in BOARDS:
        lines += [f"  - hardware_version: {board}", f"    build_id: {_hex('b', index, board, length=40)}",
                  f"    url: {version}/{board}.bin", f"    size: {400000 + index}",
                  f"    sha256: {_hex('s', index, board)}"]
        if index:
            lines += [f"  - hardware_version: {board}", "    type: delta", f'    delta_from: "{_version(index - 1)}"',
                      f"    build_id: {_hex('d', index, board, length=40)}", f"    url: {version}/{board}-delta.bin",
                      f"    size: {40000 + index}", f"    sha256: {_hex('ds', index, board)}"]
    return "\n".join(lines) + "\n"


def _registry(folder: Path) -> Path:
    (folder / "releases").mkdir(parents=True)
    (folder / "hardware").mkdir()
    (folder / "registry.yaml").write_text("name: Widget\nsite_url: https://fw.example.test/\n"
                                          "artifact_base_url: https://dl.example.test/fw/\n")
    for board in BOARDS:
        (folder / "hardware" / f"{board}.yaml").write_text(f"name: {board}\n")
    for index in range(RELEASES):
        (folder / "releases" / f"{_version(index)}.yaml").write_text(_release_yaml(index))
    return folder


def test_a_release_of_the_model_made_from_the_cache_takes_under_7500_bytes() -> None:
    """Releases made as a rebuild makes them (their compact form, marshalled in the work cache): about
    5,800 bytes each here, 10,300 as frozen dataclasses over the parsed dicts."""
    scheme = scheme_named("semver")
    cached = [marshal.dumps(compact_release(fast_load(_release_yaml(index).encode()))) for index in range(RELEASES)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        releases = [Release.from_compact(marshal.loads(data), scheme, f"releases/{index}.yaml")
                    for index, data in enumerate(cached)]
        per_release = (tracemalloc.get_traced_memory()[0] - before) / len(releases)
    finally:
        tracemalloc.stop()
    assert releases[5].artifacts[3].sha256 == _hex("ds", 5, "dvt1")  # the model answers as before
    assert per_release < 7500, per_release


def test_validation_holds_the_model_and_no_copy_of_the_files_or_their_data(tmp_path: Path) -> None:
    """A cold validation as the build runs it (files known by blob id, read by the process that checks
    them; the work cache spooled beside its file): its peak is the model and a little more, not the
    files' bytes, their parsed data and the cache's copy of them on top of it."""
    folder = _registry(tmp_path / "registry")
    files = read_worktree(folder).without_contents()
    cache = WorkCache.open(tmp_path / "cache", "fingerprint")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = validate_files(files, cache, recency={})
        held = tracemalloc.get_traced_memory()[0] - before
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert result.ok and result.registry is not None and len(result.registry.releases) == RELEASES
    assert not any(isinstance(stored, bytes) for key, stored in cache.documents.items()
                   if not key.startswith("fact:"))  # the cache's copies are in its spool, not in memory
    assert held / RELEASES < 9000, held / RELEASES
    assert peak / RELEASES < 11000, peak / RELEASES
    cache.save()
    reopened = WorkCache.open(tmp_path / "cache", "fingerprint")
    again = validate_files(read_worktree(folder).without_contents(), reopened, recency={})
    assert again.registry == result.registry and again.diagnostics == result.diagnostics


DIGESTS = st.one_of(st.text(alphabet="0123456789abcdefABCDEF ", max_size=70), st.text(max_size=12),
                    st.binary(max_size=40).map(bytes.hex))


@settings(max_examples=500, deadline=None)
@given(build_id=DIGESTS, sha256=DIGESTS, software_type=st.none() | st.text(min_size=1, max_size=5),
       delta_from=st.none() | st.sampled_from(["1.0.0", "0.9.0"]))
def test_an_artifact_gives_back_its_fields_as_written(build_id: str, sha256: str, software_type: str | None,
                                                      delta_from: str | None) -> None:
    """Digests are held as bytes only when that gives the same text back (lowercase hex of even length):
    any text comes back as written, from the constructor, from a compact form through marshal (the work
    cache) and through pickle; equal fields make equal artifacts."""
    import pickle

    fields = {"hardware_version": "evt1", "build_id": build_id, "url": "1.0.0/a.bin", "size": 7, "sha256": sha256,
              "software_type": software_type, "type": "delta" if delta_from else "full", "delta_from": delta_from}
    made = Artifact(**fields)
    assert {name: getattr(made, name) for name in ARTIFACT_FIELDS} == fields
    # Next to an artifact of plain digests: the text of one artifact does not change how the other is held.
    plain = {"hardware_version": "dvt", "build_id": "ab" * 20, "url": "1.0.0/b.bin", "size": 8, "sha256": "cd" * 32}
    data = {"version": "1.0.0", "artifacts": [{key: value for key, value in fields.items() if value is not None}, plain]}
    loaded = Release.from_compact(marshal.loads(marshal.dumps(compact_release(data))), scheme_named("semver"), "r")
    assert loaded.artifacts == (made, Artifact(**plain)) and hash(loaded.artifacts[0]) == hash(made)
    assert loaded.artifacts[1].build_id_key == bytes.fromhex("ab" * 20)
    assert pickle.loads(pickle.dumps(made)) == made and repr(pickle.loads(pickle.dumps(made))) == repr(made)
    assert loaded.compact() == compact_release(data)
