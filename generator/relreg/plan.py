"""The plan: a pure function from the model to the site's files.

`plan_site` takes everything that varies (dates, device counts, the commit,
the base URL) as input and returns {output path: bytes}. No clock, no disk,
no git: the same inputs always give byte-identical output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from relreg import __version__
from relreg.deployments import CohortChange
from relreg.history import format_date
from relreg.model import Artifact, Cohort, HardwareVersion, Registry, Release
from relreg.notes import render_notes

API = "api/v1"
PER_PAGE = 100


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
    commit: str | None = None
    dirty: bool = False  # built from a work tree with uncommitted registry changes
    base_url: str | None = None  # overrides registry.yaml's site_url
    input_schemas: Mapping[str, bytes] = field(default_factory=dict)  # file name -> bytes
    # Notes already rendered and sanitized (by version), e.g. from a cache; others are rendered here.
    notes_html: Mapping[str, str] = field(default_factory=dict)
    cohort_history: Mapping[str, Sequence["CohortChange"]] = field(default_factory=dict)  # by slug, oldest first

    @property
    def site_url(self) -> str:
        return self.base_url or self.registry.config.site_url


def encode_json(document: Any) -> bytes:
    """Compact, UTF-8, newline-terminated. Key order is the order the dict was built in."""
    return _encode(document) + b"\n"


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _encode(value: Any) -> bytes:
    return _ENCODER.encode(value).encode()


def _sorted_json(value: Any) -> Any:
    """Author-provided JSON (extra_info) with keys sorted, so output does not depend on key order in YAML."""
    if isinstance(value, dict):
        return {key: _sorted_json(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_json(item) for item in value]
    return value


@dataclass(frozen=True)
class ReleaseView:
    """A release with everything the outputs need, computed once per build."""

    id: int
    release: Release
    dates: ReleaseDates
    notes_html: str
    count_devices: int

    @property
    def version(self) -> str:
        return self.release.version


def release_views(inputs: SiteInputs, render: Callable[[str, str], str] = render_notes) -> list[ReleaseView]:
    """Every release with its stable id, newest first (created date, then version, descending).

    Ids number releases in order of creation, ties broken by version, so adding
    a later release never changes an earlier id.
    """
    releases = inputs.registry.releases
    dated = [(inputs.release_dates[r.version], r) for r in releases]
    by_creation = sorted(dated, key=lambda item: (item[0].created, item[1].parsed_version.key))
    views = [ReleaseView(
        id=index,
        release=release,
        dates=dates,
        notes_html=inputs.notes_html[release.version] if release.version in inputs.notes_html
        else render(release.notes, release.notes_format),
        count_devices=int(inputs.device_counts.get(release.version, 0)),
    ) for index, (dates, release) in enumerate(by_creation, start=1)]
    views.reverse()
    return views


def artifact_document(artifact: Artifact, artifact_base_url: str) -> dict[str, Any]:
    return {
        "hardware_version": artifact.hardware_version,
        "software_type": artifact.software_type,
        "type": artifact.type,
        "delta_from": artifact.delta_from,
        "build_id": artifact.build_id,
        "filename": artifact.filename,
        "url": artifact.absolute_url(artifact_base_url),
        "size": artifact.size,
        "sha256": artifact.sha256,
    }


def release_document(view: ReleaseView, artifact_base_url: str) -> dict[str, Any]:
    """The seed's Release, field for field and in its order, plus artifacts and yanked."""
    release = view.release
    return {
        "id": view.id,
        "created_date": format_date(view.dates.created),
        "updated_date": format_date(view.dates.updated),
        "version": release.version,
        "min_version": release.min_version or "",
        "revision": release.revision or "",
        "notes": view.notes_html,
        "extra_info": _sorted_json(release.extra_info),
        "count_devices": view.count_devices,
        "artifacts": [artifact_document(a, artifact_base_url) for a in release.artifacts],
        "yanked": release.yanked,
    }


def release_path(version: str) -> str:
    return f"{API}/releases/{version}.json"


def index_path(dimension: str, key: str, page: int = 1) -> str:
    return f"{API}/releases/{dimension}/{key}.json" if page == 1 else \
        f"{API}/releases/{dimension}/{key}/page/{page}.json"


def all_releases_path(page: int = 1) -> str:
    return f"{API}/releases.json" if page == 1 else f"{API}/releases/page/{page}.json"


