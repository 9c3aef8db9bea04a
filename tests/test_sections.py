"""Sections of the plan (jobs.KeyedSection) and the release facts kept between builds (site/facts_store.py).

A rebuild carries a section whose key did not change without planning it (the device documents after a
notes fix, the JSON API of the releases after a rollout change), and reads the facts of unchanged release
files from the work cache. Both are fast paths: each build here is held to the general path (every section
planned, every fact made from the model) and to a fresh build, byte for byte, files and manifest, over a
series of changes.
"""

from __future__ import annotations

import marshal
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import BASE_REGISTRY, run_relreg
from git_helpers import commit_all, git, init_repo

import relreg.site.api
import relreg.site.device_documents
import relreg.site.facts_store
import relreg.site.jobs
import relreg.site.write
from relreg.registry.model import Release
from relreg.registry.source import read_worktree
from relreg.registry.versions import scheme_named
from relreg.registry.validate import validate_files
from relreg.site.facts_store import KeptFacts, facts_path, load_facts, save_facts
from relreg.site.jobs import ReleaseFacts, release_facts
from relreg.site.manifest import read_manifest

RELEASE = """version: "{version}"
revision: {revision}
notes: "Release {version}."
artifacts:
  - hardware_version: {hardware}
    build_id: {build}
    url: {version}/{hardware}.bin
    size: 1300
    sha256: {sha}
"""


def _release(version: str, hardware: str = "evt1") -> str:
    digit = str(sum(map(int, version.split("."))) % 10)
    return RELEASE.format(version=version, hardware=hardware, revision=("b" + digit) * 20,
                          build=(digit + "f") * 20, sha=(digit + "e") * 32)


def _replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def _redate_head(repo: Path) -> None:
    """The last commit again at another date: the same files (blob ids), other created and updated dates."""
    git(repo, "commit", "--amend", "--no-edit", "-q", date="2024-09-09T09:00:00+00:00")


