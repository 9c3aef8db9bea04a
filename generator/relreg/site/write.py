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

import ctypes
import ctypes.util
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import click

from relreg.resources import code_digest
from relreg.site.jobs import Keyed, KeyedJob, job_files
from relreg.site.paths import MANIFEST

_RENAME_EXCHANGE = 2


class OutputFolderError(click.ClickException):
    """The output folder cannot safely be replaced."""


@dataclass(frozen=True)
class WriteStats:
    written: int
    unchanged: int
    removed: int


def _check_replaceable(out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise OutputFolderError(f"--out {out} exists and is not a folder; refusing to replace it")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise OutputFolderError(
            f"--out {out} is not empty and was not written by relreg (no {MANIFEST}); "
            "refusing to replace files you may have written. Choose another folder or empty it.")


def _exchange(staging: Path, out: Path) -> None:
    """Swap two folders atomically where the OS allows it (Linux renameat2), else rename twice."""
    if not out.exists():
        os.rename(staging, out)
        return
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = getattr(libc, "renameat2", None)
        if renameat2 is not None:
            at_fdcwd = -100
            if renameat2(at_fdcwd, os.fsencode(staging), at_fdcwd, os.fsencode(out), _RENAME_EXCHANGE) == 0:
                return  # staging now holds the old site; the caller removes it
    previous = staging.with_name(staging.name + ".old")
    os.rename(out, previous)
    os.rename(staging, out)
    os.rename(previous, staging)


@dataclass(frozen=True)
class PreviousBuild:
    """What the manifest of the current output says about the build that wrote it."""

    fingerprint: str | None  # of every input, read and dated
    source: str | None  # of the commit and options, when built from a clean tree; see build.py
    releases: int
    files: dict[str, str]  # path -> sha256
    keys: dict[str, str]  # path -> input key, for files planned as plan.Keyed
    jobs: dict[str, list[str]] = field(default_factory=dict)  # KeyedJob key -> the paths it gave


def spare_folder(out: Path) -> Path:
    """Where the site before the current one is kept, to be brought up to date by the next build."""
    return out.parent / f".{out.name}.spare"


def previous_build(out: Path) -> PreviousBuild | None:
    """The previous build of `out`, if relreg wrote it."""
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        return PreviousBuild(manifest.get("fingerprint"), manifest.get("source"), int(manifest.get("releases", 0)),
                             dict(manifest["files"]), dict(manifest.get("keys") or {}),
                             dict(manifest.get("jobs") or {}))
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None


def _write_new_file(target: str, content: bytes) -> None:
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # a third cheaper than open()
    try:
        remaining = memoryview(content)
        while remaining:
            remaining = remaining[os.write(descriptor, remaining):]
    finally:
        os.close(descriptor)


class _Staging:
    """The folder the new site is assembled in, beside the output folder, and what was placed in it."""

    def __init__(self, out: Path, reuse: bool, previous: PreviousBuild | None) -> None:
        self.out = out.absolute()
        _check_replaceable(self.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.previous = previous.files if previous else {}
        self.previous_keys = previous.keys if previous else {}
        self.previous_jobs = previous.jobs if previous else {}
        self.reuse = reuse
        self.spare = spare_folder(self.out)
        # What the folder being assembled holds already (path -> sha256): the spare's files, or nothing.
        self.present: dict[str, str] = {}
        spare = previous_build(self.spare) if reuse and previous is not None and self.spare.is_dir() else None
        if spare is not None:
            os.unlink(self.spare / MANIFEST)  # from here on the spare is in flux, until it is swapped in
            self.folder = str(self.spare)
            self.present = spare.files
        else:
            if self.spare.exists():  # half-updated by a killed build, or made before `build --force`
                _remove(str(self.spare), in_background=True)
            self.folder = tempfile.mkdtemp(prefix=f".{self.out.name}.staging-", dir=self.out.parent)
        self._made_dirs: set[str] = {""}
        self.placed: dict[str, str] = {}  # path -> sha256
        self.keys: dict[str, str] = {}  # path -> input key, for files given as Keyed
        self.jobs: dict[str, list[str]] = {}  # KeyedJob key -> the paths it gave
        self.written = 0
        self.swapped = False  # once swapped in, the staging folder holds the previous site

    def _link_previous(self, relative: str, target: str) -> bool:
        try:
            os.link(f"{self.out}/{relative}", target)
            return True
        except OSError:
            return False  # gone, or another file system: write it instead

    def put(self, relative: str, content: bytes | Keyed) -> None:
        """Place one file, hard-linked from the previous output when it is the same.

        Same means: the same input key (then the file is not even rendered),
        or the same sha256 of the bytes.
        """
        if relative in self.placed:
            raise AssertionError(f"two plan jobs give {relative}")
        target = self._target(relative)
        if isinstance(content, Keyed):
            self.keys[relative] = content.key
            if self.reuse and self.previous_keys.get(relative) == content.key and relative in self.previous \
                    and self._place_served(relative, target, self.previous[relative]):
                return
            content = content.render()
        digest = hashlib.sha256(content).hexdigest()
        if self.reuse and self.previous.get(relative) == digest and self._place_served(relative, target, digest):
            return
        if self.present.get(relative) == digest:
            self.placed[relative] = digest  # the spare has it already
            return
        self.placed[relative] = digest
        if relative in self.present:
            os.unlink(target)  # never written in place: it may be a hard link to a served file
        _write_new_file(target, content)
        self.written += 1

    def _target(self, relative: str) -> str:
        """The path of `relative` in the folder being assembled, its folder made."""
        folder = relative.rpartition("/")[0]
        if folder not in self._made_dirs:
            os.makedirs(f"{self.folder}/{folder}", exist_ok=True)  # another worker may make it too
            while folder and folder not in self._made_dirs:
                self._made_dirs.add(folder)
                folder = folder.rpartition("/")[0]
        return f"{self.folder}/{relative}"  # paths are '/'-separated and relative, by construction

    def run(self, job: Callable[[], Any]) -> None:
        """Place one plan job's files; a KeyedJob the previous build ran with the same key is not run."""
        key = job.key if isinstance(job, KeyedJob) else None
        if key is not None and self.reuse:
            paths = self.previous_jobs.get(key)
            if paths is not None and self._carry(paths):
                self.jobs[key] = paths
                return
        paths = self.put_all(job())
        if key is not None:
            self.jobs[key] = paths

    def _carry(self, paths: list[str]) -> bool:
        """Place the previous build's files at `paths` as they are; False (and nothing placed) if one is gone."""
        done: list[str] = []
        for relative in paths:
            digest = self.previous.get(relative)
            if digest is None or relative in self.placed or \
                    not self._place_served(relative, self._target(relative), digest):
                break
            done.append(relative)
            if relative in self.previous_keys:
                self.keys[relative] = self.previous_keys[relative]
        else:
            return True
        for relative in done:  # the job runs instead: take back what was placed
            del self.placed[relative]
            self.keys.pop(relative, None)
            self.present.pop(relative, None)
            os.unlink(f"{self.folder}/{relative}")
        return False

    def _place_served(self, relative: str, target: str, digest: str) -> bool:
        """Place a file whose bytes equal the served one's: kept if the spare has it, else linked."""
        if self.present.get(relative) == digest:
            self.placed[relative] = digest
            return True
        if relative in self.present:
            os.unlink(target)
            del self.present[relative]  # if the link fails, the file is written
        if self._link_previous(relative, target):
            self.placed[relative] = digest
            return True
        return False

    def put_all(self, files: Mapping[str, bytes | Keyed] | Iterable[tuple[str, bytes | Keyed]]) -> list[str]:
        """Place every file; returns their paths."""
        paths = []
        for relative, content in job_files(files):
            self.put(relative, content)
            paths.append(relative)
        return paths

    def finish(self, finish: Callable[[list[str]], dict[str, bytes]]) -> None:
        """Place the files made from every path placed so far (the serving configuration).

        They are keyed by the code and the paths: a rebuild that changes no path (a notes
        fix, a rollout change) keeps them without going over every path again.
        """
        paths = sorted(self.placed)
        key = hashlib.sha256(code_digest() + "\0".join(paths).encode()).hexdigest()
        carried = sorted(path for path, previous_key in self.previous_keys.items() if previous_key == key)
        if carried and self.reuse and all(path not in self.placed for path in carried) and self._carry(carried):
            return
        self.put_all({path: Keyed(key, lambda content=content: content) for path, content in finish(paths).items()})

    def _remove_stale(self) -> None:
        """Remove the spare's files that the new site does not have, and the folders they leave empty."""
        for relative in self.present.keys() - self.placed.keys():
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

    def swap_in(self, stamp: dict[str, object]) -> WriteStats:
        self._remove_stale()
        with open(os.path.join(self.folder, MANIFEST), "w", encoding="utf-8") as stream:
            # json.dumps, not json.dump: one call into the C encoder instead of a Python loop.
            stream.write(json.dumps({**stamp, "files": self.placed, "keys": self.keys, "jobs": self.jobs},
                                    sort_keys=True))
        _exchange(Path(self.folder), self.out)
        self.swapped = True
        return WriteStats(written=self.written, unchanged=len(self.placed) - self.written,
                          removed=len(self.previous.keys() - self.placed.keys()))

    def discard(self) -> None:
        """After a swap, keep the previous site as the spare; after a failure, drop the new one.

        A spare left by a failed build has no manifest, so the next build removes it. After
        `build --force` the previous site is removed: it may hold files edited by hand that its
        manifest does not describe.
        """
        if self.swapped and not os.path.isdir(self.folder):
            return  # the first build: there was no previous site
        if self.swapped and self.reuse:
            if self.folder != str(self.spare):
                os.rename(self.folder, self.spare)
        elif self.swapped or self.folder != str(self.spare):
            _remove(self.folder, in_background=len(self.previous) >= BACKGROUND_REMOVAL_FILES)


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


def write_site(files: Mapping[str, bytes | Keyed], out: Path, fingerprint: str = "", *, reuse: bool = True,
               source: str | None = None, releases: int = 0, previous: PreviousBuild | None = None) -> WriteStats:
    """Replace the folder `out` with exactly `files`, reusing unchanged files.

    A file is reused when the previous build's manifest gives it the same
    sha256 (or input key); a file edited by hand in the output is not noticed
    unless `reuse` is off (`build --force`), which rewrites every file.
    """
    staging = _Staging(out, reuse, previous or previous_build(out))
    try:
        staging.put_all(files)
        return staging.swap_in({"fingerprint": fingerprint, "source": source, "releases": releases})
    finally:
        staging.discard()


# What the worker processes of write_jobs share: set just before they are forked, so they
# inherit it (model, encoded releases, compiled templates) instead of receiving a copy.
_SHARED: tuple[_Staging, Sequence[Callable[[], Any]]] | None = None


def _write_job(index: int) -> tuple[dict[str, str], dict[str, str], dict[str, list[str]], int]:
    """In a worker: run one job and place its files: (paths placed, input keys, job keys, files written)."""
    assert _SHARED is not None
    staging, jobs = _SHARED
    staging.placed, staging.keys, staging.jobs, staging.written = {}, {}, {}, 0  # this worker's own, per job
    staging.run(jobs[index])
    return staging.placed, staging.keys, staging.jobs, staging.written


# Forked workers pay for the copy-on-write of the parent's large heap and each encodes the
# documents it needs again: worth it only when most of the site is rendered. A rebuild that
# carries most jobs over runs the rest in this process (10,000 releases, one added: 13 s in
# one process against 15-17 s in two workers on a quiet 2-core machine).
PARALLEL_SHARE = 0.25


def _jobs_to_run(staging: _Staging, jobs: Sequence[Callable[[], Any]]) -> int:
    """How many jobs the previous build does not give: the unkeyed ones and those with a new key."""
    if not staging.reuse:
        return len(jobs)
    return sum(1 for job in jobs if not (isinstance(job, KeyedJob) and job.key in staging.previous_jobs))


def _run_jobs(staging: _Staging, jobs: Sequence[Callable[[], Any]], workers: int) -> None:
    global _SHARED
    if workers > 1 and _jobs_to_run(staging, jobs) < PARALLEL_SHARE * len(jobs):
        workers = 1
    # fork copies one thread of a threaded process (relreg serve), with any lock another
    # thread held: there, and where fork does not exist, the jobs run in this process.
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        for job in jobs:
            staging.run(job)
        return
    _SHARED = (staging, jobs)
    try:
        # Jobs are handed out one at a time as workers free up, so a long job does not hold up the rest.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for placed, keys, job_keys, written in pool.map(_write_job, range(len(jobs))):
                if not staging.placed.keys().isdisjoint(placed):
                    raise AssertionError(f"two plan jobs give {sorted(staging.placed.keys() & placed.keys())[:3]}")
                staging.placed.update(placed)
                staging.keys.update(keys)
                staging.jobs.update(job_keys)
                staging.written += written
    finally:
        _SHARED = None


def write_jobs(jobs: Sequence[Callable[[], Any]], finish: Callable[[list[str]], dict[str, bytes]],
               out: Path, fingerprint: str = "", *, reuse: bool = True, source: str | None = None,
               releases: int = 0, workers: int = 1, previous: PreviousBuild | None = None) -> WriteStats:
    """Like write_site, for a site given as plan jobs (plan.PlanJob), run by `workers` processes.

    Each process takes the next job as it frees up and places the files
    itself, so the site is rendered on every core and never held in memory as
    a whole.
    `finish` gives the files that depend on every path (the serving
    configuration); the swap is the same single rename as write_site's.
    """
    staging = _Staging(out, reuse, previous or previous_build(out))
    try:
        _run_jobs(staging, jobs, workers)
        staging.finish(finish)
        return staging.swap_in({"fingerprint": fingerprint, "source": source, "releases": releases})
    finally:
        staging.discard()
