"""Bytes kept out of memory (site/spool.py): what is read back is what was kept, in every process, and a
build whose release documents go to disk writes the same site as one that holds them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import relreg.site.spool as spool
from relreg.site.spool import Kept, Spool, SpooledBytes, SpooledText, spool_beside
from tests.conftest import EXAMPLE_REGISTRY, run_relreg


@settings(max_examples=200, deadline=None)
@given(budget=st.integers(0, 64),
       puts=st.lists(st.tuples(st.sampled_from("abcdefgh"), st.binary(max_size=24)), max_size=30))
def test_spooled_bytes_gives_back_what_a_dict_would_holding_at_most_its_budget(
        budget: int, puts: list[tuple[str, bytes]]) -> None:
    memo, expected = SpooledBytes(budget), {}
    for key, data in puts:
        memo[key] = data
        expected[key] = data
    for key in "abcdefghij":
        assert memo.get(key) == expected.get(key)
    held = [value for value in memo._held.values() if value.__class__ is bytes]
    assert sum(map(len, held)) <= budget
    # Everything past the budget went to the spool (an empty value fits any budget).
    assert all(value.__class__ is int for value in memo._held.values() if value.__class__ is not bytes)


@settings(max_examples=200, deadline=None)
@given(budget=st.integers(0, 64),
       puts=st.lists(st.tuples(st.sampled_from("abcdefgh"), st.text(max_size=24)), max_size=30))
def test_spooled_text_reads_as_a_dict_holding_at_most_its_budget(budget: int, puts: list[tuple[str, str]]) -> None:
    """Any text, lone surrogates included (notes are sanitized, but the store does not rely on it)."""
    texts, expected = SpooledText(budget), {}
    for key, text in puts:
        texts[key] = text
        expected[key] = text
    assert dict(texts) == expected and len(texts) == len(expected) and list(texts) == list(expected)
    assert all((key in texts) == (key in expected) for key in "abcdefghij")
    assert sum(len(value) for value in texts._held.values() if value.__class__ is str) <= budget


def test_a_forked_process_writes_a_spool_file_of_its_own_and_reads_what_was_kept_before(tmp_path: Path) -> None:
    kept = Spool(tmp_path)
    before = kept.keep(b"kept before the fork")
    assert isinstance(before, Kept)
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            own = kept.keep(b"X" * 64)  # at the offset the parent writes next, were the file shared
            ok = isinstance(own, Kept) and own.read() == b"X" * 64 and before.read() == b"kept before the fork"
            os.write(writer, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(writer)
    assert os.read(reader, 1) == b"1"
    os.waitpid(child, 0)
    os.close(reader)
    after = kept.keep(b"kept by the parent after")
    assert isinstance(after, Kept)
    assert before.read() == b"kept before the fork" and after.read() == b"kept by the parent after"
    kept.close()


def test_a_spool_that_cannot_write_keeps_the_bytes_in_memory(tmp_path: Path) -> None:
    kept = Spool(tmp_path / "no such folder")
    assert kept.keep(b"document") == b"document"
    memo = SpooledBytes(0)
    with spool_beside(tmp_path / "no such folder"):
        memo["1.0.0"] = b"document"
    assert memo.get("1.0.0") == b"document"


def test_spool_files_go_in_the_folder_named_by_spool_beside(tmp_path: Path) -> None:
    memo = SpooledBytes(0)
    with spool_beside(tmp_path):
        memo["1.0.0"] = b"document"
    found = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
             if os.path.exists(f"/proc/self/fd/{fd}")]
    assert any(target.startswith(f"{tmp_path}/") and target.endswith("(deleted)") for target in found), found
    assert memo.get("1.0.0") == b"document"


def _site(out: Path) -> dict[Path, bytes]:
    return {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()}


@pytest.mark.parametrize("budget", [0, 3000])
def test_a_build_whose_release_documents_go_to_disk_writes_the_same_site(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    """The release documents and rendered notes beyond the budgets are spooled (the lists and pages read them
    back), in this process and in forked site workers: the site is the one a build that holds them all
    writes, byte for byte."""
    import relreg.build
    import relreg.site.jobs

    monkeypatch.setattr(relreg.site.jobs, "JOB_SIZE", 3)  # many small jobs, shared out between the processes
    held = run_relreg("build", "--registry", EXAMPLE_REGISTRY, "--out", tmp_path / "held", "--force")
    assert held.exit_code == 0, held.output
    monkeypatch.setattr(spool, "MEMORY_BYTES", budget)
    monkeypatch.setattr(spool, "TEXT_MEMORY_CHARACTERS", budget // 10)
    spooled, notes = [], []
    put = Spool.put

    def counted(self: Spool, data: bytes) -> int | None:
        if data.startswith(b'{"id":'):  # a release document (the writer's job records are spooled too)
            spooled.append(data)
        elif data.startswith(b"<"):  # rendered notes
            notes.append(data)
        return put(self, data)

    monkeypatch.setattr(Spool, "put", counted)
    monkeypatch.setattr(relreg.build, "PARALLEL_RELEASES", 10**9)
    serial = run_relreg("build", "--registry", EXAMPLE_REGISTRY, "--out", tmp_path / "serial", "--force")
    assert serial.exit_code == 0, serial.output
    assert spooled, "no release document went to disk"
    assert notes, "no rendered notes went to disk"
    monkeypatch.setattr(relreg.build, "PARALLEL_RELEASES", 1)
    monkeypatch.setattr(relreg.build.os, "cpu_count", lambda: 3)
    parallel = run_relreg("build", "--registry", EXAMPLE_REGISTRY, "--out", tmp_path / "parallel", "--force")
    assert parallel.exit_code == 0, parallel.output
    expected = _site(tmp_path / "held")
    assert len(expected) > 100
    assert _site(tmp_path / "serial") == expected
    assert _site(tmp_path / "parallel") == expected