# (step, change of the registry folder, the sections the fast build must carry without planning them)
STEPS: list[tuple[str, Callable[[Path], object] | None, set[str]]] = [
    ("notes fixed", lambda r: _replace_in(r / "releases" / "1.0.0.yaml", "First release.", "First release, fixed."),
     {"device"}),
    ("rollout raised", lambda r: _replace_in(r / "cohorts" / "stable.yaml", "rollout_percent: 50",
                                             "rollout_percent: 75"), {"api"}),
    ("rollout back", lambda r: _replace_in(r / "cohorts" / "stable.yaml", "rollout_percent: 75",
                                           "rollout_percent: 50"), {"api", "device"}),  # the spare's device section
    ("release added", lambda r: (r / "releases" / "1.3.0.yaml").write_text(_release("1.3.0")), set()),
    ("release redated", None, set()),  # the last commit again at another date: see _redate_head
    ("release yanked", lambda r: (r / "releases" / "1.3.0.yaml").write_text(
        (r / "releases" / "1.3.0.yaml").read_text() + "yanked: bricks evt1 boards\n"), set()),
    ("hardware version added", lambda r: (
        (r / "hardware" / "pvt.yaml").write_text("name: pvt\ndescription: Production board\n"),
        (r / "releases" / "1.4.0.yaml").write_text(_release("1.4.0", "pvt"))), set()),
    ("board described", lambda r: _replace_in(r / "hardware" / "evt1.yaml", "Engineering validation board",
                                              "Engineering board, rev B"), set()),
    ("notes fixed again", lambda r: _replace_in(r / "releases" / "1.3.0.yaml", "Release 1.3.0.", "Release 1.3.0!"),
     {"device"}),
    ("release removed", lambda r: (r / "releases" / "1.3.0.yaml").unlink(), set()),
]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = init_repo(tmp_path / "repo")
    shutil.copytree(BASE_REGISTRY, repo / "registry")
    commit_all(repo, "base", "2024-01-01T10:00:00+00:00")
    return repo


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _planned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which sections the builds from now on plan, in order ("api", "device"): spies on their planners."""
    planned: list[str] = []
    for module, name, section in ((relreg.site.api, "_api_jobs", "api"),
                                  (relreg.site.device_documents, "device_jobs", "device")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *args, _real=real, _section=section: (
            planned.append(_section), _real(*args))[1])
    return planned


@pytest.mark.parametrize("small", [False, True], ids=["default jobs", "one release a job, one item a page"])
def test_carried_sections_and_kept_facts_build_what_planning_everything_builds(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small: bool) -> None:
    if small:
        monkeypatch.setattr(relreg.site.jobs, "JOB_SIZE", 1)
        monkeypatch.setattr(relreg.site.api, "PER_PAGE", 1)
    registry, fast, general = repo / "registry", tmp_path / "fast", tmp_path / "general"
    planned = _planned(monkeypatch)

    def build(out: Path, fast_path: bool) -> None:
        with monkeypatch.context() as patch:
            patch.setattr(relreg.site.write, "CARRY_SECTIONS", fast_path)
            patch.setattr(relreg.site.facts_store, "KEEP_FACTS", fast_path)
            result = run_relreg("build", "--registry", registry, "--out", out)
        assert result.exit_code == 0, result.output

    build(fast, True)
    build(general, False)
    for number, (step, change, carried) in enumerate(STEPS):
        if change is None:
            _redate_head(repo)
        else:
            change(registry)
            commit_all(repo, step, f"2024-06-{number + 1:02d}T10:00:00+00:00")
        planned.clear()
        build(fast, True)
        assert not carried & set(planned), step  # carried: not planned
        assert set(planned) | carried == {"api", "device"}, step  # the others planned
        build(general, False)
        build(tmp_path / f"fresh-{number}", False)  # and the keys of the files within jobs, held to a fresh build
        built = _files(fast)
        for expected in (_files(general), _files(tmp_path / f"fresh-{number}")):
            assert built.keys() == expected.keys(), step
            assert [path for path in expected if built[path] != expected[path]] == [], step  # the manifest among them


def test_a_carried_job_whose_files_are_gone_runs_from_its_section(repo: Path, tmp_path: Path) -> None:
    """The served site lost a device answer and there is no spare: the device section is carried by its key,
    its job that gave that answer is run from the section's plan, and the site is the fresh build's."""
    registry, out, fresh = repo / "registry", tmp_path / "public", tmp_path / "fresh"
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    answers = sorted((out / "api/v1/devices").rglob("from/*.json"))
    assert answers
    answers[0].unlink()
    shutil.rmtree(tmp_path / ".public.spare", ignore_errors=True)
    _replace_in(registry / "releases" / "1.0.0.yaml", "First release.", "First release, fixed.")
    commit_all(repo, "notes", "2024-06-01T10:00:00+00:00")
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    assert run_relreg("build", "--registry", registry, "--out", fresh).exit_code == 0
    assert _files(out) == _files(fresh)


def test_the_manifest_names_the_jobs_of_each_section(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "public"
    assert run_relreg("build", "--registry", repo / "registry", "--out", out).exit_code == 0
    manifest = read_manifest(out)
    assert manifest is not None
    _, body = manifest
    sections = body["sections"]
    assert len(sections) == 2  # the API's and the device documents'
    for keys in sections.values():
        assert keys and all(key in body["jobs"] for key in keys)


@pytest.mark.parametrize("sections", [[], {"key": "not a list"}, {"key": [1]}, "text"])
def test_a_manifest_with_unreadable_sections_carries_none(repo: Path, tmp_path: Path, sections: object) -> None:
    out = tmp_path / "public"
    assert run_relreg("build", "--registry", repo / "registry", "--out", out).exit_code == 0
    manifest = out / ".relreg-manifest.json"
    import json
    header, index, rest = manifest.read_bytes().split(b"\n", 2)
    body = json.loads(index)
    body["sections"] = sections
    manifest.write_bytes(header + b"\n" + json.dumps(body, sort_keys=True).encode() + b"\n" + rest)
    read = read_manifest(out)
    assert read is not None and read[1]["sections"] == {}


# --------------------------------------------------------------------------------------------
# Release facts


def _registry_releases():
    return validate_files(read_worktree(BASE_REGISTRY)).registry.releases


def test_facts_are_what_the_model_says() -> None:
    for release in _registry_releases():
        facts = release_facts(release)
        assert facts.hardware_versions == release.hardware_versions
        assert facts.image_slots == release.image_slots
        assert facts.links == tuple(dict.fromkeys([release.min_version,
                                                   *[a.delta_from for a in release.artifacts if a.delta_from]]))


@pytest.mark.parametrize("change, same", [
    (lambda r: replace(r, notes="other notes"), True),
    (lambda r: replace(r, notes_format="html"), True),
    (lambda r: replace(r, extra_info={"ci": "other"}), True),
    (lambda r: replace(r, source_path="elsewhere.yaml"), True),  # a function of the file's content only
    (lambda r: replace(r, yanked="bricks boards"), False),
    (lambda r: replace(r, must_pass_through=not r.must_pass_through), False),
    (lambda r: replace(r, min_version="0.9.0"), False),
    (lambda r: replace(r, revision="f" * 40), False),
    (lambda r: replace(r, artifacts=r.artifacts[:1]), False),
    (lambda r: replace(r, artifacts=(replace(r.artifacts[0], size=1), *r.artifacts[1:])), False),
    (lambda r: replace(r, artifacts=(replace(r.artifacts[0], url="x/y.bin"), *r.artifacts[1:])), False),
], ids=["notes", "notes format", "extra info", "path", "yanked", "required step", "min version", "revision",
        "artifact removed", "size", "url"])
def test_the_shape_of_a_release_changes_with_all_but_its_notes(change: Callable, same: bool) -> None:
    release = _registry_releases()[-1]
    assert (release_facts(change(release)).shape == release_facts(release).shape) is same


def test_kept_facts_round_trip_and_lose_what_the_build_no_longer_has(tmp_path: Path) -> None:
    releases = _registry_releases()
    facts = {f"blob-{r.version}": tuple(release_facts(r)) for r in releases}
    kept = KeptFacts()
    kept.update(facts)
    save_facts(tmp_path, kept, facts)
    assert dict(load_facts(tmp_path)) == facts
    save_facts(tmp_path, load_facts(tmp_path), ["blob-1.0.0"])  # the others are gone from the registry
    assert dict(load_facts(tmp_path)) == {"blob-1.0.0": facts["blob-1.0.0"]}
    assert [ReleaseFacts._make(value) for value in load_facts(tmp_path).values()] == [release_facts(releases[0])]


def test_facts_are_written_only_when_some_were_made_or_are_stale(tmp_path: Path) -> None:
    facts = {f"blob-{r.version}": tuple(release_facts(r)) for r in _registry_releases()}
    kept = KeptFacts()
    kept.update(facts)
    save_facts(tmp_path, kept, facts)
    written = facts_path(tmp_path).stat().st_mtime_ns
    save_facts(tmp_path, load_facts(tmp_path), facts)  # nothing made, nothing stale
    assert facts_path(tmp_path).stat().st_mtime_ns == written
    assert dict(load_facts(tmp_path)) == facts


@pytest.mark.parametrize("content", [
    b"", b"not marshal", marshal.dumps([1, 2]), marshal.dumps({"blob": (1, 2)}),
    marshal.dumps((["blob"], ["shape"], [0], [0], [()], [], [frozenset()])),  # a hardware index out of its table
    marshal.dumps((["blob"], ["shape"], [0], [0], [()], [("evt1",)], [frozenset()], "more")),
    marshal.dumps((["blob", "other"], ["shape"], [0], [0], [()], [("evt1",)], [frozenset()])),  # columns differ
])
def test_unreadable_facts_are_made_again(tmp_path: Path, content: bytes) -> None:
    facts_path(tmp_path).write_bytes(content)
    assert dict(load_facts(tmp_path)) == {}


def test_a_build_with_a_stale_facts_file_builds_what_a_fresh_build_gives(repo: Path, tmp_path: Path) -> None:
    """Facts kept by a build are read by the next; a garbled file is made again."""
    registry, out, fresh = repo / "registry", tmp_path / "public", tmp_path / "fresh"
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    kept = facts_path(repo / ".git" / "relreg")
    assert len(load_facts(kept.parent)) == 2
    kept.write_bytes(b"garbled")
    _replace_in(registry / "releases" / "1.0.0.yaml", "First release.", "First release, fixed.")
    commit_all(repo, "notes", "2024-06-01T10:00:00+00:00")
    assert run_relreg("build", "--registry", registry, "--out", out).exit_code == 0
    assert len(load_facts(kept.parent)) == 2
    assert run_relreg("build", "--registry", registry, "--out", fresh).exit_code == 0
    assert _files(out) == _files(fresh)


_HEX = "0123456789abcdef"
_DIGESTS = st.one_of(st.text(_HEX, min_size=2, max_size=6).filter(lambda text: len(text) % 2 == 0),  # held as bytes
                     st.text(_HEX, min_size=1, max_size=5),  # odd length: held as text
                     st.text(_HEX.upper(), min_size=2, max_size=4))  # not lowercase: held as text
_ARTIFACTS = st.fixed_dictionaries(
    {"hardware_version": st.sampled_from(["evt", "dvt"]), "build_id": _DIGESTS,
     "url": st.sampled_from(["a.bin", "b.bin", "https://x.test/a.bin"]), "size": st.integers(0, 3),
     "sha256": _DIGESTS},
    optional={"software_type": st.sampled_from(["main", "boot"]), "type": st.sampled_from(["full", "delta"]),
              "delta_from": st.sampled_from(["0.9.0", "1.0.0"])})
_RELEASES = st.fixed_dictionaries(
    {"version": st.sampled_from(["1.0.0", "1.1.0"]), "artifacts": st.lists(_ARTIFACTS, min_size=1, max_size=2)},
    optional={"min_version": st.sampled_from(["0.9.0", "1.0.0"]), "revision": st.sampled_from(["ab", "AB"]),
              "notes": st.sampled_from(["a", "b"]), "extra_info": st.sampled_from([{}, {"k": 1}]),
              "must_pass_through": st.booleans(), "yanked": st.sampled_from(["bricks boards", "no"])})


def _shape_as_artifacts_print(release) -> str:  # type: ignore[no-untyped-def]
    """The shape as release_facts made it up to the tenth session: repr of the Artifact objects (hex text)."""
    import hashlib
    text = repr((release.version, release.min_version, release.revision, release.must_pass_through,
                 release.yanked, release.artifacts))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


_FIELD_VALUES = {"version": ["1.0.0", "1.1.0"], "min_version": ["0.9.0", "1.0.0"], "revision": ["ab", "AB"],
                 "notes": ["a", "b"], "extra_info": [{}, {"k": 1}], "must_pass_through": [False, True],
                 "yanked": ["bricks boards", "no"]}
_ARTIFACT_VALUES = {"hardware_version": ["evt", "dvt"], "build_id": ["ab", "AB", "abc", "abcd"],
                    "url": ["a.bin", "b.bin"], "size": [0, 1], "sha256": ["ab", "AB", "abc", "cdef"],
                    "software_type": ["main", "boot"], "type": ["full", "delta"], "delta_from": ["0.9.0", "1.0.0"]}


@settings(max_examples=500, deadline=None)
@given(first=_RELEASES, data=st.data())
def test_two_release_files_have_one_shape_exactly_when_they_differ_only_in_notes(first, data) -> None:  # type: ignore[no-untyped-def]
    # The second file is the first with one field of it, or of an artifact, set (often to what it was).
    second = {**first, "artifacts": [dict(artifact) for artifact in first["artifacts"]]}
    if data.draw(st.booleans()):
        name = data.draw(st.sampled_from(sorted(_FIELD_VALUES)))
        second[name] = data.draw(st.sampled_from(_FIELD_VALUES[name]))
    else:
        artifact = data.draw(st.sampled_from(second["artifacts"]))
        name = data.draw(st.sampled_from(sorted(_ARTIFACT_VALUES)))
        artifact[name] = data.draw(st.sampled_from(_ARTIFACT_VALUES[name]))
    scheme = scheme_named("semver")
    one, other = Release.from_dict(first, scheme, "a.yaml"), Release.from_dict(second, scheme, "b.yaml")
    same_shape = release_facts(one).shape == release_facts(other).shape
    # Equal as the model holds them (a default written out is the same data), notes and extra info aside.
    same_model = replace(one, notes="", extra_info={}) == replace(other, notes="", extra_info={})
    assert same_shape is same_model
    assert same_shape is (_shape_as_artifacts_print(one) == _shape_as_artifacts_print(other))
    if {k: v for k, v in first.items() if k not in ("notes", "extra_info")} == \
            {k: v for k, v in second.items() if k not in ("notes", "extra_info")}:
        assert same_shape
