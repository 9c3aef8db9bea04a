"""Validation with the work cache (blob ids known from file status, documents cached) and the cross-file
rules' fast paths give exactly what a cold validation and the straightforward rules give.

A registry is edited step by step (releases added, removed, notes changed, a build id or URL taken from
another release and given back, a version or revision differing only in case, a broken file); after
every step the cached run (one work cache kept across steps, saved and reopened as a build does) must
equal a run without any cache, and the rules must equal the reference copy of the rules as they were
before their fast paths (tests/rules_reference.py).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import fields
from pathlib import Path

import pytest
import rules_reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relreg.history.cache import WorkCache
from relreg.registry import source
from relreg.registry.model import Registry, Release
from relreg.registry.rules import COHORT_RULES, RULES_WITHOUT_COHORTS, RuleContext, check_rules
from relreg.registry.source import read_worktree
from relreg.registry.validate import summary, validate_files

CONFIG = """name: Test
site_url: https://fw.example.test/
artifact_base_url: https://dl.example.test/fw/
"""
HARDWARE = ("evt1", "dvt1")


def _release(number: int, build_ids: list[str], urls: list[str], sizes: list[int], *, revision: str = "",
             notes: str = "", delta_from: int | None = None, software_type: str = "",
             version: str | None = None) -> str:
    lines = [f'version: "{version or f"1.0.{number}"}"']
    if revision:
        lines.append(f"revision: {revision}")
    if notes:
        lines.append(f"notes: {notes}")
    lines.append("artifacts:")
    for index, (build_id, url, size) in enumerate(zip(build_ids, urls, sizes)):
        lines += [f"  - hardware_version: {HARDWARE[index % 2]}", f'    build_id: "{build_id}"',
                  f"    url: {url}", f"    size: {size}", f'    sha256: "{size % 16:x}' + "0" * 63 + '"']
        if software_type and index == 0:
            lines.append(f"    software_type: {software_type}")
    if delta_from is not None:
        lines += [f"  - hardware_version: {HARDWARE[0]}", "    type: delta", f'    delta_from: "1.0.{delta_from}"',
                  f'    build_id: "d{number:039d}"', f"    url: 1.0.{number}/from-{delta_from}.delta",
                  "    size: 10", "    sha256: " + "e" * 64]
    return "\n".join(lines) + "\n"


def _plain(registry: Registry | None) -> object:
    """Everything the model holds, as plain values (the dataclasses' == leaves some fields out)."""
    if registry is None:
        return None

    def values(item: object) -> dict[str, object]:
        from relreg.registry.model import ARTIFACT_FIELDS, Artifact

        names = ARTIFACT_FIELDS if isinstance(item, Artifact) else [f.name for f in fields(item)  # type: ignore[arg-type]
                                                                     if not f.name.startswith("_")]
        return {name: getattr(item, name) for name in names}

    releases = [{**values(r), "parsed_version": r.parsed_version.key, "artifacts": [values(a) for a in r.artifacts]}
                for r in registry.releases]
    return (values(registry.config), releases, [values(h) for h in registry.hardware],
            [values(c) for c in registry.cohorts])


class _Registry:
    """A registry folder whose files get unique, increasing modification times (so statuses differ)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.clock = 1_600_000_000 * 10**9
        self.write("registry.yaml", CONFIG)
        for name in HARDWARE:
            self.write(f"hardware/{name}.yaml", f"name: {name}\n")

    def write(self, registry_path: str, text: str) -> None:
        path = self.folder / registry_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.clock += 10**9
        os.utime(path, ns=(self.clock, self.clock))

    def remove(self, registry_path: str) -> None:
        (self.folder / registry_path).unlink(missing_ok=True)


EDITS = st.lists(st.tuples(
    st.sampled_from(["add", "remove", "notes", "notes-lines", "take-build-id", "take-url", "take-url-same-file",
                     "give-back", "revision-case", "version-case", "broken", "delta", "software-type-case",
                     "rollout", "rollout-hold", "cohort-broken"]),
    st.integers(0, 7), st.integers(0, 7)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=EDITS)
def test_cached_validation_equals_a_cold_one_after_every_edit(tmp_path_factory: pytest.TempPathFactory,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               edits: list[tuple[str, int, int]]) -> None:
    # Every file here has a modification time far in the past, so any status may be remembered.
    monkeypatch.setattr(source, "RACY_NS", 0)
    base = tmp_path_factory.mktemp("incremental")
    folder, cache_folder = base / "registry", base / "cache"
    registry = _Registry(folder)
    own = {n: ([f"{n:040x}", f"{n + 100:040x}"], [f"1.0.{n}/a.bin", f"1.0.{n}/b.bin"], [1000 + n, 2000 + n])
           for n in range(8)}
    present: dict[int, dict[str, object]] = {}

    def put(number: int) -> None:
        registry.write(f"releases/1.0.{number}.yaml", _release(number, *own[number], **present[number]))  # type: ignore[arg-type]

    for number in range(3):
        present[number] = {}
        put(number)
    assert validate_files(read_worktree(folder)).registry is not None  # the generated files are valid
    for kind, left, right in edits:
        if kind == "add" or left not in present:
            present.setdefault(left, {})
            put(left)
        elif kind == "remove":
            del present[left]
            registry.remove(f"releases/1.0.{left}.yaml")
        elif kind == "notes":
            present[left]["notes"] = f"edit {right}"
            put(left)
        elif kind == "notes-lines":  # the same rules' facts, every later position moved
            present[left]["notes"] = "|\n" + "".join(f"  line {n}\n" for n in range(right + 1)).rstrip("\n")
            put(left)
        elif kind in ("take-build-id", "take-url", "take-url-same-file"):
            ids, urls, sizes = own[left]
            other_ids, other_urls, other_sizes = own[right]
            if kind == "take-build-id":
                own[left] = ([other_ids[0], ids[1]], urls, sizes)
            elif kind == "take-url":  # the same URL for another file: a conflict
                own[left] = (ids, [other_urls[1], urls[1]], [sizes[0] + 1, sizes[1]])
            else:  # the same URL, written in full, for the same file: allowed
                own[left] = (ids, [f"https://dl.example.test/fw/{other_urls[0]}", urls[1]], [other_sizes[0], sizes[1]])
            put(left)
        elif kind == "give-back":
            own[left] = ([f"{left:040x}", f"{left + 100:040x}"], [f"1.0.{left}/a.bin", f"1.0.{left}/b.bin"],
                         [1000 + left, 2000 + left])
            put(left)
        elif kind == "revision-case":
            present[left]["revision"] = "Abc" if right % 2 else "abc"
            put(left)
        elif kind == "version-case":  # 1.0.N-RC and 1.0.N-rc: a path collision (and the file name differs)
            present[left]["version"] = f"1.0.{left}-{'RC' if right % 2 else 'rc'}"
            put(left)
        elif kind == "software-type-case":
            present[left]["software_type"] = "App" if right % 2 else "app"
            put(left)
        elif kind == "delta":
            present[left]["delta_from"] = right
            put(left)
        elif kind in ("rollout", "rollout-hold"):  # a cohort file edited (only the cohort rules read it)
            cohort = "beta" if right % 2 else "alpha"
            hardware = f"hardware_versions: [{HARDWARE[right % 2]}]\n" if right % 3 == 0 else ""
            releases = "".join(f'  - version: "1.0.{n}"\n    rollout_percent: {10 + right}\n'
                               + (f"    hardware_versions: [{HARDWARE[n % 2]}]\n" if kind == "rollout-hold" else "")
                               for n in sorted({left, (left + right) % 8}))
            registry.write(f"cohorts/{cohort}.yaml",
                           f"slug: {cohort}\nname: {cohort.title()}\n{hardware}releases:\n{releases}")
        elif kind == "cohort-broken":  # a version that does not parse, a slug not its file's name
            registry.write("cohorts/alpha.yaml", f'slug: alpha{right % 2 or ""}\nname: A\nreleases:\n'
                                                 f'  - version: "x{left}"\n')
        else:  # broken: a file that is no YAML mapping, fixed by the next edit of that release
            registry.write(f"releases/1.0.{left}.yaml", "version: [\n")
        cache = WorkCache.open(cache_folder, "fingerprint")
        cached = validate_files(read_worktree(folder, known=cache), cache, recency={})
        cache.save()
        cold = validate_files(read_worktree(folder), None, recency={})
        assert cached.diagnostics == cold.diagnostics
        assert _plain(cached.registry) == _plain(cold.registry)
        # `relreg validate` (no model): the verdict the cached run kept, or a validation of its own.
        cache = WorkCache.open(cache_folder, "fingerprint")
        verdict = validate_files(read_worktree(folder, known=cache), cache, recency={}, model=False)
        cache.save()
        assert verdict.diagnostics == cold.diagnostics and summary(verdict) == summary(cold)
        assert verdict.ok == cold.ok


def _reference_rules(result_registry: Registry, documents: dict) -> list:
    ctx = rules_reference.RuleContext(result_registry, documents)
    return sorted(set(rules_reference.check_rules(ctx)))


CONFLICTS = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.sampled_from(
    ["build-id", "url", "url-full", "url-odd", "revision", "software-type", "delta", "delta-missing",
     "version-same", "hardware-missing", "twice"])), max_size=8)


@settings(max_examples=150, deadline=None)
@given(conflicts=CONFLICTS, base_url=st.sampled_from(["https://dl.example.test/fw/", "https://dl.example.test/fw"]),
       cohort_hardware=st.sampled_from([(), HARDWARE, HARDWARE[:1], ("evt1", "pvt9")]),
       default_type=st.sampled_from([None, "app"]), activated=st.lists(st.integers(0, 6), max_size=4),
       yanked=st.sets(st.integers(0, 5), max_size=2), slug=st.sampled_from(["beta", "Beta"]))
def test_the_rules_fast_paths_find_what_the_reference_rules_find(conflicts: list[tuple[int, int, str]],
                                                                  base_url: str, cohort_hardware: tuple[str, ...],
                                                                  default_type: str | None, activated: list[int],
                                                                  yanked: set[int], slug: str) -> None:
    """The rules run on a model (no files needed): the same diagnostics as the rules without fast paths;
    and the rules said to read no cohort find the same with the cohorts made unreadable."""
    from relreg.registry.model import Artifact, RegistryConfig
    from relreg.registry.versions import scheme_named
    from relreg.registry.yamlload import SourceDocument

    scheme = scheme_named("semver")
    artifacts = {n: [dict(hardware_version=HARDWARE[i % 2], build_id=f"{n * 10 + i:040x}", url=f"1.0.{n}/{i}.bin",
                          size=100 + n * 10 + i, sha256=f"{n:x}" * 64) for i in range(2)] for n in range(6)}
    extra: dict[int, dict[str, object]] = {n: {} for n in range(6)}
    versions = {n: f"1.0.{n}" for n in range(6)}
    for left, right, kind in conflicts:
        mine, theirs = artifacts[left], artifacts[right]
        if kind == "build-id":
            mine[0]["build_id"] = theirs[1]["build_id"]
        elif kind == "url":
            mine[1]["url"] = theirs[0]["url"]
        elif kind == "url-full":
            mine[0]["url"] = "https://dl.example.test/fw/" + theirs[0]["url"]
        elif kind == "url-odd":
            mine[0]["url"] = f"../fw/./{theirs[1]['url']}"
        elif kind == "revision":
            extra[left]["revision"] = "Rev" if right % 2 else "rev"
        elif kind == "software-type":
            mine[0]["software_type"] = "App" if right % 2 else "app"
        elif kind in ("delta", "delta-missing"):
            mine.append(dict(hardware_version=HARDWARE[right % 2], build_id=f"d{left}{right}" + "0" * 38,
                             url=f"d/{left}-{right}.delta", size=5, sha256="f" * 64, type="delta",
                             delta_from=versions[right] if kind == "delta" else "9.9.9"))
        elif kind == "version-same":
            versions[left] = versions[right].partition("+")[0] + f"+b{left}"
        elif kind == "hardware-missing":
            mine[0]["hardware_version"] = "pvt9"
        else:
            mine.append(dict(mine[0]))
    for n in yanked:
        extra[n]["yanked"] = "broken"
    releases = tuple(sorted((Release.from_dict({"version": versions[n], "artifacts": artifacts[n], **extra[n]},
                                               scheme, f"registry/releases/{n}.yaml") for n in range(6)),
                            key=lambda r: (r.parsed_version.key, r.source_path)))
    from relreg.registry.model import Cohort, HardwareVersion

    cohort = Cohort.from_dict({"slug": slug, "name": "Beta", "hardware_versions": list(cohort_hardware),
                               "releases": [{"version": versions.get(n, "not-a-version")} for n in activated]},
                              "registry/cohorts/beta.yaml")
    model = Registry(config=RegistryConfig(name="t", site_url="https://x.test/", artifact_base_url=base_url),
                     scheme=scheme, releases=releases,
                     hardware=tuple(HardwareVersion(name, f"registry/hardware/{name}.yaml",
                                                    default_software_type=default_type) for name in HARDWARE),
                     cohorts=(cohort,))
    documents = {r.source_path: SourceDocument(r.source_path, {}) for r in releases}
    documents[cohort.source_path] = SourceDocument(cohort.source_path, {})
    documents.update({f"registry/hardware/{name}.yaml": SourceDocument("h", {}) for name in HARDWARE})
    assert sorted(set(check_rules(RuleContext(model, documents)))) == _reference_rules(model, documents)
    assert Artifact  # the model's artifacts are built by Release.from_dict above
    without_cohorts = check_rules(RuleContext(model, documents), RULES_WITHOUT_COHORTS)
    object.__setattr__(model, "cohorts", _Poison())
    assert check_rules(RuleContext(model, documents), RULES_WITHOUT_COHORTS) == without_cohorts


def test_a_file_whose_status_is_remembered_is_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "registry"
    shutil.copytree(Path(__file__).parent / "fixtures" / "base", folder)
    old = 1_600_000_000 * 10**9
    for path in folder.rglob("*.yaml"):
        os.utime(path, ns=(old, old))
    cache = WorkCache.open(tmp_path / "cache", "fingerprint")
    first = read_worktree(folder, known=cache)
    assert all(file.held_content is not None for file in first.files)
    cache.save()
    # ctime is now, so nothing was remembered: a file might still change within the same timestamp.
    assert not WorkCache.open(tmp_path / "cache", "fingerprint").blob_ids


def test_a_remembered_status_gives_the_blob_id_and_the_bytes_on_demand(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "RACY_NS", 0)
    folder = tmp_path / "registry"
    shutil.copytree(Path(__file__).parent / "fixtures" / "base", folder)
    cache = WorkCache.open(tmp_path / "cache", "fingerprint")
    first = read_worktree(folder, known=cache)
    cache.save()
    reopened = WorkCache.open(tmp_path / "cache", "fingerprint")
    second = read_worktree(folder, known=reopened)
    assert [f.blob_id for f in second.files] == [f.blob_id for f in first.files]
    assert all(file.held_content is None for file in second.files)
    assert [f.content for f in second.files] == [f.content for f in first.files]
    # A changed file has another status: it is read again.
    changed = folder / "releases" / "1.0.0.yaml"
    changed.write_bytes(changed.read_bytes().replace(b"First", b"Fixed"))
    third = read_worktree(folder, known=WorkCache.open(tmp_path / "cache", "fingerprint"))
    file = next(f for f in third.files if f.registry_path == "releases/1.0.0.yaml")
    assert file.held_content is not None and b"Fixed" in file.content
    assert file.blob_id != next(f.blob_id for f in first.files if f.registry_path == "releases/1.0.0.yaml")


def test_clearing_the_documents_lets_go_of_the_files_bytes(tmp_path: Path) -> None:
    """A build drops the parsed documents and raw bytes once the model is built (memory at 100,000 releases)."""
    folder = tmp_path / "registry"
    shutil.copytree(Path(__file__).parent / "fixtures" / "base", folder)
    files = read_worktree(folder)
    result = validate_files(files)
    assert result.ok
    light = files.without_contents()
    assert all(file.held_content is None for file in light.files)
    assert [file.content for file in light.files] == [file.content for file in files.files]
    result.documents.clear()
    assert all(file.held_content is None for file in result.documents._files.values())  # type: ignore[attr-defined]
    path = next(file.path for file in files.files if file.kind == "release")
    assert result.documents[path].data["artifacts"]  # read again from disk when a diagnostic needs it


@settings(max_examples=400, deadline=None)
@given(urls=st.lists(st.one_of(st.text(alphabet="ab./%~\n é:", max_size=6), st.just("https://x.test/a")),
                     min_size=1, max_size=4))
def test_many_urls_are_judged_plain_as_one_url_is(urls: list[str]) -> None:
    """The rules' check of all URLs at once agrees with model.py's check of each (the fast URL comparison's premise)."""
    from relreg.registry.model import _PLAIN_PATH
    from relreg.registry.rules import _all_plain

    assert _all_plain(urls) == all(_PLAIN_PATH.match(url) for url in urls)


def test_a_file_that_changed_since_its_status_was_read_is_refused_and_not_cached(tmp_path: Path) -> None:
    """A file known by status but read only when its document is needed may have changed meanwhile: its
    blob id (a cache key, and the key of its pages) no longer names its bytes, so the run stops there
    (file:1:1, run again), and nothing is stored under that blob id."""
    from relreg.registry.source import RawFile, RegistryFiles

    folder = tmp_path / "registry"
    shutil.copytree(Path(__file__).parent / "fixtures" / "base", folder)
    files = read_worktree(folder)
    stale = "0" * 40  # the blob id of the bytes the file held when its status was taken
    lazy = RegistryFiles(files.root, tuple(RawFile(f.kind, f.path, f.registry_path, None, stale if f.kind == "release"
                                                   else f.blob_id, f.disk_path) for f in files.files),
                         files.problems, files.refused)
    cache = WorkCache.open(tmp_path / "cache", "fingerprint")
    result = validate_files(lazy, cache, recency={})
    assert not result.ok
    assert {(d.path, d.line, d.column, d.rule) for d in result.errors} == {
        (f.path, 1, 1, "file-changed") for f in files.files if f.kind == "release"}
    assert cache.document("release", stale) is None
    assert cache.document("hardware", next(f.blob_id for f in files.files if f.kind == "hardware")) is not None


class _Poison:
    """A field value that fails whatever a rule does with it."""

    def _fail(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("a rule read a field that the cached rules' key leaves out (validate.NOT_READ_BY_RULES, "
                             "or the cohorts for RULES_WITHOUT_COHORTS)")

    __eq__ = __ne__ = __hash__ = __bool__ = __str__ = __repr__ = __len__ = __iter__ = __format__ = _fail  # type: ignore[assignment]
    __lt__ = __gt__ = __contains__ = __getattr__ = __getitem__ = _fail  # type: ignore[assignment]


def test_no_rule_reads_a_field_left_out_of_the_cached_rules_key(tmp_path: Path) -> None:
    """Changing such a field (a notes fix) reuses the rules' findings: so no rule may read one."""
    from relreg.registry.validate import NOT_READ_BY_RULES

    folder = tmp_path / "registry"
    shutil.copytree(Path(__file__).parent / "fixtures" / "base", folder)
    result = validate_files(read_worktree(folder))
    assert result.registry is not None and result.registry.releases and result.registry.hardware
    registry = result.registry
    expected = check_rules(RuleContext(registry, result.documents))
    for kind, items in (("release", registry.releases), ("hardware", registry.hardware), ("cohort", registry.cohorts)):
        for item in items:
            for name in NOT_READ_BY_RULES[kind]:
                object.__setattr__(item, name, _Poison())
    assert check_rules(RuleContext(registry, result.documents)) == expected


def test_relreg_validate_gives_the_kept_verdict_without_reading_a_document(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """An unchanged registry: the verdict comes back without a document loaded, the documents stay in
    the cache for the next build, and a changed file (or recency that a rule read) is validated afresh."""
    monkeypatch.setattr(source, "RACY_NS", 0)
    folder = tmp_path / "registry"
    shutil.copytree(Path(__file__).parent / "fixtures" / "base", folder)
    first = WorkCache.open(tmp_path / "cache", "fingerprint")
    full = validate_files(read_worktree(folder, known=first), first, recency={})
    first.save()
    cache = WorkCache.open(tmp_path / "cache", "fingerprint")
    documents = set(cache.documents)
    monkeypatch.setattr(WorkCache, "document", lambda *args: pytest.fail("a document was read"))
    verdict = validate_files(read_worktree(folder, known=cache), cache, recency={}, model=False)
    assert verdict.registry is None and verdict.counts is not None
    assert verdict.diagnostics == full.diagnostics and summary(verdict) == summary(full)
    cache.save()
    assert documents <= set(WorkCache.open(tmp_path / "cache", "fingerprint").documents)
    monkeypatch.undo()
    monkeypatch.setattr(source, "RACY_NS", 0)
    changed = next(folder.glob("releases/*.yaml"))
    changed.write_text(changed.read_text().replace("version:", "version: 9.9.9\nversion:", 1))
    cache = WorkCache.open(tmp_path / "cache", "fingerprint")
    again = validate_files(read_worktree(folder, known=cache), cache, recency={}, model=False)
    assert any(d.rule == "yaml-duplicate-key" for d in again.errors) and not again.ok


def _rules_runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """A list of the rules validation runs (rather than reusing their findings), one tuple of rules a call."""
    from relreg.registry import validate
    from relreg.registry.rules import ALL_RULES

    runs: list[tuple] = []
    real = validate.check_rules

    def counted(ctx, rules=ALL_RULES):  # type: ignore[no-untyped-def]
        runs.append(rules)
        return real(ctx, rules)

    monkeypatch.setattr(validate, "check_rules", counted)
    return runs


@pytest.mark.parametrize("edited", ["1.0.0", "1.0.1", "1.0.2"])
def test_the_rules_findings_are_reused_whichever_file_a_notes_fix_edits(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         edited: str) -> None:
    """A notes fix leaves what the rules read as it was, so their findings are reused, whichever file it
    edits and whatever order the files came in (from the cache, or checked in this run); a release
    added first sorts among the others."""
    monkeypatch.setattr(source, "RACY_NS", 0)
    registry = _Registry(tmp_path / "registry")
    own = {n: ([f"{n:040x}", f"{n + 100:040x}"], [f"1.0.{n}/a.bin", f"1.0.{n}/b.bin"], [1000 + n, 2000 + n])
           for n in range(4)}
    for number in (1, 2, 3):
        registry.write(f"releases/1.0.{number}.yaml", _release(number, *own[number]))
    runs = _rules_runs(monkeypatch)

    def validate() -> list:
        cache = WorkCache.open(tmp_path / "cache", "fingerprint")
        result = validate_files(read_worktree(registry.folder, known=cache), cache, recency={})
        cache.save()
        counted = len(runs)
        assert result.diagnostics == validate_files(read_worktree(registry.folder), None, recency={}).diagnostics
        del runs[counted:]  # the cold run's
        return result.diagnostics

    validate()
    registry.write("releases/1.0.0.yaml", _release(0, *own[0]))  # added: checked in this run, the others cached
    validate()
    before = len(runs)
    registry.write(f"releases/{edited}.yaml", _release(int(edited[-1]), *own[int(edited[-1])], notes="fixed"))
    validate()
    assert len(runs) == before  # the findings of the run before were reused


def test_a_rollout_change_reruns_only_the_rules_that_read_cohorts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cohort file edited: the findings of the rules that read no cohort are reused, the cohort rules run
    again, and together they equal a cold run's, problems in the cohort included."""
    monkeypatch.setattr(source, "RACY_NS", 0)
    folder = tmp_path / "registry"
    shutil.copytree(Path(__file__).parent / "fixtures" / "base", folder)
    runs = _rules_runs(monkeypatch)

    def validate() -> list:
        cache = WorkCache.open(tmp_path / "cache", "fingerprint")
        result = validate_files(read_worktree(folder, known=cache), cache, recency={})
        cache.save()
        counted = len(runs)
        assert result.diagnostics == validate_files(read_worktree(folder), None, recency={}).diagnostics
        del runs[counted:]  # the cold run's
        return result.diagnostics

    validate()
    validate()  # the first warm run keeps the findings
    cohort = folder / "cohorts" / "stable.yaml"
    text = cohort.read_text()
    rollout = text.replace("rollout_percent: 50", "rollout_percent: 40")
    described = rollout + "description: not read by the rules\n"
    for edited, rerun in ((rollout, [COHORT_RULES]), (described, []),
                          (described.replace("slug: stable", "slug: stable2"), [COHORT_RULES])):
        assert edited != cohort.read_text()
        del runs[:]
        cohort.write_text(edited)
        diagnostics = validate()
        assert runs == rerun
    assert any(d.rule == "file-name-mismatch" and d.path.endswith("stable.yaml") for d in diagnostics)


def test_a_cold_validation_keeps_no_rules_findings_and_the_next_one_does(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold run (no document from the cache) neither computes each file's rule facts nor keeps the rules'
    findings: that work only pays off on a later run. The first run with documents from the cache keeps
    them, and the one after reuses them without running the rules."""
    monkeypatch.setattr(source, "RACY_NS", 0)
    folder = tmp_path / "registry"
    shutil.copytree(Path(__file__).parent / "fixtures" / "base", folder)
    runs = _rules_runs(monkeypatch)

    def validate() -> set[str]:
        cache = WorkCache.open(tmp_path / "cache", "fingerprint")
        validate_files(read_worktree(folder, known=cache), cache, recency={})
        cache.save()
        kept = WorkCache.open(tmp_path / "cache", "fingerprint").documents
        return {key for key in kept if key.startswith("fact:") and key != "fact:verdict"}

    cold = validate()
    assert not cold and len(runs) == 2
    warm = validate()
    assert any(key.startswith("fact:facts:release:") for key in warm) and {"fact:rules", "fact:cohort-rules"} <= warm
    assert len(runs) == 4
    validate()
    assert len(runs) == 4  # the kept findings
