"""`relreg check --base`: the pull-request policy, in real git repositories.

Table-driven cases live in fixtures/policy/<case>/: `base/` is laid over the
base registry before the base commit, `head/` over the work tree of the pull
request branch (committed there), `remove.txt` lists files the pull request
deletes, and `expected.txt` lists `path:line:col rule` (paths relative to the
registry folder). Cases named ok-* must pass (exit 0, warnings allowed); the
others must fail with exit 1.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import Result
from conftest import BASE_REGISTRY, FIXTURES, run_relreg
from git_helpers import commit_all, git, init_repo

POLICY = FIXTURES / "policy"
CASES = sorted(path.name for path in POLICY.iterdir())

RELEASE_130 = """version: "1.3.0"
artifacts:
  - hardware_version: evt1
    build_id: f130f130f130f130f130f130f130f130f130f130
    url: 1.3.0/evt1.bin
    size: 1300
    sha256: f130000000000000000000000000000000000000000000000000000000000000
"""


relreg = run_relreg  # the real `relreg` command line, in-process


def release(version: str, build_id_digit: str) -> str:
    return RELEASE_130.replace("1.3.0", version).replace("f130", build_id_digit * 4)


def _reported(result: Result) -> list[str]:
    report = json.loads(result.stdout)
    return [f"{d['path']}:{d['line']}:{d['column']} {d['rule']}" for d in report["diagnostics"]]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A registry repository: the base registry committed on main, and a pull request branch `pr` checked out."""
    repo = init_repo(tmp_path / "repo")
    shutil.copytree(BASE_REGISTRY, repo / "registry")
    commit_all(repo, "base registry", "2024-01-01T10:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "pr")
    return repo


def _overlay(source: Path, registry: Path) -> None:
    # copyfile, not copy2: a fixture's checkout mtime copied over a file of the same size would
    # let git's stat cache take the changed file for unchanged.
    if source.is_dir():
        shutil.copytree(source, registry, dirs_exist_ok=True, copy_function=shutil.copyfile)


@pytest.mark.parametrize("case", CASES)
def test_policy_case(case: str, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case_dir = POLICY / case
    registry = repo / "registry"
    if (case_dir / "base").is_dir():
        git(repo, "checkout", "-q", "main")
        _overlay(case_dir / "base", registry)
        commit_all(repo, "published", "2024-01-02T10:00:00+00:00")
        git(repo, "checkout", "-q", "pr")
        git(repo, "merge", "-q", "--ff-only", "main")
    _overlay(case_dir / "head", registry)
    removals = case_dir / "remove.txt"
    for name in removals.read_text().split() if removals.is_file() else []:
        (registry / name).unlink()
    commit_all(repo, f"pull request: {case}", "2024-01-03T10:00:00+00:00")
    expected = (case_dir / "expected.txt").read_text().split()
    expected = [f"{expected[i]} {expected[i + 1]}" for i in range(0, len(expected), 2)]
    monkeypatch.chdir(registry)  # paths are reported relative to the current folder

    result = relreg("check", "--registry", ".", "--base", "main", "--format", "json")

    assert _reported(result) == expected, result.stdout
    assert result.exit_code == (0 if case.startswith("ok-") else 1), result.output


def test_every_policy_case_has_an_expectation() -> None:
    for case in CASES:
        lines = (POLICY / case / "expected.txt").read_text().splitlines()
        assert all(line.count(" ") == 1 for line in lines), case
        assert lines or case.startswith("ok-"), case


def test_problem_is_explained_with_rule_and_fix_in_text_and_github_formats(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    published = repo / "registry" / "releases" / "1.0.0.yaml"
    published.write_text(published.read_text().replace("size: 1000\n", "size: 1024\n", 1))
    commit_all(repo, "resize", "2024-01-03T10:00:00+00:00")
    monkeypatch.chdir(repo)

    text = relreg("check", "--base", "main")
    github = relreg("check", "--base", "main", "--format", "github")

    assert text.exit_code == 1 and github.exit_code == 1
    first = text.stdout.splitlines()[0]
    assert first.startswith("registry/releases/1.0.0.yaml:9:11: error: artifacts[0].size (hardware_version 'evt1') "
                            "of published release 1.0.0 changed from 1000 to 1024: a published artifact is immutable")
    assert "to withdraw 1.0.0, set `yanked: <reason>`" in first and first.endswith("[release-immutable]")
    assert text.stdout.splitlines()[-1].startswith("1 error, 0 warnings in 6 files; against main (")
    assert github.stdout.startswith(
        "::error file=registry/releases/1.0.0.yaml,line=9,col=11,title=relreg release-immutable::artifacts[0].size")


def test_deleted_release_suggests_yanking(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git(repo, "checkout", "-q", "main")
    (repo / "registry" / "releases" / "1.3.0.yaml").write_text(RELEASE_130)
    commit_all(repo, "1.3.0", "2024-01-02T10:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "drop-1.3.0")
    git(repo, "rm", "-q", "registry/releases/1.3.0.yaml")
    commit_all(repo, "drop 1.3.0", "2024-01-03T10:00:00+00:00")
    monkeypatch.chdir(repo)

    result = relreg("check", "--base", "main")

    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "registry/releases/1.3.0.yaml:1:1: error: published release '1.3.0' was deleted (releases/1.3.0.yaml): "
        "a published release stays in the registry for good, since devices, caches, links and crash reports may "
        "refer to its version and build ids. Restore releases/1.3.0.yaml; to withdraw 1.3.0, set "
        "`yanked: <reason>` in it instead. [release-deleted]")


def test_uncommitted_work_tree_is_what_is_checked(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "registry" / "releases" / "1.3.0.yaml").write_text(RELEASE_130)
    monkeypatch.chdir(repo)
    result = relreg("check", "--base", "main")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("against main (" + git(repo, "rev-parse", "main")[:12]
                                          + "): releases: 1 added")


def test_pull_request_checkout_where_base_is_a_remote_branch(repo: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """As actions/checkout leaves it: a clone at the PR's merge commit, the base only as origin/main."""
    (repo / "registry" / "releases" / "1.3.0.yaml").write_text(RELEASE_130)
    commit_all(repo, "add 1.3.0", "2024-01-03T10:00:00+00:00")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "checkout", "-q", "--detach", "origin/main")
    git(clone, "merge", "-q", "--no-ff", "-m", "Merge pr into main", "origin/pr", date="2024-01-04T10:00:00+00:00")
    for branch in git(clone, "for-each-ref", "--format=%(refname:short)", "refs/heads").split():
        git(clone, "branch", "-q", "-D", branch)
    assert git(clone, "branch", "--list", "main") == ""
    monkeypatch.chdir(clone)

    for base in ("origin/main", "main"):  # a bare branch name is looked up as origin/<name>
        result = relreg("check", "--base", base)
        assert result.exit_code == 0, result.output
        assert "against origin/main (" in result.stdout and "releases: 1 added" in result.stdout
    sha = git(clone, "rev-parse", "origin/main")
    by_sha = relreg("check", "--base", sha)
    assert by_sha.exit_code == 0, by_sha.output
    assert f"against {sha[:12]}: releases: 1 added" in by_sha.stdout

    monkeypatch.setenv("GITHUB_BASE_REF", "main")  # the default inside a GitHub pull request
    assert relreg("check").exit_code == 0


def test_branch_behind_its_base_with_a_merge_commit(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Releases published on main after the branch merged main are not "deleted" by the branch."""
    registry = repo / "registry" / "releases"
    (registry / "1.3.0.yaml").write_text(RELEASE_130)
    commit_all(repo, "pr: 1.3.0", "2024-01-02T10:00:00+00:00")
    git(repo, "checkout", "-q", "main")
    (registry / "1.2.0.yaml").write_text(release("1.2.0", "e"))
    commit_all(repo, "main: 1.2.0", "2024-01-03T10:00:00+00:00")
    git(repo, "checkout", "-q", "pr")
    git(repo, "merge", "-q", "--no-edit", "main", date="2024-01-04T10:00:00+00:00")
    merged_main = git(repo, "rev-parse", "main")
    git(repo, "checkout", "-q", "main")
    (registry / "1.4.0.yaml").write_text(release("1.4.0", "c"))
    commit_all(repo, "main: 1.4.0", "2024-01-05T10:00:00+00:00")
    git(repo, "checkout", "-q", "pr")
    monkeypatch.chdir(repo)

    result = relreg("check", "--base", "main")

    assert result.exit_code == 0, result.output
    assert f"against merge-base of main and HEAD ({merged_main[:12]}): releases: 1 added" in result.stdout

    # The same branch after a rebase onto main: compared with main itself.
    git(repo, "rebase", "-q", "main")
    rebased = relreg("check", "--base", "main")
    assert rebased.exit_code == 0, rebased.output
    assert f"against main ({git(repo, 'rev-parse', 'main')[:12]}): releases: 1 added" in rebased.stdout


def test_merge_commit_that_changes_a_published_release_fails(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notes = repo / "registry" / "releases" / "1.1.0.yaml"
    notes.write_text(notes.read_text().replace("size: 1100", "size: 1101"))
    commit_all(repo, "pr: resize", "2024-01-02T10:00:00+00:00")
    git(repo, "checkout", "-q", "--detach", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge", "pr", date="2024-01-03T10:00:00+00:00")
    monkeypatch.chdir(repo / "registry")
    result = relreg("check", "--registry", ".", "--base", "main", "--format", "json")
    assert result.exit_code == 1
    assert _reported(result) == ["releases/1.1.0.yaml:11:11 release-immutable"]


def test_registry_at_the_top_of_the_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = init_repo(tmp_path / "repo")
    shutil.copytree(BASE_REGISTRY, repo, dirs_exist_ok=True)
    (repo / "README.md").write_text("not a registry file\n")
    commit_all(repo, "registry", "2024-01-01T10:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "pr")
    git(repo, "rm", "-q", "hardware/dvt1.yaml")
    (repo / "hardware" / "dvt2.yaml").write_text("name: dvt2\ndescription: Design validation board\n")
    monkeypatch.chdir(repo)
    result = relreg("check", "--base", "main", "--format", "json")
    assert result.exit_code == 1
    assert "hardware/dvt2.yaml:1:7 hardware-renamed" in _reported(result)


def test_first_pull_request_without_a_registry_at_the_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = init_repo(tmp_path / "repo")
    (repo / "README.md").write_text("firmware registry\n")
    commit_all(repo, "empty", "2024-01-01T10:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "pr")
    shutil.copytree(BASE_REGISTRY, repo / "registry")
    commit_all(repo, "registry", "2024-01-02T10:00:00+00:00")
    monkeypatch.chdir(repo)
    result = relreg("check", "--base", "main")
    assert result.exit_code == 0, result.output
    assert "has no registry yet" in result.stdout


def test_invalid_head_is_reported_like_validate(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "registry" / "hardware" / "dvt1.yaml").write_text("name: dvt1\nname: dvt2\n")
    monkeypatch.chdir(repo / "registry")
    result = relreg("check", "--registry", ".", "--base", "main", "--format", "json")
    assert result.exit_code == 1
    # The file exists but does not load: its own error, not "hardware deleted".
    assert _reported(result) == ["hardware/dvt1.yaml:2:1 yaml-duplicate-key"]


def test_usage_errors_exit_2(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    monkeypatch.delenv("GITHUB_BASE_REF", raising=False)
    unknown = relreg("check", "--base", "no-such-branch")
    assert unknown.exit_code == 2
    assert "--base no-such-branch: not a commit in this repository (tried no-such-branch, origin/no-such-branch)" \
        in unknown.output
    assert relreg("check").exit_code == 2  # no --base and not in a GitHub pull request

    outside = tmp_path / "outside"
    shutil.copytree(BASE_REGISTRY, outside / "registry")
    monkeypatch.chdir(outside)
    not_git = relreg("check", "--base", "main")
    assert not_git.exit_code == 2
    assert "not inside a git repository" in not_git.output


def test_shallow_clone_is_refused_with_a_hint(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "registry" / "releases" / "1.3.0.yaml").write_text(RELEASE_130)
    commit_all(repo, "add 1.3.0", "2024-01-03T10:00:00+00:00")
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "pr", f"file://{repo}", str(clone))
    monkeypatch.chdir(clone)
    result = relreg("check", "--base", "main")
    assert result.exit_code == 2
    assert "shallow clone" in result.output and "fetch-depth: 0" in result.output


def test_options_match_validate() -> None:
    """--registry and --format are declared as validate declares them."""
    from relreg.cli.build import validate
    from relreg.cli.release import check, new_release

    def described(command, name):  # noqa: ANN001, ANN202
        return next(p for p in command.params if p.name == name).to_info_dict()

    for command in (check, new_release):
        for name in ("registry_dir", "output_format"):
            assert described(command, name) == described(validate, name)


@pytest.mark.parametrize("committed", [True, False], ids=["move committed", "move only staged"])
def test_moving_the_registry_does_not_bypass_the_policy(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                        committed: bool) -> None:
    (repo / "fw").mkdir()
    git(repo, "mv", "registry", "fw/registry")
    published = repo / "fw" / "registry" / "releases" / "1.0.0.yaml"
    published.write_text(published.read_text().replace("sha256: a111", "sha256: e111", 1))  # a published image
    if committed:
        commit_all(repo, "move the registry and change 1.0.0", "2024-01-03T10:00:00+00:00")
    monkeypatch.chdir(repo)

    result = relreg("check", "--base", "main", "--registry", "fw/registry", "--format", "json")

    assert result.exit_code == 1, result.output
    assert _reported(result) == ["fw/registry/releases/1.0.0.yaml:10:13 release-immutable"]
    assert "registry/ at the base, fw/registry/ now" in json.loads(result.stdout)["summary"]


def test_moved_registry_with_only_allowed_changes_passes(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "fw").mkdir()
    git(repo, "mv", "registry", "fw/registry")
    commit_all(repo, "move the registry", "2024-01-03T10:00:00+00:00")
    monkeypatch.chdir(repo)
    result = relreg("check", "--base", "main", "--registry", "fw/registry")
    assert result.exit_code == 0, result.output
    assert "nothing is published" not in result.stdout
    assert "(the registry moved: registry/ at the base, fw/registry/ now): no registry changes" in result.stdout


def test_base_registry_that_cannot_be_told_apart_fails_clearly(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A new registry that shares nothing with the published one, in a repository that already publishes
    # one elsewhere: relreg must not say "nothing is published" and let it through.
    other = repo / "other"
    shutil.copytree(repo / "registry", other)
    for path in other.rglob("*.yaml"):
        path.write_text(path.read_text().replace("evt1", "zz9").replace("dvt1", "zz8").replace("1.0.0", "7.0.0")
                        .replace("1.1.0", "7.1.0").replace("stable", "other").replace("Stable", "Other")
                        .replace("a111", "f111").replace("b222", "f222").replace("c333", "f333")
                        .replace("d444", "f444").replace("Test Widget", "Other Widget"))
    for path in sorted(other.rglob("*.yaml")):
        renamed = path.with_name(path.name.replace("evt1", "zz9").replace("dvt1", "zz8").replace("1.0.0", "7.0.0")
                                 .replace("1.1.0", "7.1.0").replace("stable", "other"))
        path.rename(renamed)
    monkeypatch.chdir(repo)
    assert relreg("validate", "--registry", "other").exit_code == 0

    result = relreg("check", "--base", "main", "--registry", "other")

    assert result.exit_code == 2, result.output
    assert "has no registry at other/, and relreg cannot tell which of its registries (registry/) this one was" \
        in result.output

    # With the published registry deleted, the new one is compared with it: every published item is missing.
    git(repo, "rm", "-q", "-r", "registry")
    replaced = relreg("check", "--base", "main", "--registry", "other", "--format", "json")
    assert replaced.exit_code == 1
    assert "release-deleted" in {d["rule"] for d in json.loads(replaced.stdout)["diagnostics"]}


@pytest.mark.parametrize(("before", "after", "severity", "words"), [
    ("", "must_pass_through: true\n", "warning",
     "must_pass_through of published release 1.0.0 turned on: devices below 1.0.0 will now stop at 1.0.0 before "
     "1.1.0 and later."),
    ("must_pass_through: true\n", "must_pass_through: false\n", "error",
     "must_pass_through of published release 1.0.0 was turned off: devices below 1.0.0 could then skip it, and the "
     "migration it carries"),
    ("", 'min_version: "0.9.0"\n', "warning",
     "min_version of published release 1.0.0 raised to 0.9.0: devices below 0.9.0 will now install a release of at "
     "least 0.9.0 before 1.0.0"),
    ('min_version: "0.9.0"\n', 'min_version: "0.5.0"\n', "error",
     "min_version of published release 1.0.0 was lowered from '0.9.0' to '0.5.0': devices from 0.5.0 up to below "
     "0.9.0 could then install 1.0.0 directly"),
    ('min_version: "0.9.0"\n', "", "error", "min_version '0.9.0' was removed from published release 1.0.0"),
], ids=["pass-through on", "pass-through off", "min added", "min lowered", "min removed"])
def test_gate_changes_say_what_changes_for_devices(repo: Path, monkeypatch: pytest.MonkeyPatch, before: str,
                                                   after: str, severity: str, words: str) -> None:
    published = repo / "registry" / "releases" / "1.0.0.yaml"
    original = published.read_text()
    if before:
        git(repo, "checkout", "-q", "main")
        published.write_text(original.replace('version: "1.0.0"\n', f'version: "1.0.0"\n{before}'))
        commit_all(repo, "published with a gate", "2024-01-02T10:00:00+00:00")
        git(repo, "checkout", "-q", "pr")
        git(repo, "merge", "-q", "--ff-only", "main")
    published.write_text(original.replace('version: "1.0.0"\n', f'version: "1.0.0"\n{after}'))
    commit_all(repo, "change the gate", "2024-01-03T10:00:00+00:00")
    monkeypatch.chdir(repo)

    result = relreg("check", "--base", "main", "--format", "json")

    [diagnostic] = json.loads(result.stdout)["diagnostics"]
    assert diagnostic["severity"] == severity and words in diagnostic["message"], diagnostic
    assert result.exit_code == (0 if severity == "warning" else 1)
def _versions(repo: Path, versions: list[str]) -> None:
    for index, version in enumerate(versions):
        digit = "123456789"[index]
        (repo / "registry" / "releases" / f"{version}.yaml").write_text(
            f'version: "{version}"\nartifacts:\n  - hardware_version: evt1\n    build_id: "{digit * 40}"\n'
            f'    url: {version}/evt1.bin\n    size: 1500\n    sha256: "{digit * 64}"\n')


@pytest.mark.parametrize("versions, moved", [
    (["2.0.0-rc9", "2.0.0-rc10"], ["it changes the order of published releases (2.0.0-rc9 now sorts before "
                                    "2.0.0-rc10)"]),
    (["2.0.0-rc.1", "2.0.0-rc.2", "2.0.0"], []),  # the same order under both schemes
])
def test_a_version_scheme_change_names_the_versions_whose_order_changes(
        versions: list[str], moved: list[str], repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git(repo, "checkout", "-q", "main")
    _versions(repo, versions)
    commit_all(repo, "published", "2024-01-02T10:00:00+00:00")
    git(repo, "checkout", "-q", "pr")
    git(repo, "merge", "-q", "--ff-only", "main")
    config = repo / "registry" / "registry.yaml"
    config.write_text(config.read_text() + "version_scheme: natural\n")
    commit_all(repo, "natural", "2024-01-03T10:00:00+00:00")
    monkeypatch.chdir(repo / "registry")
    result = relreg("check", "--base", "main", "--format", "json")
    report = json.loads(result.stdout)
    scheme = [d for d in report["diagnostics"] if d["rule"] == "registry-version-scheme"]
    assert [(d["path"], d["line"], d["column"], d["severity"]) for d in scheme] == \
        [("registry.yaml", 5, 17, "warning")]
    message = scheme[0]["message"]
    assert message.startswith("version_scheme changed from 'semver' to 'natural': ")
    for words in moved:
        assert words in message
    if not moved:
        assert f"the {len(versions) + 2} published releases keep their order" in message
    assert "registry.yaml: version_scheme changed" in report["summary"]
    assert "no registry changes" not in report["summary"]


def test_unyanking_a_release_is_a_warning_with_the_reason(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git(repo, "checkout", "-q", "main")
    published = repo / "registry" / "releases" / "1.0.0.yaml"
    published.write_text(published.read_text().replace('version: "1.0.0"\n', 'version: "1.0.0"\nyanked: bricks evt1\n'))
    stable = repo / "registry" / "cohorts" / "stable.yaml"
    stable.write_text(stable.read_text().replace('  - version: "1.0.0"\n', ""))
    commit_all(repo, "yank 1.0.0", "2024-01-02T10:00:00+00:00")
    git(repo, "checkout", "-q", "pr")
    git(repo, "merge", "-q", "--ff-only", "main")
    published.write_text(published.read_text().replace("yanked: bricks evt1\n", ""))
    commit_all(repo, "unyank", "2024-01-03T10:00:00+00:00")
    monkeypatch.chdir(repo / "registry")
    result = relreg("check", "--base", "main", "--format", "json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["diagnostics"]
    assert [(d["path"], d["line"], d["column"], d["rule"], d["severity"]) for d in found] == \
        [("releases/1.0.0.yaml", 1, 10, "release-unyanked", "warning")]
    assert "release 1.0.0 was yanked ('bricks evt1') and this change removes `yanked:`" in found[0]["message"]


# --- devices stranded by a change (devices-stranded, release-yanked-pass-through, release-yanked-without-successor)

def _release(version: str, boards: str = "evt1,dvt1", *, min_version: str | None = None, mpt: bool = False,
             yanked: str | None = None, notes: str = "") -> str:
    lines = [f'version: "{version}"']
    if min_version:
        lines.append(f'min_version: "{min_version}"')
    if mpt:
        lines.append("must_pass_through: true")
    if yanked:
        lines.append(f"yanked: {yanked}")
    if notes:
        lines.append(f"notes: {notes}")
    lines.append("artifacts:")
    for board in boards.split(","):
        digest = hashlib.sha256(f"{version}/{board}".encode()).hexdigest()
        lines += [f"  - hardware_version: {board}", f"    build_id: {digest[:40]}", f"    url: {version}/{board}.bin",
                  "    size: 1000", f"    sha256: {digest}"]
    return "\n".join(lines) + "\n"


def _cohort(hardware: str, *activations: str) -> str:
    """activations: "1.2.0", "1.2.0@50" (rollout percent) or "1.2.0:evt1" (deployed to evt1 only)."""
    lines = ["slug: stable", "name: Stable", f"hardware_versions: [{hardware}]", "releases:"]
    for item in activations:
        version, _, held = item.partition(":")
        version, _, percent = version.partition("@")
        lines.append(f'  - version: "{version}"')
        if percent:
            lines.append(f"    rollout_percent: {percent}")
        if held:
            lines.append(f"    hardware_versions: [{held}]")
    return "\n".join(lines) + "\n"


# The published registry of every case: the base fixture (1.0.0 for evt1 and dvt1, 1.1.0 for evt1 only) with
# 1.2.0 and 1.3.0 (which needs 1.2.0), stable deploying 1.0.0, 1.2.0 and 1.3.0. Devices below 1.2.0 take 1.2.0.
_PUBLISHED = {
    "releases/1.2.0.yaml": _release("1.2.0"),
    "releases/1.3.0.yaml": _release("1.3.0", min_version="1.2.0"),
    "cohorts/stable.yaml": _cohort("evt1, dvt1", "1.0.0", "1.2.0", "1.3.0@50"),
}

_STRANDED_CASES = {
    # case: (published files over _PUBLISHED, the pull request's files (None: deleted), expected (rule, path, words))
    "yank-stepping-stone": ({}, {
        "releases/1.2.0.yaml": _release("1.2.0", yanked="bad radio calibration"),
        "cohorts/stable.yaml": _cohort("evt1, dvt1", "1.0.0", "1.3.0@50")}, [
        ("devices-stranded", "releases/1.2.0.yaml",
         "Yanking 1.2.0 blocks devices on 1.0.0, 1.1.0 in cohort 'stable' (evt1): 1.3.0 needs min_version 1.2.0, "
         "and no release from 1.2.0 up to below 1.3.0 is offered to them any more"),
        ("devices-stranded", "releases/1.2.0.yaml",
         "Yanking 1.2.0 blocks devices on 1.0.0 in cohort 'stable' (dvt1): 1.3.0 needs min_version 1.2.0")]),
    "stepping-stone-removed-from-cohort": ({}, {"cohorts/stable.yaml": _cohort("evt1, dvt1", "1.0.0", "1.3.0@50")}, [
        ("devices-stranded", "cohorts/stable.yaml",
         "Removing 1.2.0 from cohort 'stable' blocks devices on 1.0.0, 1.1.0 in cohort 'stable' (evt1)"),
        ("devices-stranded", "cohorts/stable.yaml",
         "Removing 1.2.0 from cohort 'stable' blocks devices on 1.0.0 in cohort 'stable' (dvt1)")]),
    "stepping-stone-held-back": ({}, {
        "cohorts/stable.yaml": _cohort("evt1, dvt1", "1.0.0", "1.2.0:evt1", "1.3.0@50")}, [
        ("devices-stranded", "cohorts/stable.yaml",
         "Holding 1.2.0 back from dvt1 in cohort 'stable' blocks devices on 1.0.0 in cohort 'stable' (dvt1)")]),
    "hardware-removed-from-cohort": ({}, {"cohorts/stable.yaml": _cohort("evt1", "1.0.0", "1.2.0", "1.3.0@50")}, [
        ("devices-stranded", "cohorts/stable.yaml",
         "Removing dvt1 from the hardware_versions of cohort 'stable' takes the update channel away from the "
         "devices of dvt1 in cohort 'stable' (their update requests fail): devices on 1.0.0, 1.2.0 could still "
         "update to 1.3.0 and are stranded there for good")]),
    # Every device of dvt1 runs the newest release deployed to it: nobody is stranded, but the channel still goes.
    "hardware-removed-when-none-can-update": (
        {"cohorts/stable.yaml": _cohort("evt1, dvt1", "1.0.0")}, {"cohorts/stable.yaml": _cohort("evt1", "1.0.0")}, [
            ("devices-stranded", "cohorts/stable.yaml",
             "takes the update channel away from the devices of dvt1 in cohort 'stable' (their update requests "
             "fail): devices on 1.0.0, the newest release it offered them, can never be offered a fix again")]),
    "unyank-must-pass-through": ({
        "releases/1.1.5.yaml": _release("1.1.5", mpt=True, yanked="migration bug"),
        "releases/1.1.6.yaml": _release("1.1.6", mpt=True),
        "cohorts/stable.yaml": _cohort("evt1, dvt1", "1.1.6", "1.2.0")}, {
        "releases/1.1.5.yaml": _release("1.1.5", mpt=True)}, [
        ("devices-stranded", "releases/1.1.5.yaml",
         "Un-yanking 1.1.5 (must_pass_through) blocks devices on 1.0.0 in cohort 'stable' (dvt1): 1.1.5 is a "
         "must_pass_through release they must install before anything newer, and the cohort does not offer it to "
         "dvt1"),
        ("devices-stranded", "releases/1.1.5.yaml",
         "Un-yanking 1.1.5 (must_pass_through) blocks devices on 1.0.0, 1.1.0 in cohort 'stable' (evt1)"),
        ("release-unyanked", "releases/1.1.5.yaml", "release 1.1.5 was yanked")]),
    "must-pass-through-added-not-deployed": ({}, {"releases/1.2.5.yaml": _release("1.2.5", mpt=True)}, [
        ("devices-stranded", "releases/1.2.5.yaml",
         "Adding 1.2.5 with must_pass_through blocks devices on 1.2.0 in cohort 'stable' (evt1, dvt1): 1.2.5 is a "
         "must_pass_through release")]),
    "yank-must-pass-through": ({
        "releases/1.2.0.yaml": _release("1.2.0", mpt=True),
        "releases/1.3.0.yaml": _release("1.3.0")}, {
        "releases/1.2.0.yaml": _release("1.2.0", mpt=True, yanked="bricks dvt1"),
        "cohorts/stable.yaml": _cohort("evt1, dvt1", "1.0.0", "1.3.0@50")}, [
        ("release-yanked-pass-through", "releases/1.2.0.yaml",
         "yanking 1.2.0, a must_pass_through release: devices below 1.2.0 will now skip its required step")]),
    # Harmless changes: nobody who could update loses it.
    "ok-release-added-and-deployed": ({}, {
        "releases/1.4.0.yaml": _release("1.4.0", min_version="1.3.0"),
        "cohorts/stable.yaml": _cohort("evt1, dvt1", "1.0.0", "1.2.0", "1.3.0@50", "1.4.0@10")}, []),
    "ok-notes-fixed": ({}, {"releases/1.2.0.yaml": _release("1.2.0", notes="Fixed the radio.")}, []),
    "ok-rollout-raised": ({}, {"cohorts/stable.yaml": _cohort("evt1, dvt1", "1.0.0", "1.2.0", "1.3.0")}, []),
    # The devices that took 1.3.0 (half of them) have nothing newer: they stay on the yanked release.
    "newest-release-yanked": ({}, {
        "releases/1.3.0.yaml": _release("1.3.0", min_version="1.2.0", yanked="boot loop"),
        "cohorts/stable.yaml": _cohort("evt1, dvt1", "1.0.0", "1.2.0")}, [
        ("release-yanked-without-successor", "releases/1.3.0.yaml",
         "yanking 1.3.0 leaves the devices of cohort 'stable' that installed it (evt1, dvt1) with nothing to "
         "install: nothing newer is deployed to them, and their update answers say 'latest'. They stay on the "
         "yanked release")]),
    "newest-release-yanked-held-back-from-one-board": ({
        "cohorts/stable.yaml": _cohort("evt1, dvt1", "1.0.0", "1.2.0", "1.3.0@50:evt1")}, {
        "releases/1.3.0.yaml": _release("1.3.0", min_version="1.2.0", yanked="boot loop"),
        "cohorts/stable.yaml": _cohort("evt1, dvt1", "1.0.0", "1.2.0")}, [
        ("release-yanked-without-successor", "releases/1.3.0.yaml",
         "yanking 1.3.0 leaves the devices of cohort 'stable' that installed it (evt1) with nothing to install")]),
    "ok-newest-release-yanked-and-replaced": ({}, {
        "releases/1.3.0.yaml": _release("1.3.0", min_version="1.2.0", yanked="boot loop"),
        "releases/1.3.1.yaml": _release("1.3.1", min_version="1.2.0"),
        "cohorts/stable.yaml": _cohort("evt1, dvt1", "1.0.0", "1.2.0", "1.3.1@10")}, []),
    "ok-undeployed-release-yanked": ({"releases/1.4.0.yaml": _release("1.4.0")}, {
        "releases/1.4.0.yaml": _release("1.4.0", yanked="never shipped")}, []),
    # The release that replaces it cannot be installed from it: devices on 1.3.0 are blocked, not served.
    "newest-release-yanked-replaced-by-one-out-of-reach": ({}, {
        "releases/1.3.0.yaml": _release("1.3.0", min_version="1.2.0", yanked="boot loop"),
        "releases/1.4.0.yaml": _release("1.4.0", min_version="1.3.5"),
        "cohorts/stable.yaml": _cohort("evt1, dvt1", "1.0.0", "1.2.0", "1.4.0")}, [
        ("release-yanked-without-successor", "releases/1.3.0.yaml",
         "yanking 1.3.0 leaves the devices of cohort 'stable' that installed it (evt1, dvt1) with nothing to "
         "install: what is newer cannot be installed from it"),
        ("devices-stranded", "releases/1.3.0.yaml", "Yanking 1.3.0 blocks devices on 1.2.0 in cohort 'stable'")]),
    "ok-stepping-stone-replaced": ({}, {
        "releases/1.2.0.yaml": _release("1.2.0", yanked="bad radio calibration"),
        "releases/1.2.1.yaml": _release("1.2.1"),
        "cohorts/stable.yaml": _cohort("evt1, dvt1", "1.0.0", "1.2.1", "1.3.0@50")}, []),
    "ok-hardware-held-back-without-a-gate": ({}, {
        "cohorts/stable.yaml": _cohort("evt1, dvt1", "1.0.0", "1.2.0", "1.3.0@50:evt1")}, []),
}


@pytest.mark.parametrize("case", sorted(_STRANDED_CASES))
def test_a_change_that_strands_devices_warns_once_per_group(case: str, repo: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    published, proposed, expected = _STRANDED_CASES[case]
    registry = repo / "registry"
    git(repo, "checkout", "-q", "main")
    for name, content in {**_PUBLISHED, **published}.items():
        (registry / name).write_text(content)
    commit_all(repo, "published", "2024-01-02T10:00:00+00:00")
    git(repo, "checkout", "-q", "pr")
    git(repo, "merge", "-q", "--ff-only", "main")
    for name, content in proposed.items():
        if content is None:
            (registry / name).unlink()
        else:
            (registry / name).write_text(content)
    commit_all(repo, case, "2024-01-03T10:00:00+00:00")
    monkeypatch.chdir(registry)

    result = relreg("check", "--registry", ".", "--base", "main", "--format", "json")

    assert result.exit_code == 0, result.output
    found = [d for d in json.loads(result.stdout)["diagnostics"]
             if d["rule"] in ("devices-stranded", "release-yanked-pass-through", "release-unyanked",
                              "release-yanked-without-successor")]
    assert all(d["severity"] == "warning" for d in found)
    assert len(found) == len(expected), [d["message"] for d in found]
    for rule, path, words in expected:
        assert any(d["rule"] == rule and d["path"] == path and words in d["message"] for d in found), \
            (words, [d["message"] for d in found])


def test_a_release_withdrawn_earlier_then_yanked_warns_from_the_deployment_history(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollout withdrawn in one change (1.3.0 taken out of stable) and the release yanked in a later one:
    the base deploys it nowhere, but the cohort's history did, and the devices that installed it then have
    nothing newer to install."""
    registry = repo / "registry"
    git(repo, "checkout", "-q", "main")
    for name, content in _PUBLISHED.items():
        (registry / name).write_text(content)
    commit_all(repo, "published, 1.3.0 at 50 %", "2024-01-02T10:00:00+00:00")
    (registry / "cohorts" / "stable.yaml").write_text(_cohort("evt1, dvt1", "1.0.0", "1.2.0"))
    commit_all(repo, "halt the 1.3.0 rollout", "2024-01-03T10:00:00+00:00")
    git(repo, "checkout", "-q", "pr")
    git(repo, "merge", "-q", "--ff-only", "main")
    (registry / "releases" / "1.3.0.yaml").write_text(_release("1.3.0", min_version="1.2.0", yanked="boot loop"))
    commit_all(repo, "yank 1.3.0", "2024-01-04T10:00:00+00:00")
    monkeypatch.chdir(registry)

    result = relreg("check", "--registry", ".", "--base", "main", "--format", "json")

    assert result.exit_code == 0, result.output
    found = [d for d in json.loads(result.stdout)["diagnostics"] if d["rule"] == "release-yanked-without-successor"]
    assert [(d["path"], d["severity"]) for d in found] == [("releases/1.3.0.yaml", "warning")], result.stdout
    assert "leaves the devices of cohort 'stable' that installed it when the cohort deployed it earlier " \
           "(evt1, dvt1) with nothing to install: nothing newer is deployed to them" in found[0]["message"]
