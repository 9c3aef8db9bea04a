"""Plan job keys: a change reaches exactly the jobs whose files it can change, and every one of them.

A KeyedJob whose key matches the previous build is not run (see site/write.py), so a key that
misses an input serves a stale file, and a key that takes in too much costs a rebuild its speed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
from dataclasses import replace
from typing import Callable

import pytest
from conftest import EXAMPLE_REGISTRY

from relreg.registry.source import read_worktree
from relreg.registry.validate import validate_files
from relreg.site import jobs as site_jobs
from relreg.site.jobs import Keyed, KeyedJob, ReleaseDates, SiteInputs, job_files, merge_jobs
from relreg.site.plan import plan_jobs

COUNT = 1200  # releases: several groups of JOB_SIZE, so a change can miss some


def _inputs(count: int = COUNT) -> SiteInputs:
    registry = validate_files(read_worktree(EXAMPLE_REGISTRY)).registry
    template = registry.releases[0]
    releases = []
    for index in range(count):
        version = f"{index // 100}.{index % 100}.0"
        artifacts = tuple(replace(a, build_id=f"{index:08x}{n:032x}", type="full", delta_from=None)
                          for n, a in enumerate(template.artifacts) if not a.is_delta)
        releases.append(replace(template, version=version, parsed_version=registry.scheme.parse(version),
                                artifacts=artifacts, min_version=None, source_path=f"releases/{version}.yaml"))
    registry = replace(registry, releases=tuple(releases), cohorts=())
    dates = {r.version: ReleaseDates(1_600_000_000 + i * 3600, 1_600_000_000 + i * 3600)
             for i, r in enumerate(releases)}
    return SiteInputs(registry=registry, release_dates=dates, notes_html={r.version: "<p>n</p>" for r in releases},
                      release_keys={r.version: f"blob-{r.version}" for r in releases})


def _keyed(inputs: SiteInputs) -> dict[str, tuple[str, frozenset[str]]]:
    """Each KeyedJob by its first path: (key, the paths it gives)."""
    found = {}
    for job in plan_jobs(inputs):
        if isinstance(job, KeyedJob):
            paths = frozenset(path for path, _ in job_files(job()))
            found[min(paths)] = (job.key, paths)
    return found


def _with_release(inputs: SiteInputs, index: int) -> SiteInputs:
    version = f"{index // 100}.{index % 100}.0"
    template = inputs.registry.releases[-1]
    release = replace(template, version=version, parsed_version=inputs.registry.scheme.parse(version),
                      artifacts=tuple(replace(a, build_id=f"{index:08x}{n:032x}") for n, a in enumerate(template.artifacts)),
                      source_path=f"releases/{version}.yaml")
    last = max(d.created for d in inputs.release_dates.values())
    return replace(inputs, registry=replace(inputs.registry, releases=(*inputs.registry.releases, release)),
                   release_dates={**inputs.release_dates, version: ReleaseDates(last + 3600, last + 3600)},
                   notes_html={**inputs.notes_html, version: "<p>n</p>"},
                   release_keys={**inputs.release_keys, version: f"blob-{version}"})


def _notes_fixed(inputs: SiteInputs, version: str) -> SiteInputs:
    return replace(inputs, notes_html={**inputs.notes_html, version: "<p>fixed</p>"},
                   release_keys={**inputs.release_keys, version: "blob-fixed"})


# (change, precise): a precise change moves the key of no job whose files stay the same; a change
# of a whole-site input (the base URL) moves every key, which is allowed: it only costs work.
@pytest.mark.parametrize("change, precise", [
    (lambda i: _with_release(i, COUNT), True),
    (lambda i: _notes_fixed(i, "3.0.0"), True),
    (lambda i: _notes_fixed(i, "11.99.0"), True),
    (lambda i: replace(i, device_counts={"5.0.0": 7}), True),
    (lambda i: replace(i, base_url="https://elsewhere.example.test/"), False),
], ids=["release added", "old notes fixed", "newest notes fixed", "device count", "base url"])
def test_a_job_keeps_its_key_exactly_when_its_files_stay_the_same(change: Callable[[SiteInputs], SiteInputs],
                                                                  precise: bool) -> None:
    before_inputs = _inputs()
    after_inputs = change(before_inputs)
    before, after = _keyed(before_inputs), _keyed(after_inputs)
    files_before, files_after = merge_jobs(plan_jobs(before_inputs)), merge_jobs(plan_jobs(after_inputs))
    kept = [first for first in before if first in after and before[first][0] == after[first][0]]
    for first in kept:  # same key: the very same files (else a rebuild would serve stale ones)
        assert before[first][1] == after[first][1]
        assert all(files_before[p] == files_after[p] for p in before[first][1]), first
    for first, (key, paths) in after.items():  # a different key: something in it changed
        if precise and first in before and before[first][0] != key:
            assert paths != before[first][1] or any(files_before.get(p) != files_after[p] for p in paths), first


def _keyed_files(inputs: SiteInputs) -> dict[str, tuple[str, bytes]]:
    """Every file planned as Keyed (in any job), by path: (key, bytes)."""
    found = {}
    for job in plan_jobs(inputs):
        for path, content in job_files(job()):
            if isinstance(content, Keyed):
                found[path] = (content.key, content.render())
    return found


@pytest.mark.parametrize("change", [
    lambda i: _with_release(i, COUNT),
    lambda i: _notes_fixed(i, "1.0.0"),
    lambda i: _notes_fixed(i, "2.99.0"),
    lambda i: replace(i, device_counts={**i.device_counts, "0.5.0": 7}),
    lambda i: replace(i, device_counts={"2.99.0": 7}, device_counts_date="2024-05-01"),
    lambda i: replace(i, release_dates={**i.release_dates, "2.98.0": ReleaseDates(1_500_000_000, 1_800_000_000)}),
    lambda i: replace(i, release_dates={**i.release_dates, "1.50.0": ReleaseDates(1_600_000_000, 1_900_000_000)}),
    lambda i: replace(i, base_url="https://elsewhere.example.test/"),
], ids=["release added", "old notes fixed", "newest notes fixed", "old device count", "snapshot date",
        "newest dates", "old updated date", "base url"])
def test_a_keyed_file_keeps_its_key_only_with_its_bytes(change: Callable[[SiteInputs], SiteInputs]) -> None:
    """Whole-site files (the releases list, feeds, hardware pages...) are Keyed inside jobs that always run:
    a file whose key stays is linked from the previous build, so its bytes must stay too."""
    inputs = replace(_inputs(300), device_counts={"0.6.0": 1})  # counts shown: a change of one shows
    before, after = _keyed_files(inputs), _keyed_files(change(inputs))
    assert {"releases/index.html", "feed.xml", "update/releases.json"} <= set(before)
    assert any(path.startswith("hardware/") for path in before)
    for path, (key, content) in after.items():
        if path in before and before[path][0] == key:
            assert before[path][1] == content, path


def test_a_release_added_or_fixed_changes_few_job_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(site_jobs, "JOB_SIZE", 25)  # many small groups
    inputs = _inputs()
    before = {key for key, _ in _keyed(inputs).values()}
    assert len(before) > 100
    for changed in (_with_release(inputs, COUNT), _notes_fixed(inputs, "3.0.0")):
        after = {key for key, _ in _keyed(changed).values()}
        # its release documents and page, its neighbour's page, releases.json, and the lists holding it
        assert len(after - before) <= 12, len(after - before)


def test_an_input_added_to_site_inputs_later_enters_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = _inputs(50)
    field_names = {f.name for f in dataclasses.fields(SiteInputs)}
    assert site_jobs._KEYED_IN_PART <= field_names  # no stale names: each is a real field
    monkeypatch.setattr(site_jobs, "_KEYED_IN_PART", site_jobs._KEYED_IN_PART - {"commit"})
    keys = {key for key, _ in _keyed(inputs).values()}
    other = {key for key, _ in _keyed(replace(inputs, commit="f" * 40)).values()}
    assert keys.isdisjoint(other)


@pytest.mark.parametrize("duplicate", [False, True], ids=["unique build ids", "a build id in two releases"])
def test_build_id_lists_named_when_a_job_runs_equal_the_general_path(monkeypatch: pytest.MonkeyPatch,
                                                                    duplicate: bool) -> None:
    """Unique build ids are not gathered into the lists' members (each names its own release's list): the
    fast path gives the same jobs, keys and files as the general one."""
    monkeypatch.setattr(site_jobs, "JOB_SIZE", 25)
    inputs = _inputs(120)
    if duplicate:  # the general path then runs both times
        releases = list(inputs.registry.releases)
        releases[5] = replace(releases[5], artifacts=(*releases[5].artifacts[:-1],
                                                      replace(releases[5].artifacts[-1], build_id=releases[7].artifacts[0].build_id)))
        inputs = replace(inputs, registry=replace(inputs.registry, releases=tuple(releases)))
    _assert_fast_path_is_general(monkeypatch, inputs)


def _assert_fast_path_is_general(monkeypatch: pytest.MonkeyPatch, inputs: SiteInputs) -> None:
    """The plan of `inputs` with the API's fast paths and without them: the same jobs in the same order,
    with the same keys and files."""
    from relreg.site import api

    fast = plan_jobs(inputs)
    monkeypatch.setattr(api, "BUILD_ID_FAST_PATH", False)
    monkeypatch.setattr(api, "ONE_RELEASE_FAST_PATH", False)
    general = plan_jobs(inputs)
    assert [getattr(job, "key", None) for job in fast] == [getattr(job, "key", None) for job in general]
    assert [[(path, getattr(content, "key", content)) for path, content in job_files(job())] for job in fast] == \
        [[(path, getattr(content, "key", content)) for path, content in job_files(job())] for job in general]
    assert merge_jobs(fast) == merge_jobs(general)
    # The writer takes a Keyed file's bytes and sha256 from render_digested when it has one.
    for plan in (fast, general):
        for job in plan:
            for path, content in job_files(job()):
                if isinstance(content, Keyed) and content.render_digested is not None:
                    parts, digest = content.render_digested()
                    assert b"".join(parts) == content.render(), path
                    assert digest == hashlib.sha256(content.render()).hexdigest(), path


def _varied(inputs: SiteInputs, seed: int) -> SiteInputs:
    """`inputs` with releases on different sets of hardware versions (some on none), revisions shared by
    some releases and missing on others, and dates that do not follow the versions."""
    rng = random.Random(seed)
    releases = []
    for release in inputs.registry.releases:
        artifacts = tuple(a for a in release.artifacts if rng.random() < 0.6)
        revision = rng.choice([None, release.revision, f"rev{rng.randrange(8)}"])
        releases.append(replace(release, artifacts=artifacts, revision=revision))
    dates = {version: ReleaseDates(d.created + rng.randrange(-3, 4) * 3600, d.updated + rng.randrange(0, 400) * 3600)
             for version, d in inputs.release_dates.items()}
    return replace(inputs, registry=replace(inputs.registry, releases=tuple(releases)), release_dates=dates)


@pytest.mark.parametrize("seed", range(4))
def test_lists_gathered_by_sets_of_hardware_equal_the_general_path(monkeypatch: pytest.MonkeyPatch,
                                                                   seed: int) -> None:
    """The hardware and revision lists of the fast path (releases gathered by their set of hardware versions)
    are the general path's: the same jobs in the same order, with the same keys and files."""
    from relreg.site import api

    monkeypatch.setattr(site_jobs, "JOB_SIZE", 25)
    monkeypatch.setattr(api, "PER_PAGE", 7)  # lists of more than a page, and small lists shared by releases
    inputs = _varied(_inputs(150), seed)
    _assert_fast_path_is_general(monkeypatch, inputs)


