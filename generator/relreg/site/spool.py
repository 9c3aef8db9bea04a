"""Bytes kept out of a build's memory: written to an unnamed file beside the output and read back
when needed.

A build of 100,000 releases makes more bytes that it needs again later than fit in 1 GiB: the
records of 1.4 million files (about 300 MB, read once, to write the manifest), the JSON document of
every release (about 480 MB in each site worker, read by each list that holds the release) and the
rendered notes (about 140 MB, read by the pages and documents). `Spool` writes them one after the
other to a file of its own process; `SpooledBytes` and `SpooledText` hold the first of them in
memory and spool the rest.

The file is made in the folder `spool_beside` (or the caller) names (the output's parent, so on the
disk the site goes to; the system's temporary folder when none is named), and is gone when its
process ends.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

# The folder spool files are made in (see spool_beside); None: the system's temporary folder.
_FOLDER: list[Path | None] = [None]


@contextlib.contextmanager
def spool_beside(folder: Path) -> Iterator[None]:
    """Spool files made within (by this process, or by processes it forks) go in `folder`."""
    saved = _FOLDER[0]
    _FOLDER[0] = folder
    try:
        yield
    finally:
        _FOLDER[0] = saved


class Kept:
    """Bytes kept out of this process's memory, read again with `read()`: from a spool file, or (the
    writer's carried job records) from a mapped manifest. `len()` is their length in bytes."""

    __slots__ = ("_read", "_length")

    def __init__(self, read: Callable[[], bytes], length: int) -> None:
        self._read = read
        self._length = length

    def __len__(self) -> int:
        return self._length

    def read(self) -> bytes:
        return self._read()


class Spool:
    """Bytes written one after the other to an unnamed file (made at the first `put` or `keep`, in
    `folder` or the folder spool_beside names), each read back as often as asked.

    A spool belongs to the process that wrote to it first: a forked process that keeps bytes in it
    gets a file of its own (writing at the same offsets of one file would overwrite the other's), and
    still reads what was kept before the fork."""

    def __init__(self, folder: Path | None = None) -> None:
        self._folder = folder
        self._file: Any = None
        self._owner = 0  # the process that made the file
        self._inherited: list[Any] = []  # the files of the processes this one was forked from
        self._size = 0

    def keep(self, data: bytes) -> Kept | bytes:
        """`data` written to the spool, or `data` itself if it cannot be written (a full disk, a folder
        that cannot be written): it then stays in memory, and the build goes on."""
        place = self.put(data)
        return data if place is None else Kept(partial(self.get, place), len(data))

    def put(self, data: bytes) -> int | None:
        """`data` written to the spool: where it lies (one int, for `get`; smaller than a Kept, which
        matters for a hundred thousand of them), or None if it cannot be written."""
        if len(data) >= 1 << 32:
            return None
        try:
            if self._file is None or self._owner != os.getpid():
                if self._file is not None:  # the parent's: still read (closed, as the process ends, by its owner)
                    self._inherited.append(self._file)
                self._file = tempfile.TemporaryFile(dir=self._folder or _FOLDER[0])
                self._owner, self._size = os.getpid(), 0
            descriptor = self._file.fileno()
            if os.pwrite(descriptor, data, self._size) != len(data) or descriptor >= 1 << 16:
                return None
        except OSError:
            return None
        place = (self._size << 48) | (len(data) << 16) | descriptor  # a forked process reads its parent's too
        self._size += len(data)
        return place

    @staticmethod
    def get(place: int) -> bytes:
        """The bytes `put` wrote at `place`."""
        return os.pread(place & 0xFFFF, (place >> 16) & 0xFFFFFFFF, place >> 48)

    def close(self) -> None:
        """Let go of the file (what was kept in it can no longer be read)."""
        if self._file is not None:
            if self._owner == os.getpid():
                self._file.close()
            self._file = None


# Bytes a SpooledBytes holds in memory (in each process) before it spools. At 100,000 releases a site
# worker held 64 MB of release documents, and peaked 50 MB over 1 GiB; with 16 MB, at 1,001 MiB. A
# registry of 10,000 releases (48 MB of documents) then reads two thirds of them back, at no cost that
# alternate full builds could tell apart (medians 16.70 s against 15.96 s, CPU 29.8 against 28.3 s).
MEMORY_BYTES = 16 << 20


class SpooledBytes:
    """A memo of bytes by key (jobs.BytesMemo): the first `memory_bytes` bytes stored held in memory,
    the rest in a Spool (in `folder`, else where spool_beside says). `get` gives the stored bytes, or
    None; `memo[key] = data` stores them."""

    def __init__(self, memory_bytes: int | None = None, folder: Path | None = None) -> None:
        self._held: dict[str, bytes | int] = {}  # the bytes, or where the spool holds them
        self._room = MEMORY_BYTES if memory_bytes is None else memory_bytes
        self._spool = Spool(folder)

    def get(self, key: str) -> bytes | None:
        found = self._held.get(key)
        if found is None or found.__class__ is bytes:
            return found  # type: ignore[return-value]
        return Spool.get(found)  # type: ignore[arg-type]

    def __setitem__(self, key: str, data: bytes) -> None:
        if len(data) <= self._room:
            self._room -= len(data)
            self._held[key] = data
        else:
            place = self._spool.put(data)
            self._held[key] = data if place is None else place


# Characters of text a SpooledText holds in memory before it spools: the rendered notes of 10,000
# releases of the benchmark's (about 14 MB) stay in memory.
TEXT_MEMORY_CHARACTERS = 16 << 20


class SpooledText(Mapping[str, str]):
    """Text by key, read as a dict is: the first `memory_characters` characters stored held in memory, the
    rest written to a Spool as UTF-8 (in `folder`, else where spool_beside says) and read back when asked
    for. The rendered notes of a large build (about 140 MB at 100,000 releases), which the build process
    and every site worker would otherwise hold."""

    def __init__(self, memory_characters: int | None = None, folder: Path | None = None) -> None:
        self._held: dict[str, str | int] = {}  # the text, or where the spool holds it as UTF-8
        self._room = TEXT_MEMORY_CHARACTERS if memory_characters is None else memory_characters
        self._spool = Spool(folder)

    def __setitem__(self, key: str, text: str) -> None:
        if len(text) <= self._room:
            self._room -= len(text)
            self._held[key] = text
            return
        place = self._spool.put(text.encode("utf-8", "surrogatepass"))
        self._held[key] = text if place is None else place

    def __getitem__(self, key: str) -> str:
        found = self._held[key]
        if found.__class__ is str:
            return found  # type: ignore[return-value]
        return Spool.get(found).decode("utf-8", "surrogatepass")  # type: ignore[arg-type]

    def __contains__(self, key: object) -> bool:
        return key in self._held

    def __iter__(self) -> Iterator[str]:
        return iter(self._held)

    def __len__(self) -> int:
        return len(self._held)
