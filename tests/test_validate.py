"""`relreg validate`: every loader trap and every rule, with exit code, file, line and column."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import EXAMPLE_REGISTRY, FIXTURES, run_relreg
from hypothesis import given, settings
from hypothesis import strategies as st

from relreg.registry.source import RawFile, RegistryFiles, git_blob_id, read_worktree
from relreg.registry.validate import ValidationResult, validate_files

INVALID_CASES = sorted(path.name for path in (FIXTURES / "invalid").iterdir())


def _reported(output: str) -> list[str]:
    report = json.loads(output)
    return [f"{d['path']}:{d['line']}:{d['column']} {d['rule']}" for d in report["diagnostics"]]


@pytest.mark.parametrize("parallel", [False, True], ids=["one process", "workers"])
@pytest.mark.parametrize("case", INVALID_CASES)
def test_invalid_registry_is_reported_at_the_offending_line(case: str, parallel: bool, base_registry: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Alike whether the files are checked here or by workers (which start before the files are read)."""
    if parallel:
        from relreg.registry import validate

        monkeypatch.setattr(validate.os, "cpu_count", lambda: 2)
        monkeypatch.setattr(validate, "PARALLEL_THRESHOLD", 1)
        monkeypatch.setattr(validate, "CHUNK_FILES", 2)
    case_dir = FIXTURES / "invalid" / case
    shutil.copytree(case_dir, base_registry, dirs_exist_ok=True)
    (base_registry / "expected.txt").unlink()
    expected = _expectations(case_dir)
    monkeypatch.chdir(base_registry)  # paths are reported relative to the current folder

    result = run_relreg("validate", "--registry", ".", "--format", "json")

    assert result.exit_code == 1, result.output
    assert _reported(result.output) == [where for where, _ in expected]
    messages = [d["message"] for d in json.loads(result.output)["diagnostics"]]
    for (where, part), message in zip(expected, messages):
        assert part in message, (where, message)


def _expectations(case_dir: Path) -> list[tuple[str, str]]:
    """expected.txt: one `path:line:col rule` per diagnostic, optionally ` :: part of the message`."""
    expected = []
    for line in (case_dir / "expected.txt").read_text().splitlines():
        where, _, message = line.partition(" :: ")
        expected.append((where.strip(), message.strip()))
    return expected


def test_every_invalid_case_has_an_expectation() -> None:
    for case in INVALID_CASES:
        expected = _expectations(FIXTURES / "invalid" / case)
        assert expected and all(where.count(" ") == 1 for where, _ in expected), case


def test_valid_registry_exits_zero_with_one_line_summary(base_registry: Path) -> None:
    result = run_relreg("validate", "--registry", base_registry)
    assert result.exit_code == 0
    assert result.output.strip() == "registry is valid: 2 releases, 2 hardware versions, 1 cohorts (6 files)"


def test_example_registry_is_valid() -> None:
    result = run_relreg("validate", "--registry", EXAMPLE_REGISTRY)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("registry is valid: ")


