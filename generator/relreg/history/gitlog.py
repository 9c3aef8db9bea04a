"""Dates from git: when each registry file first appeared and last changed.

One `git log` pass over the built branch's first-parent history (so a merged
pull request counts from its merge), with renames followed, gives every
file's created and updated commit, and every change to a cohort file (the
deployment log, see deployments.py). The result is cached by commit inside
the repository's git folder, so a rebuild walks only the commits since the
last build. Paths are relative to the registry folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import click
import git

CACHE_VERSION = 2
COHORTS = "cohorts/"  # changes to files under it are kept one by one: the deployment log
NULL_BLOB = "0" * 40


class HistoryError(click.ClickException):
    """Git history cannot give trustworthy dates (shallow clone, unknown ref, not a repository)."""


@dataclass(frozen=True)
class FileDates:
    created: int  # unix seconds, UTC
    updated: int
    created_commit: str
    updated_commit: str


@dataclass(frozen=True)
class FileChange:
    """One commit that changed a cohort file."""

    commit: str
    date: int  # unix seconds, UTC (committer date)
    author: str  # name only: e-mail addresses are not published
    subject: str
    blob: str  # the file's content after the commit; NULL_BLOB when the commit deleted it


@dataclass(frozen=True)
class History:
    commit: str | None  # the commit the registry was read at (None outside git)
    dates: dict[str, FileDates]  # by path relative to the registry folder
    commits_walked: int = 0
    cohort_changes: dict[str, list[FileChange]] = field(default_factory=dict)  # by path, oldest first


def build_time() -> int:
    """`SOURCE_DATE_EPOCH` when set (reproducible builds), else now."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value:
        try:
            return int(value)
        except ValueError:
            raise click.ClickException(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds") from None
    return int(datetime.now(tz=timezone.utc).timestamp())


def open_repository(path: Path) -> git.Repo | None:
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def registry_prefix(repo: git.Repo, registry_dir: Path) -> str:
    """The registry folder relative to the repository's top, '' when it is the top."""
    top = Path(repo.working_tree_dir or ".").resolve()
    relative = registry_dir.resolve().relative_to(top).as_posix()
    return "" if relative == "." else relative


def ensure_full_history(repo: git.Repo) -> None:
    if repo.git.rev_parse("--is-shallow-repository").strip() == "true":
        raise HistoryError(
            "this is a shallow clone, so release dates from git history would be wrong. "
            "Fetch the full history first: `git fetch --unshallow` "
            "(in GitHub Actions: actions/checkout with fetch-depth: 0)")


def resolve_commit(repo: git.Repo, ref: str) -> str:
    try:
        return repo.git.rev_parse("--verify", "--end-of-options", f"{ref}^{{commit}}").strip()
    except git.GitCommandError:
        raise HistoryError(f"'{ref}' is not a commit in this repository") from None


def _apply_log(output: str, dates: dict[str, FileDates], changes: dict[str, list[FileChange]]) -> int:
    """Fold `git log --reverse --raw` output (oldest first, registry-relative paths) into `dates` and `changes`."""
    commits = 0
    for record in output.split("\x1e"):
        if not record.strip():
            continue
        header, _, body = record.partition("\n")
        commit, seconds_text, author, subject = header.strip("\n").split("\x1f", 3)
        seconds = int(seconds_text)
        commits += 1
        for line in body.splitlines():
            if not line.startswith(":"):
                continue
            meta, *paths = line.split("\t")
            _, _, _, blob, status = meta.split(" ")
            letter = status[0]
            for path in paths:
                if path.startswith(COHORTS):
                    gone = letter == "D" or (letter == "R" and path == paths[0])
                    changes.setdefault(path, []).append(
                        FileChange(commit, seconds, author, subject.strip(), NULL_BLOB if gone else blob))
            if letter == "D":
                continue  # dates of a deleted file stay, in case it comes back
            if letter == "R" and len(paths) == 2:
                old, new = paths
                previous = dates.pop(old, None)
                created = previous.created if previous else seconds
                created_commit = previous.created_commit if previous else commit
                dates[new] = FileDates(created, seconds, created_commit, commit)
                continue
            path = paths[-1]
            previous = dates.get(path)
            if previous is None:
                dates[path] = FileDates(seconds, seconds, commit, commit)
            else:
                dates[path] = FileDates(previous.created, seconds, previous.created_commit, commit)
    return commits


def _git_log(repo: git.Repo, revisions: str, prefix: str) -> str:
    """Every first-parent commit with the registry files it touched, paths relative to the registry.

    `--relative` rather than a pathspec: with `-- registry`, git matches every
    entry of each changed tree against the pathspec (twice, to simplify history
    too), which costs more than the whole log on a flat folder of 10,000 files.
    `--raw` names each file's new blob, which the deployment log reads.
    """
    relative = [f"--relative={prefix}/"] if prefix else []
    return repo.git.log(
        "--first-parent", "--diff-merges=first-parent", "--reverse", "-M", "--raw", "--no-abbrev",
        "--no-color", "--format=%x1e%H%x1f%ct%x1f%an%x1f%s", *relative, revisions)


def _cache_file(repo: git.Repo, prefix: str) -> Path:
    name = "history-" + (prefix.replace("/", "_") or "root") + ".json"
    return Path(repo.git_dir) / "relreg" / name


def _read_cache(path: Path) -> History | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != CACHE_VERSION:
            return None
        return History(data["commit"], {name: FileDates(*values) for name, values in data["dates"].items()}, 0,
                       {name: [FileChange(*change) for change in changes]
                        for name, changes in data["cohort_changes"].items()})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(path: Path, history: History) -> None:
    payload = {"version": CACHE_VERSION, "commit": history.commit,
               "dates": {name: [d.created, d.updated, d.created_commit, d.updated_commit]
                         for name, d in sorted(history.dates.items())},
               "cohort_changes": {name: [[c.commit, c.date, c.author, c.subject, c.blob] for c in changes]
                                  for name, changes in sorted(history.cohort_changes.items())}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(payload), encoding="utf-8")
        temporary.replace(path)
    except OSError:
        pass  # a cache that cannot be written only costs time on the next build


def read_history(repo: git.Repo, commit: str, prefix: str, *, use_cache: bool = True) -> History:
    """Created/updated dates of every file under `prefix`, and the changes to its cohort files, as of `commit`."""
    cache_path = _cache_file(repo, prefix)
    cached = _read_cache(cache_path) if use_cache else None
    if cached is not None and cached.commit == commit:
        return cached
    dates: dict[str, FileDates] = {}
    changes: dict[str, list[FileChange]] = {}
    revisions = commit
    if cached is not None and cached.commit in repo.git.rev_list("--first-parent", commit).split():
        dates, changes = dict(cached.dates), {path: list(items) for path, items in cached.cohort_changes.items()}
        revisions = f"{cached.commit}..{commit}"  # only the commits since the cached one
    walked = _apply_log(_git_log(repo, revisions, prefix), dates, changes)
    history = History(commit, dates, walked, changes)
    if use_cache:
        _write_cache(cache_path, history)
    return history


def registry_is_clean(repo: git.Repo, prefix: str) -> bool:
    """True when the registry folder holds exactly what HEAD holds: no change, no untracked or ignored file."""
    return not repo.git.status("--porcelain=v1", "--untracked-files=all", "--ignored=matching",
                               "--", prefix or ".").strip()


def uncommitted_paths(repo: git.Repo, prefix: str) -> set[str]:
    """Registry files (relative to the registry folder) that differ from HEAD or are untracked."""
    output = repo.git.status("--porcelain=v1", "-z", "--untracked-files=all", "--", prefix or ".")
    strip = f"{prefix}/" if prefix else ""
    changed: set[str] = set()
    entries = output.split("\0")
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        if "R" in status or "C" in status:
            index += 1  # the source path follows a rename in -z output
        if path.startswith(strip):
            changed.add(str(PurePosixPath(path[len(strip):])))
    return changed
