"""`relreg init`, the workflows it writes and this repository's own, and the pre-commit hooks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES, run_relreg
from git_helpers import commit_all, git

from relreg.registry.schemas import INPUT_SCHEMAS
from relreg.release.init import InitOptions, _shell_word, default_install_spec, install_spec_from, next_steps
from relreg.registry.yamlload import parse_yaml

REPOSITORY = Path(__file__).parent.parent
FIRMWARE_SOURCE = FIXTURES / "elf" / "firmware.c"


relreg = run_relreg  # the real `relreg` command line, in-process


def check_jsonschema() -> str:
    """check-jsonschema of the environment running the tests (a test dependency)."""
    program = Path(sys.executable).parent / "check-jsonschema"
    if not program.exists():
        pytest.fail("check-jsonschema is not installed: pip install check-jsonschema (relreg's test extra)")
    return str(program)


@pytest.fixture
def scaffold(tmp_path: Path) -> Path:
    directory = tmp_path / "widget-firmware"
    result = relreg("init", directory, "--name", "Widget: firmware", "--hardware", "evt1", "--hardware", "dvt1",
                    "--site-url", "https://fw.widget.example/", "--artifact-base-url", "https://dl.widget.example/",
                    "--repository-url", "https://git.widget.example/fw/commit/{revision}")
    assert result.exit_code == 0, result.output
    return directory


def test_init_new_release_validate_check_and_build_in_an_empty_folder(
        scaffold: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (scaffold / ".git").is_dir()  # init made it a repository, branch main
    assert git(scaffold, "symbolic-ref", "--short", "HEAD") == "main"
    monkeypatch.chdir(scaffold)
    validated = run_relreg("validate")
    assert validated.exit_code == 0, validated.output
    assert validated.output.strip() == "registry is valid: 0 releases, 2 hardware versions, 0 cohorts (3 files)"
    commit_all(scaffold, "relreg init", "2024-01-01T10:00:00+00:00")

    elf = tmp_path / "app.elf"
    subprocess.run(["gcc", "-Wl,--build-id=sha1", "-o", str(elf), str(FIRMWARE_SOURCE)], check=True,
                   capture_output=True)
    git(scaffold, "checkout", "-q", "-b", "release-1.0.0")
    created = relreg("new-release", "1.0.0", "--artifact", f"evt1={elf}", "--revision", "0123abcd")
    assert created.exit_code == 0, created.output
    release = scaffold / "registry" / "releases" / "1.0.0.yaml"
    first_line = release.read_text().splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=../../schemas/release.schema.json"
    assert (release.parent / first_line.split("=", 1)[1]).resolve().is_file()

    validated = run_relreg("validate")
    assert validated.exit_code == 0, validated.output
    assert validated.output.startswith("registry is valid: 1 releases")
    commit_all(scaffold, "release 1.0.0", "2024-01-02T10:00:00+00:00")
    checked = relreg("check", "--base", "main")
    assert checked.exit_code == 0, checked.output
    built = run_relreg("build", "--out", tmp_path / "public")
    assert built.exit_code == 0, built.output
    index = json.loads((tmp_path / "public" / "api" / "v1" / "releases" / "1.0.0.json").read_text())
    assert index["data"]["version"] == "1.0.0"


def test_scaffold_contents(scaffold: Path) -> None:
    files = sorted(path.relative_to(scaffold).as_posix() for path in scaffold.rglob("*")
                   if path.is_file() and path.relative_to(scaffold).parts[0] != ".git")
    assert files == [
        ".github/workflows/check.yml", ".github/workflows/publish.yml", ".gitignore",
        ".vscode/extensions.json", ".vscode/settings.json", "README.md",
        "registry/cohorts/README.md", "registry/hardware/README.md", "registry/hardware/dvt1.yaml",
        "registry/hardware/evt1.yaml", "registry/registry.yaml", "registry/releases/README.md",
        *sorted(f"schemas/{name}" for name in INPUT_SCHEMAS.values()),
    ]
    for path in files:
        assert "@@" not in (scaffold / path).read_text(), path
    config = parse_yaml((scaffold / "registry" / "registry.yaml").read_bytes(), "registry.yaml").data
    assert config == {"name": "Widget: firmware", "site_url": "https://fw.widget.example/",
                      "artifact_base_url": "https://dl.widget.example/",
                      "repository_url": "https://git.widget.example/fw/commit/{revision}",
                      "version_scheme": "semver"}
    assert (scaffold / "registry" / "registry.yaml").read_text().count("\n# ") >= 8  # every setting explained
    assert "relreg new-release" in (scaffold / "README.md").read_text()


def test_folder_readme_examples_are_valid_registry_files(scaffold: Path) -> None:
    """The example in each folder's README is a valid file of that kind (with hardware evt1 and 1.1.0)."""
    from relreg.registry.schemas import default_schemas

    for folder, kind in (("releases", "release"), ("hardware", "hardware"), ("cohorts", "cohort")):
        readme = (scaffold / "registry" / folder / "README.md").read_text()
        example = re.search(r"```yaml\n(.*?)```", readme, re.S)
        assert example, folder
        document = parse_yaml(example.group(1).encode(), f"{folder}/README.md")
        assert default_schemas().check(kind, document) == [], folder


