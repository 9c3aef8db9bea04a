"""How recent each registry file is, from git history: where `relreg validate` reports a conflict.

When two files conflict (the same version, a reused build id, one URL with
two binaries), the newer file is the one to fix, so validation reports there
and names the older one. "Newer" is the caller's data (registry/ reads no
git): this module gives it from the history that `relreg build` reads anyway
(history/gitlog.py, cached by commit), with files that are uncommitted or
untracked newest of all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from relreg.registry.source import RegistryFiles

if TYPE_CHECKING:  # GitPython (~0.1 s to import) is imported on the first lookup: a valid registry never pays it
    import git


class DeferredRecency(Mapping[str, int]):
    """Recency (display path -> larger is newer) made by `make` on its first lookup: validation reads
    recency only for a conflict or a version order, so most runs never pay for making it."""

    def __init__(self, make: Callable[[], Mapping[str, int]]) -> None:
        self._make = make
        self._made: Mapping[str, int] | None = None

    def _load(self) -> Mapping[str, int]:
        if self._made is None:
            self._made = self._make()
        return self._made

    def __getitem__(self, path: str) -> int:
        return self._load()[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


class GitRecency(DeferredRecency):
    """Display path -> unix seconds of the file's last first-parent commit; larger is newer.

    Uncommitted and untracked files are left out, which the rules read as
    newest of all. Git is read on the first lookup only, so a registry without
    conflicts never pays for it; outside git, or when history cannot be read
    (a shallow clone, no commit yet), the map is empty and conflicts fall back
    to path order. `history`: gives the history of that commit when the caller
    reads it anyway (`relreg build` starts it before validating), instead of
    reading it here.
    """

    def __init__(self, registry_dir: Path, root: str, ref: str | None = None,
                 history: Callable[[], gitlog.History] | None = None) -> None:
        self._registry_dir = registry_dir
        self._ref = ref  # a commit to read instead of HEAD and the work tree (`relreg build --ref`)
        self._history = history
        self._strip = f"{root}/" if root not in ("", ".") else ""
        super().__init__(self._ranks)

    def _ranks(self) -> dict[str, int]:
        import git

        from relreg.history import gitlog

        repo = gitlog.open_repository(self._registry_dir)
        if repo is None:
            return {}
        try:
            return self._read(repo)
        except (git.GitCommandError, ValueError, gitlog.HistoryError):
            return {}
        finally:
            repo.close()

    def _read(self, repo: git.Repo) -> dict[str, int]:
        from relreg.history import gitlog

        if self._ref is None and not repo.head.is_valid() \
                or repo.git.rev_parse("--is-shallow-repository").strip() == "true":
            return {}
        prefix = gitlog.registry_prefix(repo, self._registry_dir)
        commit = gitlog.resolve_commit(repo, self._ref) if self._ref else repo.head.commit.hexsha
        history = self._history() if self._history is not None else gitlog.read_history(repo, commit, prefix)
        uncommitted = gitlog.uncommitted_paths(repo, prefix) if self._ref is None else set()
        return {self._strip + path: dates.updated for path, dates in history.dates.items() if path not in uncommitted}

def changed_recency(head: RegistryFiles, base: RegistryFiles | None) -> dict[str, int]:
    """Recency for `relreg check`, by display path: files the change adds or modifies are newest (left out), the others 0.

    A file is unchanged when the base has the same bytes at the same path
    relative to the registry folder.
    """
    published = {file.registry_path: file.blob_id for file in base.files} if base is not None else {}
    return {file.path: 0 for file in head.files if published.get(file.registry_path) == file.blob_id}