def test_all_problems_are_reported_in_one_run(base_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = base_registry / "releases" / "1.1.0.yaml"
    release.write_text(release.read_text().replace("notes_format: html", "notes_format: rst\nmin_verison: x"))
    (base_registry / "hardware" / "dvt1.yaml").write_text("name: dvt1\nname: dvt2\n")
    monkeypatch.chdir(base_registry.parent)
    result = run_relreg("validate", "--registry", "registry")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[-1] == "3 errors, 0 warnings in 6 files"
    assert "registry/hardware/dvt1.yaml:2:1: error: duplicate key 'name'" in lines[0]
    assert lines[1].startswith("registry/releases/1.1.0.yaml:5:15: error: notes_format \"rst\"")
    assert lines[2].startswith("registry/releases/1.1.0.yaml:6:1: error: unknown field 'min_verison'; "
                               "did you mean 'min_version'?")


def test_github_format_annotates_the_line(base_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (base_registry / "hardware" / "dvt1.yaml").write_text("name: dvt1\ndescription: [unclosed\n")
    monkeypatch.chdir(base_registry.parent)
    result = run_relreg("validate", "--registry", "registry", "--format", "github")
    assert result.exit_code == 1
    first = result.output.splitlines()[0]
    assert first.startswith("::error file=registry/hardware/dvt1.yaml,line=3,col=1,title=relreg yaml-syntax::")


def test_symlinked_file_is_refused(base_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (base_registry / "hardware" / "evt9.yaml").symlink_to(base_registry / "hardware" / "evt1.yaml")
    monkeypatch.chdir(base_registry)
    result = run_relreg("validate", "--registry", ".", "--format", "json")
    assert result.exit_code == 1
    assert _reported(result.output) == ["hardware/evt9.yaml:1:1 file-symlink"]


def test_file_over_one_mebibyte_is_refused(base_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = base_registry / "releases" / "1.1.0.yaml"
    big.write_text(big.read_text() + "# " + "x" * (1024 * 1024) + "\n")
    monkeypatch.chdir(base_registry)
    result = run_relreg("validate", "--registry", ".", "--format", "json")
    assert result.exit_code == 1
    assert _reported(result.output) == ["releases/1.1.0.yaml:1:1 file-too-large"]


def test_missing_registry_is_a_usage_error(tmp_path: Path) -> None:
    result = run_relreg("validate", "--registry", tmp_path / "nowhere")
    assert result.exit_code == 2
    assert "no registry.yaml in that folder" in result.output
    assert "Traceback" not in result.output


def test_registry_is_found_from_the_current_folder(base_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(base_registry / "releases")  # registry/ is a parent's child: found by walking up
    assert run_relreg("validate").exit_code == 0


def test_natural_version_scheme_accepts_four_part_versions(base_registry: Path) -> None:
    config = base_registry / "registry.yaml"
    config.write_text(config.read_text() + "version_scheme: natural\n")
    release = (base_registry / "releases" / "1.1.0.yaml").read_text()
    (base_registry / "releases" / "1.1.0.yaml").unlink()
    stable = base_registry / "cohorts" / "stable.yaml"
    stable.write_text(stable.read_text().replace('"1.1.0"', '"11.0.0.6"'))
    (base_registry / "releases" / "11.0.0.6.yaml").write_text(release.replace('"1.1.0"', '"11.0.0.6"'))
    assert run_relreg("validate", "--registry", base_registry).exit_code == 0


@pytest.mark.parametrize("command", [[], ["validate"], ["build"]])
def test_help_reads_as_a_guide(command: list[str]) -> None:
    result = run_relreg(*command, "--help")
    assert result.exit_code == 0
    assert "Usage: relreg" in result.output
    assert len(result.output.splitlines()) > 10


def test_python_dash_m_runs_the_cli() -> None:
    import subprocess
    import sys
    completed = subprocess.run([sys.executable, "-m", "relreg", "--version"], capture_output=True, text=True)
    assert completed.returncode == 0
    assert completed.stdout.startswith("relreg, version ")


@pytest.mark.parametrize("case", [None, "yaml-duplicate-key"])
def test_relreg_validate_in_its_own_process_writes_its_whole_report_and_status(case: str | None,
                                                                           base_registry: Path) -> None:
    """The command ends its own process without the usual clean-up: what it wrote to a pipe is all
    there, its exit status is the verdict's, and it is the report click's runner gets in-process."""
    import subprocess
    import sys

    if case is not None:
        shutil.copytree(FIXTURES / "invalid" / case, base_registry, dirs_exist_ok=True)
        (base_registry / "expected.txt").unlink()
    for output_format in ("text", "json"):
        args = ["validate", "--registry", str(base_registry), "--format", output_format]
        completed = subprocess.run([sys.executable, "-m", "relreg", *args], capture_output=True, text=True)
        in_process = run_relreg(*args)
        assert completed.returncode == in_process.exit_code == (0 if case is None else 1)
        assert completed.stdout == in_process.output and completed.stdout.strip()


# --- holds per hardware: an activation's hardware_versions ----------------------------------------


_BASE_FILES = read_worktree(FIXTURES / "base")
IMAGES = {"1.0.0": {"evt1", "dvt1"}, "1.1.0": {"evt1"}}  # what the base registry's releases have images for
COHORT_HARDWARE = ("evt1", "dvt1")


def _with_cohort(text: str) -> RegistryFiles:
    content = text.encode()
    files = tuple(RawFile(f.kind, f.path, f.registry_path, content, git_blob_id(content))
                  if f.registry_path == "cohorts/stable.yaml" else f for f in _BASE_FILES.files)
    return RegistryFiles(root=_BASE_FILES.root, files=files, problems=())


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(IMAGES)), st.lists(st.sampled_from(["evt1", "dvt1", "pvt", "rev-c"]), min_size=1,
                                                 max_size=4))
def test_activation_hardware_rules_hold_for_any_list(version: str, names: list[str]) -> None:
    """Each name: an error iff it repeats, is not the cohort's hardware, or the release has no image for it."""
    other = "1.1.0" if version == "1.0.0" else "1.0.0"
    text = (f"slug: stable\nname: Stable\nhardware_versions: [evt1, dvt1]\nreleases:\n  - version: \"{other}\"\n"
            f"  - version: \"{version}\"\n    hardware_versions: [{', '.join(names)}]\n")
    result = validate_files(_with_cohort(text))
    expected = []
    for index, name in enumerate(names):
        if name in names[:index]:
            expected.append("activation-hardware-unique")
        elif name not in COHORT_HARDWARE:
            expected.append("activation-hardware")
        elif name not in IMAGES[version]:
            expected.append("activation-hardware-image")
    assert [d.rule for d in result.diagnostics if d.is_error] == expected
    assert all(d.path.endswith("cohorts/stable.yaml") and d.line == 7 for d in result.diagnostics if d.is_error)
    assert result.ok == (not expected)
    if result.ok:
        assert result.registry is not None
        [_, held] = result.registry.cohorts[0].releases
        assert held.held_back(COHORT_HARDWARE) == tuple(h for h in COHORT_HARDWARE if h not in names)


def test_validate_warns_about_devices_stranded_by_a_software_type(base_registry: Path) -> None:
    (base_registry / "releases" / "1.2.0.yaml").write_text(
        'version: "1.2.0"\nartifacts:\n  - hardware_version: evt1\n    software_type: main\n'
        '    build_id: e555555555555555555555555555555555555555\n    url: 1.2.0/evt1.bin\n    size: 1200\n'
        '    sha256: e555555555555555555555555555555555555555555555555555555555555555\n')
    cohort = base_registry / "cohorts" / "stable.yaml"
    cohort.write_text(cohort.read_text() + '  - version: "1.2.0"\n')
    result = run_relreg("validate", "--registry", base_registry)
    assert result.exit_code == 0, result.output
    assert ("warning: devices on 1.1.0 without a software type are never offered 1.2.0 (main) in cohort 'stable' "
            "(evt1): they are told they are up to date for good. Set `default_software_type` in hardware/evt1.yaml "
            "to the software type they take") in result.output
    assert "[untyped-stranded]" in result.output

    hardware = base_registry / "hardware" / "evt1.yaml"
    hardware.write_text(hardware.read_text() + "default_software_type: main\n")
    fixed = run_relreg("validate", "--registry", base_registry)
    assert fixed.exit_code == 0 and "warning" not in fixed.output, fixed.output

    hardware.unlink()  # no file at all: the error says so, and no warning asks to edit the missing file
    missing = run_relreg("validate", "--registry", base_registry)
    assert missing.exit_code == 1 and "[hardware-exists]" in missing.output
    assert "untyped-stranded" not in missing.output, missing.output


@pytest.mark.parametrize("cores", [2, 3])
def test_checking_files_in_worker_processes_gives_what_one_process_gives(cores: int,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Every chunk is checked once, whichever process takes it, and the results come back in file order:
    the same diagnostics (file, line, column, message) and the same model as checking them all here."""
    from relreg.registry import validate

    base = read_worktree(FIXTURES / "base")
    cases = [RawFile("release", f"{case.name}/{path.name}", f"releases/{case.name}-{path.name}", path.read_bytes(),
                     git_blob_id(path.read_bytes()))
             for case in sorted((FIXTURES / "invalid").iterdir()) for path in sorted(case.rglob("releases/*.yaml"))]
    mixed = RegistryFiles(base.root, base.files + tuple(cases), base.problems)
    monkeypatch.setattr(validate.os, "cpu_count", lambda: cores)
    for files in (base, mixed):
        alone, shared = _alone_and_in_workers(monkeypatch, files)
        assert shared.diagnostics == alone.diagnostics
        assert shared.registry == alone.registry
    assert alone.errors and not validate_files(base).errors


def _alone_and_in_workers(monkeypatch: pytest.MonkeyPatch, files: RegistryFiles
                          ) -> tuple[ValidationResult, ValidationResult]:
    """`files` validated by this process alone, then shared with worker processes in chunks of two files."""
    from relreg.registry import validate

    monkeypatch.setattr(validate, "PARALLEL_THRESHOLD", 10**9)
    alone = validate_files(files)
    monkeypatch.setattr(validate, "PARALLEL_THRESHOLD", 1)
    monkeypatch.setattr(validate, "CHUNK_FILES", 2)
    return alone, validate_files(files)


def _lazy(files: RegistryFiles, stale: set[str]) -> RegistryFiles:
    """`files` known by blob id, not held (as from their status or git's index); those in `stale` under
    a blob id their bytes no longer have."""
    return RegistryFiles(files.root, tuple(RawFile(f.kind, f.path, f.registry_path, None,
                                                   "0" * 40 if f.path in stale else f.blob_id, f.disk_path)
                                           for f in files.files), files.problems, files.refused)


@pytest.mark.parametrize("stale_every", [0, 3])
def test_files_known_by_blob_id_are_read_and_checked_by_the_worker_that_checks_them(
        stale_every: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file not held is read by whichever process checks it; one whose bytes are not those of its blob
    id is refused at 1:1 as changed (run again), in worker processes as in this one."""
    from relreg.registry import validate

    files = read_worktree(FIXTURES / "base")
    stale = {f.path for index, f in enumerate(files.files) if stale_every and index % stale_every == 1}
    lazy = _lazy(files, stale)
    monkeypatch.setattr(validate.os, "cpu_count", lambda: 2)
    alone, shared = _alone_and_in_workers(monkeypatch, lazy)
    assert shared.diagnostics == alone.diagnostics
    assert shared.registry == alone.registry
    assert {d.path for d in shared.diagnostics if d.rule == "file-changed"} == stale
    assert all((d.line, d.column) == (1, 1) for d in shared.diagnostics if d.rule == "file-changed")
    if not stale:
        assert shared.ok and shared.registry == validate_files(files).registry


def test_a_worker_killed_while_checking_leaves_its_chunks_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that dies (the OOM killer) does not hang the run: its pipe closes, and the chunks it took
    but did not send are checked by this process, with the same diagnostics and model as one process."""
    import os

    from relreg.registry import validate

    base = read_worktree(FIXTURES / "base")
    cases = [RawFile("release", f"{case.name}/{path.name}", f"releases/{case.name}-{path.name}", path.read_bytes(),
                     git_blob_id(path.read_bytes()))
             for case in sorted((FIXTURES / "invalid").iterdir()) for path in sorted(case.rglob("releases/*.yaml"))]
    mixed = RegistryFiles(base.root, base.files + tuple(cases), base.problems)
    monkeypatch.setattr(validate.os, "cpu_count", lambda: 3)
    monkeypatch.setattr(validate, "PARALLEL_THRESHOLD", 10**9)
    alone = validate_files(mixed)

    def dies_after_taking_chunks(workers: validate._Workers, work: object, results: int) -> None:
        workers.take()
        workers.take()
        os.kill(os.getpid(), 9)

    monkeypatch.setattr(validate._Workers, "_work", dies_after_taking_chunks)
    monkeypatch.setattr(validate, "PARALLEL_THRESHOLD", 1)
    monkeypatch.setattr(validate, "CHUNK_FILES", 2)
    killed = validate_files(mixed)
    assert killed.diagnostics == alone.diagnostics and killed.errors
    assert killed.registry == alone.registry
    early = validate_files(base, early=validate.EarlyCheck(FIXTURES / "base"))
    assert early.diagnostics == validate_files(base).diagnostics and early.registry == validate_files(base).registry


@pytest.mark.parametrize("cores", [2, 3])
def test_workers_started_before_the_files_are_read_give_what_one_process_gives(
        cores: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EarlyCheck's workers read and check the files on their own: their result for a file counts only
    when it was of the bytes the caller read. Files changed after the workers started (some read by a
    worker before, some after the change), a file replaced by a link and a file added are all judged
    on what the caller read, as without workers."""
    import time

    from relreg.registry import validate
    from relreg.registry.validate import EarlyCheck

    registry = tmp_path / "registry"
    shutil.copytree(FIXTURES / "base", registry)
    for case in sorted((FIXTURES / "invalid").iterdir()):
        for path in sorted(case.glob("releases/*.yaml")):
            (registry / "releases" / f"{case.name}-{path.name}").write_bytes(path.read_bytes())
    monkeypatch.setattr(validate.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(validate, "PARALLEL_THRESHOLD", 1)
    monkeypatch.setattr(validate, "CHUNK_FILES", 2)
    monkeypatch.chdir(tmp_path)
    early = EarlyCheck(Path("registry"))
    assert early.workers is not None
    time.sleep(0.3)  # let the workers read (and check) some files before they change
    releases = sorted((registry / "releases").glob("*.yaml"))
    for path in releases[::4]:
        path.write_bytes(path.read_bytes() + b"extra_field: 1\n")  # bytes: one fixture is not UTF-8
    releases[1].unlink()
    releases[1].symlink_to(releases[2].name)
    (registry / "releases" / "9.9.9.yaml").write_text(releases[3].read_text())
    files = read_worktree(Path("registry"))
    monkeypatch.setattr(validate, "PARALLEL_THRESHOLD", 10**9)
    alone = validate_files(files)
    monkeypatch.setattr(validate, "PARALLEL_THRESHOLD", 1)
    together = validate_files(files, early=early)
    assert early.workers is None  # closed: its workers ended
    assert together.diagnostics == alone.diagnostics and alone.errors
    assert together.registry == alone.registry
    assert any(d.rule == "schema-unknown-field" for d in together.diagnostics)


def test_a_hardware_file_that_does_not_load_is_reported_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not also as warnings to set a default_software_type the broken file may well set."""
    registry = tmp_path / "registry"
    shutil.copytree(EXAMPLE_REGISTRY, registry)
    pvt = registry / "hardware" / "pvt.yaml"
    assert "default_software_type" in pvt.read_text()
    pvt.write_text(pvt.read_text() + "name: again\n")
    monkeypatch.chdir(registry)
    result = run_relreg("validate", "--registry", ".", "--format", "json")
    assert result.exit_code == 1
    assert [d["rule"] for d in json.loads(result.output)["diagnostics"]] == ["yaml-duplicate-key"]
