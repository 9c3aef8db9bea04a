"""The JSON API: the seed's Release documents, the list indexes per query dimension, hardware
versions, cohorts and the entry point. Each release is encoded once and shared by every list.
"""

from __future__ import annotations

import hashlib
import os
from functools import partial
from itertools import chain
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from relreg import __version__
from relreg.registry.model import Artifact, Cohort, HardwareVersion, Release
from relreg.site import jobs
from relreg.site.jobs import (
    Keyed,
    KeyedJob,
    KeyedSection,
    PlanJob,
    ReleaseDates,
    ReleaseView,
    SiteInputs,
    by_id_chunks,
    encode,
    encode_json,
    encode_plain,
    expand_sections,
    format_date,
    holds_float,
    job_key,
    merge_jobs,
    percent_number,
    view_key,
    views_digest,
)
from relreg.site.paths import API, DIMENSIONS, PER_PAGE, all_releases_path, index_path, release_path


def _sorted_json(value: Any) -> Any:
    """Author-provided JSON (extra_info) with keys sorted, so output does not depend on key order in YAML."""
    if isinstance(value, dict):
        return {key: _sorted_json(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_json(item) for item in value]
    return value


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


def encode_release(document: dict[str, Any]) -> bytes:
    """A release document (release_document) as `encode` gives it: its only floats can be in its extra info."""
    return encode(document) if holds_float(document["extra_info"]) else encode_plain(document)


def paged(items: list[bytes], path_of: Callable[[int], str], site_url: str) -> Iterator[tuple[str, bytes]]:
    """The seed's list envelope, split into pages of PER_PAGE that link to each other.

    Items come encoded already: a release appears in many lists and is encoded once.
    The envelope is assembled from bytes too, since a large registry has a
    hundred thousand single-release lists (one per build id).
    """
    total = len(items)
    page_count = max(1, -(-total // PER_PAGE))
    url = [b"null"] + [encode_plain(site_url + path_of(page)) for page in range(1, page_count + 1)] + [b"null"]
    for page in range(1, page_count + 1):  # one page at a time: the pages of a large list are as large as it
        chunk = items[(page - 1) * PER_PAGE: page * PER_PAGE]
        yield path_of(page), b"".join((
            b'{"data":[', b",".join(chunk),
            b'],"paging":{"page":%d,"per_page":%d,"page_count":%d,"item_count":%d,"total_count":%d}'
            % (page, PER_PAGE, page_count, len(chunk), total),
            b',"links":{"self":', url[page], b',"first":', url[1], b',"last":', url[page_count],
            b',"prev":', url[page - 1], b',"next":', url[page + 1], b"}}\n"))


# What the data parts of list pages kept for other lists of a process may hold (PageBodies): every page of a
# list of 10,000 releases (47 MB), a tenth of one of 100,000.
PAGE_BODIES_BYTES = 48 * 1024 * 1024


class PageBodies:
    """The data parts of list pages (keyed_pages: a page before its links) in one process, shared by the
    lists that hold the same releases at the same place: each is hashed once, and while `budget` bytes
    allow, kept, so that such a list's page takes its data instead of reading its releases again. A
    hardware version that every release has lists what `releases.json` lists: at 10,000 releases, a
    hundred pages of half a megabyte for each such hardware version, on every build that adds a release.

    Kept only in the process that made this object (the one that planned), when it runs the jobs itself:
    a rebuild, a build of a small registry, `relreg serve`. The forked workers of a full build, each
    already about as large as the build process, only hash.
    """

    def __init__(self, budget: int = PAGE_BODIES_BYTES) -> None:
        self._found: dict[tuple[int, int, int, str], tuple[Any, bytes | None]] = {}
        self._left = budget
        self._owner = os.getpid()

    def get(self, name: tuple[int, int, int, str]) -> "tuple[Any, bytes | None] | None":
        """(a sha256 object of the data, the data or None if not kept) for the page named `name` (its place,
        the list's page count and length, and its items' ids), or None when no list had it yet."""
        return self._found.get(name)

    def add(self, name: tuple[int, int, int, str], body: bytes) -> Any:
        """Keep (within the budget) and hash a page's data; returns the sha256 object."""
        hashed = hashlib.sha256(body)
        kept = body if len(body) <= self._left and os.getpid() == self._owner else None
        if kept is not None:
            self._left -= len(body)
        self._found[name] = (hashed, kept)
        return hashed


def keyed_pages(keys: Sequence[str], item: Callable[[int], bytes], path_of: Callable[[int], str], site_url: str,
                prefix: str, ids: Sequence[str] | None = None,
                bodies: PageBodies | None = None) -> Iterator[tuple[str, Keyed]]:
    """The pages of `paged`, each a Keyed file known by `prefix` (everything the list's pages share), its
    place in the list and the keys of its items (`keys[i]` stands for the bytes `item(i)` gives).

    A release changed in a list of many pages changes one page: the writer links the others from the
    served site without their items being read or encoded.

    With `ids` (what names the bytes of `item(i)`, among the lists that share `bodies`) and `bodies`
    (shared by those lists), each page also comes with its sha256 (Keyed.render_digested): the part
    of a page before its links is the same in every list with the same items at the same place, and is
    hashed once for them all, and made once while PageBodies keeps it (a hardware version on every
    release has the pages of the releases list).
    """
    total = len(keys)
    page_count = max(1, -(-total // PER_PAGE))

    def parts(page: int) -> tuple[bytes, bytes]:
        start = (page - 1) * PER_PAGE
        items = [item(index) for index in range(start, min(start + PER_PAGE, total))]
        return _page_parts(items, page, page_count, total, path_of, site_url)

    def render(page: int) -> bytes:
        return b"".join(parts(page))

    def render_digested(page: int) -> tuple[tuple[bytes, bytes], str]:
        assert ids is not None and bodies is not None
        start = (page - 1) * PER_PAGE
        name = (page, page_count, total, "\0".join(ids[start:start + PER_PAGE]))
        known = bodies.get(name)
        if known is not None and known[1] is not None:
            hashed, body = known
            links = _page_links(page, page_count, path_of, site_url)
        else:
            body, links = parts(page)
            hashed = known[0] if known is not None else bodies.add(name, body)
        digest = hashed.copy()
        digest.update(links)
        return (body, links), digest.hexdigest()

    digested = ids is not None and bodies is not None
    for page in range(1, page_count + 1):
        start = (page - 1) * PER_PAGE
        key = hashlib.sha256(f"{prefix}\0{page}\0{page_count}\0{total}\0".encode()
                             + "\0".join(keys[start:start + PER_PAGE]).encode()).hexdigest()
        yield path_of(page), Keyed(key, partial(render, page), partial(render_digested, page) if digested else None)


def _page_parts(items: list[bytes], page: int, page_count: int, total: int, path_of: Callable[[int], str],
                site_url: str) -> tuple[bytes, bytes]:
    """One page of `paged`, alone (the same bytes `paged` gives for it), in two parts: what the lists with
    the same items share (data and paging), then the links, which name the list."""
    # The items between commas, joined once with the rest (a page of a long list is half a megabyte).
    body = [b'{"data":[', *([b","] * (2 * len(items) - 1) if items else ()),
            b'],"paging":{"page":%d,"per_page":%d,"page_count":%d,"item_count":%d,"total_count":%d}'
            b',"links":{"self":' % (page, PER_PAGE, page_count, len(items), total)]
    body[1:-1:2] = items
    return b"".join(body), _page_links(page, page_count, path_of, site_url)


def _page_links(page: int, page_count: int, path_of: Callable[[int], str], site_url: str) -> bytes:
    """The part of a page of `paged` after its data: its links, which name the list."""
    if page_count == 1:  # a list of one page (a version's, a build id's: a hundred thousand of them)
        only = encode_plain(site_url + path_of(1))
        url = {0: b"null", 1: only, 2: b"null"}
    else:
        url = {number: encode_plain(site_url + path_of(number)) if 1 <= number <= page_count else b"null"
               for number in (1, page - 1, page, page + 1, page_count)}
    return b"".join((url[page], b',"first":', url[1], b',"last":', url[page_count],
                     b',"prev":', url[page - 1], b',"next":', url[page + 1], b"}}\n"))


def api_jobs(inputs: SiteInputs, views: list[ReleaseView]) -> list[PlanJob]:
    """The JSON API as plan jobs: api_plan with its section expanded."""
    return expand_sections(api_plan(inputs, views))


def api_plan(inputs: SiteInputs, views: list[ReleaseView]) -> "list[PlanJob | KeyedSection]":
    """The JSON API: with release keys in the inputs, one section of everything made from the releases (known
    by their view keys, the hardware versions and the settings: a rollout change leaves it as it was, and the
    writer carries it without planning it), and a small job of the cohorts and the entry point; else the
    jobs of _api_jobs, unkeyed."""
    view_keys = {view.version: view.key if view.key is not None else view_key(inputs, view) for view in views}
    if any(key is None for key in view_keys.values()):
        return _api_jobs(inputs, views, None)
    registry = inputs.registry
    key = job_key(inputs, "api", registry.config.artifact_base_url, inputs.site_url, repr(registry.hardware),
                  hashlib.sha256("\0".join(view_keys.values()).encode()).hexdigest())  # type: ignore[arg-type]
    return [KeyedSection(key, partial(_api_jobs, inputs, views, view_keys)),
            partial(_cohorts_and_entry_point, inputs, len(views))]


def _cohorts_and_entry_point(inputs: SiteInputs, release_count: int) -> dict[str, bytes]:
    cohorts = cohort_documents(inputs)
    return {f"{API}/cohorts.json": encode_json({"data": cohorts, "paging": _single_page(len(cohorts))}),
            f"{API}/index.json": encode_json({"data": entry_point(inputs, release_count)})}


def _api_jobs(inputs: SiteInputs, views: list[ReleaseView], view_keys: "dict[str, str] | None") -> list[PlanJob]:
    """The JSON API. Each release is encoded once per process, when a job first needs it, and
    shared by every list that holds it.

    With release keys in the inputs, the jobs over releases and over lists are KeyedJobs in stable
    groups (releases by id, with the small lists whose newest release they hold), so a new release
    changes the keys of the few groups that hold it, and a rebuild runs only those and the lists of
    more than a page, whose pages are Keyed files: a changed release rewrites the pages that hold it,
    a new one every page (each shifts by one).
    """
    registry = inputs.registry
    site_url = inputs.site_url
    base = registry.config.artifact_base_url
    by_version = {view.version: view for view in views}
    # version -> its document, as jobs in this process need them: the lists of every release (six of
    # them) need each, so a process of a large build would hold them all (480 MB at 100,000 releases)
    # but for a memo that keeps them on disk (SiteInputs.memo).
    encoded = inputs.memo()

    def document(version: str) -> bytes:
        found = encoded.get(version)
        if found is None:
            found = served_document(version)
            if found is None:
                found = encode_release(release_document(by_version[version], base))
            encoded[version] = found
        return found

    def release_files(versions: Sequence[str]) -> dict[str, bytes]:
        return {release_path(version): b'{"data":' + document(version) + b"}\n" for version in versions}

    # (dimension, key) -> its releases' versions, newest first, for the lists a release may share with
    # others. Built without a set per release: this runs over every release of the site. A version's own
    # list (one release) is not kept here: its members are known.
    members: dict[tuple[str, str], list[str]] = {}
    get = members.get
    # Build ids are unique in a valid registry: then each names a list of one release, its own, and they
    # are not gathered here (a hundred thousand of them at 10,000 releases) but named when a job runs.
    build_ids = [artifact.build_id_key for view in views for artifact in view.release.artifacts]  # equal as build_id
    unique_builds = BUILD_ID_FAST_PATH and len(set(build_ids)) == len(build_ids)
    del build_ids
    # build id -> its release, for the build ids group_lists has named (the only ones a job asks members_of for)
    owner: dict[str, str] = {}
    # Revisions too, when each names one release (the usual case: a release is built from a commit of its own).
    revisions = [view.release.revision for view in views if view.release.revision] if unique_builds else []
    unique_revisions = unique_builds and len(set(revisions)) == len(revisions)
    del revisions
    revision_owner: dict[str, str] = {}  # as `owner`, for the revisions group_lists has named
    if unique_builds:
        members.update(_hardware_and_revision_lists(views, with_revisions=not unique_revisions))
    else:
        for view in views:
            release = view.release
            version = release.version
            names = [("hardware_version", hardware) for hardware in release.hardware_versions]
            if release.revision:
                names.append(("revision", release.revision))
            names += [("build_id", artifact.build_id) for artifact in release.artifacts]
            for name in names:
                found = get(name)
                if found is None:
                    members[name] = [version]
                elif found[-1] != version:  # a release names a list once
                    found.append(version)

    def members_of(name: tuple[str, str]) -> list[str]:
        if name[0] == "version":
            return [name[1]]
        if unique_builds and name[0] == "build_id":
            if name[1] not in owner:  # not named by group_lists in this process: every one is looked up
                owner.update((artifact.build_id, view.version) for view in views for artifact in view.release.artifacts)
            return [owner[name[1]]]
        if unique_revisions and name[0] == "revision":
            if name[1] not in revision_owner:
                revision_owner.update((view.release.revision, view.version) for view in views if view.release.revision)
            return [revision_owner[name[1]]]
        return members[name]

    def index_files(keys: Sequence[tuple[str, str]]) -> Iterator[tuple[str, bytes]]:
        # One list at a time: a hardware version's list holds every release (50 MB at 10,000 releases).
        for dimension, key in keys:
            yield from paged([document(version) for version in members_of((dimension, key))],
                             lambda page, d=dimension, k=key: index_path(d, k, page), site_url)

    def grouped_index_files(versions: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        return index_files(group_lists(versions))

    def all_releases() -> Iterator[tuple[str, bytes]]:
        return paged([document(view.version) for view in views], all_releases_path, site_url)

    def hardware_versions() -> dict[str, bytes]:
        # The version key of every stable release (not yanked, not a pre-release), for each hardware's latest.
        stable = {view.version: view.release.parsed_version.key for view in views
                  if view.release.yanked is None and not view.release.parsed_version.is_prerelease}
        return {f"{API}/hardware_versions.json": encode_json(
            {"data": [hardware_document(h, members.get(("hardware_version", h.name), []), stable, site_url)
                      for h in registry.hardware],
             "paging": _single_page(len(registry.hardware))})}

    def lists_and_entry_point() -> dict[str, bytes]:
        return {**hardware_versions(), **_cohorts_and_entry_point(inputs, len(views))}

    # Releases in stable groups by id (a new release joins the newest group only). Each group has a job
    # for its release documents and one for the lists of up to a page whose newest release it holds (most
    # lists hold one release: a version, a build id). Lists of more than a page (a hardware version's
    # holds nearly every release) are jobs of their own: a new release changes every page of them.
    # A group's lists come in the order its releases name them (newest release first), which depends on
    # the group's releases alone, as its key does.
    release_groups = [[view.version for view in chunk] for chunk in by_id_chunks(views)]
    group_of = {version: number for number, versions in enumerate(release_groups) for version in versions}
    # A release has a dozen small lists (its version, each build id, its revision): their groups are
    # smaller, so that a job holds about as many files as a group of release documents, and a changed
    # release re-places a few hundred list files, not thousands.
    list_groups = [[view.version for view in chunk]
                   for chunk in by_id_chunks(views, max(1, jobs.JOB_SIZE // LIST_GROUP_DIVISOR))]
    list_group_of = {version: number for number, versions in enumerate(list_groups) for version in versions}
    large: list[tuple[str, str]] = []
    # The small lists of each release besides its version's (made when a job asks, one list for ten thousand
    # releases saved on every plan).
    own_lists: dict[str, list[tuple[str, str]]] = {}
    shared: list[list[tuple[str, str]]] = [[] for _ in list_groups]  # lists of two releases or more
    for name, versions in members.items():
        if len(versions) > PER_PAGE:
            large.append(name)
        else:
            found = own_lists.get(versions[0])
            if found is None:
                own_lists[versions[0]] = [name]
            else:
                found.append(name)
            if len(versions) > 1:
                shared[list_group_of[versions[0]]].append(name)

    def group_lists(versions: Sequence[str]) -> list[tuple[str, str]]:
        """The small lists whose newest release is among `versions`, in the order they name them (when a job runs)."""
        found = []
        for version in versions:
            found.append(("version", version))
            found += own_lists.get(version, ())
            if not unique_builds:
                continue
            release = by_version[version].release
            if unique_revisions and release.revision:  # after its hardware lists, as the general path names them
                found.append(("revision", release.revision))
                revision_owner[release.revision] = version
            for artifact in release.artifacts:
                found.append(("build_id", artifact.build_id))
                owner[artifact.build_id] = version
        return found

    if view_keys is None:
        served_document = _nothing_served
        return [all_releases, lists_and_entry_point, *[partial(release_files, versions) for versions in release_groups],
                *[partial(grouped_index_files, versions) for versions in list_groups if versions],
                *[partial(index_files, [name]) for name in large]]

    def list_members(names: Sequence[tuple[str, str]]) -> list[object]:
        return [(name, [view_keys[version] for version in members[name]]) for name in names]

    group_keys = [job_key(inputs, "api releases", base, [view_keys[version] for version in versions])
                  for versions in release_groups]
    # A group's own lists follow from its releases' files (their view keys); a shared list also from
    # the other releases it holds.
    lists_keys = [job_key(inputs, "api lists", base, site_url, [view_keys[version] for version in versions],
                          list_members(lists)) for versions, lists in zip(list_groups, shared)]
    served = inputs.served_files
    readers: dict[int, Callable[[str], bytes] | None] = {}

    def served_document(version: str) -> bytes | None:
        """A release's document from the file the previous build wrote for its group, when the group's key
        is the same (so is the document); None when unknown or gone."""
        if served is None:
            return None
        group = group_of[version]
        if group not in readers:
            readers[group] = served(group_keys[group])
        read = readers[group]
        if read is None:
            return None
        try:
            return read(release_path(version))[len(b'{"data":'):-len(b"}\n")]
        except OSError:
            readers[group] = None  # gone: encoded as they are needed
            return None

    list_prefix = job_key(inputs, "api list page", base, site_url)
    bodies = PageBodies()  # see keyed_pages: shared by the lists of this process
    release_prefix = job_key(inputs, "api release", base)

    def keyed_list(name: tuple[str, str] | None) -> Iterator[tuple[str, Keyed]]:
        versions = members_of(name) if name is not None else [view.version for view in views]
        path_of = all_releases_path if name is None else partial(_index_page_path, *name)
        return keyed_pages([view_keys[version] for version in versions],  # type: ignore[misc]
                           lambda index: document(versions[index]), path_of, site_url, f"{list_prefix}\0{name!r}",
                           versions, bodies)

    one_release_fast = ONE_RELEASE_FAST_PATH
    # What follows the one item of a list of one release, up to its links (see _page_parts).
    one_release_paging = (b'],"paging":{"page":1,"per_page":%d,"page_count":1,"item_count":1,"total_count":1}'
                          b',"links":{"self":' % PER_PAGE)
    # The last release whose one-release lists were rendered: (version, the part of their pages before the
    # links, its sha256). A release's lists come one after another (group_lists names them so).
    last_single: list[Any] = [None, b"", None]

    def one_release_list(name: tuple[str, str], version: str) -> tuple[str, Keyed]:
        """What keyed_list gives for a list of one release (a version's, a build id's: a hundred thousand of
        them at 10,000 releases), the same key and bytes, with less made per list."""
        path = index_path(*name)
        view_key = view_keys[version]  # type: ignore[index]
        key = hashlib.sha256(f"{list_prefix}\0{name!r}\0{1}\0{1}\0{1}\0{view_key}".encode()).hexdigest()

        def render_digested() -> tuple[tuple[bytes, bytes], str]:
            if last_single[0] != version:
                body = b"".join((b'{"data":[', document(version), one_release_paging))
                last_single[:] = version, body, hashlib.sha256(body)
            url = encode_plain(site_url + path)
            links = b"".join((url, b',"first":', url, b',"last":', url, b',"prev":null,"next":null}}\n'))
            digest = last_single[2].copy()
            digest.update(links)
            return (last_single[1], links), digest.hexdigest()

        return path, Keyed(key, lambda: b"".join(render_digested()[0]), render_digested)

    def keyed_index_files(versions: Sequence[str]) -> Iterator[tuple[str, Keyed]]:
        for name in group_lists(versions):
            found = members_of(name)
            if len(found) == 1 and one_release_fast:
                yield one_release_list(name, found[0])
            else:
                yield from keyed_list(name)

    def keyed_release_files(versions: Sequence[str]) -> Iterator[tuple[str, Keyed]]:
        # Each document is a Keyed file: in a group whose key changed, only the changed release is encoded.
        for version in versions:
            yield release_path(version), Keyed(
                hashlib.sha256(f"{release_prefix}\0{view_keys[version]}".encode()).hexdigest(),
                partial(release_files_one, version))

    def release_files_one(version: str) -> bytes:
        return b'{"data":' + document(version) + b"}\n"

    def list_key(versions: Iterable[str]) -> str:
        return hashlib.sha256("\0".join([view_keys[version] for version in versions]).encode()).hexdigest()  # type: ignore[misc]

    # releases.json and its pages hold every release: keyed, so a cohort change does not encode them all.
    return [KeyedJob(job_key(inputs, "api all releases", base, site_url, list_key(view_keys)),
                     partial(keyed_list, None)),
            # The hardware versions and which releases have images for them, are stable, and in what order.
            KeyedJob(job_key(inputs, "api hardware versions", site_url, repr(registry.hardware), views_digest(views)),
                     hardware_versions),
            *[KeyedJob(key, partial(keyed_release_files, versions)) for versions, key in zip(release_groups, group_keys)],
            *[KeyedJob(key, partial(keyed_index_files, versions)) for versions, key in zip(list_groups, lists_keys)
              if versions],
            *[KeyedJob(job_key(inputs, "api list", base, site_url, name, list_key(members[name])),
                       partial(keyed_list, name)) for name in large]]


def _hardware_and_revision_lists(views: Sequence[ReleaseView], with_revisions: bool = True
                                 ) -> dict[tuple[str, str], list[str]]:
    """The members (versions, newest first) of each hardware version's and revision's list (with `with_revisions`),
    in the order the general path of api_jobs names them: by their newest release, then a release's hardware
    versions (in order) before its revision. Releases are gathered by their set of hardware versions (a
    registry has few), not hardware by hardware: one step per release instead of one per hardware version."""
    combos: dict[tuple[str, ...], list[int]] = {}  # hardware versions -> the positions of their releases
    revisions: dict[str, tuple[int, list[str]]] = {}  # in the order of their newest release
    for position, view in enumerate(views):
        hardware_versions = view.facts.hardware_versions  # the release's, kept with its file
        found = combos.get(hardware_versions)
        if found is None:
            combos[hardware_versions] = [position]
        else:
            found.append(position)
        revision = view.release.revision if with_revisions else None
        if revision:
            listed = revisions.get(revision)
            if listed is None:
                revisions[revision] = (position, [view.version])
            else:
                listed[1].append(view.version)
    of_hardware: dict[str, list[list[int]]] = {}
    for combo, positions in combos.items():
        for hardware in combo:
            of_hardware.setdefault(hardware, []).append(positions)
    # The few hardware lists by (newest position, place in that release), each named before the revisions
    # whose newest release is not newer than theirs.
    hardware_lists = []
    for hardware, lists in of_hardware.items():
        positions = lists[0] if len(lists) == 1 else sorted(chain.from_iterable(lists))
        newest = positions[0]
        hardware_lists.append((newest, views[newest].facts.hardware_versions.index(hardware), hardware,
                               [views[position].version for position in positions]))
    hardware_lists.sort(key=lambda item: item[:2])
    named: dict[tuple[str, str], list[str]] = {}
    waiting = iter(hardware_lists)
    pending = next(waiting, None)
    for revision, (newest, listed) in revisions.items():
        while pending is not None and pending[0] <= newest:
            named[("hardware_version", pending[2])] = pending[3]
            pending = next(waiting, None)
        named[("revision", revision)] = listed
    while pending is not None:
        named[("hardware_version", pending[2])] = pending[3]
        pending = next(waiting, None)
    return named


BUILD_ID_FAST_PATH = True  # off in a test only: the general path, for the fast one to be held to
ONE_RELEASE_FAST_PATH = True  # likewise, for the lists of one release (one_release_list)
LIST_GROUP_DIVISOR = 5  # releases per group of small lists: JOB_SIZE / this


def _nothing_served(version: str) -> None:
    return None


def _index_page_path(dimension: str, key: str, page: int) -> str:
    return index_path(dimension, key, page)


def api_documents(inputs: SiteInputs, views: list[ReleaseView]) -> dict[str, bytes]:
    return merge_jobs(api_jobs(inputs, views))


def _single_page(count: int) -> dict[str, int]:
    return {"page": 1, "per_page": max(count, 1), "page_count": 1, "item_count": count, "total_count": count}


def latest_release(views: Iterable[ReleaseView], hardware: str, *, prereleases: bool = False) -> Release | None:
    candidates = [v.release for v in views
                  if not v.release.is_yanked and hardware in v.release.hardware_versions
                  and (prereleases or not v.release.parsed_version.is_prerelease)]
    return max(candidates, key=lambda r: r.parsed_version.key, default=None)


def hardware_document(hardware: HardwareVersion, versions: Sequence[str], stable: Mapping[str, tuple],
                      site_url: str) -> dict[str, Any]:
    """A hardware version's entry; `versions`: the releases with an image for it (newest first: the first of
    equal version keys is its latest), `stable`: the version key of each release neither yanked nor a
    pre-release, by version."""
    latest = max([version for version in versions if version in stable], key=stable.__getitem__, default=None)
    return {
        "name": hardware.name,
        "description": hardware.description,
        "latest_version": latest,
        "count_releases": len(versions),
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
        # hardware_versions is always present: null deploys to all of the cohort's hardware.
        "releases": [{"version": a.version, "rollout_percent": percent_number(a.rollout_percent),
                      "hardware_versions": list(a.hardware_versions) if a.hardware_versions is not None else None}
                     for a in cohort.releases],
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
