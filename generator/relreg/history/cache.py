"""A persistent cache of work that depends only on a file's bytes.

Keys are git blob ids (for parsed, schema-valid documents) and content hashes
(for rendered notes), so an entry can never be stale: different bytes give a
different key. The cache lives in the repository's git folder, never in the
work tree or the output, and is tied to this relreg version and its schemas,
so an upgrade starts afresh. Losing it only costs time.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relreg import __version__
from relreg.resources import code_digest

# Entries not used by a build are dropped when the cache is saved, so it
# never grows past the size of the registry it serves.


@dataclass
class WorkCache:
    path: Path | None = None
    documents: dict[str, Any] = field(default_factory=dict)  # "kind:blob id" -> parsed data
    notes: dict[str, str] = field(default_factory=dict)  # sha256(format, text) -> safe HTML
    _used_documents: set[str] = field(default_factory=set)
    _used_notes: set[str] = field(default_factory=set)
    _changed: bool = False

    @classmethod
    def open(cls, folder: Path | None, fingerprint: str) -> "WorkCache":
        if folder is None:
            return cls()
        key = hashlib.sha256(f"{__version__}\0{fingerprint}".encode()).hexdigest()[:16]
        path = folder / f"work-cache-{key}.pickle"
        try:
            with path.open("rb") as stream:
                documents, notes = pickle.load(stream)
            return cls(path=path, documents=documents, notes=notes)
        except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError):
            return cls(path=path)

    def document(self, kind: str, blob_id: str) -> Any | None:
        key = f"{kind}:{blob_id}"
        data = self.documents.get(key)
        if data is not None:
            self._used_documents.add(key)
        return data

    def store_document(self, kind: str, blob_id: str, data: Any) -> None:
        key = f"{kind}:{blob_id}"
        self.documents[key] = data
        self._used_documents.add(key)
        self._changed = True

    @staticmethod
    def notes_key(text: str, notes_format: str) -> str:
        return hashlib.sha256(f"{notes_format}\0{text}".encode()).hexdigest()

    def rendered_notes(self, key: str) -> str | None:
        html = self.notes.get(key)
        if html is not None:
            self._used_notes.add(key)
        return html

    def store_notes(self, key: str, html: str) -> None:
        self.notes[key] = html
        self._used_notes.add(key)
        self._changed = True

    def save(self, *, prune: bool = True) -> None:
        """Write the cache; with `prune`, drop what this run did not use (a build that skips
        rendering passes prune=False, or it would throw the rendered notes away)."""
        if not prune:
            self._used_documents.update(self.documents)
            self._used_notes.update(self.notes)
        stale = len(self.documents) != len(self._used_documents) or len(self.notes) != len(self._used_notes)
        if self.path is None or not (self._changed or stale):
            return
        documents = {key: self.documents[key] for key in self._used_documents}
        notes = {key: self.notes[key] for key in self._used_notes}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for old in self.path.parent.glob("work-cache-*.pickle"):
                if old != self.path:
                    old.unlink(missing_ok=True)  # made by another relreg version
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            with os.fdopen(handle, "wb") as stream:
                pickle.dump((documents, notes), stream, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, self.path)
        except OSError:
            pass  # a cache that cannot be written only costs time next run


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
