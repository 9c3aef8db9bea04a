"""Dates from git: when each registry file first appeared and last changed.

One `git log` pass over the built branch's first-parent history (so a merged
pull request counts from its merge), with renames followed, gives every
file's created and updated commit, and every change to a cohort file (the
deployment log, see deployments.py). The result is cached by commit inside
the repository's git folder, so a rebuild walks only the commits since the
last build. Paths are relative to the registry folder. A build starts the
pass first (`start_history`) and reads it after validation: git runs on one
core while Python validates on another, and a long history is split among
several runs of git.
"""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from typing import Iterator

import click
import git

from relreg.registry.source import CONFIG_FILE

CACHE_VERSION = 5  # 4: git config pinned (gitconfig.py); 5: the clock that keeps dates in history order
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
    """Dates and cohort changes of a registry as of one commit, by item identity (see `identity`)."""

    commit: str | None  # the commit the registry was read at (None outside git)
    dates: dict[str, FileDates]  # by identity: the path relative to the registry folder in a flat layout
    commits_walked: int = 0
    cohort_changes: dict[str, list[FileChange]] = field(default_factory=dict)  # by identity, oldest first
    blobs: dict[str, str] = field(default_factory=dict)  # identity -> last content (for the next fold)
    present: frozenset[str] = frozenset()  # identities that exist at `commit`
    clock: int = 0  # the date of the last commit folded, as dated (see _apply_log): no later commit is older

    def dates_of(self, registry_path: str) -> FileDates | None:
        """The dates of the item in this file (relative to the registry folder), wherever it lived before."""
        return self.dates.get(identity(registry_path))


# The last second of year 9999: dates are written as YYYY-MM-DDTHH:MM:SS (RFC 3339 has four-digit years).
LAST_DATE = 253_402_300_799


def build_time() -> int:
    """`SOURCE_DATE_EPOCH` when set (reproducible builds, https://reproducible-builds.org/specs/source-date-epoch/),
    else now: unix seconds. Raises click.ClickException for a value that is not whole seconds from 1970
    to the end of year 9999."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value:
        try:
            seconds = int(value)
        except ValueError:
            raise click.ClickException(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds") from None
        if not 0 <= seconds <= LAST_DATE:
            raise click.ClickException(f"SOURCE_DATE_EPOCH={value!r} is outside 0 (1970) to {LAST_DATE} "
                                       "(the end of year 9999): give unix seconds, e.g. $(git log -1 --format=%ct)")
        return seconds
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


def ensure_full_history(repo: git.Repo, shallow: bool | None = None) -> None:
    """Raise HistoryError when `repo` is a shallow clone (`shallow`: the answer when the caller has it)."""
    if shallow is None:
        shallow = repo.git.rev_parse("--is-shallow-repository").strip() == "true"
    if shallow:
        raise HistoryError(
            "this is a shallow clone, so release dates from git history would be wrong. "
            "Fetch the full history first: `git fetch --unshallow` "
            "(in GitHub Actions: actions/checkout with fetch-depth: 0)")


def resolve_commit(repo: git.Repo, ref: str) -> str:
    try:
        return repo.git.rev_parse("--verify", "--end-of-options", f"{ref}^{{commit}}").strip()
    except git.GitCommandError:
        raise HistoryError(f"'{ref}' is not a commit in this repository") from None


KINDS = ("releases/", "hardware/", "cohorts/")


def identity(path: str) -> str:
    """The registry item a file holds, by its path relative to the registry folder.

    A release is known by its version, a hardware version by its name and a
    cohort by its slug, all equal to the file's name (validate checks it), not
    by the folder it sits in: `releases/2.1/2.1.1.yaml` and
    `releases/2.1.1.yaml` are the same release. Any other file is known by
    its path. The identity of a flat layout's file is its path.
    """
    for kind in KINDS:
        if path.startswith(kind) and path.endswith(".yaml"):
            return kind + path.rpartition("/")[2]
    return path


@dataclass
class _State:
    """What the fold carries from commit to commit: each item's last content, and whether it exists."""

    dates: dict[str, FileDates]
    changes: dict[str, list[FileChange]]
    blobs: dict[str, str]  # identity -> the last content it had (kept after a deletion)
    present: set[str]  # identities that exist after the last commit folded
    clock: int = 0  # the date given to the last commit folded


