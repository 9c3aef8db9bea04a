"""The first step of every build: is the output already the build of this commit?

An unchanged rebuild stops after three git calls and the manifest's first line (relreg/uptodate.py,
history/head.py, site/manifest.py); everything else must keep working when that state is odd:
a repository in any state, a manifest of another format or damaged by hand, a command-line
group whose commands load on demand.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
from conftest import BASE_REGISTRY, run_relreg
from git_helpers import commit_all, committed_registry, git, init_repo

from relreg.cli.main import COMMANDS, cli
from relreg.history.head import HeadState, read_head
from relreg.site.manifest import MANIFEST_FORMAT, read_header
from relreg.site.paths import MANIFEST


def _committed_registry(tmp_path: Path) -> Path:
    return committed_registry(tmp_path / "repo", BASE_REGISTRY)


def _untracked(repo: Path) -> None:
    (repo / "registry" / "releases" / "9.9.9.yaml").write_text("version: 9.9.9\n")


def _modified(repo: Path) -> None:
    config = repo / "registry" / "registry.yaml"
    config.write_text(config.read_text() + "\n")


def _ignored(repo: Path) -> None:
    (repo / ".gitignore").write_text("*.bak\n")
    commit_all(repo, "ignore backups", "2024-01-02T10:00:00+00:00")
    (repo / "registry" / "releases" / "1.0.0.yaml.bak").write_text("old\n")


def _outside_registry(repo: Path) -> None:
    (repo / "README.md").write_text("not part of the registry\n")


# How the repository is changed after its commit -> whether the registry folder is clean.
STATES: dict[str, tuple[Callable[[Path], None], bool]] = {
    "as committed": (lambda repo: None, True),
    "untracked file": (_untracked, False),
    "modified file": (_modified, False),
    "ignored file in the registry": (_ignored, False),
    "change outside the registry": (_outside_registry, True),
}


@pytest.mark.parametrize("state", STATES)
def test_head_state_tells_a_clean_registry_from_a_changed_one(tmp_path: Path, state: str) -> None:
    repo = _committed_registry(tmp_path)
    change, clean = STATES[state]
    change(repo)
    head = read_head(repo / "registry")
    assert head == HeadState(prefix="registry", commit=git(repo, "rev-parse", "HEAD"), shallow=False, clean=clean)


def test_head_state_outside_git_without_commits_with_a_ref_and_shallow(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(BASE_REGISTRY, plain)
    assert read_head(plain) is None

    empty = init_repo(tmp_path / "empty")
    shutil.copytree(BASE_REGISTRY, empty / "registry")
    assert read_head(empty / "registry") == HeadState("registry", None, False, False)

    repo = _committed_registry(tmp_path)
    first = git(repo, "rev-parse", "HEAD")
    _modified(repo)
    commit_all(repo, "second", "2024-01-03T10:00:00+00:00")
    _untracked(repo)
    assert read_head(repo / "registry", "HEAD~1") == HeadState("registry", first, False, True)
    assert read_head(repo / "registry", "no-such-branch") == HeadState("registry", None, False, True)

    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(clone))
    assert read_head(clone).shallow  # type: ignore[union-attr]


def _damage(change: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def damage(out: Path) -> None:
        manifest = out / MANIFEST
        manifest.write_text("\n".join(change(manifest.read_text().splitlines())) + "\n")
    return damage


def _header(update: Callable[[dict], object]) -> Callable[[list[str]], list[str]]:
    def change(lines: list[str]) -> list[str]:
        header = json.loads(lines[0])
        update(header)
        return [json.dumps(header), *lines[1:]]
    return change


# Ways the served manifest can differ from what the last build wrote. Whatever the damage, the
# next builds give the files of a fresh build, never a traceback (an unreadable manifest makes the
# build trust nothing of the previous one; a body the header vouches for is only read when something
# changed, and then it is refused).
DAMAGES: dict[str, Callable[[Path], None]] = {
    "older format (one JSON object)": _damage(lambda lines: [json.dumps({**json.loads(lines[0]),
                                                                          **json.loads(lines[1]), "format": 2})]),
    "header is not JSON": _damage(lambda lines: ["{not json", *lines[1:]]),
    "header without a file count": _damage(_header(lambda header: header.pop("files"))),
    "header of another source": _damage(_header(lambda header: header.update(source="0" * 64))),
    "body cut off": _damage(lambda lines: [lines[0], lines[1][: len(lines[1]) // 2]]),
    "body not an object": _damage(lambda lines: [lines[0], "[]"]),
    "empty manifest": lambda out: (out / MANIFEST).write_text(""),
    "records cut off": lambda out: (out / MANIFEST).write_bytes((out / MANIFEST).read_bytes()[:-10]),
    "records grown": lambda out: (out / MANIFEST).write_bytes((out / MANIFEST).read_bytes() + b"x\tx\tx\n"),
    "index span outside the records": _damage(lambda lines: [lines[0], lines[1].replace('"loose": [0, ', '"loose": [99999999, '),
                                                              *lines[2:]]),
}


def _same_files(out: Path, fresh: Path) -> None:
    files = sorted(path.relative_to(out) for path in out.rglob("*") if path.is_file() and path.name != MANIFEST)
    assert files == sorted(path.relative_to(fresh) for path in fresh.rglob("*")
                           if path.is_file() and path.name != MANIFEST)
    assert [path for path in files if (out / path).read_bytes() != (fresh / path).read_bytes()] == []


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_manifest_never_leads_to_a_wrong_site(tmp_path: Path, damage: str) -> None:
    repo = _committed_registry(tmp_path)
    registry, out = repo / "registry", tmp_path / "public"
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    DAMAGES[damage](out)

    for step in ("as built", "notes fixed"):
        if step == "notes fixed":
            notes = registry / "releases" / "1.0.0.yaml"
            notes.write_text(notes.read_text().replace("First release.", "First release, notes corrected."))
            commit_all(repo, "fix notes", "2024-02-01T10:00:00+00:00")
        fresh = tmp_path / f"fresh-{step}"
        assert run_relreg("build", "--registry", registry, "--out", fresh).exit_code == 0
        result = run_relreg("build", "--registry", registry, "--out", out)
        assert result.exit_code == 0, result.output
        _same_files(out, fresh)
    assert read_header(out) == read_header(fresh)


def test_the_manifest_header_is_one_small_line(tmp_path: Path) -> None:
    repo = _committed_registry(tmp_path)
    out = tmp_path / "public"
    assert run_relreg("build", "--registry", repo / "registry", "--out", out).exit_code == 0
    header = read_header(out)
    assert header is not None and header["format"] == MANIFEST_FORMAT
    assert header["files"] == sum(1 for path in out.rglob("*") if path.is_file() and path.name != MANIFEST)
    assert len((out / MANIFEST).read_text().splitlines()[0]) < 1000

    again = run_relreg("build", "--registry", repo / "registry", "--out", out)
    assert f"0 files written, {header['files']} unchanged, 0 removed" in again.output


def test_every_command_loads_by_its_name_and_help_lists_them_all() -> None:
    for name in COMMANDS:
        command = cli.get_command(None, name)  # type: ignore[arg-type]
        assert command is not None and command.name == name
        assert command.get_short_help_str()
    assert cli.get_command(None, "no-such-command") is None  # type: ignore[arg-type]
    listed = run_relreg("--help").output.split("Commands:")[1]
    assert [line.split()[0] for line in listed.strip().splitlines()] == sorted(COMMANDS)


@pytest.mark.parametrize(("library", "counts"), [("nh3", True), ("cmarkgfm", True), ("Jinja2", True),
                                                 ("PyYAML", True), ("requests", False)])
def test_an_upgrade_of_a_library_that_shapes_the_output_changes_every_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, library: str, counts: bool) -> None:
    """Cached notes HTML, pages and the source key must not outlive a new Markdown engine or sanitizer."""
    from relreg import resources

    before = resources.code_digest()
    (tmp_path / f"{library}-99.0.0.dist-info").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    resources.code_digest.cache_clear()
    try:
        assert (resources.code_digest() != before) is counts
        assert (f"{library}-99.0.0.dist-info" in resources.library_versions()) is counts
    finally:
        resources.code_digest.cache_clear()


def test_the_code_digest_is_the_same_in_another_checkout(tmp_path: Path) -> None:
    """Keys and caches carry over between checkouts of one commit (a CI runner, a worktree), and change
    with a change of a template."""
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    digests = []
    for name in ("one", "two/deeper", "three"):
        copy = tmp_path / name
        shutil.copytree(root / "generator", copy / "generator", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(root / "schemas", copy / "schemas")
        if name == "three":
            template = next((copy / "generator" / "relreg" / "site" / "theme" / "templates").glob("*.html"))
            template.write_text(template.read_text() + "\n")
        digests.append(subprocess.run(
            [sys.executable, "-c", "from relreg.resources import code_digest; print(code_digest().hex())"],
            env={"PYTHONPATH": str(copy / "generator"), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
            check=True).stdout)
    assert digests[0] == digests[1] != digests[2]


@pytest.mark.parametrize("hide", [
    ["sparse-checkout", "set", "--no-cone", "/registry/registry.yaml", "/registry/hardware/", "/registry/cohorts/"],
    ["update-index", "--skip-worktree", "registry/releases/1.1.0.yaml"],
    ["update-index", "--assume-unchanged", "registry/releases/1.1.0.yaml"],
], ids=["sparse-checkout", "skip-worktree", "assume-unchanged"])
def test_a_registry_partly_hidden_from_the_work_tree_is_refused(tmp_path: Path, hide: list[str]) -> None:
    """git status calls such a tree clean: read from disk, it would be published as the whole commit."""
    repo = init_repo(tmp_path / "repo")
    shutil.copytree(BASE_REGISTRY, repo / "registry")
    commit_all(repo, "registry", "2024-01-01T10:00:00+00:00")
    out = tmp_path / "out"
    git(repo, *hide)
    if "assume-unchanged" in hide:  # an edit git will not see
        release = repo / "registry" / "releases" / "1.1.0.yaml"
        release.write_text(release.read_text().replace("version:", "versoin:"))
    for args in (["build", "--out", str(out)], ["validate"], ["check", "--base", "HEAD"]):
        result = run_relreg(*args, "--registry", repo / "registry")
        assert result.exit_code == 2, result.output
        assert "hidden from the work tree" in result.output and "--ref HEAD" in result.output
        assert "Traceback" not in result.output
    assert not out.exists()
    built = run_relreg("build", "--ref", "HEAD", "--registry", repo / "registry", "--out", str(out))
    assert built.exit_code == 0, built.output  # the commit itself is whole
    releases = json.loads((out / "api" / "v1" / "releases.json").read_text())
    assert len(releases["data"]) == len(list((BASE_REGISTRY / "releases").glob("*.yaml")))
