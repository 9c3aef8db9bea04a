"""A build into a folder holding a previous site warns when published ids, releases or images changed.

Real git repositories: the ids come from the history (first commit of each release file), so a
deleted release file or a rewritten history changes them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import BASE_REGISTRY, run_relreg
from git_helpers import commit_all, git, init_repo, registry_without_releases

from relreg.registry.model import Artifact
from relreg.site.published import artifacts_digest, changes_since, parse_table, published_table

RELEASE = """version: "{version}"
revision: 0a1b2c3d4e5f60718293a4b5c6d7e8f901234567
notes: "Release {version}."
artifacts:
  - hardware_version: evt1
    build_id: {digit}555555555555555555555555555555555555555
    url: https://cdn.example.test/fw/{version}/evt1.bin
    size: 1200
    sha256: {digit}555555555555555555555555555555555555555555555555555555555555555
"""

# Created in this order, so ids 1, 2, 3: the hotfix 1.1.1 comes after 1.2.0.
HISTORY = [("1.0.0", "a", "2024-01-01T10:00:00+00:00"), ("1.2.0", "b", "2024-02-01T10:00:00+00:00"),
           ("1.1.1", "c", "2024-03-01T10:00:00+00:00")]


@pytest.fixture
def published(tmp_path: Path) -> tuple[Path, Path]:
    """(repository, output folder): three releases committed one by one and built once."""
    repo = init_repo(tmp_path / "repo")
    registry = registry_without_releases(repo, BASE_REGISTRY)
    for version, digit, date in HISTORY:
        (registry / "releases" / f"{version}.yaml").write_text(RELEASE.format(version=version, digit=digit))
        commit_all(repo, f"release {version}", date)
    out = tmp_path / "public"
    built = run_relreg("build", "--registry", registry, "--out", out)
    assert built.exit_code == 0, built.output
    assert "previous build" not in built.output
    return repo, out


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def _delete_120(repo: Path) -> None:
    git(repo, "rm", "-q", "registry/releases/1.2.0.yaml")
    commit_all(repo, "remove 1.2.0", "2024-04-01T10:00:00+00:00")


def _squash(repo: Path) -> None:
    root = git(repo, "rev-list", "--max-parents=0", "HEAD")
    git(repo, "reset", "-q", "--soft", root)
    git(repo, "commit", "-q", "--amend", "-m", "squashed", date="2024-04-01T10:00:00+00:00")


def _reimport(repo: Path) -> None:
    """The same commits in the same order, a day later each: a history imported afresh (ids stay, dates move)."""
    git(repo, "checkout", "-q", "--orphan", "reimported")
    git(repo, "rm", "-r", "-q", "--cached", ".")
    for number, (version, _, date) in enumerate(HISTORY):
        if number == 0:  # the registry's other files came with the first release
            git(repo, "add", "--", ".", ":(exclude)registry/releases/*.yaml")
        git(repo, "add", f"registry/releases/{version}.yaml")
        git(repo, "commit", "-q", "-m", f"release {version}", date=date.replace("T10:", "T11:").replace("-01T", "-02T"))


def _merge_built_branch(repo: Path) -> None:
    """1.3.0 built on a branch (by the test, into the same folder), then merged into main with --no-ff: on
    main's first-parent history it is dated by the merge."""
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "registry" / "releases" / "1.3.0.yaml").write_text(RELEASE.format(version="1.3.0", digit="d"))
    commit_all(repo, "release 1.3.0", "2024-04-01T10:00:00+00:00")
    built = run_relreg("build", "--registry", repo / "registry", "--out", repo.parent / "public")
    assert built.exit_code == 0, built.output
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge feature", "feature", date="2024-04-02T10:00:00+00:00")


def _edit_sha(repo: Path) -> None:
    _edit(repo / "registry" / "releases" / "1.2.0.yaml", "sha256: b555", "sha256: f555")
    commit_all(repo, "new image for 1.2.0", "2024-04-01T10:00:00+00:00")


def _edit_size(repo: Path) -> None:
    _edit(repo / "registry" / "releases" / "1.0.0.yaml", "size: 1200", "size: 1300")
    commit_all(repo, "new size for 1.0.0", "2024-04-01T10:00:00+00:00")


def _add(repo: Path) -> None:
    (repo / "registry" / "releases" / "1.3.0.yaml").write_text(RELEASE.format(version="1.3.0", digit="d"))
    commit_all(repo, "release 1.3.0", "2024-04-01T10:00:00+00:00")


def _fix_notes(repo: Path) -> None:
    _edit(repo / "registry" / "releases" / "1.2.0.yaml", "Release 1.2.0.", "Release 1.2.0, notes fixed.")
    commit_all(repo, "fix notes", "2024-04-01T10:00:00+00:00")


