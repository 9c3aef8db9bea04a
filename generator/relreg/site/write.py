"""Writing the planned site: atomic, incremental, deterministic.

The new site is assembled in a staging folder beside the output folder and
swapped in with one rename, so a build that fails or is killed leaves the
previous output untouched. Files whose bytes did not change are hard-linked
from the previous output instead of rewritten, so their modification times
stay and rsync or an object-store sync uploads only what changed.

Output is double-buffered: after the swap, the folder that held the previous
site is kept beside the output as `.<out>.spare`, with its manifest. The next
build brings that spare up to date by touching only the files that differ
from it (at most two builds' worth of changes), then swaps it in, instead of
linking every file of a large site into a new folder. The spare's manifest is
deleted before the first change to it, so a spare left half-updated by a
killed build is recognized and thrown away, never trusted.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import mmap
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, Union

import click

from relreg.registry.gcpause import forked_pool, linux_libc
from relreg.resources import code_digest
from relreg.site.jobs import Keyed, KeyedJob, KeyedSection, job_files
from relreg.site.manifest import Records, WriteStats, read_header, read_manifest, write_manifest
from relreg.site.paths import MANIFEST
from relreg.site.serving import family_of, path_families
from relreg.site.spool import Kept, Spool, spool_beside

_RENAME_EXCHANGE = 2


class OutputFolderError(click.ClickException):
    """The output folder cannot safely be replaced."""


def _check_replaceable(out: Path) -> None:
    if out.is_symlink():
        raise OutputFolderError(f"--out {out} is a symbolic link (to {os.readlink(out)}): the site is swapped in by "
                                "renaming folders, which would replace the link, not the folder it points to. "
                                f"Give the folder itself (--out {out.resolve()}), or point a web server's root "
                                "at a link to the output folder instead")
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"--out {out} exists and is not a folder; refusing to replace it")
    if out.is_dir() and os.path.ismount(out):
        raise OutputFolderError(
            f"--out {out} is a mount point (a volume, tmpfs or network share): the site is swapped in whole by "
            "renaming folders, and a mount point cannot be renamed. Build into a folder inside it "
            f"(--out {out / 'site'}) and serve that folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise OutputFolderError(
            f"--out {out} is not empty and was not written by relreg (no {MANIFEST}); "
            "refusing to replace files you may have written. Choose another folder or empty it.")


def _lock_output(out: Path, previous: "PreviousBuild | None") -> int:
    """Hold `.<out>.lock` beside the output (an exclusive flock, released when the descriptor closes).

    Two builds into one folder would share its spare and staging folders. The second one is refused
    at once rather than made to wait: what it read of the previous build may be gone by then. For
    the same reason a build whose output changed since it read it (another build swapped in) stops.
    """
    descriptor = _flock_output(out, f"another relreg build is writing --out {out}; run this one again when it "
                                    "is done (the output is untouched)")
    if previous is None:
        replaced = previous_build(out) is not None
    else:
        header = read_header(out)
        replaced = header is None or header.get("fingerprint") != previous.fingerprint
    if replaced:
        os.close(descriptor)
        raise OutputFolderError(f"--out {out} was replaced by another build while this one ran; run it again "
                                "(the output is untouched)")
    return descriptor


def _flock_output(out: Path, busy: str) -> int:
    """The descriptor of `.<out>.lock`, locked (exclusive, not waited for); OutputFolderError(`busy`) when
    another process holds it."""
    descriptor = os.open(out.parent / f".{out.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise OutputFolderError(busy) from None
    return descriptor


@contextlib.contextmanager
def output_locked(out: Path) -> Iterator[None]:
    """Hold the output folder's build lock while changing files in it outside a build (`relreg sign
    --refresh`): a build swapping in a new site meanwhile would mix the two. OutputFolderError when a
    build holds it."""
    descriptor = _flock_output(out, f"a relreg build is writing --out {out}; run this again when it is done "
                                    "(nothing was changed)")
    try:
        yield
    finally:
        os.close(descriptor)


def _folder_mode(out: Path) -> int:
    """The served folder's mode, so a `chmod` of the output stays; for a new one, what the umask allows."""
    try:
        return out.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o777 & ~umask


def _remove_leftovers(out: Path) -> None:
    """Staging folders of builds that were killed before they could clean up (the lock is held)."""
    for leftover in out.parent.glob(f".{out.name}.staging-*"):
        if leftover.is_dir() and not leftover.is_symlink():
            _remove(str(leftover), in_background=True)


def _exchange(staging: Path, out: Path) -> None:
    """Swap two folders atomically where the OS allows it (Linux renameat2), else rename twice."""
    if not out.exists():
        os.rename(staging, out)
        return
    libc = linux_libc()
    if libc is not None:
        renameat2 = getattr(libc, "renameat2", None)
        if renameat2 is not None:
            at_fdcwd = -100
            if renameat2(at_fdcwd, os.fsencode(staging), at_fdcwd, os.fsencode(out), _RENAME_EXCHANGE) == 0:
                return  # staging now holds the old site; the caller removes it
    previous = staging.with_name(staging.name + ".old")
    os.rename(out, previous)
    os.rename(staging, out)
    os.rename(previous, staging)


# A record lists the files of one job, one line each: path, sha256 and input key (empty when the
# file was not planned as Keyed), tab-separated. The manifest holds the records one after the other
# (see manifest.py): only the records a build touches are read and split, the others are copied as bytes.
def _record_text(entries: Iterable[tuple[str, str, str]]) -> str:
    return "".join(f"{path}\t{digest}\t{key}\n" for path, digest, key in entries)


def _record_entries(text: str | bytes) -> list[tuple[str, str, str]]:
    if isinstance(text, bytes):
        text = text.decode()
    return [tuple(line.split("\t")) for line in text.splitlines()]  # type: ignore[misc]


class _FileIndex:
    """Files of a previous build by path: (sha256, input key) of each, from records of its manifest that the
    new plan does not keep (a job whose key changed), and from its loose record.

    It holds, for each file, the hash of its path and where its line lies in the mapped manifest, and reads
    the line again when asked: after an upgrade of relreg every job's key changes, and a dict of path ->
    (sha256, key) strings for every file of the served site and of the spare took 1.7 GB at 100,000
    releases (1.4 million files each), against about 150 MB each this way."""

    def __init__(self, records: Records, keys: Iterable[str], loose: str) -> None:
        self._records = records
        self._at: dict[int, int] = {}  # hash(path) -> where its line starts
        self._more: dict[str, tuple[str, str]] = {}  # paths whose hash another path has, and the loose files
        self._asked = 0
        keys = list(keys)
        for key, record in zip(keys, _records_read(records, keys)):
            position = records.span(key)[0]
            for line in record.split(b"\n")[:-1]:
                self._add(line[:line.index(b"\t")].decode(), position)
                position += len(line) + 1
        for path, digest, key in _record_entries(loose):
            self._more[path] = (digest, key)

    def _add(self, path: str, position: int) -> None:
        code = _path_hash(path)
        other = self._at.setdefault(code, position)
        if other != position:  # two paths of one hash (or a path twice): the later's entry is kept as text
            _, digest, key = self._line(position)
            self._more[path] = (digest, key)

    def _line(self, position: int) -> list[str]:
        """The (path, sha256, input key) of the record line at `position`."""
        return self._records.line(position).decode().split("\t")

    def get(self, path: str) -> tuple[str, str] | None:
        """(sha256, input key) of the file at `path`, or None when no indexed record has it."""
        found = self._more.get(path)
        if found is not None:
            return found
        position = self._at.get(_path_hash(path))
        if position is None:
            return None
        self._asked += 1
        if self._asked % DROP_LINES == 0:  # a line a page: let go of the pages read, as while indexing
            self._records.drop_pages()
        found_path, digest, key = self._line(position)
        return (digest, key) if found_path == path else None


DROP_LINES = 8192
_path_hash = hash  # a test makes paths share hashes


class _NoFiles:
    """The _FileIndex of no build."""

    @staticmethod
    def get(path: str) -> None:
        return None


def _record_paths(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode()
    return [line.partition("\t")[0] for line in text.splitlines()]


def _carried(records: Records, key: str) -> Kept:
    """The record of `key` in a manifest (read from it when asked for)."""
    return Kept(partial(_read_carried, records, key), records.length(key))


# Bytes of records read from mapped manifests since their pages were last let go of (see Records.drop_pages):
# a rebuild copies every carried record into the new manifest, which would map the whole of two manifests.
_CARRIED_READ = [0]
DROP_BYTES = 32 << 20


def _records_read(records: Records, keys: Iterable[str]) -> Iterator[bytes]:
    """The records of `keys`, each read from the mapped manifest as it is asked for, whose pages are let go
    of every DROP_BYTES (after an upgrade of relreg, every record of two manifests is read: 550 MB at
    100,000 releases, all of it counted in this process's memory while mapped)."""
    read = 0
    for key in keys:
        record = records.raw(key)
        yield record
        read += len(record)
        if read > DROP_BYTES:
            read = 0
            records.drop_pages()
    records.drop_pages()


def _read_carried(records: Records, key: str) -> bytes:
    record = records.raw(key)
    _CARRIED_READ[0] += len(record)
    if _CARRIED_READ[0] > DROP_BYTES:
        _CARRIED_READ[0] = 0
        records.drop_pages()
    return record


# A placed job's record: its entries when it ran and has no key, else its bytes, or those kept out of memory.
_Record = Union[list[tuple[str, str, str]], bytes, Kept]


def _record_bytes(record: bytes | Kept) -> bytes:
    return record.read() if isinstance(record, Kept) else record


def _paths_of(record: _Record) -> list[str]:
    if isinstance(record, list):
        return [path for path, _, _ in record]
    return _record_paths(_record_bytes(record))


@dataclass(frozen=True)
class JobSummary:
    """What the build wants to know about a job's files besides their bytes, kept with its record.

    `families`: the serving policy of its paths, by family (see serving.path_families), so the
    `_headers` file is made from the summaries of the jobs, not from every path. `notes`: what the
    writer's `summarize` said of the job's files (the device budget, see build.py), JSON. `paths`:
    the sha256 of its sorted paths, so that the serving files are known to be the same as the previous
    build's without the paths being read (see FamilySource.key).
    """

    count: int
    families: list[list[str]]
    notes: Any = None
    paths: str = ""

    def to_json(self) -> list[Any]:
        return [self.count, self.families, self.notes, self.paths]

    @classmethod
    def from_json(cls, value: list[Any]) -> "JobSummary":
        return cls(int(value[0]), [list(item) for item in value[1]], value[2], str(value[3]))


def _paths_digest(paths: Iterable[str]) -> str:
    return hashlib.sha256("\0".join(sorted(paths)).encode()).hexdigest()


@dataclass(frozen=True)
class PreviousBuild:
    """What the manifest of the current output says about the build that wrote it."""

    fingerprint: str | None  # of every input, read and dated
    source: str | None  # of the commit and options, when built from a clean tree; see build.py
    releases: int
    jobs: Records  # KeyedJob key -> its record (see _record_text), read from the manifest when asked for
    loose: str  # the record of the files no KeyedJob gave (unkeyed jobs, serving files)
    summaries: dict[str, JobSummary] = field(default_factory=dict)  # KeyedJob key -> its summary
    sections: dict[str, list[str]] = field(default_factory=dict)  # KeyedSection key -> the keys of its jobs
    published: str = ""  # each release's id and artifacts' digest: see site/published.py

    @property
    def file_count(self) -> int:
        return sum(summary.count for summary in self.summaries.values()) + self.loose.count("\n")

    def paths(self) -> list[str]:
        """Every file of the build (splits every record: for publishing, not for rebuilding)."""
        found = _record_paths(self.loose)
        for key in self.jobs:
            found += _record_paths(self.jobs.raw(key))
        return sorted(found)


def spare_folder(out: Path) -> Path:
    """Where the site before the current one is kept, to be brought up to date by the next build."""
    return out.parent / f".{out.name}.spare"


def previous_build(out: Path) -> PreviousBuild | None:
    """The previous build of `out`, if relreg wrote it (in this manifest format)."""
    manifest = read_manifest(out)
    if manifest is None:
        return None
    header, body = manifest
    try:
        return PreviousBuild(header.get("fingerprint"), header.get("source"), int(header.get("releases", 0)),
                             body["jobs"], str(body["loose"]),
                             {key: JobSummary.from_json(value) for key, value in body["summaries"].items()},
                             body["sections"], body.get("published", ""))
    except (ValueError, AttributeError, KeyError, TypeError, IndexError):
        return None


def site_paths(folder: Path) -> list[str] | None:
    """The files of the site relreg built in `folder` (sorted), or None if it did not build one."""
    previous = previous_build(folder)
    return previous.paths() if previous is not None else None


def served_files(out: Path, previous: PreviousBuild | None) -> Callable[[str], Callable[[str], bytes] | None]:
    """For jobs.SiteInputs.served_files: a reader of the served files of a KeyedJob the previous build ran.

    The served folder is not touched until the swap, so what it reads is what that job wrote.
    """
    folder = str(out.absolute())

    def read(path: str) -> "bytes | MappedFile":
        return _read_file(f"{folder}/{path}", map_above=MAP_ABOVE)

    def reader(key: str) -> Callable[[str], bytes] | None:
        return read if previous is not None and key in previous.jobs else None

    return reader


_READ_SIZE = 1 << 16
# A served file larger than this is mapped, not read (see MappedFile): the releases list of 100,000 releases
# is 130 MB, read whole by a rebuild that takes its unchanged rows from it (and held twice while joined).
MAP_ABOVE = 8 << 20


class MappedFile:
    """A large served file, memory-mapped: the operations of bytes that the readers of served files use
    (find, rfind and count over a range, slices, len), a slice giving bytes. The pages looked at are let go
    of every DROP_BYTES (while mapped they count in the process's memory), so reading the file from end to
    end holds a few megabytes of it at a time."""

    def __init__(self, descriptor: int, size: int) -> None:
        self._map = mmap.mmap(descriptor, size, access=mmap.ACCESS_READ)
        self._looked = 0

    def __len__(self) -> int:
        return len(self._map)

    def _seen(self, length: int) -> None:
        self._looked += length
        if self._looked > DROP_BYTES:
            self._looked = 0
            if hasattr(self._map, "madvise"):
                self._map.madvise(mmap.MADV_DONTNEED)

    def find(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        found = self._map.find(sub, start, len(self._map) if end is None else end)
        self._seen((found if found >= 0 else len(self._map)) - start)
        return found

    def rfind(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        stop = len(self._map) if end is None else end
        self._seen(max(0, stop - start))
        return self._map.rfind(sub, start, stop)

    def count(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        return self[start:end].count(sub)

    def __getitem__(self, part: slice) -> bytes:
        taken = self._map[part]
        self._seen(len(taken))
        return taken


def _read_file(path: str, map_above: int | None = None) -> "bytes | MappedFile":
    """The bytes of the file at `path` (OSError when it cannot be read): os.read in 64 KiB steps, a third of
    the cost of open().read() for the small documents read by the thousand (a list whose pages all shift).
    With `map_above`, a larger file is given mapped (MappedFile), not read."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        if map_above is not None:
            size = os.fstat(descriptor).st_size
            if size > map_above:
                return MappedFile(descriptor, size)
        content = os.read(descriptor, _READ_SIZE)
        if not content:
            return content
        more = os.read(descriptor, _READ_SIZE)
        if not more:
            return content
        parts = [content, more]
        while more:
            more = os.read(descriptor, _READ_SIZE)
            parts.append(more)
        return b"".join(parts)
    finally:
        os.close(descriptor)


def _hashed(parts: Iterable[bytes], digest: Any) -> Iterator[bytes]:
    """`parts`, each added to `digest` (a hashlib object) as it passes."""
    for part in parts:
        digest.update(part)
        yield part


# The most buffers one writev takes (Linux and the BSDs: 1024).
_IOV_MAX = max(16, os.sysconf("SC_IOV_MAX")) if hasattr(os, "sysconf") and "SC_IOV_MAX" in os.sysconf_names else 16


def _write_new_file(target: str, content: bytes | Sequence[bytes] | Iterator[bytes]) -> None:
    """Create `target` with `content`: bytes, or the parts of the file's bytes in order (a sequence, or an
    iterator that makes them as they are written)."""
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # a third cheaper than open()
    try:
        if content.__class__ is not bytes and isinstance(content, Iterator):  # made as it is written, a part at a time
            for part in content:
                remaining = memoryview(part)
                while remaining:
                    remaining = remaining[os.write(descriptor, remaining):]
            return
        if not isinstance(content, bytes):
            parts = list(content)
            # The parts are not joined into one copy (a list page of 130 MB in a thousand parts), and are
            # written at most IOV_MAX at a time.
            for start in range(0, len(parts), _IOV_MAX):
                batch = parts[start:start + _IOV_MAX]
                written = os.writev(descriptor, batch)
                if written != sum(map(len, batch)):  # a short write: the rest as one
                    remaining = memoryview(b"".join(parts[start:])[written:])
                    while remaining:
                        remaining = remaining[os.write(descriptor, remaining):]
                    return
            return
        remaining = memoryview(content)
        while remaining:
            remaining = remaining[os.write(descriptor, remaining):]
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class Summarizer:
    """A look at the files of each job as it runs: `summarize` gets the (path, bytes) of the files
    `wants` names and returns JSON, kept with the job's record and carried with it."""

    wants: Callable[[str], bool]
    summarize: Callable[[list[tuple[str, bytes]]], Any]


@dataclass
class _Done:
    """What placing one job gave: its record, its summary, and how many files were written."""

    key: str | None
    record: _Record
    summary: JobSummary
    written: int = 0


class _Staging:
    """The folder the new site is assembled in, beside the output folder, and what was placed in it.

    Work is per job: a KeyedJob the spare holds already (same key) costs nothing, one the served
    site holds is linked from it file by file, and only the others run. Files are compared with
    the served site's by input key or sha256 and linked when the same, so they keep their mtimes.
    """

    def __init__(self, out: Path, reuse: bool, previous: PreviousBuild | None,
                 summarizer: Summarizer | None = None) -> None:
        self.out = out.absolute()
        _check_replaceable(self.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.previous = previous if reuse else None
        self.reuse = reuse
        self.summarizer = summarizer
        self.spare = spare_folder(self.out)
        self._lock = _lock_output(self.out, previous)
        _remove_leftovers(self.out)
        spare = previous_build(self.spare) if reuse and previous is not None and self.spare.is_dir() else None
        if spare is not None:
            os.unlink(self.spare / MANIFEST)  # from here on the spare is in flux, until it is swapped in
            self.folder = str(self.spare)
        else:
            if self.spare.exists():  # half-updated by a killed build, or made before `build --force`
                _remove(str(self.spare), in_background=True)
            self.folder = tempfile.mkdtemp(prefix=f".{self.out.name}.staging-", dir=self.out.parent)
        os.chmod(self.folder, _folder_mode(self.out))  # mkdtemp's 0700 would make a web server refuse the site
        self.in_spare = spare is not None
        self.spare_build = spare  # what the folder being assembled holds already
        self._made_dirs: set[str] = {""}
        self.done: list[_Done] = []  # in plan order
        self.served: _FileIndex | _NoFiles = _NoFiles()  # path -> (sha256, input key) of served files that may recur
        # path -> (sha256, input key) of the files the spare holds that a placed job may give again: a file
        # the spare holds with the same bytes is left as it is (most are links to the served one already).
        self.in_place: _FileIndex | _NoFiles = _NoFiles()
        self.swapped = False  # once swapped in, the staging folder holds the previous site
        # paths digest -> serving families, from the summaries of a build made by this code (see expect)
        self.families: dict[str, list[list[str]]] = {}
        self.sections: dict[str, list[str]] = {}  # the plan's sections: the keys of their jobs, by section key
        self.spool = Spool(self.out.parent)

    def plan(self, plan: Sequence[Any]) -> list[Callable[[], Any]]:
        """The jobs of `plan` (jobs and jobs.KeyedSections): a section that the served or spare build has with
        the same key, every job of it still held, becomes those jobs without being planned (each carried by
        its key, or run from the section's plan if its files are gone); any other is planned."""
        jobs: list[Callable[[], Any]] = []
        for item in plan:
            if not isinstance(item, KeyedSection):
                jobs.append(item)
                continue
            keys = self._held_section(item.key) if CARRY_SECTIONS else None
            if keys is None:
                planned = item.jobs()
                keys = [job.key for job in planned]
            else:
                planned = [KeyedJob(key, partial(_section_job, item, key)) for key in keys]
            self.sections[item.key] = keys
            jobs += planned
        return jobs

    def _held_section(self, key: str) -> list[str] | None:
        """The keys of the jobs of section `key` in the spare or served build, if it has the section and still
        every job of it."""
        if self.previous is None:
            return None
        for build in (self.previous, self.spare_build):
            keys = build.sections.get(key) if build is not None else None
            if keys is not None and all(self._held_job(job) for job in keys):
                return list(keys)
        return None

    def _held_job(self, key: str) -> bool:
        """Whether `run` would carry a KeyedJob of key `key` (given its files are there)."""
        return any(build is not None and key in build.jobs and key in build.summaries
                   for build in (self.spare_build, self.previous))

    def expect(self, jobs: Sequence[Callable[[], Any]]) -> None:
        """Index the served files a run job may give again: those of the served jobs this plan does not
        keep (a job whose key changed) and the loose ones. The kept jobs' records are not split."""
        if self.previous is None:
            return
        keys = {job.key for job in jobs if isinstance(job, KeyedJob)}
        if self.spare_build is not None and not any(key in self.spare_build.jobs for key in keys):
            self._leave_spare()
        if any(key in self.previous.summaries for key in keys):
            # A job key takes in the code (see jobs.job_key): the previous build was made by this code, so a
            # job of its paths has its serving families (path_families), and a job that runs now with the
            # same paths (most of those whose key changed) takes them instead of looking at each path.
            self.families = {summary.paths: summary.families for summary in self.previous.summaries.values()
                             if summary.paths}
        previous = self.previous.jobs
        self.served = _FileIndex(previous, [key for key in previous if key not in keys], self.previous.loose)
        if self.spare_build is not None:
            spare = self.spare_build.jobs
            self.in_place = _FileIndex(spare, [key for key in spare if key not in keys], self.spare_build.loose)

    def _link_served(self, relative: str, target: str) -> bool:
        """Place the served file at `relative` by a hard link (replacing what the spare holds there)."""
        if self.in_spare:
            try:
                os.unlink(target)
            except FileNotFoundError:
                pass
        try:
            os.link(f"{self.out}/{relative}", target)
            return True
        except OSError:
            return False  # gone, or another file system: write it instead

    def _target(self, relative: str) -> str:
        """The path of `relative` in the folder being assembled, its folder made."""
        folder = relative.rpartition("/")[0]
        if folder not in self._made_dirs:
            os.makedirs(f"{self.folder}/{folder}", exist_ok=True)  # another worker may make it too
            while folder and folder not in self._made_dirs:
                self._made_dirs.add(folder)
                folder = folder.rpartition("/")[0]
        return f"{self.folder}/{relative}"  # paths are '/'-separated and relative, by construction

    def run(self, job: Callable[[], Any]) -> _Done:
        """Place one plan job's files; a KeyedJob the spare or the served site has with the same key is not run."""
        key = job.key if isinstance(job, KeyedJob) else None
        if key is not None and self.previous is not None:
            if self.spare_build is not None and key in self.spare_build.jobs and key in self.spare_build.summaries:
                return _Done(key, _carried(self.spare_build.jobs, key), self.spare_build.summaries[key])
            if key in self.previous.jobs and key in self.previous.summaries:
                if self._carry(_read_carried(self.previous.jobs, key)):
                    return _Done(key, _carried(self.previous.jobs, key), self.previous.summaries[key])
        done = self.place(key, job_files(job()))
        if key is not None:
            # Kept as the manifest will hold it: one byte string per job instead of three strings and a
            # tuple per file (at 100,000 releases, 1.9 million files: 0.7 GB less in the build process).
            done = _Done(key, _record_text(done.record).encode(), done.summary, done.written)
        return done

    def keep(self, done: _Done) -> _Done:
        """`done` (given back by `run`, here or in a worker) with its record kept out of memory (see Kept)."""
        if isinstance(done.record, bytes):
            return _Done(done.key, self.spool.keep(done.record), done.summary, done.written)
        return done

    def _carry(self, text: bytes) -> bool:
        """Link the served files of a record (but those the spare holds the same); False (and nothing placed)
        if one is gone."""
        done: list[str] = []
        in_place = self.in_place
        for line in text.decode().splitlines():
            relative, digest, _ = line.split("\t")
            held = in_place.get(relative)
            if held is not None and held[0] == digest:
                continue
            if not self._link_served(relative, self._target(relative)):
                break
            done.append(relative)
        else:
            return True
        for relative in done:  # the job runs instead: take back what was placed
            os.unlink(f"{self.folder}/{relative}")
        return False

    def place(self, key: str | None, files: Iterable[tuple[str, bytes | Keyed]]) -> _Done:
        """Place files given as (path, content): linked from the served site when the same, else written."""
        entries: list[tuple[str, str, str]] = []
        wanted: list[tuple[str, bytes]] = []
        wants = self.summarizer.wants if self.summarizer is not None else None
        written = 0
        for relative, content in files:
            target = self._target(relative)
            served = self.served.get(relative)
            file_key = ""
            held = self.in_place.get(relative)
            if isinstance(content, Keyed):
                file_key = content.key
                if held is not None and held[1] == file_key:  # the spare holds this file already
                    entries.append((relative, held[0], file_key))
                    if wants is not None and wants(relative):
                        with open(target, "rb") as stream:
                            wanted.append((relative, stream.read()))
                    continue
                if served is not None and served[1] == file_key and self._link_served(relative, target):
                    entries.append((relative, served[0], file_key))
                    if wants is not None and wants(relative):
                        with open(target, "rb") as stream:
                            wanted.append((relative, stream.read()))
                    continue
                if content.render_stream is not None and not (wants is not None and wants(relative)):
                    digest, new = self._write_streamed(relative, target, content.render_stream(), held, served)
                    entries.append((relative, digest, file_key))
                    written += new
                    continue
                if content.render_digested is not None:
                    parts, digest = content.render_digested()
                    content = parts[0] if len(parts) == 1 else parts  # type: ignore[assignment]
                else:
                    content = content.render()
                    digest = hashlib.sha256(content).hexdigest()
            else:
                digest = hashlib.sha256(content).hexdigest()
            entries.append((relative, digest, file_key))
            if wants is not None and wants(relative):
                wanted.append((relative, content if isinstance(content, bytes) else b"".join(content)))
            if held is not None and held[0] == digest:
                continue
            if served is not None and served[0] == digest and self._link_served(relative, target):
                continue
            if self.in_spare:
                try:
                    os.unlink(target)  # never written in place: it may be a hard link to a served file
                except FileNotFoundError:
                    pass
            _write_new_file(target, content)
            written += 1
        notes = self.summarizer.summarize(wanted) if self.summarizer is not None and wanted else None
        paths = [path for path, _, _ in entries]
        digest = _paths_digest(paths)
        families = self.families.get(digest)
        summary = JobSummary(len(entries), families if families is not None else path_families(paths), notes, digest)
        return _Done(key, entries, summary, written)

    def _write_streamed(self, relative: str, target: str, parts: Iterable[bytes], held: tuple[str, str] | None,
                        served: tuple[str, str] | None) -> tuple[str, bool]:
        """Place a file made part by part (Keyed.render_stream): written under a name of its own beside
        `target` while hashed, then left out when the spare holds the same bytes, linked from the served
        site when it has them (so its mtime stays), else renamed into place. (sha256 hex, whether written.)"""
        temporary = f"{target}.{os.getpid()}.part"
        digest = hashlib.sha256()
        try:
            _write_new_file(temporary, _hashed(parts, digest))
            found = digest.hexdigest()
            if held is not None and held[0] == found:
                os.unlink(temporary)
                return found, False
            if served is not None and served[0] == found and self._link_served(relative, target):
                os.unlink(temporary)
                return found, False
            os.rename(temporary, target)  # replaces the spare's file there, never written in place
            return found, True
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def _leave_spare(self) -> None:
        """Assemble the site in a new folder instead of the spare, which holds no job of the plan: every key
        changed (after an upgrade of relreg, and in the build after it). Brought up to date, the spare would
        have every file it holds indexed, then each replaced and the rest removed (at 100,000 releases the
        index and the sets of paths of those passes took the build process from about 1 to 1.4 GB); it is
        removed instead (in the background when large), and the new site is linked from the served one."""
        spare = self.spare_build
        assert spare is not None and not self.done
        _remove(self.folder, in_background=spare.file_count >= BACKGROUND_REMOVAL_FILES)
        self.folder = tempfile.mkdtemp(prefix=f".{self.out.name}.staging-", dir=self.out.parent)
        os.chmod(self.folder, _folder_mode(self.out))
        self.in_spare = False
        self.spare_build = None
        self._made_dirs = {""}

    def _removed(self) -> int:
        """How many files of the served site the new one does not have, counted without a set of paths: the
        files of the served jobs not kept with their key (and the loose ones) less those of them that a job
        not kept gives again, found in the index of the served files (`expect`). A kept job gives the paths
        of its own record only, which no other job of the new site gives."""
        if self.previous is None:
            return 0
        kept = {done.key for done in self.done if done.key is not None and done.key in self.previous.jobs}
        served = sum(summary.count for key, summary in self.previous.summaries.items() if key not in kept)
        served += self.previous.loose.count("\n")  # as PreviousBuild.file_count counts them
        again = 0
        index = self.served
        for done in self.done:
            if done.key not in kept:
                again += sum(1 for path in _paths_of(done.record) if index.get(path) is not None)
        return served - again

    def finish(self, finish: Callable[["FamilySource"], dict[str, bytes]]) -> None:
        """Place the files made from every path placed so far (the serving configuration): a job of its own,
        known by what it reads (FamilySource.key), so that a build whose paths are the previous build's
        takes them from it."""
        source = FamilySource(self.done)
        self.done.append(self.run(KeyedJob(source.key(), partial(finish, source))))

    def _remove_stale(self, new_paths: set[str]) -> None:
        """Remove the spare's files that the new site does not have, and the folders they leave empty.

        The spare's files are those of its records; a job kept with its key keeps its files, so only
        the records of the other jobs and the loose files are split.
        """
        if self.spare_build is None:
            return
        keys = {done.key for done in self.done if done.key is not None}
        old: set[str] = set(_record_paths(self.spare_build.loose))
        for record in _records_read(self.spare_build.jobs, [key for key in self.spare_build.jobs if key not in keys]):
            old.update(_record_paths(record))
        for relative in old - new_paths:
            try:
                os.unlink(f"{self.folder}/{relative}")
            except FileNotFoundError:
                pass
            folder = relative.rpartition("/")[0]
            while folder:
                try:
                    os.rmdir(f"{self.folder}/{folder}")
                except OSError:
                    break  # not empty
                folder = folder.rpartition("/")[0]

    def _changed_paths(self, build: PreviousBuild | None) -> set[str]:
        """Paths of the new site outside the jobs `build` has with the same key (the only ones it may lack)."""
        found: set[str] = set()
        for done in self.done:
            if done.key is None or build is None or done.key not in build.jobs:
                found.update(_paths_of(done.record))
        return found

    def swap_in(self, stamp: dict[str, object], published: str = "") -> WriteStats:
        # Every job is placed: the indexes of the previous builds' files (one entry per file when every job
        # key changed, after an upgrade of relreg: 370 MB at 100,000 releases) are let go of before the
        # stale-file passes make sets of paths.
        removed = self._removed()
        self.served = self.in_place = _NoFiles()
        if self.spare_build is not None:
            self._remove_stale(self._changed_paths(self.spare_build))
        jobs: dict[str, bytes | Kept] = {}
        summaries: dict[str, list[Any]] = {}
        loose: list[tuple[str, str, str]] = []
        for done in self.done:
            if done.key is None:
                assert not isinstance(done.record, bytes)
                loose += done.record
            else:
                if done.key in jobs:
                    raise AssertionError(f"two plan jobs have the key {done.key}")
                jobs[done.key] = _record_text(done.record).encode() if isinstance(done.record, list) else done.record
                summaries[done.key] = done.summary.to_json()
        loose.sort()
        total = sum(done.summary.count for done in self.done)
        write_manifest(self.folder, {**stamp, "files": total}, jobs, summaries, _record_text(loose).encode(),
                       self.sections, published)
        _exchange(Path(self.folder), self.out)
        self.swapped = True
        written = sum(done.written for done in self.done)
        return WriteStats(written=written, unchanged=total - written, removed=removed,
                          notes=[done.summary.notes for done in self.done if done.summary.notes is not None])

    def discard(self) -> None:
        """After a swap, keep the previous site as the spare; after a failure, drop the new one.

        A spare left by a failed build has no manifest, so the next build removes it. After
        `build --force` the previous site is removed: it may hold files edited by hand that its
        manifest does not describe.
        """
        try:
            self._discard()
        finally:
            self.spool.close()
            os.close(self._lock)

    def _discard(self) -> None:
        if self.swapped and not os.path.isdir(self.folder):
            return  # the first build: there was no previous site
        if self.swapped and self.reuse:
            if self.folder != str(self.spare):
                os.rename(self.folder, self.spare)
        elif self.swapped or self.folder != str(self.spare):
            _remove(self.folder, in_background=self.previous is not None and
                    self.previous.file_count >= BACKGROUND_REMOVAL_FILES)


class FamilySource:
    """The serving families of every job placed, and the paths of one family on demand (see serving.py)."""

    def __init__(self, done: Sequence[_Done]) -> None:
        self._done = list(done)

    def families(self) -> list[list[str]]:
        return [family for done in self._done for family in done.summary.families]

    def key(self) -> str:
        """A key of what the files made from this source can depend on: the code, every (family, policy) and,
        for each family whose paths differ in policy (the only ones `members` is asked for), the paths of
        the jobs that have it (their digests)."""
        policies: dict[str, set[tuple[str, ...]]] = {}
        for family, *policy in self.families():
            policies.setdefault(family, set()).add(tuple(policy))
        mixed = [(family, [done.summary.paths for done in self._done
                           if any(item[0] == family for item in done.summary.families)])
                 for family in sorted(policies) if len(policies[family]) > 1]
        parts = repr((sorted((family, sorted(found)) for family, found in policies.items()), mixed))
        return "serving files " + hashlib.sha256(code_digest() + parts.encode()).hexdigest()

    def members(self, family: str) -> list[str]:
        """The paths of `family`: splits only the records of the jobs that have it."""
        found = []
        for done in self._done:
            if any(item[0] == family for item in done.summary.families):
                found += [path for path in _paths_of(done.record) if family_of(path) == family]
        return found


# Removing a site costs as much as linking it (an unlink per file), and nothing waits
# for it once the new site is in place: large trees go in the background.
BACKGROUND_REMOVAL_FILES = 20_000


def _remove(folder: str, in_background: bool) -> None:
    """Delete `folder`; a large one in a detached process (a double fork, so no zombie is left)."""
    if not in_background or not hasattr(os, "fork") or threading.active_count() > 1:
        shutil.rmtree(folder, ignore_errors=True)
        return
    doomed = tempfile.mkdtemp(prefix=os.path.basename(folder) + ".old-", dir=os.path.dirname(folder))
    os.rename(folder, doomed)  # out of the way at once, onto an empty folder just made
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        try:
            if os.fork() == 0:
                os.setsid()
                shutil.rmtree(doomed, ignore_errors=True)
        finally:
            os._exit(0)
    os.waitpid(child, 0)


CARRY_SECTIONS = True  # off in a test only: every section planned, the general path the carried one is held to


def _section_job(section: KeyedSection, key: str) -> Any:
    """The files of the job of key `key` in `section` (planning it): for a carried job whose files are gone."""
    return section.job(key)()


def write_site(files: Mapping[str, bytes | Keyed], out: Path, fingerprint: str = "", *, reuse: bool = True,
               source: str | None = None, releases: int = 0, previous: PreviousBuild | None = None,
               summarizer: Summarizer | None = None, published: str = "") -> WriteStats:
    """Replace the folder `out` with exactly `files`, reusing unchanged files.

    A file is reused when the previous build's manifest gives it the same
    sha256 (or input key); a file edited by hand in the output is not noticed
    unless `reuse` is off (`build --force`), which rewrites every file. `published` is kept in the
    manifest for the next build (site/published.py).
    """
    staging = _Staging(out, reuse, previous or previous_build(out), summarizer)
    try:
        staging.expect([])
        staging.done.append(staging.place(None, files.items()))
        return staging.swap_in({"fingerprint": fingerprint, "source": source, "releases": releases}, published)
    finally:
        staging.discard()


# What the worker processes of write_jobs share: set just before they are forked, so they
# inherit it (model, encoded releases, compiled templates) instead of receiving a copy.
_SHARED: tuple[_Staging, Sequence[Callable[[], Any]]] | None = None


def _write_job(index: int) -> _Done:
    """In a worker: run one job and place its files."""
    assert _SHARED is not None
    staging, jobs = _SHARED
    done = staging.run(jobs[index])
    if isinstance(done.record, Kept):  # sent back as bytes (the parent keeps it out of memory again)
        done = _Done(done.key, done.record.read(), done.summary, done.written)
    return done


# Forked workers pay for the copy-on-write of the parent's large heap and each encodes the
# documents it needs again: worth it only when most of the site is rendered. A rebuild that
# carries most jobs over runs the rest in this process (10,000 releases, one added: 13 s in
# one process against 15-17 s in two workers on a quiet 2-core machine).
PARALLEL_SHARE = 0.25


def _jobs_to_run(staging: _Staging, jobs: Sequence[Callable[[], Any]]) -> int:
    """How many jobs the previous build does not give: the unkeyed ones and those with a new key."""
    if staging.previous is None:
        return len(jobs)
    return sum(1 for job in jobs if not (isinstance(job, KeyedJob) and job.key in staging.previous.jobs))


def _run_jobs(staging: _Staging, jobs: Sequence[Callable[[], Any]], workers: int,
              before_fork: Callable[[], None] | None = None) -> None:
    global _SHARED
    if workers > 1 and _jobs_to_run(staging, jobs) < PARALLEL_SHARE * len(jobs):
        workers = 1
    # fork copies one thread of a threaded process (relreg serve), with any lock another
    # thread held: there, and where fork does not exist, the jobs run in this process.
    if workers < 2 or not hasattr(os, "fork") or threading.active_count() > 1:
        staging.done += [staging.keep(staging.run(job)) for job in jobs]
        return
    if before_fork is not None:
        before_fork()
    _SHARED = (staging, jobs)
    # What the workers inherit (model, encoded releases, templates) is moved out of the collector's
    # reach: a worker's collections then walk only what it made, and do not touch (and so copy) the
    # pages of a heap shared with this process (the pattern the gc.freeze documentation gives).
    gc.freeze()
    try:
        # Jobs are handed out one at a time as workers free up, so a long job does not hold up the rest.
        # A worker renders a share of the whole site: it collects cycles even where the build paused that.
        with forked_pool(workers, initializer=gc.enable) as pool:
            staging.done += map(staging.keep, pool.map(_write_job, range(len(jobs))))
    finally:
        gc.unfreeze()  # a long-lived process (relreg serve) collects them again later
        _SHARED = None


def write_jobs(jobs: Sequence[Callable[[], Any] | KeyedSection], finish: Callable[[Any], dict[str, bytes]],
               out: Path, fingerprint: str = "", *, reuse: bool = True, source: str | None = None,
               releases: int = 0, workers: int = 1, previous: PreviousBuild | None = None,
               summarizer: Summarizer | None = None, before_fork: Callable[[], None] | None = None,
               published: str = "") -> WriteStats:
    """Like write_site, for a site given as plan jobs (plan.PlanJob) and sections of them (jobs.KeyedSection,
    see _Staging.plan), run by `workers` processes.

    Each process takes the next job as it frees up and places the files
    itself, so the site is rendered on every core and never held in memory as
    a whole.
    `finish` gives the files that depend on every path (the serving
    configuration, from serving.PathFamilies); the swap is the same single rename as write_site's.
    `before_fork` runs just before worker processes are forked (when they are), for what they should
    inherit rather than each make (compiled templates).
    """
    staging = _Staging(out, reuse, previous or previous_build(out), summarizer)
    try:
        jobs = staging.plan(jobs)
        staging.expect(jobs)
        with spool_beside(staging.out.parent):  # what jobs keep out of memory goes to the site's disk
            _run_jobs(staging, jobs, workers, before_fork)
        staging.finish(finish)
        return staging.swap_in({"fingerprint": fingerprint, "source": source, "releases": releases}, published)
    finally:
        staging.discard()
