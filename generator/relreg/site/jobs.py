"""The site stage's inputs and units of work: what the plan reads, and the jobs it returns.

A job is a call that returns some of the site's files. Jobs are independent, so a large site can
be planned and written by several processes, each taking the next job when it is free (see
write.py). Everything here is pure.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, MutableMapping, NamedTuple, Protocol, Sequence

import orjson

from relreg.registry.model import Registry, Release
from relreg.resources import code_digest
from relreg.site.notes import render_notes

if TYPE_CHECKING:
    from relreg.history.deployments import CohortChange


class BytesMemo(Protocol):
    """Bytes by key, as a dict holds them (SiteInputs.memo)."""

    def get(self, key: str) -> bytes | None: ...

    def __setitem__(self, key: str, value: bytes) -> None: ...


@dataclass(frozen=True)
class ReleaseDates:
    created: int  # unix seconds
    updated: int


@dataclass(frozen=True)
class SiteInputs:
    registry: Registry
    release_dates: Mapping[str, ReleaseDates]  # by version
    cohort_dates: Mapping[str, ReleaseDates] = field(default_factory=dict)  # by slug
    device_counts: Mapping[str, int] = field(default_factory=dict)  # by version
    device_counts_date: str | None = None  # YYYY-MM-DD the fleet snapshot was taken, when it says
    commit: str | None = None
    dirty: bool = False  # built from a work tree with uncommitted registry changes
    base_url: str | None = None  # overrides registry.yaml's site_url
    input_schemas: Mapping[str, bytes] = field(default_factory=dict)  # file name -> bytes
    # Notes already rendered and sanitized (by version), e.g. from a cache; others are rendered here.
    notes_html: Mapping[str, str] = field(default_factory=dict)
    cohort_history: Mapping[str, Sequence["CohortChange"]] = field(default_factory=dict)  # by slug, oldest first
    # What a release's own content is known by (the git blob id of its file), by version. With it,
    # plan jobs carry keys and a rebuild skips the jobs whose inputs did not change (see KeyedJob).
    release_keys: Mapping[str, str] = field(default_factory=dict)
    # A cache, never an input of any file: for a KeyedJob key the previous build ran, a reader of the
    # files it wrote (path -> bytes, OSError when gone; a large file mapped, write.MappedFile, searched and
    # sliced as bytes are), e.g. release documents to join into lists instead of encoding them again (see
    # write.served_files). None: nothing is known.
    served_files: Callable[[str], Callable[[str], bytes] | None] | None = field(default=None, compare=False)
    # A cache, never an input of any file: the ReleaseFacts of release files by blob id (as tuples), kept from
    # build to build (see site/facts_store.py). release_views reads it and adds the files it lacks.
    facts_cache: MutableMapping[str, tuple] | None = field(default=None, compare=False)
    # Makes the store a process's jobs keep the bytes in that other jobs of it use again (the release
    # documents every list shares): a dict, or for a large build one that keeps most of them on disk
    # (site/spool.SpooledBytes). Never an input of any file.
    memo: Callable[[], "BytesMemo"] = field(default=dict, compare=False)

    @property
    def site_url(self) -> str:
        return self.base_url or self.registry.config.site_url


def format_date(seconds: int) -> str:
    """The seed's date form: 2019-01-19T05:01:13.000000+00:00 (git dates are whole seconds)."""
    # time.gmtime rather than datetime.fromtimestamp(tz=utc): the same text at a twentieth of the
    # cost, and every release document carries two dates.
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime(seconds))


def percent_number(value: float) -> int | float:
    """A rollout percent as every JSON document of the site writes it: 100.0 -> 100, 10.5 -> 10.5 (a whole
    percent as an integer, as people write it; cohorts.json and the device documents alike)."""
    return int(value) if float(value).is_integer() else value


def encode_json(document: Any) -> bytes:
    """Compact, UTF-8, newline-terminated. Key order is the order the dict was built in."""
    return encode(document) + b"\n"


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(value: Any) -> bytes:
    return _ENCODER.encode(value).encode()


