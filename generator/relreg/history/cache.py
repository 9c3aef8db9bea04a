"""A persistent cache of work that depends only on a file's bytes.

Keys are git blob ids (for parsed, schema-valid documents) and content hashes
(for rendered notes), so an entry can never be stale: different bytes give a
different key. The cache lives in the repository's git folder, never in the
work tree or the output, and is tied to this relreg version and its schemas,
so an upgrade starts afresh. Losing it only costs time.

It also remembers each registry file's blob id by the file's status (size,
mtime, ctime, inode, device), as git's index does, so that a rebuild reads and
hashes only the files that changed (registry/source.py, `read_worktree`). A
file written within RACY_NS of being read is not remembered: a second write in
the same timestamp tick would leave its status unchanged.

The cache is written with marshal, each document marshalled on its own: a
cold validate stores what its workers sent back as it is, and opening the
cache reads byte strings, not millions of objects. The file holds the
documents, memory-mapped and read when asked for (opening the cache of 10,000
releases reads 15 of its 50 MB; `relreg validate` on an unchanged registry
reads none), then the tables (where each document lies, the facts, where each
release's rendered notes lie, the blob ids) in parts of a few thousand entries:
it is never held whole in memory. Rendered notes are kept as documents are: in
the file's mapped part, or in the spool for those this run rendered, and read
one at a time when asked for (the notes of 100,000 releases are about 140 MB). marshal's format belongs to the Python version, which is part of the
key; the small journal stays pickle, whose records are read one after the other.
"""

from __future__ import annotations

import hashlib
import marshal
import mmap
import os
import pickle
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

from relreg import __version__
from relreg.registry import warm
from relreg.registry.gcpause import gc_paused
from relreg.resources import code_digest

# Entries not used by a run are dropped when the cache is rewritten, so it never
# grows much past the size of the registry it serves. A run that adds only a few
# entries (a new release, a corrected note) appends them to a journal beside the
# cache instead of rewriting all of it; the cache is rewritten (and the journal
# folded in) when the journal or the unused entries pass a tenth of the entries.
REWRITE_SHARE = 0.1