def paged(items: list[bytes], path_of: Callable[[int], str], site_url: str) -> dict[str, bytes]:
    """The seed's list envelope, split into pages of PER_PAGE that link to each other.

    Items come encoded already: a release appears in many lists and is encoded once.
    The envelope is assembled from bytes too, since a large registry has a
    hundred thousand single-release lists (one per build id).
    """
    total = len(items)
    page_count = max(1, -(-total // PER_PAGE))
    url = [b"null"] + [_encode(site_url + path_of(page)) for page in range(1, page_count + 1)] + [b"null"]
    files: dict[str, bytes] = {}
    for page in range(1, page_count + 1):
        chunk = items[(page - 1) * PER_PAGE: page * PER_PAGE]
        files[path_of(page)] = b"".join((
            b'{"data":[', b",".join(chunk),
            b'],"paging":{"page":%d,"per_page":%d,"page_count":%d,"item_count":%d,"total_count":%d}'
            % (page, PER_PAGE, page_count, len(chunk), total),
            b',"links":{"self":', url[page], b',"first":', url[1], b',"last":', url[page_count],
            b',"prev":', url[page - 1], b',"next":', url[page + 1], b"}}\n"))
    return files


def _index_keys(release: Release) -> set[tuple[str, str]]:
    """The (query dimension, value) lists a release belongs to."""
    keys = {("version", release.version)}
    if release.revision:
        keys.add(("revision", release.revision))
    for artifact in release.artifacts:
        keys.add(("hardware_version", artifact.hardware_version))
        keys.add(("build_id", artifact.build_id))
    return keys


DIMENSIONS = ("version", "revision", "hardware_version", "build_id")


@dataclass(frozen=True)
class Keyed:
    """A file known by a key of everything its bytes depend on, rendered only when needed.

    When the previous build wrote the same path with the same key, the writer
    links that file and never calls `render`: a rebuild after one new release
    does not render the ten thousand pages that did not change.
    """

    key: str
    render: Callable[[], bytes]


# A piece of the plan: a call that returns some of the site's files, as a mapping or,
# where they are large together, one by one. Jobs are independent, so a large site can
# be planned and written by several processes, each taking the next job when it is
# free (see write.py).
PlanJob = Callable[[], "Mapping[str, bytes | Keyed] | Iterable[tuple[str, bytes | Keyed]]"]
JOB_SIZE = 500  # releases (or index keys) per job: small enough to balance, large enough to amortize


def job_files(part: Mapping[str, bytes | Keyed] | Iterable[tuple[str, bytes | Keyed]]
              ) -> Iterable[tuple[str, bytes | Keyed]]:
    """What one job gives, as (path, content) pairs."""
    return part.items() if isinstance(part, Mapping) else part


def merge_jobs(jobs: Iterable[PlanJob]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for job in jobs:
        for path, content in job_files(job()):
            if path in files:
                raise AssertionError(f"two plan jobs give {path}")
            files[path] = content.render() if isinstance(content, Keyed) else content
    return files


def _chunks(items: Sequence[Any], size: int = JOB_SIZE) -> list[Sequence[Any]]:
    return [items[start:start + size] for start in range(0, len(items), size)]


def api_jobs(inputs: SiteInputs, views: list[ReleaseView]) -> list[PlanJob]:
    """The JSON API. Each release is encoded once, here, and shared by every list that holds it."""
    registry = inputs.registry
    site_url = inputs.site_url
    base = registry.config.artifact_base_url
    encoded = {view.version: _encode(release_document(view, base)) for view in views}  # newest first

    def release_files(versions: Sequence[str]) -> dict[str, bytes]:
        return {release_path(version): b'{"data":' + encoded[version] + b"}\n" for version in versions}

    members: dict[tuple[str, str], list[bytes]] = {}  # (dimension, key) -> its releases, newest first
    for view in views:
        document = encoded[view.version]
        for dimension_key in _index_keys(view.release):
            members.setdefault(dimension_key, []).append(document)

    def index_files(keys: Sequence[tuple[str, str]]) -> Iterator[tuple[str, bytes]]:
        # One list at a time: a hardware version's list holds every release (50 MB at 10,000 releases).
        for dimension, key in keys:
            yield from paged(members[(dimension, key)],
                             lambda page, d=dimension, k=key: index_path(d, k, page), site_url).items()

    def lists_and_entry_point() -> dict[str, bytes]:
        files = paged(list(encoded.values()), all_releases_path, site_url)
        files[f"{API}/hardware_versions.json"] = encode_json(
            {"data": [hardware_document(h, views, site_url) for h in registry.hardware],
             "paging": _single_page(len(registry.hardware))})
        cohorts = cohort_documents(inputs)
        files[f"{API}/cohorts.json"] = encode_json({"data": cohorts, "paging": _single_page(len(cohorts))})
        files[f"{API}/index.json"] = encode_json({"data": entry_point(inputs, len(views))})
        return files

    return [lists_and_entry_point,
            *[partial(release_files, chunk) for chunk in _chunks(list(encoded))],
            *[partial(index_files, chunk) for chunk in _chunks(sorted(members))]]


def api_documents(inputs: SiteInputs, views: list[ReleaseView]) -> dict[str, bytes]:
    return merge_jobs(api_jobs(inputs, views))


def _single_page(count: int) -> dict[str, int]:
    return {"page": 1, "per_page": max(count, 1), "page_count": 1, "item_count": count, "total_count": count}


def latest_release(views: Iterable[ReleaseView], hardware: str, *, prereleases: bool = False) -> Release | None:
    candidates = [v.release for v in views
                  if not v.release.is_yanked and hardware in v.release.hardware_versions
                  and (prereleases or not v.release.parsed_version.is_prerelease)]
    return max(candidates, key=lambda r: r.parsed_version.key, default=None)


def hardware_document(hardware: HardwareVersion, views: list[ReleaseView], site_url: str) -> dict[str, Any]:
    latest = latest_release(views, hardware.name)
    return {
        "name": hardware.name,
        "description": hardware.description,
        "latest_version": latest.version if latest else None,
        "count_releases": sum(1 for v in views if hardware.name in v.release.hardware_versions),
        "releases_url": site_url + index_path("hardware_version", hardware.name),
    }


def cohort_documents(inputs: SiteInputs) -> list[dict[str, Any]]:
    """Cohorts with stable ids in order of creation (ties by slug), listed by slug."""
    cohorts = inputs.registry.cohorts
    fallback = ReleaseDates(0, 0)
    by_creation = sorted(cohorts, key=lambda c: (inputs.cohort_dates.get(c.slug, fallback).created, c.slug))
    ids = {cohort.slug: index for index, cohort in enumerate(by_creation, start=1)}
    return [cohort_document(c, ids[c.slug], inputs.cohort_dates.get(c.slug, fallback)) for c in cohorts]


def cohort_document(cohort: Cohort, cohort_id: int, dates: ReleaseDates) -> dict[str, Any]:
    return {
        "id": cohort_id,
        "slug": cohort.slug,
        "name": cohort.name,
        "description": cohort.description,
        "created_date": format_date(dates.created),
        "updated_date": format_date(dates.updated),
        "hardware_versions": list(cohort.hardware_versions),
        "releases": [{"version": a.version, "rollout_percent": a.rollout_percent} for a in cohort.releases],
    }


def entry_point(inputs: SiteInputs, release_count: int) -> dict[str, Any]:
    site_url = inputs.site_url
    config = inputs.registry.config
    return {
        "api_version": "v1",
        "name": config.name,
        "description": config.description,
        "site_url": site_url,
        "commit": inputs.commit,
        "dirty": inputs.dirty,
        "generator": f"relreg {__version__}",
        "version_scheme": config.version_scheme,
        "counts": {"releases": release_count, "hardware_versions": len(inputs.registry.hardware),
                   "cohorts": len(inputs.registry.cohorts)},
        "urls": {
            "releases": site_url + all_releases_path(),
            "release": site_url + f"{API}/releases/{{version}}.json",
            **{f"releases_by_{d}": site_url + f"{API}/releases/{d}/{{{d}}}.json" for d in DIMENSIONS},
            "hardware_versions": site_url + f"{API}/hardware_versions.json",
            "cohorts": site_url + f"{API}/cohorts.json",
            "schemas": site_url + "schemas/",
        },
    }


def plan_jobs(inputs: SiteInputs) -> list[PlanJob]:
    """The whole site but its serving configuration (which needs every path: see serving_files)."""
    from relreg.devices import device_documents
    from relreg.site import site_jobs

    views = release_views(inputs)
    schemas = {f"schemas/{name}": content for name, content in inputs.input_schemas.items()}
    api, site = api_jobs(inputs, views), site_jobs(inputs, views)
    # The two jobs over every release first, so that workers never wait on them at the end.
    return [api[0], site[0], *api[1:], partial(device_documents, inputs, views), *site[1:], lambda: dict(schemas)]


def plan_site(inputs: SiteInputs) -> dict[str, bytes]:
    """Every file of the site, by path relative to the output folder."""
    from relreg.serving import serving_files

    files = merge_jobs(plan_jobs(inputs))
    files.update(serving_files(list(files)))
    return dict(sorted(files.items()))
