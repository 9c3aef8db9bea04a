"""Deployment history: every commit that changed a cohort file, and what the cohort ran after it.

A cohort file names the releases active for a group of devices; its git
history is the deployment log. The one `git log` pass of history.py records
every change to a cohort file (first-parent, so a merged pull request counts
from its merge, like the release dates); this module reads the file versions
it names and returns plain data for the pure plan
(`SiteInputs.cohort_history`), oldest change first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from relreg.history.gitlog import NULL_BLOB, History, read_history
from relreg.registry.model import Activation

if TYPE_CHECKING:
    import git

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class CohortChange:
    """One commit that changed a cohort file."""

    commit: str
    date: int  # unix seconds, UTC (committer date, like the release dates)
    author: str  # the author's name; e-mail addresses are not published
    subject: str  # first line of the commit message
    releases: tuple[Activation, ...] | None  # active releases after the commit; () when the file was
    # deleted, None when this version of the file could not be read


def _activations(text: bytes) -> tuple[Activation, ...] | None:
    try:
        data: Any = yaml.load(text, Loader=_Loader)  # noqa: S506 (a safe loader)
        releases = data.get("releases") or []
        return tuple(Activation(version=str(item["version"]),
                                rollout_percent=float(item.get("rollout_percent", 100)))
                     for item in releases)
    except (yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError):
        return None


def cohort_history(repo: "git.Repo", history: "History") -> dict[str, list[CohortChange]]:
    """{slug: [CohortChange, ...] oldest first}, from the changes to cohort files the history pass recorded."""
    result: dict[str, list[CohortChange]] = {}
    paths_of: dict[str, int] = {}
    for path, changes in history.cohort_changes.items():
        if not path.endswith(".yaml"):
            continue
        slug = PurePosixPath(path).stem
        paths_of[slug] = paths_of.get(slug, 0) + 1
        for change in changes:
            releases = () if change.blob == NULL_BLOB else \
                _activations(repo.odb.stream(bytes.fromhex(change.blob)).read())
            result.setdefault(slug, []).append(
                CohortChange(change.commit, change.date, change.author, change.subject, releases))
    for slug, count in paths_of.items():
        if count > 1:  # a cohort file that moved between folders: one log, by date
            result[slug].sort(key=lambda change: change.date)
    return dict(sorted(result.items()))


def read_cohort_history(repo: "git.Repo", commit: str, prefix: str) -> dict[str, list[CohortChange]]:
    """{slug: [CohortChange, ...] oldest first} for the cohort files under `prefix`/cohorts as of `commit`."""
    return cohort_history(repo, read_history(repo, commit, prefix))