def test_editor_settings_map_every_schema_to_existing_files(scaffold: Path) -> None:
    settings = json.loads((scaffold / ".vscode" / "settings.json").read_text())
    mapping = settings["yaml.schemas"]
    assert {"cohort.schema.json", "hardware.schema.json", "registry.schema.json", "release.schema.json"} <= {
        Path(schema).name for schema in mapping}
    for schema, globs in mapping.items():
        assert (scaffold / schema).is_file()
        assert globs and all(glob.startswith("registry/") for glob in globs)
    assert list((scaffold).glob(mapping["./schemas/hardware.schema.json"][0]))  # matches hardware/evt1.yaml
    recommended = json.loads((scaffold / ".vscode" / "extensions.json").read_text())["recommendations"]
    assert recommended == ["redhat.vscode-yaml"]


def test_workflows_are_valid_github_workflows(scaffold: Path) -> None:
    """Both what init writes and this repository's own, against check-jsonschema's built-in schema (offline)."""
    workflows = sorted((scaffold / ".github" / "workflows").glob("*.yml"))
    workflows += sorted((REPOSITORY / ".github" / "workflows").glob("*.yml"))
    assert len(workflows) >= 4
    completed = subprocess.run([check_jsonschema(), "--builtin-schema", "vendor.github-workflows",
                                *map(str, workflows)], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "ok -- validation done" in completed.stdout

    check = yaml.safe_load((scaffold / ".github" / "workflows" / "check.yml").read_text())
    steps = check["jobs"]["check"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0
    caches = [step for step in steps if str(step.get("uses", "")).startswith("actions/cache@")]
    assert [step["with"]["path"] for step in caches] == [".git/relreg"]  # validation runs warm on CI too
    runs = [step.get("run", "") for step in steps]
    assert check["env"] == {"RELREG_REGISTRY": "registry"}  # the one line to change when the registry moves
    assert 'relreg check --registry "$RELREG_REGISTRY" --base "origin/$BASE_REF" --format github' in runs
    assert 'relreg build --registry "$RELREG_REGISTRY" --out public --format github' in runs
    assert any(step.get("uses", "").startswith("actions/upload-artifact@") for step in steps)
    assert f"python -m pip install {_shell_word(default_install_spec()[0])}" in runs

    publish = yaml.safe_load((scaffold / ".github" / "workflows" / "publish.yml").read_text())
    assert publish[True]["push"]["branches"] == ["main"]  # PyYAML 1.1 reads the key `on` as True
    build_steps = publish["jobs"]["build"]["steps"]
    assert build_steps[0]["with"]["fetch-depth"] == 0
    assert publish["env"] == {"RELREG_REGISTRY": "registry"}
    runs = [step.get("run", "") for step in build_steps]
    checks = [n for n, run in enumerate(runs) if "relreg check --registry \"$RELREG_REGISTRY\"" in run]
    builds = [n for n, run in enumerate(runs) if run == 'relreg build --registry "$RELREG_REGISTRY" --out public '
              '--format github']
    assert checks and builds and checks[0] < builds[0]  # nothing is built that check refuses
    assert "${{ github.event.before }}" in (scaffold / ".github" / "workflows" / "publish.yml").read_text()
    for workflow in ("check.yml", "publish.yml"):  # every relreg command names the registry
        text = (scaffold / ".github" / "workflows" / workflow).read_text()
        commands = re.findall(r"^\s*(?:run: )?(relreg (?:check|build) [^\n]*)", text, re.M)
        assert len(commands) == (2 if workflow == "check.yml" else 3), commands
        assert all(c.startswith(("relreg check --registry \"$RELREG_REGISTRY\" ",
                                 "relreg build --registry \"$RELREG_REGISTRY\" ")) for c in commands), commands
    assert publish["jobs"]["deploy"]["steps"][0]["uses"].startswith("actions/deploy-pages@")


def test_this_repositorys_workflows_run_the_tests_and_build_the_example() -> None:
    test = yaml.safe_load((REPOSITORY / ".github" / "workflows" / "test.yml").read_text())
    assert set(test[True]) >= {"push", "pull_request"}
    assert [step.get("run") for step in test["jobs"]["test"]["steps"]][-1] == "make test"
    site = yaml.safe_load((REPOSITORY / ".github" / "workflows" / "site.yml").read_text())
    runs = [step.get("run", "") for step in site["jobs"]["site"]["steps"]]
    assert 'relreg check --base "origin/$BASE_REF" --format github' in runs
    assert "relreg build --out public --format github" in runs


def test_pre_commit_hooks() -> None:
    hooks = yaml.safe_load((REPOSITORY / ".pre-commit-hooks.yaml").read_text())
    by_id = {hook["id"]: hook for hook in hooks}
    assert set(by_id) == {"relreg-validate", "relreg-check"}
    for hook in hooks:
        assert {"id", "name", "entry", "language"} <= set(hook) and hook["language"] == "python"
        assert hook["pass_filenames"] is False
        pattern = re.compile(hook["files"])
        for path in ("registry/registry.yaml", "registry/releases/1.2.0.yaml", "registry/releases/1.2/1.2.0.yaml",
                     "hardware/evt1.yaml", "cohorts/beta.yaml", "registry.yaml"):
            assert pattern.search(path), path
        for path in ("README.md", "registry/releases/README.md", "src/registry.py", ".github/workflows/a.yml"):
            assert not pattern.search(path), path
    assert by_id["relreg-validate"]["entry"] == "relreg validate"
    assert by_id["relreg-check"]["stages"] == ["pre-push"]


def test_init_never_overwrites(scaffold: Path, tmp_path: Path) -> None:
    readme = scaffold / "README.md"
    readme.write_text("my own readme\n")
    again = relreg("init", scaffold)
    assert again.exit_code == 1
    assert "already holds .github/workflows/check.yml" in again.output and "never overwrites" in again.output
    assert readme.read_text() == "my own readme\n"

    clone = tmp_path / "fresh-clone"  # a new repository that came with a README and a .gitignore
    git(tmp_path, "init", "-q", str(clone))
    (clone / "README.md").write_text("# firmware registry\n")
    (clone / ".gitignore").write_text("*.bak\n")
    result = relreg("init", clone)
    assert result.exit_code == 0, result.output
    assert f"kept {clone.as_posix()}/README.md, which exists" in result.output
    assert (clone / "README.md").read_text() == "# firmware registry\n"
    assert (clone / ".gitignore").read_text() == "*.bak\n"
    assert (clone / "registry" / "registry.yaml").is_file()


def test_invalid_settings_write_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new"
    result = relreg("init", target, "--site-url", "ftp://nope", "--no-git")
    assert result.exit_code == 1
    assert "registry/registry.yaml:" in result.output and "[schema-pattern]" in result.output
    assert "nothing written" in result.output
    assert not target.exists()

    bad_name = relreg("init", target, "--hardware", "../escape")
    assert bad_name.exit_code == 2
    assert "--hardware '../escape'" in bad_name.output
    assert not target.exists()


def test_init_inside_an_existing_repository_does_not_nest_one(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    git(tmp_path, "init", "-q", str(outer))
    result = relreg("init", outer / "firmware-registry")
    assert result.exit_code == 0, result.output
    assert not (outer / "firmware-registry" / ".git").exists()
    assert "initialized a git repository" not in result.output


def test_install_spec_is_what_the_workflows_and_readme_install(tmp_path: Path) -> None:
    spec = "relreg @ git+https://github.com/example/relreg@v0.1.0"
    result = relreg("init", tmp_path / "fw", "--no-git", "--install-spec", spec)
    assert result.exit_code == 0, result.output
    assert f"the workflows install relreg with: pip install {spec!r}" in result.output
    for workflow in ("check.yml", "publish.yml"):
        runs = [step.get("run", "") for job in yaml.safe_load(
            (tmp_path / "fw" / ".github" / "workflows" / workflow).read_text())["jobs"].values()
            for step in job["steps"]]
        assert f"python -m pip install '{spec}'" in runs
    assert f"pip install '{spec}'" in (tmp_path / "fw" / "README.md").read_text()


def test_default_install_spec_is_the_running_relreg(tmp_path: Path) -> None:
    result = relreg("init", tmp_path / "fw", "--no-git")
    spec, note = default_install_spec()
    assert f"the workflows install relreg with: pip install {spec!r}" in result.output
    assert (f"note: {note}" in result.output) if note else ("note:" not in result.output)
    assert f"pip install {_shell_word(spec)}" in (tmp_path / "fw" / "README.md").read_text()


def test_install_spec_follows_where_relreg_came_from(tmp_path: Path) -> None:
    version = __import__("relreg").__version__
    assert install_spec_from(None) == (f"relreg=={version}", None)
    assert install_spec_from({"url": "https://github.com/o/relreg.git",
                              "vcs_info": {"vcs": "git", "commit_id": "abc123"}}) == \
        ("relreg @ git+https://github.com/o/relreg.git@abc123", None)
    assert install_spec_from({"url": "https://example.test/relreg-0.1.0-py3-none-any.whl",
                              "archive_info": {}}) == ("relreg @ https://example.test/relreg-0.1.0-py3-none-any.whl", None)
    checkout = tmp_path / "relreg"
    checkout.mkdir()
    git(checkout, "init", "-q", "-b", "main")
    (checkout / "pyproject.toml").write_text("[project]\nname = 'relreg'\n")
    commit = commit_all(checkout, "relreg", "2024-01-01T10:00:00+00:00")
    spec, note = install_spec_from({"url": f"file://{checkout}", "dir_info": {"editable": True}})
    assert spec == f"relreg @ file://{checkout}" and note is not None and "a CI runner does not have" in note
    git(checkout, "remote", "add", "origin", "https://github.com/o/relreg.git")
    assert install_spec_from({"url": f"file://{checkout}", "dir_info": {}}) == \
        (f"relreg @ git+https://github.com/o/relreg.git@{commit}", None)


@pytest.mark.parametrize("hardware, given, expected", [
    ([], set(), "Next: set site_url and artifact_base_url in registry/registry.yaml, add hardware/ files, then "
                "`relreg new-release VERSION --artifact HW=PATH ...` and `relreg validate`."),
    (["evt1"], {"site_url"}, "Next: set artifact_base_url in registry/registry.yaml, then `relreg new-release"),
    (["evt1"], {"site_url", "artifact_base_url"}, "Next: `relreg new-release VERSION --artifact HW=PATH ...` and "
                                                  "`relreg validate`."),
    ([], {"site_url", "artifact_base_url"}, "Next: add hardware/ files, then `relreg new-release"),
])
def test_next_hint_asks_only_for_what_was_not_given(hardware: list[str], given: set[str], expected: str) -> None:
    assert next_steps(InitOptions(directory=Path("x"), hardware=hardware), given).startswith(expected)


def test_next_hint_on_the_command_line(scaffold: Path, tmp_path: Path) -> None:
    result = relreg("init", tmp_path / "other", "--no-git", "--site-url", "https://fw.example.test/",
                    "--artifact-base-url", "https://dl.example.test/", "--hardware", "evt1")
    assert result.exit_code == 0
    assert result.output.rstrip().endswith(
        "Next: `relreg new-release VERSION --artifact HW=PATH ...` and `relreg validate`.")
    assert "set site_url" not in result.output


def test_what_builds_leave_beside_the_output_is_ignored_by_git(scaffold: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spare site, the lock and a killed build's staging folder never show up for `git add -A`."""
    monkeypatch.chdir(scaffold)
    commit_all(scaffold, "relreg init", "2024-01-01T10:00:00+00:00")
    for day in (2, 3):  # the second build leaves the first site as .public.spare
        hardware = scaffold / "registry" / "hardware" / "evt1.yaml"
        hardware.write_text(hardware.read_text() + f"# day {day}\n")
        commit_all(scaffold, f"day {day}", f"2024-01-0{day}T10:00:00+00:00")
        built = run_relreg("build")
        assert built.exit_code == 0, built.output
    (scaffold / ".public.staging-killed" / "api").mkdir(parents=True)
    (scaffold / ".public.staging-killed" / "api" / "x.json").write_text("{}")
    assert (scaffold / ".public.spare").is_dir() and (scaffold / ".public.lock").is_file()
    assert git(scaffold, "status", "--porcelain", "--untracked-files=all") == ""


def test_init_where_no_folder_can_be_made_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    result = run_relreg("init", str(tmp_path / "a-file" / "registry"))
    assert result.exit_code == 2, result.output
    assert "cannot create" in result.output and "Not a directory" in result.output
    assert "Traceback" not in result.output


def _publish_check_script(scaffold: Path) -> str:
    publish = yaml.safe_load((scaffold / ".github" / "workflows" / "publish.yml").read_text())
    [step] = [step for step in publish["jobs"]["build"]["steps"] if "relreg check" in step.get("run", "")]
    return step["run"]


@pytest.mark.parametrize("published, before, rewritten, code, expected", [
    ("", "0" * 40, "", 0, "nothing published before"),  # the first push of main
    ("", "", "", 0, "nothing published before"),  # a manual run before any publish
    ("parent", "", "", 0, "relreg check --registry fw --base {parent} --format github"),
    ("", "parent", "", 0, "relreg check --registry fw --base {parent} --format github"),  # gh found no run
    ("old", "", "", 1, "::error::history was rewritten: {old}"),
    ("old", "", "true", 0, "relreg check --registry fw --base {old} --format github"),
    ("pushed", "", "", 1, "::error::{pushed}, the commit published last, is in main's history but not on its "
                          "first-parent line"),
    ("pushed", "", "true", 0, "relreg check --registry fw --base {pushed} --format github"),
], ids=["first push", "manual first", "published parent", "before when no run", "rewritten", "rewritten on purpose",
        "pulled as a second parent", "pulled on purpose"])
def test_publish_checks_against_the_commit_published_last(
        tmp_path: Path, scaffold: Path, published: str, before: str, rewritten: str, code: int, expected: str) -> None:
    """The publish workflow's check step, run by bash in a real repository, with gh and relreg stubbed."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "a").write_text("1")
    commits = {"old": commit_all(repo, "old", "2024-01-01T10:00:00+00:00")}
    git(repo, "checkout", "-q", "--orphan", "rewritten")
    commits["parent"] = commit_all(repo, "rewritten root", "2024-02-01T10:00:00+00:00")
    (repo / "a").write_text("2")
    commits["pushed"] = commit_all(repo, "pushed", "2024-03-01T10:00:00+00:00")
    git(repo, "branch", "-q", "-D", "main")
    if published == "pushed":  # a commit made on the older main, then `git pull` without --rebase: a merge
        git(repo, "checkout", "-q", "-b", "local", commits["parent"])
        (repo / "b").write_text("local")
        commit_all(repo, "local", "2024-03-02T10:00:00+00:00")
        git(repo, "merge", "-q", "--no-ff", "-m", "pull", "rewritten", date="2024-03-03T10:00:00+00:00")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "gh").write_text(f"#!/bin/sh\necho '{commits.get(published, '')}'\n")
    (stubs / "relreg").write_text("#!/bin/sh\necho relreg \"$@\"\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "GITHUB_REPOSITORY": "o/r", "GH_TOKEN": "x",
           "BEFORE": commits.get(before, before), "REWRITTEN": rewritten, "RELREG_REGISTRY": "fw",
           "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": str(tmp_path)}
    completed = subprocess.run(["bash", "-e", "-c", _publish_check_script(scaffold)], cwd=repo, env=env,
                               capture_output=True, text=True)
    assert completed.returncode == code, completed.stdout + completed.stderr
    assert expected.format(**commits) in completed.stdout, completed.stdout + completed.stderr
