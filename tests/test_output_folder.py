"""The output folder as a web server and other builds meet it: its mode, one build at a time, leftovers."""

from __future__ import annotations

import fcntl
import os
import stat
import time
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relreg.site.write import OutputFolderError, previous_build, write_site


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_output_folder_is_readable_by_the_web_server(tmp_path: Path, umask_022: None) -> None:
    out = tmp_path / "public"
    write_site({"index.html": b"<p>one</p>"}, out)
    assert _mode(out) == 0o755  # not mkdtemp's 0700, which nginx running as www-data refuses
    write_site({"index.html": b"<p>two</p>"}, out)
    assert _mode(out) == 0o755


@pytest.mark.parametrize("mode", [0o750, 0o711, 0o755])
def test_a_chmod_of_the_output_folder_stays_across_builds(tmp_path: Path, mode: int) -> None:
    out = tmp_path / "public"
    write_site({"index.html": b"1"}, out)
    write_site({"index.html": b"2"}, out)  # a spare now sits beside the output, with the old mode
    os.chmod(out, mode)
    for content in (b"3", b"4", b"5"):  # the spare comes back in turn
        write_site({"index.html": content}, out)
        assert _mode(out) == mode
        assert (out / "index.html").read_bytes() == content


def test_a_second_build_into_the_same_folder_is_refused_and_touches_nothing(tmp_path: Path) -> None:
    out = tmp_path / "public"
    write_site({"index.html": b"served"}, out)
    descriptor = os.open(tmp_path / ".public.lock", os.O_RDWR)
    fcntl.flock(descriptor, fcntl.LOCK_EX)  # what a running build holds
    try:
        with pytest.raises(OutputFolderError, match="another relreg build is writing"):
            write_site({"index.html": b"other"}, out)
    finally:
        os.close(descriptor)
    assert (out / "index.html").read_bytes() == b"served"
    write_site({"index.html": b"next"}, out)  # once the lock is free, builds go on
    assert (out / "index.html").read_bytes() == b"next"


def test_a_build_whose_output_was_replaced_meanwhile_stops(tmp_path: Path) -> None:
    out = tmp_path / "public"
    write_site({"index.html": b"a"}, out, "fingerprint-a")
    stale = previous_build(out)  # read at the start of a build...
    write_site({"index.html": b"b"}, out, "fingerprint-b")  # ...while another one swapped in its site
    with pytest.raises(OutputFolderError, match="replaced by another build"):
        write_site({"index.html": b"c"}, out, "fingerprint-c", previous=stale)
    assert (out / "index.html").read_bytes() == b"b"


