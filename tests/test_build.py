"""`relreg build`: the static JSON API, dated from git, deterministic, atomic and incremental."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pytest
from api_schemas import api_schema_errors
from conftest import BASE_REGISTRY, EXAMPLE_REGISTRY, run_relreg
from git_helpers import commit_all, git, init_repo, registry_without_releases

RELEASE_120 = """version: "1.2.0"
revision: 0a1b2c3d4e5f60718293a4b5c6d7e8f901234567
notes: "**Bold** move <script>alert(1)</script>"
artifacts:
  - hardware_version: evt1
    build_id: e555555555555555555555555555555555555555
    url: https://cdn.example.test/fw/1.2.0/evt1.bin
    size: 1200
    sha256: e555555555555555555555555555555555555555555555555555555555555555
"""


def _json(site: Path, relative: str) -> dict:
    return json.loads((site / relative).read_bytes())


def _versions(document: dict) -> list[str]:
    return [release["version"] for release in document["data"]]


@pytest.fixture
def history_repo(tmp_path: Path) -> Path:
    """The base registry committed over a known history, with a merged branch and a rename."""
    repo = init_repo(tmp_path / "repo")
    registry = registry_without_releases(repo, BASE_REGISTRY)
    shutil.copy(BASE_REGISTRY / "releases" / "1.0.0.yaml", registry / "releases")
    commit_all(repo, "1.0.0", "2024-01-01T10:00:00+00:00")
    shutil.copy(BASE_REGISTRY / "releases" / "1.1.0.yaml", registry / "releases")
    shutil.copytree(BASE_REGISTRY / "cohorts", registry / "cohorts")
    commit_all(repo, "1.1.0", "2024-02-01T10:00:00+02:00")  # a non-UTC zone: output is UTC
    notes = registry / "releases" / "1.0.0.yaml"
    notes.write_text(notes.read_text().replace("First release.", "First release, notes corrected."))
    commit_all(repo, "fix 1.0.0 notes", "2024-03-01T10:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "release-1.2.0")
    (registry / "releases" / "1.2.0.yaml").write_text(RELEASE_120)
    commit_all(repo, "1.2.0 on a branch", "2024-03-05T10:00:00+00:00")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge 1.2.0", "release-1.2.0", date="2024-03-10T10:00:00+00:00")
    (registry / "releases" / "1.1").mkdir()
    git(repo, "mv", "registry/releases/1.1.0.yaml", "registry/releases/1.1/1.1.0.yaml")
    commit_all(repo, "group 1.1 releases", "2024-04-01T10:00:00+00:00")
    return repo


def test_dates_ids_and_orderings_come_from_first_parent_history(history_repo: Path) -> None:
    out = history_repo / "public"
    result = run_relreg("build", "--registry", history_repo / "registry", "--out", out)
    assert result.exit_code == 0, result.output

    releases = _json(out, "api/v1/releases.json")
    assert _versions(releases) == ["1.2.0", "1.1.0", "1.0.0"]
    assert releases["paging"] == {"page": 1, "per_page": 100, "page_count": 1, "item_count": 3, "total_count": 3}
    by_version = {r["version"]: r for r in releases["data"]}
    assert by_version["1.0.0"]["id"] == 1
    assert by_version["1.0.0"]["created_date"] == "2024-01-01T10:00:00.000000+00:00"
    assert by_version["1.0.0"]["updated_date"] == "2024-03-01T10:00:00.000000+00:00"
    assert by_version["1.1.0"]["id"] == 2
    assert by_version["1.1.0"]["created_date"] == "2024-02-01T08:00:00.000000+00:00"  # rename followed
    assert by_version["1.1.0"]["updated_date"] == "2024-02-01T08:00:00.000000+00:00"  # a move changes nothing
    assert by_version["1.2.0"]["id"] == 3
    assert by_version["1.2.0"]["created_date"] == "2024-03-10T10:00:00.000000+00:00"  # merge, not branch commit
    head = git(history_repo, "rev-parse", "HEAD")
    assert _json(out, "api/v1/index.json")["data"]["commit"] == head
    assert _json(out, "api/v1/index.json")["data"]["dirty"] is False


def test_every_index_lists_exactly_its_members_newest_first(history_repo: Path) -> None:
    out = history_repo / "public"
    assert run_relreg("build", "--registry", history_repo / "registry", "--out", out).exit_code == 0
    assert _versions(_json(out, "api/v1/releases/hardware_version/evt1.json")) == ["1.2.0", "1.1.0", "1.0.0"]
    assert _versions(_json(out, "api/v1/releases/hardware_version/dvt1.json")) == ["1.0.0"]
    assert _versions(_json(out, "api/v1/releases/version/1.1.0.json")) == ["1.1.0"]
    assert _versions(_json(out, "api/v1/releases/build_id/d444444444444444444444444444444444444444.json")) == ["1.1.0"]
    # 1.0.0 and 1.2.0 were built from the same revision
    assert _versions(_json(out, "api/v1/releases/revision/0a1b2c3d4e5f60718293a4b5c6d7e8f901234567.json")) \
        == ["1.2.0", "1.0.0"]
    index_files = sorted(p.relative_to(out / "api/v1/releases").as_posix()
                         for p in (out / "api/v1/releases").glob("*/*.json"))
    assert len([p for p in index_files if p.startswith("build_id/")]) == 5
    assert len([p for p in index_files if p.startswith("hardware_version/")]) == 2


def test_release_document_has_the_seed_fields_in_order(history_repo: Path) -> None:
    out = history_repo / "public"
    assert run_relreg("build", "--registry", history_repo / "registry", "--out", out).exit_code == 0
    release = _json(out, "api/v1/releases/1.1.0.json")["data"]
    assert list(release) == ["id", "created_date", "updated_date", "version", "min_version", "revision", "notes",
                             "extra_info", "count_devices", "artifacts", "yanked"]
    assert release["min_version"] == "1.0.0" and release["yanked"] is None and release["count_devices"] == 0
    delta = release["artifacts"][1]
    assert list(delta) == ["hardware_version", "software_type", "type", "delta_from", "build_id", "filename",
                           "url", "size", "sha256"]
    assert delta["url"] == "https://dl.example.test/fw/1.1.0/evt1-from-1.0.0.delta"
    assert delta["filename"] == "evt1-from-1.0.0.delta" and delta["delta_from"] == "1.0.0"
    first = _json(out, "api/v1/releases/1.2.0.json")["data"]
    assert first["notes"] == "<p><strong>Bold</strong> move </p>"  # rendered, script removed
    assert first["min_version"] == "" and first["artifacts"][0]["url"].startswith("https://cdn.example.test/")


def test_every_document_validates_against_its_output_schema(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    shutil.copytree(EXAMPLE_REGISTRY, repo / "registry")
    commit_all(repo, "example", "2025-06-01T12:00:00+00:00")
    out = tmp_path / "public"
    assert run_relreg("build", "--registry", repo / "registry", "--out", out).exit_code == 0
    assert (out / "api/v1/releases.json").is_file()
    assert api_schema_errors(out) == []


def test_two_builds_of_one_commit_are_byte_identical(history_repo: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    assert run_relreg("build", "--registry", history_repo / "registry", "--out", first).exit_code == 0
    git(history_repo, "update-ref", "-d", "refs/heads/release-1.2.0")  # unrelated repository change
    assert run_relreg("build", "--registry", history_repo / "registry", "--out", second).exit_code == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert len(files) > 20
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative


def test_site_written_by_worker_processes_is_byte_identical_to_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import relreg.build
    import relreg.site.jobs

    monkeypatch.setattr(relreg.site.jobs, "JOB_SIZE", 3)  # many small jobs, shared out between the processes
    monkeypatch.setattr(relreg.build, "PARALLEL_RELEASES", 10**9)
    serial = run_relreg("build", "--registry", EXAMPLE_REGISTRY, "--out", tmp_path / "serial", "--force")
    monkeypatch.setattr(relreg.build, "PARALLEL_RELEASES", 1)
    monkeypatch.setattr(relreg.build.os, "cpu_count", lambda: 3)
    parallel = run_relreg("build", "--registry", EXAMPLE_REGISTRY, "--out", tmp_path / "parallel", "--force")

    assert serial.exit_code == 0 and parallel.exit_code == 0, serial.output + parallel.output
    one = {p.relative_to(tmp_path / "serial"): p.read_bytes() for p in (tmp_path / "serial").rglob("*") if p.is_file()}
    three = {p.relative_to(tmp_path / "parallel"): p.read_bytes()
             for p in (tmp_path / "parallel").rglob("*") if p.is_file()}
    assert len(one) > 100 and one == three


def test_a_killed_worker_process_stops_the_build_with_a_message_and_the_site_untouched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A site worker killed (the OOM killer) breaks the pool: the build says so, exits 1, and the output
    folder still holds the previous site."""
    import os
    import signal

    import relreg.build
    import relreg.site.pages

    out = tmp_path / "public"
    assert run_relreg("build", "--registry", EXAMPLE_REGISTRY, "--out", out).exit_code == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    builder = os.getpid()
    real = relreg.site.pages.ReleasePages.render

    def render(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.getpid() != builder:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(relreg.site.pages.ReleasePages, "render", render)
    monkeypatch.setattr(relreg.build, "PARALLEL_RELEASES", 1)
    monkeypatch.setattr(relreg.build.os, "cpu_count", lambda: 2)
    result = run_relreg("build", "--registry", EXAMPLE_REGISTRY, "--out", out, "--force")

    assert result.exit_code == 1, result.output
    assert "build stopped: a worker process was killed (out of memory? see dmesg)" in result.output, result.output
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def _replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


# Changes made one after another to one registry; after each, the incremental build
# (which skips rendering pages whose inputs it has seen) must equal a fresh build.
INCREMENTAL_STEPS = [
    ("add a release", lambda r: (r / "releases" / "1.3.0.yaml").write_text(
        RELEASE_120.replace('1.2.0', '1.3.0').replace("e555", "f555"))),
    ("correct notes", lambda r: _replace_in(r / "releases" / "1.0.0.yaml", "notes corrected", "notes fixed")),
    ("yank a release", lambda r: (r / "releases" / "1.2.0.yaml").write_text(
        (r / "releases" / "1.2.0.yaml").read_text() + "yanked: bricks dvt1 boards\n")),
    ("raise a rollout", lambda r: _replace_in(r / "cohorts" / "stable.yaml", "rollout_percent: 50",
                                              "rollout_percent: 75")),
    ("rename the cohort", lambda r: _replace_in(r / "cohorts" / "stable.yaml", "name: Stable", "name: Everyone")),
    ("rename the registry", lambda r: _replace_in(r / "registry.yaml", "name: Test Widget", "name: Widget Pro")),
    ("describe a board", lambda r: (r / "hardware" / "evt1.yaml").write_text(
        (r / "hardware" / "evt1.yaml").read_text().rstrip("\n").split("\ndescription:")[0]
        + "\ndescription: Engineering board, rev B\n")),
    ("remove the newest release", lambda r: (r / "releases" / "1.3.0.yaml").unlink()),
]


@pytest.mark.parametrize("small, mapped", [(False, False), (True, False), (True, True)],
                         ids=["default jobs", "one release a job, one item a page, one row a list page",
                              "and every served file mapped"])
def test_incremental_builds_equal_fresh_builds(history_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              small: bool, mapped: bool) -> None:
    if small:  # many groups and lists of many pages: documents taken from the served files, lists in jobs of their own
        import relreg.site.api
        import relreg.site.jobs

        import relreg.site.pages

        monkeypatch.setattr(relreg.site.jobs, "JOB_SIZE", 1)
        monkeypatch.setattr(relreg.site.api, "PER_PAGE", 1)
        monkeypatch.setattr(relreg.site.pages, "LIST_PAGE_RELEASES", 1)  # the releases list paged too
    if mapped:  # documents and the releases list's rows read from mapped served files (write.MappedFile)
        import relreg.site.write

        monkeypatch.setattr(relreg.site.write, "MAP_ABOVE", 0)
    registry = history_repo / "registry"
    incremental = tmp_path / "incremental"
    assert run_relreg("build", "--registry", registry, "--out", incremental).exit_code == 0
    for number, (step, change) in enumerate(INCREMENTAL_STEPS):
        change(registry)
        commit_all(history_repo, step, f"2024-06-{number + 1:02d}T10:00:00+00:00")
        _assert_rebuild_equals_fresh_build(registry, incremental, tmp_path / f"fresh-{number}", step)


def _assert_rebuild_equals_fresh_build(registry: Path, incremental: Path, fresh: Path, step: str) -> None:
    """Rebuild into `incremental`, build anew into `fresh`: the same files with the same bytes, and the
    rebuild's report counts the files the served site had and the new one has not."""
    served = set(_files(incremental)) if incremental.is_dir() else set()
    result = run_relreg("build", "--registry", registry, "--out", incremental)
    assert result.exit_code == 0, step
    assert run_relreg("build", "--registry", registry, "--out", fresh).exit_code == 0, step
    built, expected = _files(incremental), _files(fresh)
    assert built.keys() == expected.keys(), step
    assert [path for path in expected if built[path] != expected[path]] == [], step
    written, unchanged, removed = map(int, re.search(r"(\d+) files written, (\d+) unchanged, (\d+) removed",
                                                     result.output).groups())
    assert (removed, written + unchanged) == (len(served - set(built)), len(built) - 1), step  # but the manifest


def _random_edit(registry: Path, rng: random.Random, added: list[str]) -> str:
    """One edit of the kinds a registry sees, chosen by `rng`, always leaving the registry valid; its name."""
    kind = rng.choice(["add", "add", "notes", "rollout", "describe", "remove"] if added else ["add", "notes", "rollout"])
    if kind == "add":
        number = len(added) + 3
        version = f"1.{number}.0"
        (registry / "releases" / f"{version}.yaml").write_text(
            RELEASE_120.replace("1.2.0", version).replace("e555", f"{number:x}a{number:x}b"))
        added.append(version)
    elif kind == "notes":
        _replace_in(registry / "releases" / "1.0.0.yaml", "notes corrected", "notes corrected again")
    elif kind == "rollout":  # every edit changes something: a commit needs a change
        cohort = registry / "cohorts" / "stable.yaml"
        text = cohort.read_text()
        now = re.search(r"rollout_percent: ([0-9.]+)", text)[1]  # type: ignore[index]
        percent = rng.choice([value for value in ("0", "5", "50", "99", "100") if value != now])
        cohort.write_text(re.sub(r"rollout_percent: [0-9.]+", f"rollout_percent: {percent}", text))
    elif kind == "describe":
        board = registry / "hardware" / "evt1.yaml"
        text = board.read_text()
        revision = rng.choice([letter for letter in "ABCD" if f"rev {letter}\n" not in text])
        board.write_text(text.rstrip("\n").split("\ndescription:")[0] + f"\ndescription: Engineering board, rev {revision}\n")
    else:
        (registry / "releases" / f"{added.pop(rng.randrange(len(added)))}.yaml").unlink()
    return kind


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_edit_sequences_build_what_a_fresh_build_gives(history_repo: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """Whatever the previous builds left (the served site, the spare, their manifests, the work cache and
    its compiled templates), a rebuild after any edit gives the fresh build's files, byte for byte."""
    import relreg.site.api
    import relreg.site.jobs

    rng = random.Random(seed)
    if seed % 2:  # many jobs and pages: most of the site keyed and carried over
        monkeypatch.setattr(relreg.site.jobs, "JOB_SIZE", 2)
        monkeypatch.setattr(relreg.site.api, "PER_PAGE", 2)
    registry = history_repo / "registry"
    incremental = tmp_path / "incremental"
    assert run_relreg("build", "--registry", registry, "--out", incremental).exit_code == 0
    added: list[str] = []
    for number in range(6):
        step = _random_edit(registry, rng, added)
        commit_all(history_repo, step, f"2024-07-{number + 1:02d}T10:00:00+00:00")
        _assert_rebuild_equals_fresh_build(registry, incremental, tmp_path / f"fresh-{number}", f"{number}: {step}")


def test_a_rebuild_joins_the_served_documents_of_unchanged_releases_into_lists(
        history_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import relreg.site.api
    import relreg.site.jobs

    monkeypatch.setattr(relreg.site.jobs, "JOB_SIZE", 1)
    registry, out = history_repo / "registry", tmp_path / "public"
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    encoded: list[str] = []
    real = relreg.site.api.release_document
    monkeypatch.setattr(relreg.site.api, "release_document",
                        lambda view, base: (encoded.append(view.version), real(view, base))[1])
    (registry / "releases" / "1.3.0.yaml").write_text(RELEASE_120.replace('1.2.0', '1.3.0').replace("e555", "f555"))
    commit_all(history_repo, "1.3.0", "2024-05-01T10:00:00+00:00")
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    assert encoded == ["1.3.0"]
    assert _versions(_json(out, "api/v1/releases.json"))[:2] == ["1.3.0", "1.2.0"]


@pytest.mark.parametrize("old, new, rows_made", [
    ("notes corrected", "notes fixed", []),  # a row shows no notes: the list is linked as it was
    ("revision: 0a1b2c3d4e5f", "revision: 9a1b2c3d4e5f", ["1.0.0"]),
], ids=["notes", "revision"])
def test_a_fixed_release_renders_only_its_row_of_the_releases_list_and_the_list_pages_that_hold_it(
        history_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str,
        rows_made: list[str]) -> None:
    import relreg.site.api
    import relreg.site.jobs
    import relreg.site.pages

    monkeypatch.setattr(relreg.site.jobs, "JOB_SIZE", 1)
    monkeypatch.setattr(relreg.site.api, "PER_PAGE", 1)  # every list of two releases or more is a long one
    registry, out, fresh = history_repo / "registry", tmp_path / "public", tmp_path / "fresh"
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    rows: list[str] = []
    pages: list[bytes] = []
    real_row, real_page = relreg.site.pages.release_list_row, relreg.site.api._page_parts
    monkeypatch.setattr(relreg.site.pages, "release_list_row", lambda view, back="": (rows.append(view.version),
                                                                                       real_row(view, back))[1])
    monkeypatch.setattr(relreg.site.api, "_page_parts",
                        lambda *args: (pages.append(b"".join(real_page(*args))), real_page(*args))[1])
    _replace_in(registry / "releases" / "1.0.0.yaml", old, new)
    commit_all(history_repo, "fix 1.0.0", "2024-05-01T10:00:00+00:00")
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    assert rows == rows_made
    assert pages and all(b'"version":"1.0.0"' in page for page in pages)
    assert run_relreg("build", "--registry", registry, "--out", fresh).exit_code == 0
    for relative in ("releases/index.html", "api/v1/releases.json", "api/v1/releases/page/3.json"):
        assert (out / relative).read_bytes() == (fresh / relative).read_bytes(), relative


def test_a_fixed_release_makes_only_its_chunk_of_the_sitemap_again(
        history_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import relreg.site.jobs
    import relreg.site.pages

    monkeypatch.setattr(relreg.site.jobs, "JOB_SIZE", 1)  # a chunk of release pages per release
    registry, out, fresh = history_repo / "registry", tmp_path / "public", tmp_path / "fresh"
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    made: list[list[str]] = []
    real = relreg.site.pages.sitemap_xml
    monkeypatch.setattr(relreg.site.pages, "sitemap_xml", lambda urls: (made.append([url for url, _ in urls]),
                                                                        real(urls))[1])
    _replace_in(registry / "releases" / "1.0.0.yaml", "notes corrected", "notes fixed")
    commit_all(history_repo, "fix notes", "2024-05-01T10:00:00+00:00")
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    release_urls = [url for urls in made for url in urls if "/releases/" in url and not url.endswith("/releases/")]
    assert release_urls and all(url.endswith("/releases/1.0.0/") for url in release_urls)
    monkeypatch.undo()
    assert run_relreg("build", "--registry", registry, "--out", fresh).exit_code == 0
    assert (out / "sitemap.xml").read_bytes() == (fresh / "sitemap.xml").read_bytes()


def test_a_job_run_again_with_the_same_paths_takes_its_serving_families_from_the_previous_build(
        history_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import relreg.site.write

    registry, out, fresh = history_repo / "registry", tmp_path / "public", tmp_path / "fresh"
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    looked_at: list[list[str]] = []
    real = relreg.site.write.path_families
    monkeypatch.setattr(relreg.site.write, "path_families", lambda paths: (looked_at.append(list(paths)),
                                                                           real(paths))[1])
    _replace_in(registry / "releases" / "1.0.0.yaml", "notes corrected", "notes fixed")
    commit_all(history_repo, "fix notes", "2024-05-01T10:00:00+00:00")
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    assert looked_at and not any("api/v1/releases/1.0.0.json" in paths for paths in looked_at)
    monkeypatch.undo()
    assert run_relreg("build", "--registry", registry, "--out", fresh).exit_code == 0
    assert (out / ".relreg-manifest.json").read_bytes().split(b"\n", 2)[1] == \
        (fresh / ".relreg-manifest.json").read_bytes().split(b"\n", 2)[1]  # the summaries, families among them
    assert (out / "_headers").read_bytes() == (fresh / "_headers").read_bytes()


def test_a_fixed_release_is_the_only_document_of_its_group_encoded_again(
        history_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import relreg.site.api

    monkeypatch.setattr(relreg.site.api, "PER_PAGE", 1)  # no page of a list holds two releases
    registry, out, fresh = history_repo / "registry", tmp_path / "public", tmp_path / "fresh"
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0  # one group of three releases
    encoded: list[str] = []
    real = relreg.site.api.release_document
    monkeypatch.setattr(relreg.site.api, "release_document",
                        lambda view, base: (encoded.append(view.version), real(view, base))[1])
    _replace_in(registry / "releases" / "1.0.0.yaml", "notes corrected", "notes fixed")
    commit_all(history_repo, "fix notes", "2024-05-01T10:00:00+00:00")
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    assert encoded == ["1.0.0"]
    assert run_relreg("build", "--registry", registry, "--out", fresh).exit_code == 0
    for relative in ("api/v1/releases/1.0.0.json", "api/v1/releases/1.1.0.json", "api/v1/releases.json"):
        assert (out / relative).read_bytes() == (fresh / relative).read_bytes(), relative


def test_ref_builds_what_the_commit_holds_not_the_work_tree(history_repo: Path) -> None:
    release = history_repo / "registry" / "releases" / "1.0.0.yaml"
    release.write_text(release.read_text().replace("notes corrected", "EDITED IN WORK TREE"))
    (history_repo / "registry" / "hardware" / "broken.yaml").write_text("name: [\n")
    out = history_repo / "public"
    result = run_relreg("build", "--registry", history_repo / "registry", "--ref", "HEAD~1", "--out", out)
    assert result.exit_code == 0, result.output
    assert _versions(_json(out, "api/v1/releases.json")) == ["1.2.0", "1.1.0", "1.0.0"]
    assert "notes corrected" in _json(out, "api/v1/releases/1.0.0.json")["data"]["notes"]
    assert _json(out, "api/v1/index.json")["data"]["commit"] == git(history_repo, "rev-parse", "HEAD~1")
    # at HEAD~1, 1.1.0 was not yet renamed; its dates are those of that commit's history
    assert _json(out, "api/v1/releases/1.1.0.json")["data"]["updated_date"] == "2024-02-01T08:00:00.000000+00:00"


def test_uncommitted_release_is_dated_by_source_date_epoch_with_a_warning(
        history_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (history_repo / "registry" / "releases" / "1.3.0.yaml").write_text(
        RELEASE_120.replace('1.2.0', '1.3.0').replace("e555", "f555"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1750000000")
    out = history_repo / "public"
    result = run_relreg("build", "--registry", history_repo / "registry", "--out", out)
    assert result.exit_code == 0
    assert "registry/releases/1.3.0.yaml is not committed" in result.output
    release = _json(out, "api/v1/releases/1.3.0.json")["data"]
    assert release["created_date"] == "2025-06-15T15:06:40.000000+00:00" and release["id"] == 4
    assert _json(out, "api/v1/index.json")["data"]["dirty"] is True


@pytest.mark.parametrize("value, message", [
    ("99999999999999999999", "is outside 0 (1970) to 253402300799"),
    ("253402300800", "is outside 0 (1970) to 253402300799"),  # year 10000: not a four-digit year
    ("-1", "is outside 0 (1970)"),
    ("1.5e9", "is not a number of seconds"),
])
def test_a_source_date_epoch_that_is_no_date_is_a_usage_error(history_repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                              value: str, message: str) -> None:
    (history_repo / "registry" / "releases" / "1.3.0.yaml").write_text(
        RELEASE_120.replace('1.2.0', '1.3.0').replace("e555", "f555"))  # uncommitted: dated by the build time
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    out = history_repo / "public"
    result = run_relreg("build", "--registry", history_repo / "registry", "--out", out)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output
    assert not out.exists()


def test_a_rebuild_reads_only_the_notes_of_changed_release_files(history_repo: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendered notes are found by the release file's blob id: a rollout change reads no release's notes, a
    notes fix reads that release's only, and the site equals a fresh build's."""
    import relreg.registry.model

    registry, out = history_repo / "registry", history_repo.parent / "public"
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    real = relreg.registry.model._notes_text
    read: list[str] = []
    monkeypatch.setattr(relreg.registry.model, "_notes_text",
                        lambda stored: (read.append(real(stored)), read[-1])[1])
    for change, expected in (
            (lambda: _replace_in(registry / "cohorts" / "stable.yaml", "rollout_percent: 50", "rollout_percent: 75"),
             []),
            (lambda: _replace_in(registry / "releases" / "1.0.0.yaml", "notes corrected", "notes fixed"),
             ["First release, notes fixed."])):
        change()
        commit_all(history_repo, "a change", "2024-05-01T10:00:00+00:00")
        read.clear()
        assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
        assert [text.strip() for text in read] == expected
    fresh = history_repo.parent / "fresh"
    assert run_relreg("build", "--registry", registry, "--out", fresh, "--force").exit_code == 0
    assert _files_of(out) == _files_of(fresh)


def _files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and p.name != ".relreg-manifest.json"}


def test_a_base_url_that_is_not_utf8_is_a_usage_error(history_repo: Path) -> None:
    """Bytes that are not UTF-8 on the command line reach Python as lone surrogates (PEP 383)."""
    out = history_repo / "public"
    result = run_relreg("build", "--registry", history_repo / "registry", "--out", out, "--base-url", "\udcff\udcfe/")
    assert result.exit_code == 2, result.output
    assert "Invalid value for --base-url: not UTF-8 text" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_format_json_gives_one_json_object_for_a_build_with_warnings_and_for_an_unchanged_one(
        history_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tools read standard output: --format json is JSON whether the build fails, succeeds or has nothing to do."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1750000000")
    out = history_repo / "public"
    (history_repo / "registry" / "releases" / "1.3.0.yaml").write_text(
        RELEASE_120.replace('1.2.0', '1.3.0').replace("e555", "f555"))
    built = run_relreg("build", "--registry", history_repo / "registry", "--out", out, "--format", "json")
    assert built.exit_code == 0, built.output
    report = json.loads(built.stdout)
    assert report["ok"] is True and report["build"]["releases"] == 4 and report["build"]["written"] > 0
    assert report["warning_count"] == 1 and "1.3.0.yaml is not committed" in report["warnings"][0]
    commit_all(history_repo, "add 1.3.0", "2025-06-15T15:06:40Z")
    run_relreg("build", "--registry", history_repo / "registry", "--out", out)
    unchanged = run_relreg("build", "--registry", history_repo / "registry", "--out", out, "--format", "json")
    assert unchanged.exit_code == 0
    report = json.loads(unchanged.stdout)
    assert report["ok"] is True and report["build"]["written"] == 0 and report["build"]["unchanged"] > 0


@pytest.mark.parametrize("setting", [("log.follow", "true"), ("log.showRoot", "false"), ("diff.renames", "false"),
                                     ("diff.renameLimit", "1"), ("log.showSignature", "true"), ("log.mailmap", "true")])
def test_the_builders_git_config_changes_nothing(history_repo: Path, tmp_path: Path, setting: tuple[str, str]) -> None:
    """Dates, ids and the deployment log come from git; a setting in the repository's (or the user's) git
    config must not change them, nor be kept in the history cache (found by a new-user trial: with
    log.follow or log.showRoot set, 180 files of a site differed, and stayed so after unsetting it)."""
    (history_repo / "fw").mkdir()
    git(history_repo, "mv", "registry", "fw/registry")  # a moved registry: its history is followed by path
    commit_all(history_repo, "move the registry", "2024-05-01T10:00:00+00:00")
    registry = history_repo / "fw" / "registry"
    assert run_relreg("build", "--registry", registry, "--out", tmp_path / "default").exit_code == 0
    shutil.rmtree(history_repo / ".git" / "relreg")
    git(history_repo, "config", *setting)
    result = run_relreg("build", "--registry", registry, "--out", tmp_path / "configured")
    assert result.exit_code == 0, result.output
    assert _files(tmp_path / "configured") == _files(tmp_path / "default")


@pytest.mark.parametrize("incremental", [False, True], ids=["fresh", "after a cached build"])
def test_a_commit_dated_before_its_parent_keeps_history_order(history_repo: Path, tmp_path: Path,
                                                              incremental: bool) -> None:
    """A release merged from a machine whose clock was behind: it is dated a second after the commit it
    follows, so it is the newest and no published release id changes (found by a new-user trial)."""
    out = tmp_path / "out"
    registry = history_repo / "registry"
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    ids = {v: _json(out, f"api/v1/releases/{v}.json")["data"]["id"] for v in ("1.0.0", "1.1.0", "1.2.0")}
    if not incremental:
        shutil.rmtree(history_repo / ".git" / "relreg")
    (registry / "releases" / "1.3.0.yaml").write_text(RELEASE_120.replace("1.2.0", "1.3.0").replace("e555", "f555"))
    commit_all(history_repo, "1.3.0, on a wrong clock", "2019-06-01T10:00:00+00:00")
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    assert {v: _json(out, f"api/v1/releases/{v}.json")["data"]["id"] for v in ids} == ids
    added = _json(out, "api/v1/releases/1.3.0.json")["data"]
    assert added["id"] == max(ids.values()) + 1
    assert added["created_date"] == "2024-04-01T10:00:01.000000+00:00"  # the parent's date, one second on
    assert _versions(_json(out, "api/v1/releases.json"))[0] == "1.3.0"


def test_shallow_clone_is_refused_with_how_to_fix(history_repo: Path, tmp_path: Path) -> None:
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{history_repo}", str(clone))
    result = run_relreg("build", "--registry", clone / "registry", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "shallow clone" in result.output and "git fetch --unshallow" in result.output
    assert not (tmp_path / "out").exists()


def test_invalid_registry_leaves_the_previous_output_untouched(history_repo: Path) -> None:
    out = history_repo / "public"
    assert run_relreg("build", "--registry", history_repo / "registry", "--out", out).exit_code == 0
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    (history_repo / "registry" / "releases" / "1.2.0.yaml").write_text(RELEASE_120 + "notes: twice\n")
    result = run_relreg("build", "--registry", history_repo / "registry", "--out", out)
    assert result.exit_code == 1
    assert "releases/1.2.0.yaml:10:1: error: duplicate key 'notes'" in result.output
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in out.parent.iterdir() if ".staging-" in p.name] == []


def test_failure_while_writing_leaves_the_previous_output_untouched(
        history_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = history_repo / "public"
    assert run_relreg("build", "--registry", history_repo / "registry", "--out", out).exit_code == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (history_repo / "registry" / "releases" / "1.3.0.yaml").write_text(
        RELEASE_120.replace('1.2.0', '1.3.0').replace("e555", "f555"))
    import relreg.site.write

    writes = {"count": 0}

    real_write = relreg.site.write._write_new_file

    def disk_full_after_five_files(target: str, content: bytes) -> None:
        writes["count"] += 1
        if writes["count"] > 5:
            raise OSError(28, "No space left on device")
        real_write(target, content)

    monkeypatch.setattr(relreg.site.write, "_write_new_file", disk_full_after_five_files)
    result = run_relreg("build", "--registry", history_repo / "registry", "--out", out)
    assert result.exit_code == 1 and "build stopped: No space left on device" in result.output, result.output
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in out.parent.iterdir() if ".staging-" in p.name] == []


def test_rebuild_rewrites_only_changed_files(history_repo: Path) -> None:
    out = history_repo / "public"
    registry = history_repo / "registry"
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")}
    again = run_relreg("build", "--registry", registry, "--out", out)
    assert "0 files written" in again.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")} == mtimes

    (registry / "releases" / "1.3.0.yaml").write_text(
        RELEASE_120.replace('1.2.0', '1.3.0').replace("e555", "f555"))
    commit_all(history_repo, "1.3.0", "2024-05-01T10:00:00+00:00")
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    changed = {p.relative_to(out).as_posix() for p, mtime in mtimes.items() if p.stat().st_mtime_ns != mtime}
    assert "api/v1/releases.json" in changed and "api/v1/releases/hardware_version/evt1.json" in changed
    assert "api/v1/releases/1.0.0.json" not in changed and "api/v1/releases/version/1.1.0.json" not in changed
    # Pages of releases that did not change stay as they are (the commit is named on the home page only).
    assert "index.html" in changed and "releases/1.2.0/index.html" in changed  # newest, now links to 1.3.0
    assert "releases/1.0.0/index.html" not in changed and "releases/1.1.0/index.html" not in changed


def _edit_notes(repo: Path) -> None:
    release = repo / "registry" / "releases" / "1.2.0.yaml"
    release.write_text(release.read_text().replace("**Bold** move", "**Bold** moves"))


def _untracked_release(repo: Path) -> None:
    (repo / "registry" / "releases" / "1.3.0.yaml").write_text(
        RELEASE_120.replace('1.2.0', '1.3.0').replace("e555", "f555"))


def _ignored_release(repo: Path) -> None:
    (repo / ".git" / "info" / "exclude").write_text("wip/\n")  # ignored without a commit
    (repo / "registry" / "releases" / "wip").mkdir()
    (repo / "registry" / "releases" / "wip" / "1.3.0.yaml").write_text(
        RELEASE_120.replace('1.2.0', '1.3.0').replace("e555", "f555"))


def _new_commit(repo: Path) -> None:
    _edit_notes(repo)
    commit_all(repo, "notes", "2024-05-01T10:00:00+00:00")


def _commit_outside_registry(repo: Path) -> None:
    (repo / "README.md").write_text("firmware\n")
    commit_all(repo, "readme", "2024-05-01T10:00:00+00:00")


# After a build from a clean commit, an unchanged rebuild answers from the
# commit id alone, without reading the registry; anything that could change
# the output must still rebuild it.
SHORTCUT_CASES = {
    "nothing changed": (lambda repo: None, [], False),
    "another --base-url": (lambda repo: None, ["--base-url", "https://mirror.example.test/"], True),
    "uncommitted edit": (_edit_notes, [], True),
    "untracked release": (_untracked_release, [], True),
    "ignored file in the registry": (_ignored_release, [], True),
    "new commit": (_new_commit, [], True),
    "commit outside the registry": (_commit_outside_registry, [], True),
}


@pytest.mark.parametrize("case", SHORTCUT_CASES)
def test_unchanged_rebuild_of_a_clean_commit_skips_reading_the_registry(
        case: str, history_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import relreg.build

    change, options, reads_registry = SHORTCUT_CASES[case]
    out = history_repo / "public"
    registry = history_repo / "registry"
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    change(history_repo)
    validated = []
    real_validate = relreg.build.validate_files
    monkeypatch.setattr(relreg.build, "validate_files", lambda *args, **kwargs: validated.append(1) or real_validate(*args, **kwargs))

    result = run_relreg("build", "--registry", registry, "--out", out, *options)

    assert result.exit_code == 0, result.output
    assert bool(validated) == reads_registry
    if not reads_registry:
        assert "0 files written" in result.output and "0 removed" in result.output
    entry = _json(out, "api/v1/index.json")["data"]
    assert entry["commit"] == git(history_repo, "rev-parse", "HEAD")


def test_force_rewrites_a_hand_edited_output_file(history_repo: Path) -> None:
    out = history_repo / "public"
    assert run_relreg("build", "--registry", history_repo / "registry", "--out", out).exit_code == 0
    document = out / "api/v1/releases/1.0.0.json"
    pristine = document.read_bytes()
    document.write_bytes(pristine.replace(b"1.0.0", b"6.6.6"))
    result = run_relreg("build", "--registry", history_repo / "registry", "--out", out, "--force")
    assert result.exit_code == 0
    assert document.read_bytes() == pristine
    assert "0 unchanged" in result.output  # --force rewrites everything


def test_output_folder_not_made_by_relreg_is_never_replaced(history_repo: Path, tmp_path: Path) -> None:
    mine = tmp_path / "my-notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("precious")
    result = run_relreg("build", "--registry", history_repo / "registry", "--out", mine)
    assert result.exit_code == 1
    assert "was not written by relreg" in result.output
    assert (mine / "todo.txt").read_text() == "precious"


@pytest.mark.parametrize("name, content", [
    ("counts.json", '{"1.0.0": 1200, "1.1.0": 34}'),
    ("counts.csv", "version,count\n1.0.0,1200\n1.1.0,34\n"),
])
def test_device_counts_snapshot_fills_count_devices(history_repo: Path, name: str, content: str) -> None:
    snapshot = history_repo / name
    snapshot.write_text(content)
    out = history_repo / "public"
    result = run_relreg("build", "--registry", history_repo / "registry", "--out", out, "--device-counts", snapshot)
    assert result.exit_code == 0, result.output
    counts = {r["version"]: r["count_devices"] for r in _json(out, "api/v1/releases.json")["data"]}
    assert counts == {"1.0.0": 1200, "1.1.0": 34, "1.2.0": 0}


def test_bad_device_counts_is_a_clear_error(history_repo: Path) -> None:
    snapshot = history_repo / "counts.csv"
    snapshot.write_text("1.0.0,many\n")
    result = run_relreg("build", "--registry", history_repo / "registry", "--out", history_repo / "public",
                        "--device-counts", snapshot)
    assert result.exit_code == 1
    assert f"{snapshot}:1:7: count for \"1.0.0\" is \"many\": a count is a whole number >= 0" in result.output
    assert "Traceback" not in result.output


def test_counts_for_versions_that_are_not_releases_are_a_warning(history_repo: Path) -> None:
    snapshot = history_repo / "counts.json"
    snapshot.write_text('{"snapshot_date": "2026-11-30", "counts": {"1.0.0": 5, "v1.1.0": 7, "9.9.9": 1}}')
    result = run_relreg("build", "--registry", history_repo / "registry", "--out", history_repo / "public",
                        "--device-counts", snapshot)
    assert result.exit_code == 0, result.output
    assert (f"warning: {snapshot}: device counts for 2 versions that are not a release of the registry "
            "(9.9.9, v1.1.0)") in result.output


def test_long_lists_continue_on_linked_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = init_repo(tmp_path / "repo")
    registry = repo / "registry"
    shutil.copytree(BASE_REGISTRY, registry)
    shutil.rmtree(registry / "cohorts")
    template = (BASE_REGISTRY / "releases" / "1.0.0.yaml").read_text()
    for index in range(205):
        version = f"3.{index}.0"
        (registry / "releases" / f"{version}.yaml").write_text(
            template.replace('"1.0.0"', f'"{version}"').replace("url: 1.0.0/", f"url: {version}/")
            .replace("a111111", f"a{index:06x}")
            .replace("b222222", f"b{index:06x}"))
    commit_all(repo, "many releases", "2025-01-01T00:00:00+00:00")
    out = tmp_path / "public"
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    first = _json(out, "api/v1/releases.json")
    assert first["paging"] == {"page": 1, "per_page": 100, "page_count": 3, "item_count": 100, "total_count": 207}
    assert first["links"]["next"] == "https://fw.example.test/api/v1/releases/page/2.json"
    last = _json(out, "api/v1/releases/page/3.json")
    assert last["paging"]["item_count"] == 7 and last["links"]["next"] is None
    assert last["links"]["prev"] == "https://fw.example.test/api/v1/releases/page/2.json"
    every = _versions(first) + _versions(_json(out, "api/v1/releases/page/2.json")) + _versions(last)
    assert len(every) == len(set(every)) == 207
    assert every[0] == "3.204.0" and every[-1] == "1.0.0"  # same commit: ties broken by version
    assert _json(out, "api/v1/releases/hardware_version/evt1.json")["links"]["last"].endswith(
        "/releases/hardware_version/evt1/page/3.json")
    assert api_schema_errors(out) == []


@pytest.mark.parametrize("document", [
    {}, [], {"a": 1}, [1, "x,y:{[", None, True], {"data": {"offers": [{"release": {"id": 1, "artifacts": [{}]}}],
                                                   "up_to_date": None}},
])
def test_the_device_budget_bound_is_never_below_the_token_count(document: object) -> None:
    from relreg.build import _most_tokens
    from relreg.devices.budget import json_tokens

    encoded = json.dumps(document, separators=(",", ":")).encode()
    assert _most_tokens(encoded) >= json_tokens(document)


@pytest.mark.parametrize("rewrite", [["commit", "-q", "--amend", "-m", "amended"],
                                     ["reset", "-q", "--hard", "HEAD~1"]], ids=["amend", "reset"])
def test_a_built_commit_rewritten_away_and_collected_is_walked_again(history_repo: Path, tmp_path: Path,
                                                                      rewrite: list[str]) -> None:
    """The history cache names the last built commit; once git has dropped it, the history is read anew."""
    registry = history_repo / "registry"
    built = run_relreg("build", "--registry", registry, "--out", tmp_path / "out")
    assert built.exit_code == 0, built.output
    notes = registry / "releases" / "1.0.0.yaml"
    notes.write_text(notes.read_text().replace("notes corrected.", "notes corrected twice."))
    git(history_repo, "add", "-A")
    git(history_repo, *rewrite, date="2024-05-01T10:00:00+00:00")
    git(history_repo, "checkout", "-q", "--", ".")
    git(history_repo, "reflog", "expire", "--expire=now", "--all")
    git(history_repo, "gc", "-q", "--prune=now")
    rebuilt = run_relreg("build", "--registry", registry, "--out", tmp_path / "out")
    assert rebuilt.exit_code == 0, rebuilt.output
    shutil.rmtree(history_repo / ".git" / "relreg")
    fresh = run_relreg("build", "--registry", registry, "--out", tmp_path / "fresh")
    assert fresh.exit_code == 0, fresh.output
    assert _files(tmp_path / "out") == _files(tmp_path / "fresh")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_an_output_folder_inside_the_registry_is_refused(history_repo: Path) -> None:
    registry = history_repo / "registry"
    for out in (registry, registry / "releases" / "site"):
        result = run_relreg("build", "--registry", registry, "--out", out)
        assert result.exit_code == 2 and "inside the registry" in result.output, result.output
    assert not (registry / "releases" / "site").exists()
    assert run_relreg("validate", "--registry", registry).exit_code == 0


def test_a_write_error_stops_the_build_with_a_message_and_the_site_whole(history_repo: Path, tmp_path: Path) -> None:
    """An OSError while writing (a full disk; here a lock path that is a folder, which even root cannot
    open for writing): a message and exit 1, no traceback, the served site unchanged."""
    out = tmp_path / "public"
    assert run_relreg("build", "--registry", history_repo / "registry", "--out", out).exit_code == 0
    before = _files(out)
    notes = history_repo / "registry" / "releases" / "1.0.0.yaml"
    notes.write_text(notes.read_text().replace("notes corrected.", "notes corrected again."))
    commit_all(history_repo, "notes", "2024-05-01T10:00:00+00:00")
    (tmp_path / ".public.lock").unlink()
    (tmp_path / ".public.lock").mkdir()
    result = run_relreg("build", "--registry", history_repo / "registry", "--out", out)
    assert result.exit_code == 1 and "build stopped: Is a directory" in result.output, result.output
    assert ".public.lock" in result.output and "Traceback" not in result.output
    assert _files(out) == before


def test_pinned_git_settings_come_after_the_callers_own() -> None:
    """A caller's GIT_CONFIG_COUNT entries are kept; relreg's follow them, so they win for the keys pinned."""
    from relreg.history.gitconfig import PINNED, pinned_environment

    added = pinned_environment({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "log.follow",
                                "GIT_CONFIG_VALUE_0": "true"})
    assert added["GIT_CONFIG_COUNT"] == str(1 + len(PINNED))
    assert [(added[f"GIT_CONFIG_KEY_{i}"], added[f"GIT_CONFIG_VALUE_{i}"]) for i in range(1, 1 + len(PINNED))] \
        == list(PINNED.items())
    assert "GIT_CONFIG_KEY_0" not in added


def test_after_an_upgrade_of_relreg_a_rebuild_assembles_a_new_folder_not_the_spare(
        history_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every job key changes with the code (here: a library that shapes the output, upgraded). The spare
    holds no job of the plan then: the site is assembled in a new folder, linked from the served one, with
    no index of the spare's files and no pass over them (at 100,000 releases: 1.4 GB in the build process)."""
    import relreg.site.write as write
    from relreg import resources

    registry, out = history_repo / "registry", tmp_path / "public"
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    _replace_in(registry / "releases" / "1.0.0.yaml", "notes corrected", "notes fixed")
    commit_all(history_repo, "fix notes", "2024-06-01T10:00:00+00:00")
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    assert write.spare_folder(out).is_dir()  # the spare holds the first build

    indexed: list[int] = []
    real_index, real_stale = write._FileIndex.__init__, write._Staging._remove_stale
    monkeypatch.setattr(write._FileIndex, "__init__", lambda self, records, keys, loose: (
        indexed.append(len(list(keys))), real_index(self, records, [k for k in records if k in set(keys)], loose))[1])
    stale: list[int] = []
    monkeypatch.setattr(write._Staging, "_remove_stale", lambda self, paths: (stale.append(len(paths)),
                                                                               real_stale(self, paths))[1])
    served = set(_files(out))
    (tmp_path / "libraries" / "nh3-99.0.0.dist-info").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path / "libraries"))
    resources.code_digest.cache_clear()
    try:
        for build in ("the first after the upgrade", "the second: the spare is of the old code"):
            if build.startswith("the second"):
                _replace_in(registry / "releases" / "1.0.0.yaml", "notes fixed", "notes fixed again")
                commit_all(history_repo, "fix notes again", "2024-06-02T10:00:00+00:00")
            served = set(_files(out))
            indexed.clear()
            stale.clear()
            result = run_relreg("build", "--registry", registry, "--out", out)
            assert result.exit_code == 0, build
            assert len(indexed) == 1 and stale == [], build  # the served files' index only, no stale-file pass
            assert " 0 removed" in result.output and set(_files(out)) == served, build
            fresh = tmp_path / f"fresh-{len(build)}"
            assert run_relreg("build", "--registry", registry, "--out", fresh).exit_code == 0
            assert _files(out) == _files(fresh), build
        assert re.search(r" [1-9]\d? files written", result.output)  # the second links all but a few files
    finally:
        resources.code_digest.cache_clear()
