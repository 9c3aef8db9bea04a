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


def _read_manifest(out: Path) -> tuple[dict[str, str], int]:
    """The previous build's {path: sha256} and the time it was written (0 when unknown)."""
    try:
        manifest = out / MANIFEST
        return json.loads(manifest.read_text(encoding="utf-8"))["files"], manifest.stat().st_mtime_ns
    except (OSError, ValueError, KeyError, TypeError):
        return {}, 0


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


def previous_fingerprint(out: Path) -> str | None:
    """The fingerprint of the inputs the current output was built from, if relreg wrote it."""
    try:
        return json.loads((out / MANIFEST).read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def write_site(files: dict[str, bytes], out: Path, fingerprint: str = "") -> WriteStats:
    """Replace the folder `out` with exactly `files`, reusing unchanged files."""
    out = out.absolute()
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous, written_at = _read_manifest(out) if out.is_dir() else ({}, 0)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    written = unchanged = 0
    manifest: dict[str, str] = {}
    made_dirs: set[Path] = {staging}
    try:
        for relative, content in files.items():
            target = staging / relative
            if target.parent not in made_dirs:
                target.parent.mkdir(parents=True, exist_ok=True)
                made_dirs.update(target.parents)
            digest = hashlib.sha256(content).hexdigest()
            source = out / relative
            if previous.get(relative) == digest and _untouched_since(source, written_at):
                os.link(source, target)
                unchanged += 1
            else:
                target.write_bytes(content)
                written += 1
            manifest[relative] = digest
        (staging / MANIFEST).write_text(json.dumps({"fingerprint": fingerprint, "files": manifest}, sort_keys=True), encoding="utf-8")
        _exchange(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    removed = len(set(previous) - set(files))
    return WriteStats(written=written, unchanged=unchanged, removed=removed)


def _untouched_since(path: Path, written_at: int) -> bool:
    """Nobody changed the file after the manifest was written (a hand edit is rewritten, not reused)."""
    try:
        return path.stat().st_mtime_ns <= written_at
    except OSError:
        return False
