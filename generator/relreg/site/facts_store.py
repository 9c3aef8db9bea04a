"""The facts of release files (jobs.ReleaseFacts) kept between builds, in the work cache (I/O: not part of the
pure plan).

A rebuild after a notes fix reads the facts of ten thousand unchanged files from here instead of making them
from the model (a pass over every artifact), and keys whole sections of the site by them (see plan.py). The
file is named by the code's digest, since the facts are what this code reads of a file; a file that cannot
be read or written only costs making the facts again, never the build.
"""

from __future__ import annotations

import marshal
import os
import tempfile
from pathlib import Path
from typing import Iterable

from relreg.resources import code_digest
from relreg.site.jobs import ReleaseFacts

_PREFIX = "release-facts-"
KEEP_FACTS = True  # off in a test only: every release's facts made from its model, the general path


def facts_path(folder: Path) -> Path:
    """Where the facts of this code live in the work cache `folder`."""
    return folder / f"{_PREFIX}{code_digest().hex()[:16]}.marshal"


def load_facts(folder: Path) -> dict[str, tuple]:
    """{blob id: facts as a tuple} from `folder`; empty when there is none or it cannot be read."""
    if not KEEP_FACTS:
        return {}
    try:
        with open(facts_path(folder), "rb") as stream:
            found = marshal.load(stream)
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    if not isinstance(found, dict) or not all(type(value) is tuple and len(value) == _FIELDS
                                              for value in found.values()):
        return {}
    return found


_FIELDS = len(ReleaseFacts._fields)


def save_facts(folder: Path, facts: dict[str, tuple], blobs: Iterable[str], loaded: int) -> None:
    """Keep the facts of `blobs` (the release files of this build) in `folder`, when they differ from the `loaded`
    count of entries read at the start or the cache holds others: written whole to a new file, then renamed over
    the old one (a killed build leaves the old one or none). Files of other code are removed."""
    kept = {blob: tuple(facts[blob]) for blob in blobs if blob in facts}
    if not KEEP_FACTS or len(kept) == loaded == len(facts):
        return  # nothing made, nothing stale
    target = facts_path(folder)
    try:
        for old in folder.glob(f"{_PREFIX}*.marshal"):
            if old != target:
                old.unlink(missing_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{_PREFIX}", dir=folder)
        try:
            with os.fdopen(descriptor, "wb") as stream:
                marshal.dump(kept, stream)
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError:
        pass