@pytest.mark.parametrize("seed", range(2))
def test_unique_revisions_named_when_a_job_runs_equal_the_general_path(monkeypatch: pytest.MonkeyPatch,
                                                                       seed: int) -> None:
    """A revision of one release names its list when a job runs, as a unique build id does: the same jobs in
    the same order, with the same keys and files as the general path."""
    from relreg.site import api

    monkeypatch.setattr(site_jobs, "JOB_SIZE", 25)
    monkeypatch.setattr(api, "PER_PAGE", 7)
    inputs = _varied(_inputs(150), seed)
    rng = random.Random(seed)
    releases = tuple(replace(release, revision=None if rng.random() < 0.2 else f"{index:040x}")
                     for index, release in enumerate(inputs.registry.releases))
    _assert_fast_path_is_general(monkeypatch, replace(inputs, registry=replace(inputs.registry, releases=releases)))


def test_release_views_are_the_dataclass_s_own_objects() -> None:
    """release_views makes its views without ReleaseView's __init__: they equal, hash and print as made by it."""
    from relreg.site.jobs import ReleaseView, release_views

    views = release_views(_varied(_inputs(40), 0))
    made = [ReleaseView(id=view.id, release=view.release, dates=view.dates, stored_notes=view.stored_notes,
                        count_devices=view.count_devices, key=view.key) for view in views]
    assert views == made and [hash(view) for view in views] == [hash(view) for view in made]
    assert [repr(view) for view in views] == [repr(view) for view in made]
    assert [vars(view) for view in views] == [vars(view) for view in made]
    assert [view.notes_html for view in views] == [view.notes_html for view in made] == ["<p>n</p>"] * len(views)


