"""Git settings pinned for every git that relreg runs, so that the site does not depend on the builder's git config.

Dates, ids and the deployment log come from `git log`, `git diff-tree` and friends. Some settings a
user may have in ~/.gitconfig or the repository's config change what those print for the same
commit: `log.follow` (renames followed for one path), `log.showRoot` (the root commit's files),
`diff.renameLimit` (which moves are found), `log.showSignature` (GPG lines in the log),
`log.mailmap` (author names), `i18n.logOutputEncoding`. They are set through git's environment
(GIT_CONFIG_COUNT, git 2.31 and later), which outranks every config file, and reach git whether
relreg runs it itself or through GitPython. Other settings (safe.directory, credentials) are left alone.
"""

from __future__ import annotations

import os
from typing import Mapping, MutableMapping

# What the dates and logs are computed with: git's defaults, written out.
PINNED = {
    "log.follow": "false",
    "log.showRoot": "true",
    "log.showSignature": "false",
    "log.mailmap": "false",
    "diff.renames": "true",
    "diff.renameLimit": "1000",
    "i18n.logOutputEncoding": "UTF-8",
}


def pinned_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables to add to `environ` so that git takes PINNED over any config file: entries after any
    GIT_CONFIG_COUNT entries the caller already set (the last entry of a key wins)."""
    try:
        count = int(environ.get("GIT_CONFIG_COUNT", "0"))
    except ValueError:
        count = 0
    added = {}
    for index, (key, value) in enumerate(PINNED.items(), start=count):
        added[f"GIT_CONFIG_KEY_{index}"] = key
        added[f"GIT_CONFIG_VALUE_{index}"] = value
    added["GIT_CONFIG_COUNT"] = str(count + len(PINNED))
    return added


def pin_git_config(environ: MutableMapping[str, str] = os.environ) -> None:
    """Add PINNED to `environ` (the process's, by default), once."""
    if environ.get(_MARK) != "1":
        environ.update(pinned_environment(environ))
        environ[_MARK] = "1"


_MARK = "RELREG_GIT_CONFIG_PINNED"
