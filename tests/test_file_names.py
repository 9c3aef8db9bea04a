"""Every file under releases/, hardware/ and cohorts/ is accounted for, in the work tree and in a commit.

A file is a registry file named exactly `<name>.yaml`, or README.md or
.gitkeep; anything else is an error that names it (escaped, so that control
characters and look-alikes are visible), never silently skipped, never a crash.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from relreg.registry import source

from conftest import BASE_REGISTRY, run_relreg
from git_helpers import commit_all, init_repo

RELEASE = (BASE_REGISTRY / "releases" / "1.1.0.yaml").read_bytes().replace(b'"1.1.0"', b'"2.2.0"').replace(b"url: 1.1.0/", b"url: 2.2.0/") \
    .replace(b"c333", b"c999").replace(b"d444", b"d999")

# (file name under releases/, as bytes; path as reported; part of the message)
CASES = [
    (b"2.2.0.YAML", "releases/2.2.0.YAML", "end in .yaml (lower case), not .YAML; rename it to 2.2.0.yaml"),
    (b"2.2.0.Yaml", "releases/2.2.0.Yaml", "not .Yaml; rename it to 2.2.0.yaml"),
    (b"2.2.0.yml", "releases/2.2.0.yml", "not .yml; rename it to 2.2.0.yaml"),
    (b"2.2.0.YML", "releases/2.2.0.YML", "not .YML; rename it to 2.2.0.yaml"),
    (b"2.2.0.yaml ", "releases/2.2.0.yaml\\x20", "ends in a space character (U+0020) at character 11; "
                                                  "registry file names are plain ASCII, so rename it to '2.2.0.yaml'"),
    (b"2.2.0.yaml\t", "releases/2.2.0.yaml\\x09", "control character U+0009 at character 11"),
    (b"2.2.0.yaml.txt", "releases/2.2.0.yaml.txt", "is not a registry file (releases/ holds <version>.yaml files, "
                                                   "README.md and .gitkeep only): rename it to 2.2.0.yaml"),
    (b"2.2.0.yaml~", "releases/2.2.0.yaml~", "rename it to 2.2.0.yaml"),
    (b"2.2.0.yaml.bak", "releases/2.2.0.yaml.bak", "rename it to 2.2.0.yaml"),
    (b".2.2.0.yaml.swp", "releases/.2.2.0.yaml.swp", "is not a registry file"),
    (b"notes.txt", "releases/notes.txt", "move it out of the registry"),
    (b"readme.md", "releases/readme.md", "is not a registry file"),
    (b".DS_Store", "releases/.DS_Store", "is not a registry file"),
    (b".yaml", "releases/.yaml", "without a leading '.'"),
    (b"2.2.0", "releases/2.2.0", "is not a registry file"),
    ("2.2.0.y\u0430ml".encode(), "releases/2.2.0.y\\u0430ml",
     "non-ASCII character '\u0430' (U+0430 CYRILLIC SMALL LETTER A) at character 8"),
    ("\u0032.2.0\u2024yaml".encode(), "releases/2.2.0\\u2024yaml", "U+2024 ONE DOT LEADER"),
    ("2.2.0\u200b.yaml".encode(), "releases/2.2.0\\u200b.yaml", "U+200B ZERO WIDTH SPACE"),
    ("2.2.0\u00a0.yaml".encode(), "releases/2.2.0\\xa0.yaml", "space character (U+00A0)"),
    (b"2.2.0\x1b[31m.yaml", "releases/2.2.0\\x1b[31m.yaml", "control character U+001B at character 6"),
    (b"2.2.0.yaml\n", "releases/2.2.0.yaml\\x0a", "control character U+000A"),
    (b"2.2.0\x7f.yaml", "releases/2.2.0\\x7f.yaml", "control character U+007F"),
    (b"2.2.0\xff.yaml", "releases/2.2.0\\xff.yaml", "byte 0xff at character 6 is not UTF-8"),
]


def _registry_with(tmp_path: Path, name: bytes) -> Path:
    registry = tmp_path / "registry"
    shutil.copytree(BASE_REGISTRY, registry)
    with open(os.path.join(os.fsencode(registry / "releases"), name), "wb") as stream:
        stream.write(RELEASE)
    return registry


def _diagnostics(output: str) -> list[dict]:
    return json.loads(output)["diagnostics"]


@pytest.mark.parametrize("name, shown, message", CASES, ids=[repr(case[0])[2:-1] for case in CASES])
def test_a_file_that_is_not_a_registry_file_is_an_error_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: bytes, shown: str, message: str) -> None:
    registry = _registry_with(tmp_path, name)
    monkeypatch.chdir(registry)
    result = run_relreg("validate", "--registry", ".", "--format", "json")
    assert result.exit_code == 1, result.output
    found = _diagnostics(result.output)
    assert [(d["path"], d["line"], d["column"], d["rule"]) for d in found] == [(shown, 1, 1, "file-name")]
    assert message in found[0]["message"]
    text = run_relreg("validate", "--registry", ".")  # the text report prints the escaped name, no crash
    assert text.exit_code == 1 and f"{shown}:1:1: error:" in text.output


@pytest.mark.parametrize("name, shown, message", CASES[::3], ids=[repr(case[0])[2:-1] for case in CASES[::3]])
def test_a_commit_with_such_a_file_is_refused_too(tmp_path: Path, name: bytes, shown: str, message: str) -> None:
    repo = init_repo(tmp_path / "repo")
    registry = _registry_with(repo, name)
    commit_all(repo, "add a release", "2026-01-02T10:00:00+00:00")
    shutil.rmtree(registry / "releases")  # --ref reads the commit, not the work tree
    result = run_relreg("build", "--registry", registry, "--ref", "HEAD", "--out", tmp_path / "out",
                        "--format", "json")
    assert result.exit_code == 1, result.output
    found = _diagnostics(_json_part(result.output))
    assert [(d["path"], d["line"], d["column"], d["rule"]) for d in found] == \
        [(f"registry/{shown}", 1, 1, "file-name")]
    assert message in found[0]["message"]


def _json_part(output: str) -> str:
    return output[output.index("{"):output.rindex("}") + 1]


@pytest.mark.parametrize("name", ["README.md", ".gitkeep"])
def test_readme_and_gitkeep_are_allowed(base_registry: Path, name: str) -> None:
    for folder in ("releases", "hardware", "cohorts"):
        (base_registry / folder / name).write_text("# Releases\n" if name == "README.md" else "")
    (base_registry / "releases" / "1.4").mkdir()
    (base_registry / "releases" / "1.4" / name).write_text("")
    result = run_relreg("validate", "--registry", base_registry)
    assert result.exit_code == 0, result.output
    assert "2 releases" in result.output


def test_a_release_in_a_subfolder_is_read(base_registry: Path) -> None:
    (base_registry / "releases" / "2.2").mkdir()
    (base_registry / "releases" / "2.2" / "2.2.0.yaml").write_bytes(RELEASE)
    result = run_relreg("validate", "--registry", base_registry)
    assert result.exit_code == 0, result.output
    assert "3 releases" in result.output


@pytest.mark.parametrize("path, message", [
    ("hardware/evt2.YAML", "not .YAML; rename it to evt2.yaml"),
    ("hardware/evt2.yaml.orig", "(hardware/ holds <name>.yaml files, README.md and .gitkeep only)"),
    ("cohorts/beta.yaml.orig", "(cohorts/ holds <slug>.yaml files, README.md and .gitkeep only)"),
    ("cohorts/Thumbs.db", "is not a registry file"),
])
def test_hardware_and_cohort_folders_are_accounted_for_too(base_registry: Path, monkeypatch: pytest.MonkeyPatch,
                                                           path: str, message: str) -> None:
    (base_registry / path).write_text("name: evt2\n")
    monkeypatch.chdir(base_registry)
    result = run_relreg("validate", "--registry", ".", "--format", "json")
    assert result.exit_code == 1
    found = _diagnostics(result.output)
    assert [(d["path"], d["line"], d["column"], d["rule"]) for d in found] == [(path, 1, 1, "file-name")]
    assert message in found[0]["message"]


# Names and folders mixing what the checks look at: case, '.', spaces, control and non-ASCII
# characters, undecodable bytes (as surrogates), the allowed other files.
_SEGMENTS = st.one_of(
    st.sampled_from(["1.2.3.yaml", "a.yaml", ".yaml", "x.YAML", "x.yml", "README.md", ".gitkeep", "1.2",
                     "releases", "hardware", "cohorts", "registry.yaml", "a b.yaml", ".hidden.yaml", "x.yaml~"]),
    st.text(alphabet=st.sampled_from("aZ09._-~ \t/\x7f\u00e9\u00a0\udc80"), min_size=0, max_size=8),
    st.text(alphabet=st.sampled_from("aZ09._-"), min_size=1, max_size=6).map(lambda stem: stem + ".yaml"),
)


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(["releases", "hardware", "cohorts", "other", "registry.yaml", "releases/1"]),
       st.lists(_SEGMENTS, min_size=0, max_size=3))
def test_fast_file_classification_agrees_with_every_check(top: str, rest: list[str]) -> None:
    """The one-match path of _kind_of gives what the checks one by one give, for any path."""
    path = "/".join([top, *rest])
    assert source._kind_of(path) == source._checked_kind_of(path)


@pytest.mark.parametrize("path, kind", [
    ("releases/1.2.3.yaml", "release"), ("releases/1/1.2/1.2.3.yaml", "release"), ("hardware/pvt.yaml", "hardware"),
    ("cohorts/beta.yaml", "cohort"), ("hardware/sub/pvt.yaml", None), ("releases/.x.yaml", None),
    ("releases/a b.yaml", None), ("releases/x.yml", None), ("releases/README.md", None), ("other/x.yaml", None),
])
def test_file_classification_table(path: str, kind: str | None) -> None:
    assert source._kind_of(path)[0] == kind


# A registry file put where it is not read: at the top, or in a folder named like a registry folder.
MISPLACED = [
    ("2.2.0.yaml", "named like a release, but releases are read from releases/ only: move it to releases/2.2.0.yaml"),
    ("v2.2.0.yml", "move it to releases/v2.2.0.yml"),
    ("Registry.yaml", "the registry's settings file is named registry.yaml"),
    ("release/2.2.0.yaml", "'release/' is not a registry folder, so this file is not read: did you mean releases/?"),
    ("Releases/2.2/2.2.0.yaml", "did you mean releases/?"),
    ("relases/2.2.0.yaml", "did you mean releases/?"),
    ("cohort/eu.yaml", "did you mean cohorts/?"),
    ("Hardwares/pvt.yml", "did you mean hardware/?"),
]
# YAML the registry folder may hold beside its own (it may be the repository's top).
NOT_REGISTRY_FILES = ["mkdocs.yml", "notes.yaml", "docs/2.2.0.yaml", "release-notes/2.2.0.yaml",
                      ".github/workflows/check.yml", "releases.md", ".release/2.2.0.yaml"]


@pytest.mark.parametrize("path, message", MISPLACED, ids=[case[0] for case in MISPLACED])
@pytest.mark.parametrize("read", ["work tree", "clean commit", "--ref"])
def test_a_registry_file_where_it_is_not_read_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str,
                                                           message: str, read: str) -> None:
    """Whichever way the registry is read (validate and a dirty build walk the folder, a build of a clean
    registry reads git's index, --ref reads the commit), the file is named, not silently skipped."""
    repo = init_repo(tmp_path / "repo")
    registry = repo / "registry"
    shutil.copytree(BASE_REGISTRY, registry)
    (registry / path).parent.mkdir(parents=True, exist_ok=True)
    (registry / path).write_bytes(RELEASE)
    for allowed in NOT_REGISTRY_FILES:
        (registry / allowed).parent.mkdir(parents=True, exist_ok=True)
        (registry / allowed).write_bytes(RELEASE)
    commit_all(repo, "misplaced", "2026-01-02T10:00:00+00:00")
    monkeypatch.chdir(repo)  # paths are reported relative to the current folder
    if read == "work tree":
        result = run_relreg("validate", "--registry", registry, "--format", "json")
    else:
        result = run_relreg("build", "--registry", registry, "--out", tmp_path / "out", "--format", "json",
                            *(["--ref", "HEAD"] if read == "--ref" else []))
    assert result.exit_code == 1, result.output
    found = _diagnostics(_json_part(result.output))
    assert [(d["path"], d["line"], d["column"], d["rule"]) for d in found] == [(f"registry/{path}", 1, 1, "file-name")]
    assert message in found[0]["message"]


def test_yaml_beside_the_registry_that_is_not_named_like_it_is_left_alone(base_registry: Path) -> None:
    for allowed in NOT_REGISTRY_FILES:
        (base_registry / allowed).parent.mkdir(parents=True, exist_ok=True)
        (base_registry / allowed).write_bytes(RELEASE)
    result = run_relreg("validate", "--registry", base_registry)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("read", ["work tree", "clean commit", "--ref"])
def test_a_link_to_a_folder_is_an_error_however_the_registry_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     read: str) -> None:
    """hardware/ as a link to ../boards, releases/more as a link to ../../extra: validate used to follow the
    first, the build of the clean commit saw an empty hardware/, and --ref called the second a stray file."""
    repo = init_repo(tmp_path / "repo")
    registry = repo / "registry"
    shutil.copytree(BASE_REGISTRY, registry)
    (registry / "hardware").rename(repo / "boards")
    (registry / "hardware").symlink_to("../boards", target_is_directory=True)
    (repo / "extra").mkdir()
    (repo / "extra" / "2.2.0.yaml").write_bytes(RELEASE)
    (registry / "releases" / "more").symlink_to("../../extra", target_is_directory=True)
    commit_all(repo, "linked folders", "2026-01-02T10:00:00+00:00")
    monkeypatch.chdir(repo)
    if read == "work tree":
        result = run_relreg("validate", "--registry", registry, "--format", "json")
    else:
        result = run_relreg("build", "--registry", registry, "--out", tmp_path / "out", "--format", "json",
                            *(["--ref", "HEAD"] if read == "--ref" else []))
    assert result.exit_code == 1, result.output
    links = [(d["path"], d["rule"]) for d in _diagnostics(_json_part(result.output)) if d["rule"] != "hardware-exists"]
    assert links == [("registry/hardware", "file-symlink"), ("registry/releases/more", "file-symlink")]