def _hardware_reference(views: list, names: list[str]) -> dict[str, tuple[list[str], str | None, str | None]]:
    """Each hardware version's releases, latest stable and latest pre-release, a release at a time (the loop
    site_data ran before it gathered releases by their sets of hardware versions)."""
    found: dict[str, tuple[list[str], str | None, str | None]] = {name: ([], None, None) for name in names}
    best: dict[tuple[str, bool], tuple] = {}
    for view in views:
        release = view.release
        for name in release.hardware_versions:
            if name not in found:
                continue
            members, stable, pre = found[name]
            members.append(view.version)
            prerelease = release.parsed_version.is_prerelease
            if release.yanked is not None:
                continue
            if (name, prerelease) not in best or release.parsed_version.key > best[(name, prerelease)]:
                best[(name, prerelease)] = release.parsed_version.key
                found[name] = (members, stable, view.version) if prerelease else (members, view.version, pre)
    return found


@pytest.mark.parametrize("seed", range(6))
def test_hardware_releases_and_latest_gathered_by_sets_equal_a_release_at_a_time(seed: int) -> None:
    """site_data's hardware versions (releases newest first, latest stable, latest pre-release) are the ones a
    loop over every release gives, with yanked releases, pre-releases and equal version keys about."""
    from relreg.site.jobs import release_views
    from relreg.site.pages import site_data

    rng = random.Random(seed)
    inputs = _varied(_inputs(120), seed)
    releases = []
    for release in inputs.registry.releases:
        parsed = release.parsed_version
        if rng.random() < 0.3:  # equal keys: several releases stand for one version
            parsed = replace(parsed, key=(rng.randrange(3), 0, 0, 1, ()))
        if rng.random() < 0.3:
            parsed = replace(parsed, is_prerelease=True)
        releases.append(replace(release, parsed_version=parsed, yanked="broken" if rng.random() < 0.2 else None))
    inputs = replace(inputs, registry=replace(inputs.registry, releases=tuple(releases)))
    views = release_views(inputs)
    data = site_data(inputs, views)
    expected = _hardware_reference(views, [hardware.name for hardware in inputs.registry.hardware])
    for hardware in data.hardware:
        members, stable, pre = expected[hardware.hardware.name]
        assert [view.version for view in hardware.releases.views] == members
        assert (hardware.latest.version if hardware.latest else None) == stable
        assert hardware.updated == max((view.dates.updated for view in views if view.version in members), default=0)
        if hardware.latest_prerelease is not None:  # dropped by site_data when below the latest stable
            assert hardware.latest_prerelease.version == pre


