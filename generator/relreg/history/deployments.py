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
    """One commit that changed a cohort's content (a commit that only moved its file is not one)."""

    commit: str
    date: int  # unix seconds, UTC (committer date, like the release dates)
    author: str  # the author's name; e-mail addresses are not published
    subject: str  # first line of the commit message
    releases: tuple[Activation, ...] | None  # active releases after the commit; () when the file was
    # deleted, None when this version of the file could not be read
    hardware_versions: tuple[str, ...] = ()  # the cohort's hardware versions after the commit (() : any)


def _read(text: bytes) -> tuple[tuple[Activation, ...], tuple[str, ...]] | None:
    """(activations, cohort hardware versions) of one version of a cohort file; None when it does not read."""
    try:
        data: Any = yaml.load(text, Loader=_Loader)  # noqa: S506 (a safe loader)
        releases = data.get("releases") or []
        activations = []
        for item in releases:
            names = item.get("hardware_versions")
            activations.append(Activation(
                version=str(item["version"]), rollout_percent=float(item.get("rollout_percent", 100)),
                hardware_versions=tuple(str(name) for name in names) if isinstance(names, list) else None))
        hardware = data.get("hardware_versions") or []
        return tuple(activations), tuple(str(name) for name in hardware) if isinstance(hardware, list) else ()
    except (yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError):
        return None


def cohort_history(repo: "git.Repo", history: "History") -> dict[str, list[CohortChange]]:
    """{slug: [CohortChange, ...] oldest first}, from the changes to cohorts the history pass recorded.

    The history pass keys cohorts by slug (their file name), wherever the file
    lived, so a cohort's log survives moves of its file or of the registry.
    """
    result: dict[str, list[CohortChange]] = {}
    for path, changes in history.cohort_changes.items():
        if not path.endswith(".yaml"):
            continue
        slug = PurePosixPath(path).stem
        for change in changes:
            read = ((), ()) if change.blob == NULL_BLOB else _read(repo.odb.stream(bytes.fromhex(change.blob)).read())
            result.setdefault(slug, []).append(
                CohortChange(change.commit, change.date, change.author, change.subject,
                             read[0] if read is not None else None, read[1] if read is not None else ()))
    return dict(sorted(result.items()))


def read_cohort_history(repo: "git.Repo", commit: str, prefix: str) -> dict[str, list[CohortChange]]:
    """{slug: [CohortChange, ...] oldest first} for the cohort files under `prefix`/cohorts as of `commit`."""
    return cohort_history(repo, read_history(repo, commit, prefix))
