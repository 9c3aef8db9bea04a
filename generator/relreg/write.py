"""Writing the planned site: atomic, incremental, deterministic.

The new site is assembled in a staging folder beside the output folder and
swapped in with one rename, so a build that fails or is killed leaves the
previous output untouched. Files whose bytes did not change are hard-linked
from the previous output instead of rewritten, so their modification times
stay and rsync or an object-store sync uploads only what changed.
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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import click

MANIFEST = ".relreg-manifest.json"
_RENAME_EXCHANGE = 2


class OutputFolderError(click.ClickException):
    """The output folder cannot safely be replaced."""


@dataclass(frozen=True)
class WriteStats:
    written: int
    unchanged: int
    removed: int


def _read_manifest(out: Path) -> dict[str, str]:
    """The previous build's {path: sha256}; empty when there is none."""
    try:
        return json.loads((out / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


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
    file_count: int


def previous_build(out: Path) -> PreviousBuild | None:
    """The previous build of `out`, if relreg wrote it."""
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        return PreviousBuild(manifest.get("fingerprint"), manifest.get("source"), int(manifest.get("releases", 0)),
                             len(manifest["files"]))
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
    """The folder the new site is assembled in, beside the output folder."""

    def __init__(self, out: Path, reuse: bool) -> None:
        self.out = out.absolute()
        _check_replaceable(self.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.previous = _read_manifest(self.out) if self.out.is_dir() else {}
        self.reuse = reuse
        self.folder = tempfile.mkdtemp(prefix=f".{self.out.name}.staging-", dir=self.out.parent)
        self._made_dirs: set[str] = {""}

    def put(self, relative: str, content: bytes) -> tuple[str, bool]:
        """Place one file: hard-linked from the previous output when its bytes are the same. (digest, written)"""
        folder = relative.rpartition("/")[0]
        if folder not in self._made_dirs:
            os.makedirs(os.path.join(self.folder, folder), exist_ok=True)  # another worker may make it too
            while folder and folder not in self._made_dirs:
                self._made_dirs.add(folder)
                folder = folder.rpartition("/")[0]
        digest = hashlib.sha256(content).hexdigest()
        target = os.path.join(self.folder, relative)
        if self.reuse and self.previous.get(relative) == digest:
            try:
                os.link(os.path.join(self.out, relative), target)
                return digest, False
            except OSError:
                pass  # gone, or another file system: write it instead
        _write_new_file(target, content)
        return digest, True

    def put_all(self, files: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> tuple[dict[str, str], int]:
        """Place many files: ({path: sha256}, files written)."""
        manifest: dict[str, str] = {}
        written = 0
        for relative, content in (files.items() if isinstance(files, Mapping) else files):
            manifest[relative], was_written = self.put(relative, content)
            written += was_written
        return manifest, written

    def swap_in(self, manifest: dict[str, str], stamp: dict[str, object]) -> None:
        with open(os.path.join(self.folder, MANIFEST), "w", encoding="utf-8") as stream:
            json.dump({**stamp, "files": manifest}, stream, sort_keys=True)
        _exchange(Path(self.folder), self.out)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def write_site(files: dict[str, bytes], out: Path, fingerprint: str = "", *, reuse: bool = True,
               source: str | None = None, releases: int = 0) -> WriteStats:
    """Replace the folder `out` with exactly `files`, reusing unchanged files.

    A file is reused when the previous build's manifest gives it the same
    sha256; a file edited by hand in the output is not noticed unless `reuse`
    is off (`build --force`), which rewrites every file.
    """
    staging = _Staging(out, reuse)
    try:
        manifest, written = staging.put_all(files)
        staging.swap_in(manifest, {"fingerprint": fingerprint, "source": source, "releases": releases})
    finally:
        staging.discard()
    return WriteStats(written=written, unchanged=len(manifest) - written, removed=len(staging.previous.keys() - files.keys()))


# What the worker processes of write_jobs share: set just before they are forked, so they
# inherit it (model, encoded releases, compiled templates) instead of receiving a copy.
_SHARED: tuple[_Staging, Sequence[Callable[[], Any]]] | None = None


def _write_share(index: int, count: int) -> tuple[dict[str, str], int]:
    """Run every `count`-th job from `index` and place its files: ({path: sha256}, files written)."""
    assert _SHARED is not None
    staging, jobs = _SHARED
    manifest: dict[str, str] = {}
    written = 0
    for job in jobs[index::count]:
        part, part_written = staging.put_all(job())
        manifest.update(part)
        written += part_written
    return manifest, written


def _run_shares(staging: _Staging, jobs: Sequence[Callable[[], Any]],
                workers: int) -> list[tuple[dict[str, str], int]]:
    global _SHARED
    _SHARED = (staging, jobs)
    try:
        if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
            return [_write_share(0, 1)]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(_write_share, range(workers), [workers] * workers))
    finally:
        _SHARED = None


def write_jobs(jobs: Sequence[Callable[[], Any]], finish: Callable[[list[str]], dict[str, bytes]],
               out: Path, fingerprint: str = "", *, reuse: bool = True, source: str | None = None,
               releases: int = 0, workers: int = 1) -> WriteStats:
    """Like write_site, for a site given as plan jobs (plan.PlanJob), run by `workers` processes.

    Each process runs every n-th job and places the files itself, so the
    site is rendered on every core and never held in memory as a whole.
    `finish` gives the files that depend on every path (the serving
    configuration); the swap is the same single rename as write_site's.
    """
    staging = _Staging(out, reuse)
    try:
        manifest: dict[str, str] = {}
        written = 0
        for part, part_written in _run_shares(staging, jobs, workers):
            if not manifest.keys().isdisjoint(part):
                raise AssertionError(f"two plan jobs give {sorted(manifest.keys() & part.keys())[:3]}")
            manifest.update(part)
            written += part_written
        last, last_written = staging.put_all(finish(sorted(manifest)))
        manifest.update(last)
        written += last_written
        staging.swap_in(dict(sorted(manifest.items())),
                        {"fingerprint": fingerprint, "source": source, "releases": releases})
    finally:
        staging.discard()
    return WriteStats(written=written, unchanged=len(manifest) - written,
                      removed=len(staging.previous.keys() - manifest.keys()))