def _yank(repo: Path) -> None:
    path = repo / "registry" / "releases" / "1.1.1.yaml"
    path.write_text(path.read_text() + "yanked: bricks evt1 boards\n")
    commit_all(repo, "yank 1.1.1", "2024-04-01T10:00:00+00:00")


CASES: list[tuple[str, Callable[[Path], None], list[str]]] = [
    ("delete a release", _delete_120, [
        "release ids changed since the previous build (1.1.1: 3 -> 2): published ids are permanent",
        "releases of the previous build are gone (1.2.0)"]),
    ("squash the history", _squash, [
        "release ids changed since the previous build (1.2.0: 2 -> 3, 1.1.1: 3 -> 2)",
        "release created dates changed since the previous build (1.0.0: 2024-01-01 10:00:00 -> 2024-04-01 10:00:00, "
        "1.1.1: 2024-03-01 10:00:00 -> 2024-04-01 10:00:00, 1.2.0: 2024-02-01 10:00:00 -> 2024-04-01 10:00:00)"]),
    ("import the history afresh", _reimport, [
        "release created dates changed since the previous build (1.0.0: 2024-01-01 10:00:00 -> 2024-01-02 11:00:00, "
        "1.1.1: 2024-03-01 10:00:00 -> 2024-03-02 11:00:00, 1.2.0: 2024-02-01 10:00:00 -> 2024-02-02 11:00:00): "
        "they come from the first-parent git history"]),
    ("merge a branch that was built", _merge_built_branch, [
        "release created dates changed since the previous build (1.3.0: 2024-04-01 10:00:00 -> 2024-04-02 10:00:00): "
        "they come from the first-parent git history, which was rewritten (a rebase, a squash, a fresh import), lost "
        "a release file's commits, or took them in by a merge"]),
    ("edit a published sha256", _edit_sha, ["published images changed since the previous build (1.2.0)"]),
    ("edit a published size", _edit_size, ["published images changed since the previous build (1.0.0)"]),
    ("add a release", _add, []),
    ("fix release notes", _fix_notes, []),
    ("yank a release", _yank, []),
]


@pytest.mark.parametrize("change, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_rebuild_warns_of_what_changed_for_api_consumers(
        published: tuple[Path, Path], change: Callable[[Path], None], expected: list[str]) -> None:
    repo, out = published
    change(repo)
    built = run_relreg("build", "--registry", repo / "registry", "--out", out)
    assert built.exit_code == 0, built.output
    warnings = [line for line in built.output.splitlines() if "previous build" in line]
    assert len(warnings) == len(expected), built.output
    for warning, fragment in zip(warnings, expected):
        assert fragment in warning, built.output
    again = run_relreg("build", "--registry", repo / "registry", "--out", out, "--force")
    assert "previous build" not in again.output  # compared with the build just made, nothing changed


def test_a_build_into_a_fresh_folder_compares_with_nothing(published: tuple[Path, Path], tmp_path: Path) -> None:
    repo, _ = published
    _delete_120(repo)
    built = run_relreg("build", "--registry", repo / "registry", "--out", tmp_path / "elsewhere")
    assert built.exit_code == 0 and "previous build" not in built.output, built.output


class _Dates:
    def __init__(self, created: int) -> None:
        self.created = created


def _rows(*rows: tuple[str, int, str]) -> dict[str, str]:
    """Rows as builds before the created dates kept them."""
    return {version: f"{number}\tb{version}\t{digest}" for version, number, digest in rows}


def _dated(*rows: tuple[str, int, str]) -> dict[str, str]:
    """Rows with their created date (seconds), or none for a release the build dated."""
    return {version: f"1\tb{version}\td\t{created}" for version, created in rows}


@pytest.mark.parametrize("previous, current, expected", [
    ({}, _rows(("1.0.0", 1, "d1")), []),  # a manifest of older code keeps no table
    (_rows(("1.0.0", 1, "d1")), _rows(("1.0.0", 1, "d1"), ("1.1.0", 2, "d2")), []),
    (_rows(("1.0.0", 1, "d1")), _rows(("1.0.0", 1, "d9")), ["published images changed since the previous build (1.0.0)"]),
    (_rows(("1.0.0", 1, "d1"), ("1.1.0", 2, "d2")), _rows(("1.1.0", 1, "d2")), [
        "release ids changed since the previous build (1.1.0: 2 -> 1)",
        "releases of the previous build are gone (1.0.0)"]),
    (_rows(*[(f"1.{n}.0", n, "d") for n in range(10)]), _rows(*[(f"1.{n}.0", n + 1, "d") for n in range(10)]),
     ["release ids changed since the previous build (1.0.0: 0 -> 1, 1.1.0: 1 -> 2, 1.2.0: 2 -> 3, 1.3.0: 3 -> 4, "
      "1.4.0: 4 -> 5, 1.5.0: 5 -> 6, 1.6.0: 6 -> 7, 1.7.0: 7 -> 8, and 2 more)"]),
])
def test_changes_since(previous: dict, current: dict, expected: list[str]) -> None:
    _assert_warnings(changes_since(previous, current), expected)


