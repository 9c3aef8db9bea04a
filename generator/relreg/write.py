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
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

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


def write_site(files: dict[str, bytes], out: Path, fingerprint: str = "", *, reuse: bool = True,
               source: str | None = None, releases: int = 0) -> WriteStats:
    """Replace the folder `out` with exactly `files`, reusing unchanged files.

    A file is reused when the previous build's manifest gives it the same
    sha256; a file edited by hand in the output is not noticed unless `reuse`
    is off (`build --force`), which rewrites every file.
    """
    out = out.absolute()
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = _read_manifest(out) if out.is_dir() else {}
    staging = tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent)
    old_root = str(out)
    written = unchanged = 0
    manifest: dict[str, str] = {}
    made_dirs: set[str] = {""}
    try:
        for relative, content in files.items():
            folder = relative.rpartition("/")[0]
            if folder not in made_dirs:
                os.makedirs(os.path.join(staging, folder), exist_ok=True)
                while folder and folder not in made_dirs:
                    made_dirs.add(folder)
                    folder = folder.rpartition("/")[0]
            digest = hashlib.sha256(content).hexdigest()
            target = os.path.join(staging, relative)
            if reuse and previous.get(relative) == digest:
                try:
                    os.link(os.path.join(old_root, relative), target)
                    unchanged += 1
                    manifest[relative] = digest
                    continue
                except OSError:
                    pass  # gone, or another file system: write it instead
            with open(target, "wb") as stream:
                stream.write(content)
            written += 1
            manifest[relative] = digest
        with open(os.path.join(staging, MANIFEST), "w", encoding="utf-8") as stream:
            json.dump({"fingerprint": fingerprint, "source": source, "releases": releases, "files": manifest},
                      stream, sort_keys=True)
        _exchange(Path(staging), out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    removed = len(set(previous) - set(files))
    return WriteStats(written=written, unchanged=unchanged, removed=removed)