_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)}


def _decode(raw: bytes) -> str:
    """Text of a commit's metadata for publishing: never fails, never carries a control character.

    Git stores names and messages as bytes, which need not be UTF-8 (invalid
    sequences become U+FFFD) and may hold any control character but NUL;
    those are shown as `\\xNN`, since HTML, XML and terminals cannot carry
    them as they are.
    """
    return raw.decode("utf-8", errors="replace").translate(_CONTROLS)


def _parse_log(output: bytes) -> Iterator[tuple[str, int, str, str, list[tuple[str, str, list[str]]]]]:
    """(commit, seconds, author, subject, [(status letter, new blob, paths)]) from `git log -z --raw`.

    Every field is NUL-terminated (`-z`, and the format puts NULs between the
    fields), and git metadata cannot hold a NUL, so no byte of a subject or
    author (0x1E, 0x1F, newlines, invalid UTF-8...) can shift a field. The
    fields are read by position: after a commit's four fields come its raw
    entries (`:modes blobs status`, then one path, two for a rename or copy),
    then the next commit's id.
    """
    tokens = output.split(b"\0")
    index = 0
    total = len(tokens)
    while index < total:
        token = tokens[index]
        index += 1
        if not token.strip(b"\n"):
            continue
        if index + 2 >= total:
            break  # a truncated record: nothing git writes
        commit = token.strip(b"\n").decode("ascii")
        seconds = int(tokens[index])
        author = _decode(tokens[index + 1])
        subject = _decode(tokens[index + 2])
        index += 3
        entries: list[tuple[str, str, list[str]]] = []
        while index < total and tokens[index].lstrip(b"\n").startswith(b":"):
            meta = tokens[index].lstrip(b"\n").decode("ascii").split(" ")
            blob, status = meta[3], meta[4]
            count = 2 if status[0] in "RC" else 1
            paths = [raw.decode("utf-8", errors="surrogateescape") for raw in tokens[index + 1:index + 1 + count]]
            entries.append((status[0], blob, paths))
            index += 1 + count
        yield commit, seconds, author, subject, entries


def _apply_log(output: bytes, state: _State) -> int:
    """Fold `git log --reverse --raw -z` output (oldest first, registry-relative paths) into `state`.

    Items are followed by identity (see `identity`), so renames and moves,
    detected or not, keep an item's dates and history; and a commit counts
    as a change of an item only when its content (blob) differs from the
    last content it had, so a commit that only moves files changes no date.
    """
    commits = 0
    for commit, seconds, author, subject, entries in _parse_log(output):
        commits += 1
        # A commit dated before the one it follows on the first-parent line (a committer's clock set
        # wrong) is dated a second after it: otherwise it would take the place of older releases
        # and renumber every release id after it. Along a sane history this changes nothing.
        if seconds < state.clock:
            seconds = state.clock + 1
        state.clock = seconds
        after: dict[str, str | None] = {}  # identity -> its new blob; None: deleted by this commit
        for letter, blob, paths in entries:
            if letter == "R":
                after.setdefault(identity(paths[0]), None)
            if letter == "D":
                after.setdefault(identity(paths[-1]), None)
            else:
                after[identity(paths[-1])] = blob
        for name, blob in after.items():
            existed = name in state.present
            if blob is None:
                if not existed:
                    continue
                state.present.discard(name)  # dates of a deleted item stay, in case it comes back
                if name.startswith(COHORTS):
                    state.changes.setdefault(name, []).append(
                        FileChange(commit, seconds, author, subject.strip(), NULL_BLOB))
                continue
            state.present.add(name)
            if state.blobs.get(name) == blob:
                if not existed and name.startswith(COHORTS):  # back after a deletion: a deployment change
                    state.changes.setdefault(name, []).append(FileChange(commit, seconds, author, subject.strip(), blob))
                continue  # same content: moved, or restored as it was
            state.blobs[name] = blob
            previous = state.dates.get(name)
            state.dates[name] = FileDates(seconds, seconds, commit, commit) if previous is None \
                else FileDates(previous.created, seconds, previous.created_commit, commit)
            if name.startswith(COHORTS):
                state.changes.setdefault(name, []).append(FileChange(commit, seconds, author, subject.strip(), blob))
    return commits