def _assert_warnings(warnings: list[str], expected: list[str]) -> None:
    assert len(warnings) == len(expected), warnings
    for warning, fragment in zip(warnings, expected):
        assert warning.startswith(fragment), warning


@pytest.mark.parametrize("previous, current, expected", [
    (_dated(("1.0.0", "86400")), _dated(("1.0.0", "86400")), []),
    (_dated(("1.0.0", "86400")), _dated(("1.0.0", "90000")),
     ["release created dates changed since the previous build (1.0.0: 1970-01-02 00:00:00 -> 1970-01-02 01:00:00)"]),
    (_dated(("1.0.0", "")), _dated(("1.0.0", "90000")), []),  # dated by that build: not committed then
    (_dated(("1.0.0", "86400")), _dated(("1.0.0", "")), []),
    (_rows(("1.0.0", 1, "d")), _dated(("1.0.0", "90000")), []),  # a table of older code: no dates to compare
])
def test_changes_since_in_created_dates(previous: dict, current: dict, expected: list[str]) -> None:
    _assert_warnings(changes_since(previous, current), expected)


@pytest.mark.parametrize("text, expected", [
    (None, {}), ({"1.0.0": [1]}, {}), ("", {}), ("1.0.0\t1\tb\td\nbroken line\n", {"1.0.0": "1\tb\td"}),
    ("1.0.0\t1\tb\td\t86400\n1.1.0\t2\tb\td\t\n1.2.0\t1\tb\td\t8\t9\n",
     {"1.0.0": "1\tb\td\t86400", "1.1.0": "2\tb\td\t"}),
])
def test_parse_table_keeps_only_well_formed_rows(text: object, expected: dict) -> None:
    assert parse_table(text) == expected


def test_published_table_numbers_releases_as_the_site_does(published: tuple[Path, Path]) -> None:
    import json

    from relreg.registry.source import read_worktree
    from relreg.registry.validate import validate_files
    from relreg.history.cache import work_cache_for

    repo, out = published
    registry_dir = repo / "registry"
    result = validate_files(read_worktree(registry_dir), work_cache_for(registry_dir))
    assert result.registry is not None
    dates = {version: _Dates(n) for n, (version, _, _) in enumerate(HISTORY)}
    table = published_table(result.registry.releases, dates, {}, {})
    site = json.loads((out / "api" / "v1" / "releases.json").read_text())
    assert {version: int(row.split("\t")[0]) for version, row in table.items()} == {
        release["version"]: release["id"] for release in site["data"]} == {"1.0.0": 1, "1.2.0": 2, "1.1.1": 3}


def test_a_release_dated_by_the_build_then_committed_is_not_called_redated(published: tuple[Path, Path]) -> None:
    repo, out = published
    (repo / "registry" / "releases" / "1.3.0.yaml").write_text(RELEASE.format(version="1.3.0", digit="d"))
    first = run_relreg("build", "--registry", repo / "registry", "--out", out)
    assert first.exit_code == 0 and "is not committed" in first.output, first.output
    commit_all(repo, "release 1.3.0", "2024-04-01T10:00:00+00:00")
    second = run_relreg("build", "--registry", repo / "registry", "--out", out)
    assert second.exit_code == 0, second.output
    assert "previous build" not in second.output, second.output


_DIGEST_TEXT = st.one_of(st.text("0123456789abcdef", min_size=1, max_size=8), st.text("0123456789ABCDEFxyz", max_size=4))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.builds(Artifact, hardware_version=st.sampled_from(["evt1", "dvt"]), build_id=_DIGEST_TEXT,
                          url=st.just("a.bin"), size=st.integers(0, 10**12), sha256=_DIGEST_TEXT,
                          software_type=st.sampled_from([None, "", "main"]), type=st.sampled_from(["full", "delta"]),
                          delta_from=st.sampled_from([None, "", "1.0.0"])), max_size=4))
def test_the_artifacts_digest_kept_in_manifests_keeps_its_text(artifacts: list[Artifact]) -> None:
    # As every earlier build wrote it: a change would warn that every published release's images changed.
    text = "\n".join(sorted(f"{a.hardware_version}/{a.software_type or ''}/{a.type}/{a.delta_from or ''}"
                            f"={a.sha256}:{a.size}" for a in artifacts))
    assert artifacts_digest(artifacts) == hashlib.sha256(text.encode()).hexdigest()[:16]