def test_staging_folders_of_killed_builds_are_removed_by_the_next_build(tmp_path: Path) -> None:
    out = tmp_path / "public"
    write_site({"index.html": b"a"}, out)
    leftovers = [tmp_path / ".public.staging-killed1", tmp_path / ".public.staging-killed2"]
    for folder in leftovers:
        (folder / "api").mkdir(parents=True)
        (folder / "api" / "x.json").write_bytes(b"{}")
    unrelated = tmp_path / ".other.staging-keep"
    unrelated.mkdir()
    write_site({"index.html": b"b"}, out)
    deadline = time.monotonic() + 30  # large leftovers are removed in the background
    while any(folder.exists() for folder in leftovers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(folder.exists() for folder in leftovers)
    assert unrelated.is_dir()


@pytest.mark.parametrize("size", [0, 1, 4095, 65535, 65536, 65537, 3 * 65536, 200_001])
def test_served_files_are_read_whole_at_any_size(tmp_path: Path, size: int) -> None:
    """The reader of served files (os.read in steps) gives a file's bytes exactly, about and across its step."""
    from relreg.site.write import _read_file, _write_new_file

    content = bytes(range(256)) * (size // 256) + bytes(size % 256)
    (tmp_path / "file").write_bytes(content)
    assert _read_file(str(tmp_path / "file")) == content
    _write_new_file(str(tmp_path / "parts"), [content[:size // 3], b"", content[size // 3:]])
    assert (tmp_path / "parts").read_bytes() == content
    with pytest.raises(FileNotFoundError):
        _read_file(str(tmp_path / "gone"))


def test_a_mount_point_as_output_is_refused_up_front_with_what_to_do(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A volume cannot be swapped by rename: refused before anything is written, not failed after staging.
    (Mounting needs privileges tests do not have: the OS's answer for this folder is replaced.)"""
    out = tmp_path / "volume"
    out.mkdir()
    real_ismount = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda path: Path(path) == out or real_ismount(path))
    with pytest.raises(OutputFolderError, match="is a mount point .* Build into a folder inside it"):
        write_site({"a.json": b"{}\n"}, out)
    assert list(out.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["volume"]
    write_site({"a.json": b"{}\n"}, out / "site")  # what the message says to do
    assert (out / "site" / "a.json").read_bytes() == b"{}\n"


@pytest.mark.parametrize("target", ["folder", "file"])
def test_an_output_that_is_a_link_or_a_file_is_refused_saying_why(tmp_path: Path, target: str) -> None:
    real = tmp_path / "real"
    if target == "folder":
        real.mkdir()
        out = tmp_path / "public"
        out.symlink_to(real, target_is_directory=True)
        expected = f"is a symbolic link .* Give the folder itself \\(--out {real}\\)"
    else:
        real.write_text("mine")
        out = real
        expected = "exists and is not a folder"
    with pytest.raises(OutputFolderError, match=expected):
        write_site({"a.json": b"{}\n"}, out)
    assert (real.is_dir() and list(real.iterdir()) == []) or real.read_text() == "mine"


def test_a_file_given_in_more_parts_than_one_writev_takes_is_written_whole(tmp_path: Path) -> None:
    """A Keyed file rendered in parts (the releases list of a large registry: a part per group of rows) is
    written without joining them, in batches the kernel takes (IOV_MAX, 1024 on Linux)."""
    import hashlib

    from relreg.site.jobs import Keyed

    parts = [f"<tr><td>{index}</td></tr>\n".encode() for index in range(2500)]
    whole = b"".join(parts)

    def digested() -> tuple[list[bytes], str]:
        return parts, hashlib.sha256(whole).hexdigest()

    out = tmp_path / "public"
    write_site({"releases/index.html": Keyed("k1", lambda: whole, digested), "one.html": Keyed("k2", lambda: b"1",
                                                                                             lambda: ([b"1"], hashlib.sha256(b"1").hexdigest()))}, out)
    assert (out / "releases/index.html").read_bytes() == whole
    assert (out / "one.html").read_bytes() == b"1"


def _streamed(key: str, parts: list[bytes]) -> "Keyed":
    from relreg.site.jobs import Keyed

    return Keyed(key, lambda: b"".join(parts), render_stream=lambda: iter(parts))


def test_a_streamed_file_is_written_whole_and_linked_when_its_bytes_did_not_change(tmp_path: Path) -> None:
    """A file made part by part as it is written (Keyed.render_stream, the releases list) is the bytes of its
    parts; a rebuild that makes it again with the same bytes (a new key: a notes fix) keeps the served file,
    its inode and mtime, as for any file; other bytes replace it."""
    out = tmp_path / "public"
    rows = [f"<tr><td>{index}</td></tr>\n".encode() for index in range(3000)]
    write_site({"releases/index.html": _streamed("k1", rows), "other.html": b"x"}, out)
    page = out / "releases/index.html"
    assert page.read_bytes() == b"".join(rows)
    first = page.stat()
    time.sleep(0.01)
    write_site({"releases/index.html": _streamed("k2", rows), "other.html": b"y"}, out)
    assert page.read_bytes() == b"".join(rows)
    assert (page.stat().st_ino, page.stat().st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    write_site({"releases/index.html": _streamed("k3", rows[:-1]), "other.html": b"z"}, out)
    assert page.read_bytes() == b"".join(rows[:-1])
    assert page.stat().st_ino != first.st_ino
    assert not [path for path in tmp_path.rglob("*.part")]


def test_a_stream_that_fails_midway_leaves_the_previous_site_and_no_part_file(tmp_path: Path) -> None:
    from relreg.site.jobs import Keyed

    out = tmp_path / "public"
    write_site({"releases/index.html": b"previous"}, out)

    def failing() -> Iterator[bytes]:
        yield b"<tr>"
        raise RuntimeError("the template failed")

    with pytest.raises(RuntimeError):
        write_site({"releases/index.html": Keyed("k", lambda: b"", render_stream=failing)}, out)
    assert (out / "releases/index.html").read_bytes() == b"previous"
    assert not [path for path in tmp_path.rglob("*.part")]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(min_size=1, max_size=300), sub=st.binary(min_size=1, max_size=4),
       start=st.integers(0, 320), end=st.one_of(st.none(), st.integers(0, 320)))
def test_a_mapped_served_file_searches_and_slices_as_its_bytes(tmp_path_factory: pytest.TempPathFactory,
                                                               content: bytes, sub: bytes, start: int,
                                                               end: int | None) -> None:
    """A served file above MAP_ABOVE is mapped (write.MappedFile): what the readers of served files ask of it
    (find, rfind, count over a range, slices, len) is what they would get of its bytes."""
    from relreg.site.write import MappedFile, _read_file

    path = tmp_path_factory.mktemp("served") / "file"
    path.write_bytes(content)
    assert _read_file(str(path), map_above=len(content)) == content  # not above: read
    mapped = _read_file(str(path), map_above=len(content) - 1)
    assert isinstance(mapped, MappedFile) and len(mapped) == len(content)
    assert mapped.find(sub, start) == content.find(sub, start)
    assert mapped.find(sub, start, end) == content.find(sub, start, end)
    assert mapped.rfind(sub, start, end) == content.rfind(sub, start, end)
    assert mapped.count(sub, start, end) == content.count(sub, start, end)
    assert mapped[start:end] == content[start:end] and mapped[len(b'{"'):-2] == content[len(b'{"'):-2]