def _git_log_command(revisions: str, prefix: str) -> list[str]:
    """The `git log` arguments that list every first-parent commit of `revisions` with the registry files it
    touched, paths relative to the registry.

    `--relative` rather than a pathspec: with `-- registry`, git matches every
    entry of each changed tree against the pathspec (twice, to simplify history
    too), which costs more than the whole log on a flat folder of 10,000 files.
    `--raw` names each file's new blob, which the deployment log reads and
    which tells a content change from a move. `-z`: see `_parse_log`.
    """
    relative = [f"--relative={prefix}/"] if prefix else []
    return ["log", "--first-parent", "--diff-merges=first-parent", "--reverse", "-M", "--raw", "--no-abbrev", "-z",
            "--no-color", "--format=%H%x00%ct%x00%an%x00%s", *relative, revisions]


def _config_path(prefix: str) -> str:
    return f"{prefix}/{CONFIG_FILE}" if prefix else CONFIG_FILE


def moved_from(repo: git.Repo, commit: str, prefix: str) -> str | None:
    """The registry folder before `commit`, when `commit` moved the registry (its registry.yaml) to `prefix`.

    The commit is compared with its first parent: a registry.yaml renamed to
    `prefix`/registry.yaml, or, when git does not pair them (the file also
    changed a lot), the one registry.yaml the commit deleted. None: the
    registry was created at `prefix` by this commit.
    """
    output = repo.git.diff_tree("-r", "-M", "--raw", "--no-abbrev", "-z", "--no-commit-id", f"{commit}^1", commit,
                                "--", f":(glob)**/{CONFIG_FILE}", stdout_as_string=False)
    target = _config_path(prefix)
    deleted: list[str] = []
    tokens = output.split(b"\0")
    index = 0
    while index < len(tokens):
        token = tokens[index].lstrip(b"\n")
        index += 1
        if not token.startswith(b":"):
            continue
        status = token.decode("ascii").split(" ")[4]
        count = 2 if status[0] in "RC" else 1
        paths = [raw.decode("utf-8", errors="surrogateescape") for raw in tokens[index:index + count]]
        index += count
        if status[0] == "R" and paths[1] == target:
            return paths[0].rpartition("/")[0]
        if status[0] == "D":
            deleted.append(paths[0])
    if len(deleted) == 1:
        return deleted[0].rpartition("/")[0]
    return None


def registry_locations(repo: git.Repo, commit: str, prefix: str, since: str | None = None) -> list[tuple[str, str | None]]:
    """Where the registry lived along the first-parent history of `commit`: [(prefix, after commit)], oldest first.

    Each entry says the registry was at `prefix` in the commits after `after`
    (None: from the start, or from `since`) up to the next entry's `after`
    (the last entry: up to `commit`). Moves of the whole folder (`git mv
    registry fw/registry`) are followed back through its registry.yaml, one
    literal-path `git log` per move, so a registry that never moved costs one
    call. With `since`, only the commits after `since` are looked at.
    """
    locations: list[tuple[str, str | None]] = []
    tip = commit
    for _ in range(1000):  # a bound on moves, against a cycle in odd histories
        revisions = f"{since}..{tip}" if since else tip
        found = repo.git.log("--first-parent", "--diff-merges=first-parent", "--diff-filter=A", "-1", "-s",
                             "--format=%H %P", revisions, "--", _config_path(prefix)).split()
        if len(found) < 2:  # not added in range, or added by the root commit
            break
        added, first_parent = found[0], found[1]
        previous = moved_from(repo, added, prefix)
        if previous is None:
            break  # created here; anything older at this path is the same registry's past
        locations.append((prefix, first_parent))
        prefix, tip = previous, first_parent
    locations.append((prefix, since))
    locations.reverse()
    return locations


def _cache_file(repo: git.Repo, prefix: str) -> Path:
    name = "history-" + (prefix.replace("/", "_") or "root") + ".marshal"
    return Path(repo.git_dir) / "relreg" / name


# marshal, not JSON: a cache of 10,000 releases loads and saves in a few milliseconds instead of a
# tenth of a second each, and it is read on every build. Its format may change between Python
# versions, so the version is part of what the file must match.
_CACHE_TAG = (CACHE_VERSION, sys.version_info[:2])