def encode_plain(value: Any) -> bytes:
    """`encode(value)` for a value that holds no float (a URL, a release document whose extra info has none),
    made by orjson, at a fifteenth of the cost (a release document: 52 -> 3 microseconds).

    orjson writes the bytes the standard library does here (compact, UTF-8, the same escapes) but for floats
    (`1e-7` for `1e-07`, and NaN as null), which this must not be given, and integers beyond 64 bits, which it
    refuses: those are left to `encode`, as is anything else it refuses (a key that is not a string)."""
    try:
        # A copy: orjson's bytes keep the room it grew them in, and the documents a site worker keeps
        # (one per release) took twice their size (+50 MiB a worker at 10,000 releases).
        return memoryview(orjson.dumps(value)).tobytes()
    except TypeError:
        return encode(value)


def holds_float(value: Any) -> bool:
    """Whether JSON data (dicts, lists, strings, numbers, booleans, None) holds a float anywhere."""
    if value.__class__ is float:
        return True
    if isinstance(value, dict):
        return any(holds_float(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_float(item) for item in value)
    return isinstance(value, float)


class ReleaseFacts(NamedTuple):
    """What the plan reads of a release file, but its notes and extra info, in the forms it reads them: a
    function of the file's content alone (not of its path, nor of the registry's other files), so that it is
    made once per file and kept by the file's blob id (SiteInputs.facts_cache)."""

    shape: str  # sha256 (hex, 128 bits) of the version, min_version, revision, must_pass_through, yanked and artifacts
    hardware_versions: tuple[str, ...]  # Release.hardware_versions
    image_slots: frozenset[tuple[str, str | None]]  # Release.image_slots
    # the versions a release page links to when they exist: min_version (or None), then each delta base, once each
    links: tuple[str | None, ...]


def release_facts(release: Release) -> ReleaseFacts:
    """The facts of `release` (see ReleaseFacts)."""
    artifacts = release.artifacts
    # The artifacts' fields as stored (see Artifact): a plain tuple's repr is made in C, a tenth of the time
    # of Artifact's own (0.6 s of a 10,000-release build), and it tells apart the same data, since the
    # stored form is a function of the data.
    shape = repr((release.version, release.min_version, release.revision, release.must_pass_through,
                  release.yanked, tuple(map(tuple, artifacts))))
    return ReleaseFacts(hashlib.sha256(shape.encode()).hexdigest()[:32], release.hardware_versions,
                        release.image_slots,
                        tuple(dict.fromkeys((release.min_version, *[a.delta_from for a in artifacts if a.delta_from]))))


@dataclass(frozen=True)
class ReleaseView:
    """A release with everything the outputs need, computed once per build."""

    id: int
    release: Release
    dates: ReleaseDates
    # The notes as safe HTML, or the mapping that gives them by version (SiteInputs.notes_html): a large
    # build keeps most of them on disk (site/spool.SpooledText), not in the views. Read as `notes_html`.
    stored_notes: "str | Mapping[str, str]" = field(compare=False, repr=False)
    count_devices: int
    version: str = field(init=False)  # the release's: a field, not a property, read a hundred thousand times a build
    # view_key's value, made once by release_views (None: not made, or the release's key is unknown)
    key: str | None = field(default=None, compare=False)
    # release_facts(release), made by release_views from the facts cache, else here
    facts: ReleaseFacts = field(default=None, compare=False, repr=False)  # type: ignore[assignment]

    @property
    def notes_html(self) -> str:
        """The release's notes as safe HTML."""
        notes = self.stored_notes
        return notes if notes.__class__ is str else notes[self.version]  # type: ignore[index,return-value]

    def __post_init__(self) -> None:
        object.__setattr__(self, "version", self.release.version)
        if self.facts is None:
            object.__setattr__(self, "facts", release_facts(self.release))


def creation_order(releases: Iterable[Release], release_dates: Mapping[str, ReleaseDates]) -> list[Release]:
    """`releases` in the order of their ids: by created date, ties broken by version (release_views numbers
    them from 1 in this order, so adding a later release never changes an earlier id)."""
    return sorted(releases, key=lambda release: (release_dates[release.version].created, release.parsed_version.key))


def release_views(inputs: SiteInputs, render: Callable[[str, str], str] = render_notes) -> list[ReleaseView]:
    """Every release with its stable id, newest first (created date, then version, descending).

    Ids number releases in order of creation, ties broken by version, so adding
    a later release never changes an earlier id.
    """
    by_creation = [(inputs.release_dates[r.version], r)
                   for r in creation_order(inputs.registry.releases, inputs.release_dates)]
    release_keys = inputs.release_keys
    notes_html = inputs.notes_html
    counts = inputs.device_counts
    cache = inputs.facts_cache if inputs.facts_cache is not None else {}
    views = []
    for index, (dates, release) in enumerate(by_creation, start=1):
        version = release.version
        count = int(counts.get(version, 0))
        blob = release_keys.get(version)
        known = cache.get(blob) if blob is not None else None
        if known is None:
            facts = release_facts(release)
            if blob is not None:
                cache[blob] = tuple(facts)
        else:
            facts = _make_facts(known)
        views.append(_release_view(
            index, release, dates,
            notes_html if version in notes_html else render(release.notes, release.notes_format),
            count, _view_key(blob, index, dates, count), facts))
    views.reverse()
    return views


_make_facts = ReleaseFacts._make


def _release_view(view_id: int, release: Release, dates: ReleaseDates, stored_notes: "str | Mapping[str, str]",
                  count_devices: int, key: str | None, facts: ReleaseFacts) -> ReleaseView:
    """ReleaseView(view_id, release, dates, stored_notes, count_devices, key, facts): the same object, without
    the frozen dataclass's __init__ (a call per field), for the ten thousand views of a build."""
    view = _new_object(ReleaseView)
    _set_attribute(view, "__dict__", {"id": view_id, "release": release, "dates": dates, "stored_notes": stored_notes,
                                      "count_devices": count_devices, "version": release.version, "key": key,
                                      "facts": facts})
    return view


_new_object = object.__new__
_set_attribute = object.__setattr__


def _view_key(content: str | None, view_id: int, dates: ReleaseDates, count_devices: int) -> str | None:
    if content is None:
        return None
    return f"{content}/{view_id}/{dates.created}/{dates.updated}/{count_devices}"


@dataclass(frozen=True)
class Keyed:
    """A file known by a key of everything its bytes depend on, rendered only when needed.

    When the previous build wrote the same path with the same key, the writer
    links that file and never calls `render`: a rebuild after one new release
    does not render the ten thousand pages that did not change.
    """

    key: str
    render: Callable[[], bytes]
    # The same bytes as `render` gives, in parts, with their sha256 (hex): for a file whose digest is cheaper
    # made from a digest of a part it shares with other files (the pages of lists with the same releases).
    # None: the writer renders and hashes the file itself.
    render_digested: "Callable[[], tuple[Sequence[bytes], str]] | None" = field(default=None, compare=False)
    # The same bytes as `render` gives, made part by part as the writer writes them: for a file too large to
    # hold whole in a worker (the releases list: 130 MB at 100,000 releases). Taken over render_digested.
    render_stream: "Callable[[], Iterable[bytes]] | None" = field(default=None, compare=False)


# A piece of the plan: a call that returns some of the site's files, as a mapping or,
# where they are large together, one by one. Jobs are independent, so a large site can
# be planned and written by several processes, each taking the next job when it is
# free (see write.py).
PlanJob = Callable[[], "Mapping[str, bytes | Keyed] | Iterable[tuple[str, bytes | Keyed]]"]
JOB_SIZE = 500  # releases (or index keys) per job: small enough to balance, large enough to amortize


@dataclass(frozen=True)
class KeyedJob:
    """A plan job known by a key of everything its files depend on.

    When the previous build ran a job with the same key, the writer takes that
    job's files from the previous output and does not run it: a rebuild after
    one new release runs the few jobs that hold it, not the hundreds that do not.
    """

    key: str
    run: PlanJob

    def __call__(self) -> "Mapping[str, bytes | Keyed] | Iterable[tuple[str, bytes | Keyed]]":
        return self.run()


# SiteInputs fields that job keys take in part (per release, per cohort) or that no keyed job
# reads. Any other field, including one added later, is taken whole into every job key: a
# new input can make a rebuild do more work, never serve a stale file.
_KEYED_IN_PART = frozenset({"registry", "release_dates", "cohort_dates", "device_counts", "commit", "dirty",
                            "input_schemas", "notes_html", "cohort_history", "release_keys", "served_files",
                            "facts_cache", "memo"})


def other_inputs(inputs: SiteInputs) -> str:
    """The SiteInputs fields not keyed in part, for every job and file key."""
    return repr([(f.name, getattr(inputs, f.name)) for f in fields(inputs) if f.name not in _KEYED_IN_PART])


def job_key(inputs: SiteInputs, *parts: object) -> str:
    """A job key from the code, the inputs not keyed in part, and the job's own inputs (deterministic reprs)."""
    return hashlib.sha256(code_digest() + repr((other_inputs(inputs), parts)).encode()).hexdigest()


def view_key(inputs: SiteInputs, view: "ReleaseView") -> str | None:
    """What a release's documents depend on: its file, id, dates and device count; None if unknown."""
    if view.key is not None:  # made by release_views from the same inputs
        return view.key
    return _view_key(inputs.release_keys.get(view.version), view.id, view.dates, view.count_devices)


def views_digest(views: Sequence["ReleaseView"], *columns: str) -> str:
    """The releases of `views` in their order by their facts but the notes (ReleaseFacts.shape, which holds the
    version) and `columns` of each ("id", "created", "updated"), hashed (hex): a part of the key of what shows
    those alone (a notes fix or a rollout leaves it as it was)."""
    digest = hashlib.sha256("\0".join([view.facts.shape for view in views]).encode())
    for column in columns:
        values = [view.id for view in views] if column == "id" else \
            [getattr(view.dates, column) for view in views]
        digest.update(b"\0" + column.encode() + b"\0" + ",".join(map(str, values)).encode())
    return digest.hexdigest()


def by_id_chunks(views: Sequence["ReleaseView"], size: int | None = None) -> list[list["ReleaseView"]]:
    """Views (newest first) in chunks of `size` counted from the oldest, each newest first.

    A new release goes into the last chunk only, so the others keep their members
    and, as KeyedJobs, their keys.
    """
    size = size or JOB_SIZE
    oldest_first = list(reversed(views))
    return [list(reversed(oldest_first[start:start + size])) for start in range(0, len(oldest_first), size)][::-1]


def bucket_of(name: str, buckets: int) -> int:
    """A stable bucket for a name: adding names elsewhere never moves it (unlike chunks of a sorted list)."""
    return zlib.crc32(name.encode()) % buckets


def bucket_count(items: int, size: int | None = None) -> int:
    """A power of two near items / size, so the count (and every bucket) changes only when the size doubles."""
    size = size or JOB_SIZE
    count = 1
    while count * size < items:
        count *= 2
    return count


class KeyedSection:
    """Plan jobs known together by a key of everything their files depend on, planned only when needed.

    `plan` gives KeyedJobs only. When the previous build planned a section of the same key, the writer takes
    the keys of its jobs from that build's manifest and carries their files without calling `plan`: a rebuild
    after a notes fix does not plan the device documents, which do not show notes. A job that cannot be
    carried (its files gone) is run from the section's plan, made then.
    """

    def __init__(self, key: str, plan: Callable[[], Sequence["KeyedJob"]]) -> None:
        self.key = key
        self._plan = plan
        self._planned: list[KeyedJob] | None = None

    def jobs(self) -> list["KeyedJob"]:
        """The section's jobs (planned on the first call)."""
        if self._planned is None:
            planned = list(self._plan())
            if not all(isinstance(job, KeyedJob) for job in planned):
                raise AssertionError(f"section {self.key} has a job without a key")
            self._planned = planned
        return self._planned

    def job(self, key: str) -> "KeyedJob":
        """The section's job of key `key` (KeyError when it has none)."""
        for job in self.jobs():
            if job.key == key:
                return job
        raise KeyError(key)

    def __repr__(self) -> str:
        return f"KeyedSection({self.key!r})"


def expand_sections(plan: Iterable["PlanJob | KeyedSection"]) -> list["PlanJob"]:
    """The plan with each section replaced by its jobs, in place."""
    return [job for item in plan for job in (item.jobs() if isinstance(item, KeyedSection) else [item])]


def job_files(part: Mapping[str, bytes | Keyed] | Iterable[tuple[str, bytes | Keyed]]
              ) -> Iterable[tuple[str, bytes | Keyed]]:
    """What one job gives, as (path, content) pairs."""
    return part.items() if isinstance(part, Mapping) else part


def merge_jobs(jobs: Iterable["PlanJob | KeyedSection"]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for job in expand_sections(jobs):
        for path, content in job_files(job()):
            if path in files:
                raise AssertionError(f"two plan jobs give {path}")
            files[path] = content.render() if isinstance(content, Keyed) else content
    return files


def chunks(items: Sequence[Any], size: int = JOB_SIZE) -> list[Sequence[Any]]:
    return [items[start:start + size] for start in range(0, len(items), size)]
