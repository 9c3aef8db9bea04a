"""Where `relreg validate` and `relreg build` report a conflict between two files: at the newer one by git history.

Uncommitted and untracked files are newest of all; the other file is named in
the message. Outside git, files of equal age order by path. The version-order
warnings that need "newer" (a release sorting below an older one with the
same numbers) read the same history.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import BASE_REGISTRY, run_relreg
from git_helpers import commit_all, init_repo

RELEASE = """version: "{version}"
artifacts:
  - hardware_version: evt1
    build_id: "{build_id}"
    url: {url}
    size: 1500
    sha256: "{sha}"
"""


def release(version: str, build_id: str = "ab" * 20, url: str | None = None, sha: str = "ab" * 32) -> str:
    return RELEASE.format(version=version, build_id=build_id, url=url or f"{version}/evt1.bin", sha=sha)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = init_repo(tmp_path / "repo")
    shutil.copytree(BASE_REGISTRY, repo / "registry")
    commit_all(repo, "base registry", "2024-01-01T10:00:00+00:00")
    return repo


def _validate(repo: Path, monkeypatch: pytest.MonkeyPatch, command: str = "validate") -> tuple[int, list[dict]]:
    monkeypatch.chdir(repo / "registry")
    args = command.split() + ["--registry", ".", "--format", "json"]
    if args[0] == "build":
        args += ["--out", str(repo.parent / "public")]
    result = run_relreg(*args)
    assert not (repo.parent / "public").exists()
    return result.exit_code, json.JSONDecoder().raw_decode(result.output)[0]["diagnostics"]  # then what build says on stderr


def _where(found: list[dict]) -> list[str]:
    return [f"{d['path']}:{d['line']}:{d['column']} {d['rule']}" for d in found]


# (files added in a later commit, files added uncommitted, expected location, words of the message[,
#  files committed in between, before the later commit])
CASES = {
    "same version, committed later": (
        {"releases/1.1.0+build.7.yaml": release("1.1.0+build.7")}, {},
        "releases/1.1.0+build.7.yaml:1:10 version-unique", "same version as '1.1.0' (releases/1.1.0.yaml)"),
    "same version, untracked": (
        {}, {"releases/1.1.0+build.7.yaml": release("1.1.0+build.7")},
        "releases/1.1.0+build.7.yaml:1:10 version-unique", "(releases/1.1.0.yaml)"),
    "build id reused by a release first by path": (
        {"releases/1.0.5.yaml": release("1.0.5", build_id="c" + "3" * 39)}, {},
        "releases/1.0.5.yaml:4:15 build-id-unique", "already used by releases/1.1.0.yaml artifacts[0]"),
    "url reused with other bytes, uncommitted": (
        {}, {"releases/1.0.5.yaml": release("1.0.5", url="https://dl.example.test/fw/1.1.0/evt1.bin")},
        "releases/1.0.5.yaml:5:10 artifact-url-unique",
        "also the url of releases/1.1.0.yaml artifacts[0], with size 1500 instead of 1100"),
    "relative url reused by a release first by path": (
        {"releases/1.0.5.yaml": release("1.0.5", url="1.1.0/evt1.bin")}, {},
        "releases/1.0.5.yaml:5:10 artifact-url-unique", "(resolves to https://dl.example.test/fw/1.1.0/evt1.bin)"),
    # path-collision: the newer file is first by path here (upper case sorts first), so only the history
    # puts the report on it.
    "hardware version differing in case, committed later": (
        {"hardware/EVT1.yaml": "name: EVT1\ndescription: Same board, other case\n"}, {},
        "hardware/EVT1.yaml:1:7 path-collision", "hardware version 'EVT1' differs from 'evt1' (hardware/evt1.yaml)"),
    "hardware version differing in case, untracked": (
        {}, {"hardware/DVT1.yaml": "name: DVT1\ndescription: Same board, other case\n"},
        "hardware/DVT1.yaml:1:7 path-collision", "hardware version 'DVT1' differs from 'dvt1' (hardware/dvt1.yaml)"),
    "version differing in case, committed later": (
        {"releases/1.2.0-rc.1.yaml": release("1.2.0-rc.1", build_id="1" * 40, sha="1" * 64)}, {},
        "releases/1.2.0-rc.1.yaml:1:10 path-collision",
        "version '1.2.0-rc.1' differs from '1.2.0-RC.1' (releases/1.2.0-RC.1.yaml)",
        {"releases/1.2.0-RC.1.yaml": release("1.2.0-RC.1", build_id="2" * 40, sha="2" * 64)}),
}


# A build of a commit (--ref) does not read the work tree: it takes the cases with committed files only.
COMMANDS = [(case, command) for case in CASES for command in ("validate", "build", "build --ref HEAD")
            if not ("--ref" in command and CASES[case][1])]


@pytest.mark.parametrize(("case", "command"), COMMANDS)
def test_a_conflict_is_reported_at_the_newer_file(case: str, command: str, repo: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    committed, uncommitted, where, words, *earlier = CASES[case]
    for files in earlier:
        for path, text in files.items():
            (repo / "registry" / path).write_text(text)
        commit_all(repo, "earlier", "2024-01-15T10:00:00+00:00")
    for path, text in committed.items():
        (repo / "registry" / path).write_text(text)
    if committed:
        commit_all(repo, "later", "2024-02-01T10:00:00+00:00")
    for path, text in uncommitted.items():
        (repo / "registry" / path).write_text(text)
    exit_code, found = _validate(repo, monkeypatch, command)
    assert exit_code == 1
    assert _where(found) == [f"registry/{where}" if "--ref" in command else where]  # a commit's paths are the repository's
    assert (re.sub(r"(?<![\w/])(releases|hardware)/", r"registry/\1/", words) if "--ref" in command else words) \
        in found[0]["message"]


def test_an_old_file_changed_in_the_work_tree_is_the_newer_one(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = repo / "registry"
    (registry / "releases" / "1.1.0+build.7.yaml").write_text(release("1.1.0+build.7"))
    commit_all(repo, "1.1.0+build.7", "2024-02-01T10:00:00+00:00")
    published = registry / "releases" / "1.1.0.yaml"
    published.write_text(published.read_text().replace("notes: <p>Second release.</p>", "notes: <p>Second.</p>"))
    exit_code, found = _validate(repo, monkeypatch)
    assert exit_code == 1
    assert _where(found) == ["releases/1.1.0.yaml:1:10 version-unique"]
    assert "(releases/1.1.0+build.7.yaml)" in found[0]["message"]


def test_outside_git_the_first_file_by_path_is_the_older(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(BASE_REGISTRY, registry)
    (registry / "releases" / "1.0.5.yaml").write_text(release("1.0.5", build_id="c" + "3" * 39))
    monkeypatch.chdir(registry)
    found = json.loads(run_relreg("validate", "--registry", ".", "--format", "json").output)["diagnostics"]
    assert _where(found) == ["releases/1.1.0.yaml:9:15 build-id-unique"]


@pytest.mark.parametrize("first, second, below", [
    ("2.0.0-rc9", "2.0.0-rc10", True),   # rc10 is newer but sorts below rc9
    ("2.0.0-rc10", "2.0.0-rc9", False),  # rc9 is newer and sorts above: expected order
    ("1.1.0", "1.1.0-hotfix1", True),    # the base release was published first (in the base registry)
    ("2.0.0-rc.9", "2.0.0-rc.10", False),
    ("2.0.0", "2.0.0-rc.1", True),       # a release candidate published after its release
])
def test_a_newer_release_sorting_below_an_older_one_is_a_warning(
        first: str, second: str, below: bool, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = repo / "registry"
    if not (registry / "releases" / f"{first}.yaml").exists():
        (registry / "releases" / f"{first}.yaml").write_text(release(first, build_id="1" * 40, sha="1" * 64))
        commit_all(repo, first, "2024-02-01T10:00:00+00:00")
    (registry / "releases" / f"{second}.yaml").write_text(release(second, build_id="2" * 40, sha="2" * 64))
    commit_all(repo, second, "2024-03-01T10:00:00+00:00")
    exit_code, found = _validate(repo, monkeypatch)
    assert exit_code == 0
    newer_below = [d for d in found if d["message"].startswith(f"{second} is newer than {first}")]
    assert len(newer_below) == (1 if below else 0), found
    if below:
        assert _where(newer_below) == [f"releases/{second}.yaml:1:10 version-order"]
        assert newer_below[0]["severity"] == "warning"
        assert f"devices on {first} are not offered {second}" in newer_below[0]["message"]