def _read_cache(path: Path) -> History | None:
    try:
        tag, commit, dates, changes, blobs, present, clock = marshal.loads(path.read_bytes())
        if tag != _CACHE_TAG:
            return None
        return History(commit, {name: FileDates(*values) for name, values in dates.items()}, 0,
                       {name: [FileChange(*change) for change in items] for name, items in changes.items()},
                       blobs, frozenset(present), clock)
    except (OSError, ValueError, EOFError, KeyError, TypeError):
        return None


def _write_cache(path: Path, history: History) -> None:
    payload = (_CACHE_TAG, history.commit,
               {name: (d.created, d.updated, d.created_commit, d.updated_commit) for name, d in history.dates.items()},
               {name: [(c.commit, c.date, c.author, c.subject, c.blob) for c in changes]
                for name, changes in history.cohort_changes.items()},
               history.blobs, sorted(history.present), history.clock)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(marshal.dumps(payload))
        temporary.replace(path)
    except OSError:
        pass  # a cache that cannot be written only costs time on the next build


def _follows_on_first_parent(repo: git.Repo, cached: str, commit: str) -> bool:
    """True when `cached` is an older commit on the first-parent line of `commit`.

    Lists only the commits between them, not the whole history: the first-parent walk from
    `commit` stops at `cached` exactly when `cached` is on that line.
    """
    try:
        lines = repo.git.rev_list("--first-parent", "--parents", f"{cached}..{commit}").splitlines()
    except git.GitCommandError:  # `cached` is gone (amended or rebased away, then garbage-collected)
        return False
    return bool(lines) and lines[-1].split()[1:2] == [cached]


# A stretch of history of at least this many first-parent commits is read by `SPLIT_PARTS` runs of git at
# once, each over a part of it: git's cost is per commit (it rebuilds and compares each commit's registry
# tree), so the parts take about the same time, on as many cores.
SPLIT_COMMITS = 2000
SPLIT_PARTS = 2