@dataclass
class WorkCache:
    path: Path | None = None
    # "kind:blob id" -> parsed data, marshalled: the cache is then written and read as a few
    # thousand byte strings rather than millions of objects; a document is loaded when asked for.
    # Those of the file opened are (offset, length) in `_mapped`, its memory-mapped documents; those
    # stored by this run are _Spooled (offset, length) in `_spool`, a file beside the cache.
    documents: dict[str, bytes | tuple[int, int]] = field(default_factory=dict)
    # sha256(format, text) -> safe HTML, as UTF-8 (surrogates passed): where it lies as in `documents`
    # (mapped, spooled), or the bytes themselves (from the journal, or when there is no spool).
    notes: dict[str, "bytes | tuple[int, int]"] = field(default_factory=dict)
    # absolute file path -> ((size, mtime_ns, ctime_ns, inode, device), blob id): see registry.source.BlobIds
    blob_ids: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)
    _used_documents: set[str] = field(default_factory=set)
    _used_notes: set[str] = field(default_factory=set)
    _used_blob_ids: set[str] = field(default_factory=set)
    _changed: bool = False
    _new_documents: dict[str, "bytes | _Spooled"] = field(default_factory=dict)  # stored by this run, not yet saved
    _new_notes: dict[str, "bytes | _Spooled"] = field(default_factory=dict)
    _new_blob_ids: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)
    _journal_entries: int = 0  # entries in the journal when opened
    _mapped: "memoryview | _FileDocuments" = field(default_factory=lambda: memoryview(b""))
    # The documents stored by this run, one after the other (an unnamed file beside the cache, gone with
    # the process): a cold build stores every document, 250 MB at 100,000 releases, not to be held in memory.
    _spool: BinaryIO | None = None
    _spool_size: int = 0
    _read_since_drop: int = 0  # bytes of mapped documents read since their pages were last let go of

    @classmethod
    def open(cls, folder: Path | None, fingerprint: str) -> "WorkCache":
        if folder is None:
            return cls()
        python = "%d.%d" % sys.version_info[:2]
        key = hashlib.sha256(f"{__version__}\0{python}\0{fingerprint}".encode()).hexdigest()[:16]
        return cls.at(folder / f"work-cache-{key}.marshal")

    @classmethod
    def at(cls, path: Path, *, mapped: bool = True) -> "WorkCache":
        """The cache kept in the file at `path` (empty when it cannot be read): what `open` gives for the
        folder and fingerprint that name it. With `mapped` False its documents are read with pread instead
        of a memory map (relreg's daemon, which reads a cache between commands: a file cut short in place
        meanwhile then gives short reads, not SIGBUS)."""
        try:
            with gc_paused():
                documents, notes, blob_ids, held = _read_parts(path, mapped=mapped)
        except (OSError, EOFError, ValueError, TypeError):
            return cls(path=path)
        journal = 0
        try:
            with _journal(path).open("rb") as stream:
                while True:  # records appended by earlier runs; a record cut short by a killed run ends it
                    more_documents, more_notes, more_blob_ids = pickle.load(stream)
                    documents.update(more_documents)
                    notes.update(more_notes)
                    blob_ids.update(more_blob_ids)
                    journal += len(more_documents) + len(more_notes) + len(more_blob_ids)
        except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError):
            pass
        return cls(path=path, documents=documents, notes=notes, blob_ids=blob_ids, _journal_entries=journal,
                   _mapped=held)

    def blob_id_of(self, file: str, status: tuple[int, ...]) -> str | None:
        """The blob id remembered for `file` (an absolute path) when its status is still `status`, else None."""
        entry = self.blob_ids.get(file)
        if entry is None or entry[0] != status:
            return None
        self._used_blob_ids.add(file)
        return entry[1]

    def remember_blob_id(self, file: str, status: tuple[int, ...], blob_id: str) -> None:
        """Remember that `file`, with this status, holds the bytes of `blob_id` (see registry.source.BlobIds)."""
        entry = (tuple(status), blob_id)
        self.blob_ids[file] = entry
        self._used_blob_ids.add(file)
        self._new_blob_ids[file] = entry
        self._changed = True

    def document(self, kind: str, blob_id: str) -> Any | None:
        """The parsed, schema-valid data of that file's bytes (a new copy each call), or None."""
        key = f"{kind}:{blob_id}"
        stored = self.documents.get(key)
        if stored is None:
            return None
        try:
            data = marshal.loads(self._view(stored))
        except (EOFError, ValueError, TypeError, OSError):
            return None
        self._used_documents.add(key)
        return data

    def fact(self, key: str) -> bytes | None:
        """A small byte string stored under `key` by `store_fact` (registry/validate.py: what the rules
        read of a file, and their findings), kept and dropped as documents are."""
        stored = self.documents.get(f"fact:{key}")
        if stored is not None:
            self._used_documents.add(f"fact:{key}")
        return stored  # type: ignore[return-value]  # facts are kept as bytes, not mapped (see _write_parts)

    def facts(self, keys: list[str]) -> list[bytes | None]:
        """`fact` of each key, in order (one call for the 10,000 files of a large registry)."""
        names = [f"fact:{key}" for key in keys]
        found = list(map(self.documents.get, names))
        if None in found:
            names = [name for name, value in zip(names, found) if value is not None]
        self._used_documents.update(names)
        return found  # type: ignore[return-value]  # facts are kept as bytes, not mapped (see _write_parts)

    def _view(self, stored: "bytes | tuple[int, int] | _Spooled") -> "bytes | memoryview":
        """A stored value's bytes: those of the file opened from the mapped documents (whose pages are let
        go of every DROP_BYTES read, or every DROP_READS reads, a page each at worst: read once, they would
        otherwise count in this process's memory as long as the file is mapped), those stored by this run
        from the spool."""
        if stored.__class__ is tuple:
            offset, length = stored  # type: ignore[misc]
            self._read_since_drop += length + DROP_READ_COST
            if self._read_since_drop > DROP_BYTES:
                self._drop_pages()
            return self._mapped[offset:offset + length]
        if stored.__class__ is _Spooled:
            offset, length = stored  # type: ignore[misc]
            assert self._spool is not None
            return os.pread(self._spool.fileno(), length, offset)
        return stored  # type: ignore[return-value]

    def _drop_pages(self) -> None:
        """Let go of the pages of the mapped documents read so far (the file keeps them: a later read maps them again)."""
        self._read_since_drop = 0
        mapped = self._mapped.obj
        if isinstance(mapped, mmap.mmap) and hasattr(mapped, "madvise"):
            try:
                mapped.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):
                pass

    def _bytes(self, stored: "bytes | tuple[int, int] | _Spooled") -> bytes:
        """A stored value as bytes (see `_view`)."""
        view = self._view(stored)
        return view if view.__class__ is bytes else bytes(view)  # type: ignore[return-value]

    def _spooled(self, value: bytes) -> "bytes | _Spooled":
        """`value` written to the spool, or itself when there is none to write to (no cache file, or it cannot be written)."""
        if self._spool is None:
            if self.path is None:
                return value
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._spool = tempfile.TemporaryFile(dir=self.path.parent)
            except OSError:
                self.path = None  # nowhere to write: the cache stays in memory, and is not saved
                return value
        try:
            written = os.pwrite(self._spool.fileno(), value, self._spool_size)
        except OSError:
            return value
        if written != len(value):
            return value
        spooled = _Spooled((self._spool_size, len(value)))
        self._spool_size += len(value)
        return spooled

    def store_fact(self, key: str, value: bytes) -> None:
        """Remember `value` under `key` (see `fact`)."""
        key = f"fact:{key}"
        self.documents[key] = value
        self._used_documents.add(key)
        self._new_documents[key] = value
        self._changed = True

    def document_digest(self, kind: str, blob_id: str) -> bytes | None:
        """A digest of the stored bytes of that file's document (registry/warm.py), which is then kept as if
        this run had read it; None when none is held."""
        key = f"{kind}:{blob_id}"
        stored = self.documents.get(key)
        if stored is None:
            return None
        self._used_documents.add(key)
        return warm.stored_digest(self._view(stored))

    def held_blob_ids(self, kind: str) -> list[str]:
        """The blob ids of the `kind` files whose documents are held, in no order (none marked as read)."""
        prefix = f"{kind}:"
        return [key[len(prefix):] for key in self.documents if key.startswith(prefix)]

    def stored_document(self, kind: str, blob_id: str) -> bytes | None:
        """The stored bytes of that file's document (marshal of it), not marked as read (relreg's daemon
        reads a cache it does not save); None when none is held or it cannot be read."""
        stored = self.documents.get(f"{kind}:{blob_id}")
        if stored is None:
            return None
        try:
            return self._bytes(stored)
        except OSError:
            return None

    def holds_document(self, kind: str, blob_id: str) -> bool:
        """Whether `document(kind, blob_id)` would find one (without reading it)."""
        return f"{kind}:{blob_id}" in self.documents

    def keep_blob_ids(self) -> None:
        """Keep every remembered blob id when the cache is saved, though this run did not look them up
        (a build that read the registry from git's index: the next may read a changed work tree)."""
        self._used_blob_ids.update(self.blob_ids)

    def keep_documents(self) -> None:
        """Keep every document and fact when the cache is saved, though this run did not ask for them."""
        self._used_documents.update(self.documents)

    def store_document(self, kind: str, blob_id: str, data: Any, marshalled: bytes | None = None) -> None:
        """Remember `data` (JSON-like) for those bytes; `marshalled`: marshal.dumps(data), when the caller has it."""
        key = f"{kind}:{blob_id}"
        stored = self._spooled(marshalled if marshalled is not None else marshal.dumps(data))
        self.documents[key] = stored
        self._used_documents.add(key)
        self._new_documents[key] = stored
        self._changed = True

    @staticmethod
    def notes_key(text: str, notes_format: str) -> str:
        return hashlib.sha256(f"{notes_format}\0{text}".encode()).hexdigest()

    @staticmethod
    def file_notes_key(blob_id: str) -> str:
        """The key of a release file's rendered notes by the file's git blob id: its content decides the notes
        and their format, so a rebuild finds them without reading (or decompressing) the notes."""
        return hashlib.sha256(f"release file\0{blob_id}".encode()).hexdigest()

    def has_notes(self, key: str) -> bool:
        """Whether `rendered_notes(key)` would find them, without reading them; if so they are kept when the
        cache is saved, as if read."""
        if key not in self.notes:
            return False
        self._used_notes.add(key)
        return True

    def rendered_notes(self, key: str) -> str | None:
        """The safe HTML stored under `key` by `store_notes` (read from the file or the spool), or None."""
        stored = self.notes.get(key)
        if stored is None:
            return None
        try:
            html = str(self._view(stored), "utf-8", "surrogatepass")
        except (OSError, ValueError, TypeError):  # a cache file cut short, or not UTF-8: render them again
            return None
        self._used_notes.add(key)
        return html

    def store_notes(self, key: str, html: str) -> None:
        """Remember the safe HTML of the notes known by `key`: written to the spool, not held in memory."""
        stored = self._spooled(html.encode("utf-8", "surrogatepass"))
        self.notes[key] = stored
        self._used_notes.add(key)
        self._new_notes[key] = stored
        self._changed = True

    def save(self, *, prune: bool = True, keep_notes: bool = False) -> None:
        """Write the cache; with `prune`, drop what this run did not use (a build that skips
        rendering passes prune=False, or it would throw the rendered notes away). `keep_notes`:
        keep the rendered notes though unused (`relreg validate`, which renders none)."""
        if not prune:
            self._used_documents.update(self.documents)
            self._used_blob_ids.update(self.blob_ids)
        if not prune or keep_notes:
            self._used_notes.update(self.notes)
        entries = len(self.documents) + len(self.notes) + len(self.blob_ids)
        unused = entries - len(self._used_documents) - len(self._used_notes) - len(self._used_blob_ids)
        if self.path is None or not (self._changed or unused):
            return
        new = len(self._new_documents) + len(self._new_notes) + len(self._new_blob_ids)
        if unused + self._journal_entries + new <= REWRITE_SHARE * entries:
            self._append_journal()
            return
        # In the order stored (the file's, then this run's: the spool is read front to back), each document
        # copied from the mapped file or the spool as it is written, never all held at once.
        used = self._used_documents
        documents = [(key, stored) for key, stored in self.documents.items() if key in used]
        # In the order stored (a release's notes next to those of the releases before and after it), so a
        # build that reads every release's notes reads the file front to back.
        notes = [(key, stored) for key, stored in self.notes.items() if key in self._used_notes]
        blob_ids = {key: self.blob_ids[key] for key in self._used_blob_ids}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for old in self.path.parent.glob("work-cache-*"):
                if old not in (self.path, _journal(self.path)) and old.suffix in (".marshal", ".pickle", ".journal"):
                    old.unlink(missing_ok=True)  # made by another relreg version
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as stream:
                    places, note_places = _write_parts(stream, documents, self._view, notes, blob_ids)
                self._drop_pages()
                if os.name == "nt":  # Windows refuses to replace a mapped file
                    self._unmap()
                os.replace(temporary, self.path)
            except BaseException:
                os.unlink(temporary)
                raise
            _journal(self.path).unlink(missing_ok=True)  # folded in
        except (OSError, ValueError):  # ValueError: a value marshal cannot write (none today)
            return  # a cache that cannot be written only costs time next run
        # This object stays usable: its documents are those of the file just written.
        self._unmap()
        try:
            self._mapped = _read_parts(self.path, tables=False)[3]
            self.documents, self.notes = places, note_places  # type: ignore[assignment]
        except (OSError, EOFError, ValueError, TypeError):
            self.documents = {key: stored for key, stored in places.items() if stored.__class__ is bytes}
            self.notes = {}
        self._new_documents, self._new_notes = {}, {}
        self._used_documents, self._used_notes = set(self.documents), set(self.notes)

    def _unmap(self) -> None:
        """Let go of the mapped file and the spool (their documents are no longer in `documents`)."""
        self._mapped.release()
        self._mapped = memoryview(b"")
        self.documents = {key: stored for key, stored in self.documents.items() if stored.__class__ is bytes}
        self.notes = {key: stored for key, stored in self.notes.items() if stored.__class__ is bytes}
        if self._spool is not None:
            self._spool.close()
            self._spool = None
            self._spool_size = 0

    def _append_journal(self) -> None:
        if not self._new_documents and not self._new_notes and not self._new_blob_ids:
            return
        documents = {key: self._bytes(stored) for key, stored in self._new_documents.items()}
        notes = {key: self._bytes(stored) for key, stored in self._new_notes.items()}
        record = pickle.dumps((documents, notes, self._new_blob_ids), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            descriptor = os.open(_journal(self.path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)  # type: ignore[arg-type]
            try:
                os.write(descriptor, record)  # one write: a run killed meanwhile leaves a record cut short, ignored
            finally:
                os.close(descriptor)
        except OSError:
            pass


# The cache file: this line; the documents' length (8 bytes, little-endian) and the documents, one
# after the other, then the rendered notes (UTF-8); then parts, each an 8-byte little-endian length and
# the marshalled (table, {key: value, ...}) of up to PART_ENTRIES entries of one table (0 documents:
# (offset, length) in the documents, or for a fact, small and read by every run, its bytes; 1 notes:
# (offset, length) in the documents; 2 blob ids). Written and
# read a part at a time: as one marshalled whole, the file's bytes stood in memory beside the tables
# (about 500 MB more at 100,000 releases, the build's peak). The documents are memory-mapped, and
# written one at a time from the mapped file and the spool.
_MAGIC = b"relreg work cache, mapped documents and notes, parts\n"
PART_ENTRIES = 4096
# Bytes of mapped documents read between two lettings go of their pages (see WorkCache._view).
DROP_BYTES = 32 << 20
# What a read counts towards DROP_BYTES besides its length: what it may map when reads are scattered over
# the file (a read fault maps the pages around it too: Linux's fault_around_bytes, 64 KiB by default).
DROP_READ_COST = 64 << 10


class _Spooled(tuple):
    """(offset, length) of a document in the spool (see WorkCache._spool)."""

    __slots__ = ()


def _write_parts(stream: BinaryIO, documents: list[tuple[str, Any]], view: Callable[[Any], "bytes | memoryview"],
                 notes: list[tuple[str, Any]], blob_ids: dict[str, tuple[tuple[int, ...], str]]
                 ) -> tuple[dict[str, bytes | tuple[int, int]], dict[str, tuple[int, int]]]:
    """Write the cache file: `documents` and `notes` (key, stored value), each read by `view` as it is
    written. Gives the documents' places in the file (facts: their bytes) and the notes'."""
    places: dict[str, bytes | tuple[int, int]] = {}
    offset = 0
    for key, stored in documents:
        if key.startswith("fact:"):
            places[key] = stored
        else:
            length = len(stored) if stored.__class__ is bytes else stored[1]
            places[key] = (offset, length)
            offset += length
    note_places: dict[str, tuple[int, int]] = {}
    for key, stored in notes:
        length = len(stored) if stored.__class__ is bytes else stored[1]
        note_places[key] = (offset, length)
        offset += length
    stream.write(_MAGIC + offset.to_bytes(8, "little"))
    for key, stored in documents:
        if not key.startswith("fact:"):
            stream.write(view(stored))
    for key, stored in notes:
        stream.write(view(stored))
    for index, table in enumerate((places, note_places, blob_ids)):
        items = list(table.items())
        for start in range(0, len(items), PART_ENTRIES):
            part = marshal.dumps((index, dict(items[start:start + PART_ENTRIES])))
            stream.write(len(part).to_bytes(8, "little"))
            stream.write(part)
    return places, note_places


def _read_parts(path: Path, tables: bool = True, mapped: bool = True
                ) -> tuple[dict[str, bytes | tuple[int, int]], dict[str, tuple[int, int]],
                           dict[str, tuple[tuple[int, ...], str]],
                           "memoryview | _FileDocuments"]:
    """The three tables of a cache file (with `tables` False, empty: not read), and its documents
    memory-mapped (with `mapped` False, read with pread as asked for); ValueError (or EOFError, TypeError)
    when it is not one, or cut short; OSError when it cannot be read."""
    found: tuple[dict[str, Any], ...] = ({}, {}, {})
    with path.open("rb") as stream:
        start = stream.read(len(_MAGIC) + 8)
        if not start.startswith(_MAGIC) or len(start) != len(_MAGIC) + 8:
            raise ValueError("not a work cache")
        length = int.from_bytes(start[len(_MAGIC):], "little")
        if os.fstat(stream.fileno()).st_size < len(start) + length:
            raise ValueError("work cache cut short")
        documents: memoryview | _FileDocuments = memoryview(b"")
        if length and not mapped:
            documents = _FileDocuments(path, len(start), length)
        elif length:
            try:
                documents = memoryview(mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ))
            except (OSError, ValueError):  # a file system that cannot map files
                stream.seek(0)
                documents = memoryview(stream.read(len(start) + length))
            documents = documents[len(start):len(start) + length]
        stream.seek(len(start) + length)
        while tables and (header := stream.read(8)):
            size = int.from_bytes(header, "little")
            part = stream.read(size)
            if len(header) != 8 or len(part) != size:
                raise ValueError("work cache cut short")
            index, entries = marshal.loads(part)
            if not isinstance(entries, dict):
                raise ValueError("not a work cache")
            found[index].update(entries)
    return (*found, documents)  # type: ignore[return-value]


class _FileDocuments:
    """The documents part of a cache file, read with pread as they are asked for (see WorkCache.at): sliced as
    the memoryview of a mapped file is, `[offset:offset + length]`, it gives bytes, short past the file's end."""

    obj = None  # as a memoryview's: no mapping whose pages could be let go of

    def __init__(self, path: Path, start: int, length: int) -> None:
        self._start, self._length = start, length
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def __getitem__(self, part: slice) -> bytes:
        start, stop = part.start or 0, min(part.stop if part.stop is not None else self._length, self._length)
        return os.pread(self._fd, max(0, stop - start), self._start + start) if self._fd >= 0 else b""

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.release()


def _journal(path: Path) -> Path:
    return path.with_suffix(".journal")


def _git_folder(start: Path) -> Path | None:
    """The git folder of the repository holding `start`, found without starting git."""
    for folder in (start.resolve(), *start.resolve().parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():  # a linked work tree or submodule: "gitdir: <path>"
            text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("gitdir:"):
                return (folder / text.split(":", 1)[1].strip()).resolve()
    return None


def code_fingerprint() -> str:
    """What cached results depend on besides the bytes: the schemas and the code that checks and renders.

    The digest of all of relreg's code, templates and schemas: coarser than the
    modules that parse and render, but it needs no knowledge of them here.
    """
    return code_digest().hex()


def work_cache_for(registry_dir: Path) -> WorkCache:
    """The cache of the repository holding the registry; an in-memory one outside git."""
    git_folder = _git_folder(registry_dir)
    return WorkCache.open(git_folder / "relreg" if git_folder else None, code_fingerprint())