@pytest.mark.parametrize("seed", range(4))
def test_the_releases_of_each_device_slot_are_those_with_an_image_for_it(seed: int) -> None:
    """The device documents' releases by (hardware, software type), gathered by sets of slots, are the
    releases with an image for each, in registry order."""
    from relreg.site.device_documents import _ReleaseImages

    releases = _varied(_inputs(90), seed).registry.releases
    images = _ReleaseImages(releases, "https://example.test/")
    every = {(a.hardware_version, a.software_type) for release in releases for a in release.artifacts}
    assert set(images.known) == every
    for slot in every:
        assert images.known[slot] == [release for release in releases
                                      if any((a.hardware_version, a.software_type) == slot for a in release.artifacts)]


@pytest.mark.parametrize("budget", [0, 3000, 10 ** 9])  # no page's data kept, some, every one
@pytest.mark.parametrize("total", [0, 1, 2, 99, 100, 101, 250])
def test_keyed_list_pages_are_the_pages_of_paged_with_their_sha256(total: int, budget: int) -> None:
    """Each Keyed page of a list renders the bytes `paged` gives for it, in parts too, with their sha256;
    a second list of the same items takes the digest of their shared part and still gets its own, and
    reads no item for a page whose data was kept."""
    import hashlib

    from relreg.site.api import PER_PAGE, PageBodies, keyed_pages, paged

    items = [b'{"id":%d,"notes":"%s"}' % (index, b"x" * (index % 7)) for index in range(total)]
    ids = [f"v{index}" for index in range(total)]
    bodies = PageBodies(budget)
    read: list[int] = []

    def item(index: int) -> bytes:
        read.append(index)
        return items[index]

    unread_pages = 0  # of the second list: those whose data the first list's pages left within the budget
    for name in ("all", "hardware"):
        def path_of(page: int, name: str = name) -> str:
            return f"api/v1/{name}/page/{page}.json"

        expected = dict(paged(items, path_of, "https://example.test/"))
        pages = list(keyed_pages(ids, item, path_of, "https://example.test/", name, ids, bodies))
        assert [path for path, _ in pages] == list(expected)
        del read[:]
        left = budget
        for number, (path, keyed) in enumerate(pages, 1):
            parts, digest = keyed.render_digested()
            assert b"".join(parts) == expected[path]
            assert digest == hashlib.sha256(expected[path]).hexdigest()
            if name == "all" and len(parts[0]) <= left:
                left -= len(parts[0])
                unread_pages = number
        expected_reads = total if name == "all" else max(0, total - unread_pages * PER_PAGE)
        assert len(read) == expected_reads
        for path, keyed in pages:
            assert keyed.render() == expected[path]
    if total and budget == 10 ** 9:
        assert unread_pages == len(pages)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the workers of a full build are forked")
def test_page_data_is_kept_only_by_the_process_that_planned_not_by_a_forked_worker() -> None:
    """A worker of a full build is about as large as the build process: it hashes a page's data, keeps none."""
    from relreg.site.api import PageBodies

    bodies = PageBodies(10 ** 9)
    name = (1, 1, 1, "v1")
    child = os.fork()
    if child == 0:  # as a site worker, forked after planning
        hashed = bodies.add(name, b'{"data":[1]')
        os._exit(0 if bodies.get(name) == (hashed, None) else 1)
    assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
    hashed = bodies.add(name, b'{"data":[1]')
    assert bodies.get(name) == (hashed, b'{"data":[1]')