def _split(repo: git.Repo, after: str | None, until: str, parts: int,
           line: list[str] | None = None) -> list[tuple[str | None, str]]:
    """`after..until` (None: from the root) as consecutive ranges of the first-parent line, oldest first.

    Each bound is a commit of that line, so `git log --first-parent` over the
    ranges, one after the other, lists the same commits with the same diffs
    (each against its first parent) as over the whole range. `line`: that line's
    commits, newest first, when the caller has them (else git lists them).
    """
    if parts < 2:
        return [(after, until)]
    if line is None:
        line = repo.git.rev_list("--first-parent", f"{after}..{until}" if after else until).split()  # newest first
    parts = min(parts, len(line))
    if len(line) < SPLIT_COMMITS or parts < 2:
        return [(after, until)]
    bounds = [line[len(line) * part // parts] for part in range(parts - 1, 0, -1)]  # older first
    return list(zip([after, *bounds], [*bounds, until]))


class _GitRun:
    """One `git log` running in the background, its output going to an unnamed temporary file (a pipe
    would stall git until someone reads it)."""

    def __init__(self, repo: git.Repo, arguments: list[str]) -> None:
        self.command = [repo.git.GIT_PYTHON_GIT_EXECUTABLE or "git", *arguments]
        self.output = tempfile.TemporaryFile()
        self.errors = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(self.command, cwd=repo.working_dir, stdin=subprocess.DEVNULL,
                                            stdout=self.output, stderr=self.errors,
                                            env={**os.environ, "LANGUAGE": "C", "LC_ALL": "C"})
        except BaseException:
            self.close()
            raise

    def read(self) -> bytes:
        """The whole output, once git is done; git.GitCommandError when git failed."""
        status = self.process.wait()
        if status != 0:
            self.errors.seek(0)
            raise git.GitCommandError(self.command, status, self.errors.read())
        self.output.seek(0)
        return self.output.read()

    def close(self) -> None:
        """Stops git if it still runs; the temporary files go."""
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self.output.close()
        self.errors.close()


class PendingHistory:
    """`read_history` started early: the `git log` runs in the background while the caller does other
    work (validation, release notes), and `result` folds its output.

    Use it as a context manager, or call `close`: a history that is never read stops its git.
    """

    def __init__(self, repo: git.Repo, commit: str, prefix: str, *, use_cache: bool = True,
                 parts: int = SPLIT_PARTS) -> None:
        self._repo, self._commit, self._use_cache = repo, commit, use_cache
        self._cache_path = _cache_file(repo, prefix)
        self._history: History | None = None
        self._released = False
        self._error: BaseException | None = None
        self._runs: list[_GitRun] = []
        self._state = _State({}, {}, {}, set())
        try:
            cached = _read_cache(self._cache_path) if use_cache else None
            if cached is not None and cached.commit == commit:
                self._history = cached
                return
            since = None
            if cached is not None and _follows_on_first_parent(repo, cached.commit, commit):
                if len(registry_locations(repo, commit, prefix, since=cached.commit)) == 1:
                    # The registry did not move since the cached commit: fold only the commits after it.
                    self._state = _State(dict(cached.dates),
                                         {path: list(items) for path, items in cached.cohort_changes.items()},
                                         dict(cached.blobs), set(cached.present), cached.clock)
                    since = cached.commit
            # The whole first-parent line, listed while git looks for moves of the registry: what _split
            # needs when the registry never moved (the usual case), a tenth of a second sooner at 10,000 commits.
            whole_line = _GitRun(repo, ["rev-list", "--first-parent", commit]) if not since and parts >= 2 else None
            try:
                locations = [(prefix, since)] if since else registry_locations(repo, commit, prefix)
                for index, (folder, after) in enumerate(locations):
                    until = locations[index + 1][1] if index + 1 < len(locations) else commit
                    assert until is not None
                    line = whole_line.read().decode().split() if whole_line and after is None and until == commit \
                        else None
                    for start, end in _split(repo, after, until, parts, line):
                        self._runs.append(_GitRun(repo, _git_log_command(f"{start}..{end}" if start else end, folder)))
            finally:
                if whole_line is not None:
                    whole_line.close()
        except BaseException:
            self.close()
            raise

    def running(self) -> bool:
        """True while a `git log` still runs (so `result` would wait)."""
        return any(run.process.poll() is None for run in self._runs)

    def result(self) -> History:
        """The History (as read_history gives it), waiting for git; the same object, or error, on each call.

        Raises git.GitCommandError when git fails.
        """
        if self._error is not None:
            raise self._error
        if self._released:
            raise RuntimeError("PendingHistory.result() after release()")
        if self._history is None:
            try:
                walked = 0
                for run in self._runs:  # oldest stretch first: the fold goes forward in time
                    walked += _apply_log(run.read(), self._state)
                state = self._state
                self._history = History(self._commit, state.dates, walked, state.changes, state.blobs,
                                        frozenset(state.present), state.clock)
            except Exception as error:
                self._error = error
                raise
            finally:
                self.close()
            if self._use_cache:
                _write_cache(self._cache_path, self._history)
        return self._history

    def close(self) -> None:
        """Stops the git runs that are still going and lets go of their output."""
        for run in self._runs:
            run.close()
        self._runs = []

    def release(self) -> None:
        """Lets go of the history (and stops git): a caller done with it before the end of its `with`
        frees it sooner (a build of 100,000 releases, before its site workers fork: about 50 MB).
        `result` raises RuntimeError after this."""
        self.close()
        self._released = True
        self._history = None
        self._state = _State({}, {}, {}, set())

    def __enter__(self) -> "PendingHistory":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_history(repo: git.Repo, commit: str, prefix: str, *, use_cache: bool = True,
                  parts: int = SPLIT_PARTS) -> PendingHistory:
    """`read_history`, begun: git runs in the background until `PendingHistory.result` is asked for.

    `parts`: how many runs of git may share a long stretch of history (see SPLIT_COMMITS); the
    result is the same for any number.
    """
    return PendingHistory(repo, commit, prefix, use_cache=use_cache, parts=parts)


def read_history(repo: git.Repo, commit: str, prefix: str, *, use_cache: bool = True,
                 parts: int = SPLIT_PARTS) -> History:
    """Created/updated dates of every item under `prefix`, and the changes to its cohorts, as of `commit`.

    The walk follows the registry through moves of its folder (see
    `registry_locations`): each stretch of history is read with the folder it
    had then, and items are matched by identity, so dates and deployment
    history survive `git mv registry fw/registry` and regrouping releases.
    The result is cached by commit (see `_cache_file`); git.GitCommandError when git fails.
    """
    with start_history(repo, commit, prefix, use_cache=use_cache, parts=parts) as pending:
        return pending.result()


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
