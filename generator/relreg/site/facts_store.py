"""The facts of release files (jobs.ReleaseFacts) kept between builds, in the work cache (I/O: not part of the
pure plan).

A rebuild after a notes fix reads the facts of ten thousand unchanged files from here instead of making them
from the model (a pass over every artifact), and keys whole sections of the site by them (see plan.py). The
file is named by the code's digest, since the facts are what this code reads of a file; a file that cannot
be read or written only costs making the facts again, never the build.

The file holds the facts in columns, the few distinct hardware tuples and image sets once each: unmarshalled
as a dict of ten thousand tuples it took 60 ms, as columns it takes a few (a fact is made into a tuple when
a release asks for it).
"""

from __future__ import annotations

import marshal
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, MutableMapping

from relreg.resources import code_digest

_PREFIX = "release-facts-"
KEEP_FACTS = True  # off in a test only: every release's facts made from its model, the general path


class KeptFacts(MutableMapping[str, tuple]):
    """{blob id: ReleaseFacts as a tuple}: the facts read from the work cache (in columns), and those added."""

    def __init__(self, columns: tuple[list[str], list[str], list[int], list[int], list[tuple], list[tuple],
                                      list[frozenset]] | None = None) -> None:
        blobs, self._shapes, self._hardware, self._slots, self._links, self._hardware_table, self._slot_table = \
            columns or ([], [], [], [], [], [], [])
        self._index = dict(zip(blobs, range(len(blobs))))
        self._added: dict[str, tuple] = {}
        self.loaded = len(self._index)  # how many facts the file held

    def __getitem__(self, blob: str) -> tuple:
        index = self._index.get(blob)
        if index is None:
            return self._added[blob]
        return (self._shapes[index], self._hardware_table[self._hardware[index]],
                self._slot_table[self._slots[index]], self._links[index])

    def get(self, blob: str, default: Any = None) -> Any:  # the Mapping one raises and catches KeyError
        index = self._index.get(blob)
        if index is None:
            return self._added.get(blob, default)
        return (self._shapes[index], self._hardware_table[self._hardware[index]],
                self._slot_table[self._slots[index]], self._links[index])

    def __setitem__(self, blob: str, facts: tuple) -> None:
        if blob in self._index:
            raise ValueError(f"the facts of {blob} are kept already")  # a blob's facts never change
        self._added[blob] = facts

    def __delitem__(self, blob: str) -> None:
        raise TypeError("kept facts are dropped by save_facts, not one by one")

    def __iter__(self) -> Iterator[str]:
        yield from self._index
        yield from self._added

    def __len__(self) -> int:
        return len(self._index) + len(self._added)

    def columns(self, blobs: Iterable[str]) -> tuple[list[str], list[str], list[int], list[int], list[tuple],
                                                      list[tuple], list[frozenset]]:
        """The facts of `blobs` (those held), as the file keeps them."""
        kept, shapes, hardware, slots, links = [], [], [], [], []
        hardware_table: dict[tuple, int] = {}
        slot_table: dict[frozenset, int] = {}
        for blob in blobs:
            facts = self.get(blob)
            if facts is None:
                continue
            kept.append(blob)
            shapes.append(facts[0])
            hardware.append(hardware_table.setdefault(facts[1], len(hardware_table)))
            slots.append(slot_table.setdefault(facts[2], len(slot_table)))
            links.append(facts[3])
        return kept, shapes, hardware, slots, links, list(hardware_table), list(slot_table)


def facts_path(folder: Path) -> Path:
    """Where the facts of this code live in the work cache `folder`."""
    return folder / f"{_PREFIX}{code_digest().hex()[:16]}.marshal"


def load_facts(folder: Path) -> KeptFacts:
    """The facts kept in `folder`; none when there is no file or it cannot be read."""
    if not KEEP_FACTS:
        return KeptFacts()
    try:
        # marshal.loads, not marshal.load: from a file object it reads in small pieces, ten times slower.
        columns = marshal.loads(facts_path(folder).read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return KeptFacts()
    if not _well_formed(columns):
        return KeptFacts()
    return KeptFacts(columns)


def _well_formed(columns: object) -> bool:
    """Whether `columns` is what KeptFacts.columns gives (a damaged or foreign file is not)."""
    if not (type(columns) is tuple and len(columns) == 7 and all(type(column) is list for column in columns)):
        return False
    blobs, shapes, hardware, slots, links, hardware_table, slot_table = columns
    count = len(blobs)
    return (len(shapes) == len(hardware) == len(slots) == len(links) == count
            and all(type(table) is tuple for table in hardware_table)
            and all(type(table) is frozenset for table in slot_table)
            and all(type(index) is int and 0 <= index < len(hardware_table) for index in set(hardware))
            and all(type(index) is int and 0 <= index < len(slot_table) for index in set(slots))
            and all(type(item) is str for item in blobs) and all(type(item) is str for item in shapes)
            and all(type(item) is tuple for item in links))


def save_facts(folder: Path, facts: KeptFacts, blobs: Iterable[str]) -> None:
    """Keep the facts of `blobs` (the release files of this build) in `folder`, when facts were added or the file
    holds others: written whole to a new file, then renamed over the old one (a killed build leaves the old one
    or none). Files of other code are removed."""
    columns = facts.columns(blobs)
    if not KEEP_FACTS or len(columns[0]) == facts.loaded == len(facts):
        return  # nothing made, nothing stale
    target = facts_path(folder)
    try:
        for old in folder.glob(f"{_PREFIX}*.marshal"):
            if old != target:
                old.unlink(missing_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{_PREFIX}", dir=folder)
        try:
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(marshal.dumps(columns))
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError:
        pass
