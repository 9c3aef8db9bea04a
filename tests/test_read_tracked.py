"""A clean registry is read from git's index (registry.source.read_tracked) exactly as from the work tree.

The build takes this path whenever `git status` shows the registry clean: it must give the same
files in the same order, with the same blob ids, problems and refusals as read_worktree, for odd
names, nested releases, links and files too large to read.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from conftest import BASE_REGISTRY
from git_helpers import commit_all, git, init_repo
from relreg.history.head import _HIDDEN_ENTRY, _parse_listing, read_head
from relreg.registry.source import RegistryFiles, read_tracked, read_worktree
from relreg.registry.yamlload import MAX_FILE_BYTES


def _as_read(files: RegistryFiles) -> tuple[object, ...]:
    return ([(f.kind, f.path, f.registry_path, f.blob_id) for f in files.files], files.problems, files.refused,
            files.root)


def _odd_tree(registry: Path) -> None:
    """Files a long-lived registry gathers: nested releases, stray and oddly named files, links."""
    release = (registry / "releases" / "1.1.0.yaml").read_text()
    (registry / "releases" / "2" / "2.1").mkdir(parents=True)
    (registry / "releases" / "2" / "2.1" / "2.1.0.yaml").write_text(release.replace("1.1.0", "2.1.0"))
    (registry / "releases" / "2" / "README.md").write_text("grouped\n")
    (registry / "releases" / "zz.yaml").write_text(release.replace("1.1.0", "9.9.9"))
    (registry / "releases" / "2.2.0.YAML").write_text("version: x\n")
    (registry / "releases" / "notes.txt").write_text("stray\n")
    (registry / "releases" / "a b.yaml").write_text("version: x\n")
    (registry / "hardware" / "sub").mkdir()
    (registry / "hardware" / "sub" / "evt.yaml").write_text("name: evt\n")
    (registry / "cohorts" / ".gitkeep").write_text("")
    (registry / "releases" / "link.yaml").symlink_to("1.1.0.yaml")
    (registry / "releases" / "folder-link").symlink_to("2", target_is_directory=True)
    (registry / "releases" / "huge.yaml").write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    (registry / "README.md").write_text("not read\n")
    (registry / "3.0.0.yaml").write_text(release.replace("1.1.0", "3.0.0"))  # misplaced: named as problems
    (registry / "Releases" / "3").mkdir(parents=True)
    (registry / "Releases" / "3" / "3.1.0.yaml").write_text("version: x\n")
    (registry / "Releases" / "3.2.0.yaml").symlink_to("3/3.1.0.yaml")
    (registry / "Releases" / "4.yaml").symlink_to("3", target_is_directory=True)
    (registry / "docs").mkdir()
    (registry / "docs" / "x.yaml").write_text("not read\n")


@pytest.mark.parametrize("odd", [False, True], ids=["plain", "odd files"])
@pytest.mark.parametrize("cached", ["none", "all readable"])
def test_index_read_equals_work_tree_read(tmp_path: Path, odd: bool, cached: str) -> None:
    repo = init_repo(tmp_path / "repo")
    registry = repo / "fw" / "registry"
    shutil.copytree(BASE_REGISTRY, registry)
    if odd:
        _odd_tree(registry)
    commit_all(repo, "registry", "2024-01-01T00:00:00Z")
    head = read_head(registry)
    assert head is not None and head.clean and head.tracked_files() is not None
    from_disk = read_worktree(registry, display_base=repo)
    # What a real cache can hold: documents of files read_worktree read (never of a refused one).
    readable = {(f.kind, f.blob_id) for f in from_disk.files} if cached == "all readable" else set()
    from_index = read_tracked(registry, head.tracked_files(), lambda kind, blob: (kind, blob) in readable, display_base=repo)
    assert from_index is not None
    assert _as_read(from_index) == _as_read(from_disk)
    assert [f.content for f in from_index.files] == [f.content for f in from_disk.files]
    # No bytes are held: a cached file is not read, the others are read again by the process that checks them.
    assert all(f.held_content is None for f in from_index.files)


def test_a_registry_not_clean_is_not_read_from_the_index(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    shutil.copytree(BASE_REGISTRY, repo / "registry")
    commit_all(repo, "registry", "2024-01-01T00:00:00Z")
    (repo / "registry" / "releases" / "1.1.0.yaml").write_text("version: changed\n")
    head = read_head(repo / "registry")
    assert head is not None and not head.clean and head.tracked_files() is None


def test_a_submodule_in_the_registry_sends_the_read_to_the_work_tree(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    shutil.copytree(BASE_REGISTRY, repo / "registry")
    inner = init_repo(repo / "registry" / "releases" / "vendor")
    (inner / "3.0.0.yaml").write_text("version: '3.0.0'\n")
    commit_all(inner, "vendor", "2024-01-01T00:00:00Z")
    commit_all(repo, "registry with a nested repository", "2024-01-01T00:00:00Z")
    listing = git(repo, "ls-files", "--stage", "registry/releases/vendor")
    assert listing.startswith("160000")
    head = read_head(repo / "registry")
    assert head is not None and head.tracked_files() is not None
    assert read_tracked(repo / "registry", head.tracked_files(), lambda kind, blob: True) is None
    assert os.path.isfile(repo / "registry" / "releases" / "vendor" / "3.0.0.yaml")


_TAGS = "HSMRCK?hsmrck"  # git ls-files -v: lower case is assume-unchanged, S skip-worktree


@given(st.lists(st.tuples(st.sampled_from(_TAGS), st.sampled_from(["100644", "100755", "120000", "160000"]),
                          st.text(alphabet="0123456789abcdef", min_size=40, max_size=40),
                          st.text(st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]), min_size=1)),
                max_size=8))
def test_the_quick_hidden_scan_agrees_with_the_parsed_listing(entries: list[tuple[str, str, str, str]]) -> None:
    """read_head calls a registry clean after scanning git's listing for hidden entries; the build later
    parses the same listing. Paths may hold tabs, spaces, newlines and tag-like text."""
    listed = "".join(f"{tag} {mode} {blob} 0\t{path}\0" for tag, mode, blob, path in entries)
    parsed = _parse_listing(listed)
    assert [(f.path, f.mode, f.blob_id) for f in parsed] == [(p, m, b) for _, m, b, p in entries]
    assert (_HIDDEN_ENTRY.search(listed) is not None) == any(f.hidden for f in parsed)


@pytest.mark.parametrize("broken", [False, True], ids=["valid", "with errors"])
def test_relreg_validate_of_a_clean_registry_says_what_a_work_tree_read_says(tmp_path: Path, broken: bool) -> None:
    """`relreg validate` reads a clean registry from git's index: its report, cold and warm, is the one
    given when an untracked file sends the read to the work tree, problems and odd files included."""
    import json

    from conftest import run_relreg

    repo = init_repo(tmp_path / "repo")
    registry = repo / "registry"
    shutil.copytree(BASE_REGISTRY, registry)
    _odd_tree(registry)
    if broken:  # a duplicate key (the odd files bring build ids used twice, reported at the newer file)
        release = registry / "releases" / "1.1.0.yaml"
        release.write_text(release.read_text().replace("version:", "version: 9.9.9\nversion:", 1))
    commit_all(repo, "registry", "2024-01-01T00:00:00Z")

    def report() -> tuple[int, object]:
        result = run_relreg("validate", "--registry", registry, "--format", "json")
        assert "Traceback" not in result.output
        return result.exit_code, json.loads(result.output)

    head = read_head(registry)
    assert head is not None and head.tracked_files() is not None  # read from the index
    from_index = [report(), report()]  # cold, then warm (the kept verdict)
    (registry / "scratch.md").write_text("untracked, not a registry file\n")
    head = read_head(registry)
    assert head is not None and head.tracked_files() is None  # read from the work tree
    from_disk = [report(), report()]
    assert from_index == from_disk
    assert from_disk[0][0] == 1  # the odd files are refused
    rules = {d["rule"] for d in from_disk[0][1]["diagnostics"]}
    assert "build-id-unique" in rules and ("yaml-duplicate-key" in rules) == broken


@pytest.mark.parametrize("held", ["none", "every file", "releases only"])
def test_a_commit_read_with_cached_files_taken_by_blob_id_equals_a_full_read(tmp_path: Path, held: str) -> None:
    """`read_git_tree` with `holds`: a held file is taken by its blob id, not read, and still gives its bytes
    when asked (from git); the files, problems and refusals are those of a full read of the commit."""
    import git as gitpython

    from relreg.registry.source import read_git_tree

    repo = init_repo(tmp_path / "repo")
    registry = repo / "fw" / "registry"
    shutil.copytree(BASE_REGISTRY, registry)
    (registry / "releases" / "huge.yaml").write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    (registry / "releases" / "link.yaml").symlink_to("1.1.0.yaml")
    commit_all(repo, "registry", "2024-01-01T00:00:00Z")
    tree = gitpython.Repo(repo).head.commit.tree
    full = read_git_tree(tree, "fw/registry")
    # What a real cache can hold: documents of files a full read read (never of a refused one).
    readable = {(f.kind, f.blob_id) for f in full.files if held == "every file" or f.kind == "release"}
    holds = None if held == "none" else lambda kind, blob: (kind, blob) in readable
    taken = read_git_tree(tree, "fw/registry", holds=holds)
    assert _as_read(taken) == _as_read(full)
    assert [f.content for f in taken.files] == [f.content for f in full.files]
    not_read = [f for f in taken.files if f.held_content is None]
    assert len(not_read) == {"none": 0, "every file": len(full.files),
                             "releases only": sum(f.kind == "release" for f in full.files)}[held]
