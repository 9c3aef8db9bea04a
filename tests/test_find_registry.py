"""Commands find the registry without --registry, also after it was moved (`git mv registry fw`), and say
so; an explicit --registry that lost its registry names where git has it now. Real git repositories."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import BASE_REGISTRY, run_relreg
from git_helpers import commit_all, git, init_repo


@pytest.fixture
def moved(tmp_path: Path) -> Path:
    """A repository whose registry was committed in registry/, then moved to firmware/fw/."""
    repo = init_repo(tmp_path / "repo")
    shutil.copytree(BASE_REGISTRY, repo / "registry")
    commit_all(repo, "registry", "2024-01-01T10:00:00+00:00")
    (repo / "firmware").mkdir()
    git(repo, "mv", "registry", "firmware/fw")
    commit_all(repo, "move the registry", "2024-01-02T10:00:00+00:00")
    return repo


@pytest.mark.parametrize("where", [".", "firmware", "docs"])
def test_a_moved_registry_is_found_by_the_registry_yaml_git_tracks(moved: Path, where: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (moved / where).mkdir(exist_ok=True)
    monkeypatch.chdir(moved / where)
    result = run_relreg("validate")
    assert result.exit_code == 0, result.output
    assert "relreg: using the registry in " in result.output and "fw" in result.output, result.output


def test_two_tracked_registries_are_named_and_none_is_chosen(moved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(moved / "firmware" / "fw", moved / "other")
    commit_all(moved, "a second registry", "2024-01-03T10:00:00+00:00")
    monkeypatch.chdir(moved)
    result = run_relreg("validate")
    assert result.exit_code == 2, result.output
    assert "this repository holds 2: firmware/fw, other; pass --registry DIR" in result.output, result.output


def test_an_untracked_registry_yaml_is_not_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = init_repo(tmp_path / "repo")
    (repo / "README").write_text("not a registry\n")
    commit_all(repo, "readme", "2024-01-01T10:00:00+00:00")
    shutil.copytree(BASE_REGISTRY, repo / "scratch")  # never committed
    monkeypatch.chdir(repo)
    result = run_relreg("validate")
    assert result.exit_code == 2, result.output
    assert "no registry found" in result.output, result.output


def test_outside_a_repository_the_message_says_how_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_relreg("validate")
    assert result.exit_code == 2, result.output
    assert "pass --registry DIR or create one with `relreg init DIR`" in result.output, result.output


def test_a_registry_option_that_lost_its_registry_names_where_git_has_it(moved: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(moved)
    for command in (["validate"], ["build", "--out", str(moved.parent / "public")]):
        result = run_relreg(*command, "--registry", "registry")
        assert result.exit_code == 2, result.output
        assert "--registry registry: no registry.yaml in that folder; git tracks one in firmware/fw (moved?" \
            in result.output, result.output


def test_another_tools_registry_yaml_is_not_taken_for_a_registry(moved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A container registry's settings (deploy/registry.yaml, no releases/ or hardware/ beside it) are not a
    release registry: the moved one is still the only one found."""
    (moved / "deploy").mkdir()
    (moved / "deploy" / "registry.yaml").write_text("version: 0.1\nstorage:\n  filesystem: {}\n")
    commit_all(moved, "a container registry", "2024-01-03T10:00:00+00:00")
    monkeypatch.chdir(moved)
    result = run_relreg("validate")
    assert result.exit_code == 0, result.output
    assert "using the registry in firmware/fw" in result.output, result.output


def test_a_registry_yaml_hidden_by_a_sparse_checkout_is_named_and_ref_builds_the_commit(
        moved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git(moved, "sparse-checkout", "set", "--no-cone", "/*", "!/firmware/fw/registry.yaml")
    assert not (moved / "firmware" / "fw" / "registry.yaml").exists()
    monkeypatch.chdir(moved)
    refused = run_relreg("validate", "--registry", "firmware/fw")
    assert refused.exit_code == 2, refused.output
    assert "its registry.yaml is in git but not in the work tree (a sparse checkout" in refused.output
    built = run_relreg("build", "--ref", "HEAD", "--registry", "firmware/fw", "--out", str(moved.parent / "public"))
    assert built.exit_code == 0, built.output
    (moved / "empty").mkdir()
    nothing = run_relreg("build", "--ref", "HEAD", "--registry", "empty", "--out", str(moved.parent / "other"))
    assert nothing.exit_code == 2 and "no empty/registry.yaml in that commit" in nothing.output, nothing.output
