"""The manifest file of a built site (`.relreg-manifest.json`, never served): header, index, records.

Line 1, the header, is small: the format, the fingerprint of every input, the source key (the
commit and options, when built from a clean tree) and the release count. A rebuild with nothing
changed compares the source key and stops, so it reads line 1 only. Line 2, the index, gives the
summary of every job (see write.py) and where its record lies in the rest of the file: the records
of every job, one after the other, tens of megabytes for a large registry. The file is mapped, not
read: a rebuild reads the records of the few jobs it touches and copies the others as bytes.

This module imports only the standard library: it is on the path of that rebuild, where start-up
time is most of the time.
"""

from __future__ import annotations

import json
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol

from relreg.site.paths import MANIFEST

MANIFEST_FORMAT = 5  # 5: job summaries with their paths' digest; 4: header line, index line, records;
# 3: header line, JSON body line; 2: one JSON object


@dataclass(frozen=True)
class WriteStats:
    """What a write did: files written, files kept as they were (linked), files removed."""

    written: int
    unchanged: int
    removed: int
    notes: list[Any] = field(default_factory=list)  # what the Summarizer said of each job, in plan order


class Record(Protocol):
    """A record kept elsewhere until the manifest is written: its length, and its bytes when read."""

    def __len__(self) -> int: ...

    def read(self) -> bytes: ...


class Records(Mapping[str, str]):
    """The records of a manifest by job key (UTF-8 text), each read from the mapped file when asked for."""

    def __init__(self, blob: "mmap.mmap | bytes", start: int, index: Mapping[str, tuple[int, int]]) -> None:
        self._blob = blob  # the whole file: a map cannot start within a page
        self._start = start
        self._index = index

    def raw(self, key: str) -> bytes:
        """The record of `key` as the file holds it (KeyError when there is none)."""
        offset, length = self._index[key]
        offset += self._start
        return self._blob[offset:offset + length]

    def span(self, key: str) -> tuple[int, int]:
        """Where the record of `key` lies (start, end), as positions `line` takes (KeyError when there is none)."""
        offset, length = self._index[key]
        return self._start + offset, self._start + offset + length

    def line(self, position: int) -> bytes:
        """The line of a record that starts at `position` (a position within a `span`), without its newline."""
        end = self._blob.find(b"\n", position)
        return self._blob[position:end if end >= 0 else len(self._blob)]

    def length(self, key: str) -> int:
        """The length of the record of `key` (KeyError when there is none)."""
        return self._index[key][1]

    def drop_pages(self) -> None:
        """Let go of the pages of the file read so far: they count in this process's memory while mapped
        (a later read maps them again)."""
        if isinstance(self._blob, mmap.mmap) and hasattr(self._blob, "madvise"):
            try:
                self._blob.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):
                pass

    def __getitem__(self, key: str) -> str:
        return self.raw(key).decode()

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def write_manifest(folder: str, header: dict[str, Any], records: "Mapping[str, bytes | Record]",
                   summaries: dict[str, Any], loose: bytes, sections: Mapping[str, list[str]] | None = None,
                   published: str = "") -> None:
    """Write the manifest into `folder` (a staging folder: the swap makes it visible).

    `records`: each job's record (UTF-8, newline-terminated lines) by job key, as bytes or as a `Record`
    read as it is written; `summaries`: JSON by job key; `loose`: the record of the files of no keyed job;
    `sections`: the keys of the jobs of each section of the plan (jobs.KeyedSection), by section key;
    `published`: each release's id and artifact digests (site/published.py), for the next build to compare.
    """
    index: dict[str, list[int]] = {}
    offset = len(loose)
    for key, record in records.items():
        index[key] = [offset, len(record)]
        offset += len(record)
    with open(os.path.join(folder, MANIFEST), "wb") as stream:
        # json.dumps, not json.dump: one call into the C encoder instead of a Python loop.
        stream.write(json.dumps({**header, "format": MANIFEST_FORMAT}, sort_keys=True).encode() + b"\n")
        stream.write(json.dumps({"jobs": index, "summaries": summaries, "loose": [0, len(loose)], "size": offset,
                                 "sections": dict(sections or {}), "published": published or ""},
                                sort_keys=True).encode() + b"\n")
        stream.write(loose)
        for record in records.values():
            stream.write(record if isinstance(record, bytes) else record.read())


def _is_header(value: object) -> bool:
    return (isinstance(value, dict) and value.get("format") == MANIFEST_FORMAT
            and isinstance(value.get("files"), int) and isinstance(value.get("releases"), int))


def read_header(folder: Path) -> dict[str, Any] | None:
    """Line 1 of the manifest in `folder`; None when there is none, or it is unreadable, incomplete or
    of another format (then nothing of the previous build is trusted)."""
    try:
        with open(folder / MANIFEST, encoding="utf-8") as stream:
            header = json.loads(stream.readline())
    except (OSError, ValueError):
        return None
    return header if _is_header(header) else None


def _span(value: object, size: int) -> tuple[int, int]:
    """An [offset, length] of the index, checked to lie within the records (ValueError if not)."""
    if not (isinstance(value, list) and len(value) == 2 and all(type(item) is int for item in value)):
        raise ValueError("not a span")
    offset, length = value
    if offset < 0 or length < 0 or offset + length > size:
        raise ValueError("span outside the records")
    return offset, length


def read_manifest(folder: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The manifest in `folder` as (header, body), body {"jobs": Records, "summaries": {key: JSON},
    "loose": str, "sections": {section key: [job key]}, "published": str (site/published.py)}; None as for
    read_header, or when the index or the
    size of the records is wrong."""
    try:
        with open(folder / MANIFEST, "rb") as stream:
            header = json.loads(stream.readline())
            index = json.loads(stream.readline())
            start = stream.tell()
            size = os.fstat(stream.fileno()).st_size - start
            if not (_is_header(header) and isinstance(index, dict) and index.get("size") == size):
                return None
            # Mapped, not read: the pages of the records no one asks for are never touched. The map stays
            # valid when the file is then unlinked (the spare's) or its folder renamed (the swap).
            blob: mmap.mmap | bytes = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
            spans = {key: _span(value, size) for key, value in index["jobs"].items()}
            offset, length = _span(index["loose"], size)
            loose = blob[start + offset:start + offset + length].decode()
            summaries = index["summaries"]
            if not isinstance(summaries, dict):
                return None
            sections = _sections(index.get("sections", {}))
            published = index.get("published")
            if not isinstance(published, str):
                published = ""  # written by older code: nothing to compare with
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None
    return header, {"jobs": Records(blob, start, spans), "summaries": summaries, "loose": loose,
                    "sections": sections, "published": published}


def _sections(value: object) -> dict[str, list[str]]:
    """The index's sections, or none when they are not {str: [str]} (a build of older code wrote none)."""
    if isinstance(value, dict) and all(isinstance(key, str) and isinstance(keys, list)
                                       and all(isinstance(item, str) for item in keys) for key, keys in value.items()):
        return value
    return {}
