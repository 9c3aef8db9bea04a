"""Deployment history: every commit that changed a cohort file, and what the cohort ran after it.

A cohort file names the releases active for a group of devices; its git
history is the deployment log. `read_cohort_history` reads it in one
`git log` pass over the built branch's first-parent history (so a merged
pull request counts from its merge, like the release dates) and one batch
read of the file versions, and returns plain data for the pure plan
(`SiteInputs.cohort_history`), oldest change first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from relreg.model import Activation

if TYPE_CHECKING:
    import git

_NULL_BLOB = "0" * 40
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


def read_cohort_history(repo: "git.Repo", commit: str, prefix: str) -> dict[str, list[CohortChange]]:
    """{slug: [CohortChange, ...] oldest first} for the cohort files under `prefix`/cohorts as of `commit`."""
    folder = f"{prefix}/cohorts" if prefix else "cohorts"
    output = repo.git.log("--first-parent", "--diff-merges=first-parent", "--reverse", "--raw", "--no-abbrev",
                          "--no-renames", "--no-color", "--format=%x1e%H%x1f%ct%x1f%an%x1f%s",
                          commit, "--", folder)
    pending: list[tuple[str, str, str, int, str, str]] = []  # slug, blob, commit, date, author, subject
    for record in output.split("\x1e"):
        if not record.strip():
            continue
        header, _, body = record.partition("\n")
        sha, seconds, author, subject = header.split("\x1f", 3)
        for line in body.splitlines():
            if not line.startswith(":"):
                continue
            meta, _, path = line.partition("\t")
            path_obj = PurePosixPath(path)
            if path_obj.suffix != ".yaml":
                continue
            blob = meta.split()[3]
            pending.append((path_obj.stem, blob, sha, int(seconds), author, subject.strip()))

    history: dict[str, list[CohortChange]] = {}
    for slug, blob, sha, seconds, author, subject in pending:
        if blob == _NULL_BLOB:
            releases: tuple[Activation, ...] | None = ()
        else:
            releases = _activations(repo.odb.stream(bytes.fromhex(blob)).read())
        history.setdefault(slug, []).append(CohortChange(sha, seconds, author, subject, releases))
    return dict(sorted(history.items()))
