"""`relreg new-release`: a release file from real build outputs, validated before it is written."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import BASE_REGISTRY, EXAMPLE_REGISTRY, FIXTURES, run_relreg
from git_helpers import commit_all, git, init_repo

from relreg.registry.yamlload import parse_yaml

FIRMWARE_SOURCE = FIXTURES / "elf" / "firmware.c"


relreg = run_relreg  # the real `relreg` command line, in-process


def readelf_build_id(elf: Path) -> str:
    """The build id as binutils reads it: an independent check of what pyelftools gives."""
    output = subprocess.run(["readelf", "-n", str(elf)], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Build ID: ([0-9a-f]+)", output)
    assert match, output
    return match.group(1)


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a firmware build leaves behind: ELF files with build ids, raw images and a delta."""
    out = tmp_path_factory.mktemp("build")
    for board in ("evt1", "dvt1"):
        subprocess.run(["gcc", "-Wl,--build-id=sha1", f'-DBOARD="{board}"', "-o", str(out / f"{board}.elf"),
                        str(FIRMWARE_SOURCE)], check=True, capture_output=True)
    subprocess.run(["gcc", "-Wl,--build-id=none", "-o", str(out / "no-id.elf"), str(FIRMWARE_SOURCE)],
                   check=True, capture_output=True)
    (out / "evt1.bin").write_bytes(bytes(range(256)) * 40)  # the image flashed on the board
    (out / "evt1-from-1.1.0.delta").write_bytes(b"delta payload " * 30)
    (out / "NOTES.md").write_text("## Fixes\r\n\r\n- The clock no longer drifts.\r\n- Faster boot: 1.2 s.   \r\n\r\n")
    (out / "notes.html").write_text("<p>Maintenance release.</p>\n<ul>\n  <li>Fixed: reboot loop.</li>\n</ul>\n")
    (out / "extra.yaml").write_text("toolchain: arm-none-eabi-gcc 13.2.1\nflags: [-Os, -flto]\nci_system: jenkins\n")
    return out


@pytest.fixture
def registry_repo(tmp_path: Path) -> Path:
    repo = init_repo(tmp_path / "registry-repo")
    shutil.copytree(BASE_REGISTRY, repo / "registry")
    commit_all(repo, "base registry", "2024-01-01T10:00:00+00:00")
    return repo


@pytest.fixture
def firmware_repo(tmp_path: Path) -> Path:
    repo = init_repo(tmp_path / "firmware")
    (repo / "main.c").write_text("int main(void) { return 0; }\n")
    commit_all(repo, "firmware 1.2.0", "2024-02-01T10:00:00+00:00")
    return repo


def test_release_from_real_build_outputs_validates(build: Path, registry_repo: Path, firmware_repo: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    registry = registry_repo / "registry"
    monkeypatch.chdir(firmware_repo)  # the firmware's CI job runs in the firmware repository

    result = relreg(
        "new-release", "1.2.0", "--registry", registry,
        "--artifact", f"evt1={build / 'evt1.bin'}", "--elf", f"evt1={build / 'evt1.elf'}",
        "--artifact", f"evt1:delta:1.1.0={build / 'evt1-from-1.1.0.delta'}",
        "--artifact", f"dvt1={build / 'dvt1.elf'}",  # an ELF artifact carries its own build id
        "--notes-file", build / "NOTES.md", "--min-version", "1.0.0",
        "--extra-info-file", build / "extra.yaml", "--extra-info", "ci_system=github-actions",
        "--extra-info", "build_time_s:=384", "--extra-info", "signed:=true",
        "--url-template", "{version}/{hardware_version}/{filename}")

    assert result.exit_code == 0, result.output
    written = registry / "releases" / "1.2.0.yaml"
    assert f"wrote {written.as_posix()} (3 artifacts: dvt1, evt1, evt1 delta from 1.1.0); registry is valid: " \
           "3 releases" in result.stdout
    head = git(firmware_repo, "rev-parse", "HEAD")
    assert f"note: revision {head} (HEAD of {firmware_repo.resolve()})" in result.stderr
    text = written.read_text()
    assert text.startswith("# yaml-language-server: $schema=https://fw.example.test/schemas/release.schema.json\n")
    data = parse_yaml(text.encode(), str(written)).data

    def digest(name: str) -> str:
        return hashlib.sha256((build / name).read_bytes()).hexdigest()

    assert data == {
        "version": "1.2.0",
        "min_version": "1.0.0",
        "revision": head,
        "notes_format": "markdown",
        "notes": "## Fixes\n\n- The clock no longer drifts.\n- Faster boot: 1.2 s.\n",
        "extra_info": {"toolchain": "arm-none-eabi-gcc 13.2.1", "flags": ["-Os", "-flto"],
                       "ci_system": "github-actions", "build_time_s": 384, "signed": True},
        "artifacts": [
            {"hardware_version": "evt1", "build_id": readelf_build_id(build / "evt1.elf"),
             "url": "1.2.0/evt1/evt1.bin", "size": 10240, "sha256": digest("evt1.bin")},
            {"hardware_version": "evt1", "type": "delta", "delta_from": "1.1.0",
             "build_id": hashlib.sha1((build / "evt1-from-1.1.0.delta").read_bytes()).hexdigest(),
             "url": "1.2.0/evt1/evt1-from-1.1.0.delta", "size": 420, "sha256": digest("evt1-from-1.1.0.delta")},
            {"hardware_version": "dvt1", "build_id": readelf_build_id(build / "dvt1.elf"),
             "url": "1.2.0/dvt1/dvt1.elf", "size": (build / "dvt1.elf").stat().st_size,
             "sha256": digest("dvt1.elf")},
        ],
    }
    assert "notes: |\n  ## Fixes\n\n  - The clock" in text  # notes stay readable as a block

    validated = run_relreg("validate", "--registry", registry)
    assert validated.exit_code == 0, validated.output
    assert validated.output.startswith("registry is valid: 3 releases")

    # The pull request that adds it passes the check.
    git(registry_repo, "checkout", "-q", "-b", "release-1.2.0")
    commit_all(registry_repo, "release 1.2.0", "2024-02-01T11:00:00+00:00")
    monkeypatch.chdir(registry_repo)
    checked = relreg("check", "--base", "main")
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.strip().endswith("releases: 1 added")


def test_existing_release_is_never_overwritten(build: Path, base_registry: Path) -> None:
    published = base_registry / "releases" / "1.1.0.yaml"
    before = published.read_bytes()
    result = relreg("new-release", "1.1.0", "--registry", base_registry, "--revision", "",
                    "--artifact", f"evt1={build / 'evt1.elf'}")
    assert result.exit_code == 1
    assert "release 1.1.0 exists already" in result.stderr and "never overwritten" in result.stderr
    assert published.read_bytes() == before


def test_invalid_result_writes_nothing(build: Path, base_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(base_registry)
    result = relreg("new-release", "1.2.0", "--registry", ".", "--revision", "", "--format", "json",
                    "--artifact", f"pvt={build / 'evt1.elf'}",
                    "--artifact", f"evt1:delta:1.5.0={build / 'evt1-from-1.1.0.delta'}")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [f"{d['path']}:{d['line']}:{d['column']} {d['rule']}" for d in report["diagnostics"]] == [
        "releases/1.2.0.yaml:4:23 hardware-exists",
        "releases/1.2.0.yaml:11:17 delta-from",
    ]
    assert report["summary"].endswith("; releases/1.2.0.yaml not written")
    assert not (base_registry / "releases" / "1.2.0.yaml").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--artifact", "evt1={build}/evt1.bin"], "--artifact evt1: no build id; pass --elf evt1=PATH"),
    (["--artifact", "evt1={build}/evt1.bin", "--elf", "evt1={build}/no-id.elf"], "has no GNU build id note"),
    (["--artifact", "evt1={build}/evt1.bin", "--elf", "evt1={build}/evt1.bin"], "not a readable ELF file"),
    (["--artifact", "evt1={build}/evt1.elf", "--elf", "dvt1={build}/dvt1.elf"], "there is no --artifact dvt1"),
    (["--artifact", "evt1:full={build}/evt1.elf"], "expected HW, HW/SOFTWARE_TYPE or HW[/SOFTWARE_TYPE]:delta:"),
    (["--artifact", "evt1={build}/missing.bin"], "missing.bin is not a file"),
    (["--artifact", "evt1={build}/evt1.elf", "--url-template", "{board}/{filename}"],
     "'board' is not a placeholder"),
    (["--artifact", "evt1={build}/evt1.elf", "--artifact", "dvt1={build}/evt1.elf"],
     "would both be at url 1.2.0/evt1.elf"),
    (["--artifact", "evt1={build}/evt1.elf", "--notes-file", "{build}/extra.yaml"], "use a Markdown (.md) or HTML"),
    (["--artifact", "evt1={build}/evt1.elf", "--extra-info", "size:=1.2.3"], "the value after := must be JSON"),
    (["--artifact", "evt1={build}/evt1.elf", "--extra-info", "gain:=1e999"], "1e999 is beyond the range of a JSON number"),
    (["--artifact", "evt1={build}/evt1.elf", "--extra-info", "gain:=[-1e400]"], "-1e400 is beyond the range"),
    (["--artifact", "evt1={build}/evt1.elf", "--extra-info", 'x:={"a": 1, "a": 2}'], 'the key "a" is given twice'),
    (["--artifact", "evt1={build}/evt1.elf", "--extra-info", 'x:="\\ud800"'], "lone surrogate"),
    (["--artifact", "evt1={build}/evt1.elf", "--extra-info", 'x:={"\\udfff": 1}'], "lone surrogate"),
    (["--artifact", "evt1={build}/evt1.elf", "--build-id", "evt1=xyz"], "expected 8 to 64 hex digits"),
    ([], "give at least one --artifact"),
])
def test_usage_errors_exit_2_and_write_nothing(args: list[str], message: str, build: Path,
                                               base_registry: Path) -> None:
    result = relreg("new-release", "1.2.0", "--registry", base_registry, "--revision", "",
                    *[arg.replace("{build}", str(build)) for arg in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (base_registry / "releases" / "1.2.0.yaml").exists()


def test_version_cannot_escape_the_releases_folder(build: Path, base_registry: Path) -> None:
    result = relreg("new-release", "../../evil", "--registry", base_registry,
                    "--artifact", f"evt1={build / 'evt1.elf'}")
    assert result.exit_code == 2
    assert "is not a version" in result.output


def test_revision_is_left_out_inside_the_registry_repository(build: Path, registry_repo: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(registry_repo)
    result = relreg("new-release", "1.2.0", "--artifact", f"evt1={build / 'evt1.elf'}",
                    "--notes-file", build / "notes.html", "--build-id", "evt1=0xDEADBEEF01")
    assert result.exit_code == 0, result.output
    assert "revision left out" in result.stderr
    data = parse_yaml((registry_repo / "registry" / "releases" / "1.2.0.yaml").read_bytes(), "x").data
    assert "revision" not in data
    assert data["notes_format"] == "html" and data["notes"].startswith("<p>Maintenance release.</p>\n<ul>")
    assert data["artifacts"][0]["build_id"] == "deadbeef01"


def test_registry_checked_out_inside_the_firmware_workspace(build: Path, firmware_repo: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """As a CI job checks out the registry repository in a subfolder of the firmware's workspace."""
    nested = init_repo(firmware_repo / "registry-checkout")
    shutil.copytree(BASE_REGISTRY, nested / "registry")
    commit_all(nested, "registry", "2024-01-01T10:00:00+00:00")
    monkeypatch.chdir(firmware_repo)
    result = relreg("new-release", "1.2.0", "--registry", "registry-checkout/registry",
                    "--artifact", f"evt1={build / 'evt1.elf'}")
    assert result.exit_code == 0, result.output
    data = parse_yaml((nested / "registry" / "releases" / "1.2.0.yaml").read_bytes(), "x").data
    assert data["revision"] == git(firmware_repo, "rev-parse", "HEAD")
    assert "uncommitted" not in result.stderr  # the nested checkout is untracked, not a change


def test_dry_run_prints_and_writes_nothing(build: Path, base_registry: Path) -> None:
    result = relreg("new-release", "1.2.0", "--registry", base_registry, "--revision", "abc123", "--dry-run",
                    "--artifact", f"evt1={build / 'evt1.elf'}", "--must-pass-through")
    assert result.exit_code == 0, result.output
    assert 'version: "1.2.0"\nrevision: "abc123"\nmust_pass_through: true\nartifacts:\n' in result.stdout
    assert "would write" in result.stdout
    assert not (base_registry / "releases" / "1.2.0.yaml").exists()


def test_awkward_text_is_written_so_that_it_reads_back_exactly(build: Path, base_registry: Path,
                                                              tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("  starts indented\n\tand a tab\nünïcödé ✓ and \"quotes\" # not a comment\n")
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"null": None, "yes": "no", "1.10": "1.10", "nested": {"a": [1, 2.5, "x: y"]},
                                 "multi\nline": "a\u2028b\x85\U0001F600"}))
    result = relreg("new-release", "1.2.0", "--registry", base_registry, "--revision", "",
                    "--artifact", f"evt1={build / 'evt1.elf'}", "--notes-file", notes,
                    "--extra-info-file", extra, "--extra-info", "on=off", "--extra-info", "version:=\"1.10\"")
    assert result.exit_code == 0, result.output
    data = parse_yaml((base_registry / "releases" / "1.2.0.yaml").read_bytes(), "x").data
    assert data["notes"] == "  starts indented\n\tand a tab\nünïcödé ✓ and \"quotes\" # not a comment\n"
    assert data["extra_info"] == {"null": None, "yes": "no", "1.10": "1.10", "nested": {"a": [1, 2.5, "x: y"]},
                                  "multi\nline": "a\u2028b\x85\U0001F600", "on": "off",
                                  "version": "1.10"}


def test_schema_comment_points_at_the_schemas_beside_the_registry(build: Path, tmp_path: Path) -> None:
    registry = tmp_path / "example" / "registry"
    shutil.copytree(EXAMPLE_REGISTRY, registry)
    shutil.copytree(EXAMPLE_REGISTRY.parent / "schemas", tmp_path / "example" / "schemas")
    result = relreg("new-release", "3.0.0", "--registry", registry, "--revision", "",
                    "--artifact", f"pvt={build / 'evt1.elf'}")
    assert result.exit_code == 0, result.output
    first = (registry / "releases" / "3.0.0.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../../schemas/release.schema.json"


def test_a_url_of_a_published_release_with_other_bytes_is_refused(build: Path, base_registry: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (build / "1.1.0").mkdir(exist_ok=True)
    image = build / "1.1.0" / "evt1.bin"  # the same name as 1.1.0's artifact, but new bytes
    image.write_bytes(b"rebuilt image " * 50)
    monkeypatch.chdir(base_registry)
    result = relreg("new-release", "1.2.0", "--registry", ".", "--revision", "", "--format", "json",
                    "--artifact", f"evt1={image}", "--build-id", "evt1=0123456789abcdef",
                    "--url-template", "https://dl.example.test/fw/1.1.0/{filename}")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert [f"{d['path']}:{d['line']}:{d['column']} {d['rule']}" for d in report["diagnostics"]] == [
        "releases/1.2.0.yaml:6:10 artifact-url-unique"]
    message = report["diagnostics"][0]["message"]
    assert "is also the url of releases/1.1.0.yaml artifacts[0], with size 700 instead of 1100" in message
    assert not (base_registry / "releases" / "1.2.0.yaml").exists()


def test_the_same_file_at_the_same_url_is_allowed(build: Path, base_registry: Path) -> None:
    image = build / "evt1.bin"
    published = base_registry / "releases" / "1.1.0.yaml"
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    published.write_text(published.read_text().replace("url: 1.1.0/evt1.bin", "url: firmware/evt1.bin")
                         .replace("size: 1100", f"size: {image.stat().st_size}")
                         .replace("c333333333333333333333333333333333333333333333333333333333333333", digest))
    result = relreg("new-release", "1.2.0", "--registry", base_registry, "--revision", "",
                    "--artifact", f"evt1={image}", "--build-id", "evt1=0123456789abcdef",
                    "--url-template", "firmware/{filename}")
    assert result.exit_code == 0, result.output
    assert (base_registry / "releases" / "1.2.0.yaml").exists()


def test_floats_in_extra_info_are_written_so_that_yaml_1_1_reads_numbers(build: Path, base_registry: Path) -> None:
    result = relreg("new-release", "1.2.0", "--registry", base_registry, "--revision", "",
                    "--artifact", f"evt1={build / 'evt1.elf'}", "--extra-info", "big:=1e20",
                    "--extra-info", "small:=[1e-5]")
    assert result.exit_code == 0, result.output
    import yaml
    text = (base_registry / "releases" / "1.2.0.yaml").read_bytes()
    assert parse_yaml(text, "x").data["extra_info"] == {"big": 1e20, "small": [1e-5]}
    assert yaml.safe_load(text)["extra_info"] == {"big": 1e20, "small": [1e-5]}


@pytest.mark.parametrize("written, stored", [
    ("Hotfix\n", "Hotfix\n"),  # one word: once written as a plain scalar that lost its line break
    ("true\n", "true\n"),
    ("text\n\n\n", "text\n"),
    ("Fixed A.  \nFixed B.\n", "Fixed A.  \nFixed B.\n"),  # two trailing spaces: a Markdown hard break
    ("Fixed A.\u00a0\nFixed B.\n", "Fixed A.\u00a0\nFixed B.\n"),
    ("a\n   \nb\n", "a\n   \nb\n"),
    ("\n\nLeading blank lines go\r\nCRLF becomes LF  \n  \n", "Leading blank lines go\nCRLF becomes LF\n"),
])
def test_notes_are_stored_as_written(build: Path, base_registry: Path, tmp_path: Path,
                                     written: str, stored: str) -> None:
    """Only line endings, blank lines around the text and whitespace at its very end are normalized."""
    notes = tmp_path / "notes.md"
    notes.write_bytes(written.encode())
    result = relreg("new-release", "1.2.0", "--registry", base_registry, "--revision", "",
                    "--artifact", f"evt1={build / 'evt1.elf'}", "--notes-file", notes)
    assert result.exit_code == 0, result.output
    data = parse_yaml((base_registry / "releases" / "1.2.0.yaml").read_bytes(), "x").data
    assert data["notes"] == stored


@pytest.mark.parametrize(("args", "message"), [
    (["--notes-file", "{notes}"], "over the limit of 1048576 (1 MiB) (line 1, column 1); shorten the notes"),
    (["--extra-info", "deep:=" + "[" * 40 + "]" * 40], "nested more than 32 levels deep"),
])
def test_a_release_that_would_not_be_a_valid_file_is_an_error_not_a_crash(
        args: list[str], message: str, build: Path, base_registry: Path, tmp_path: Path) -> None:
    notes = tmp_path / "changelog.md"
    notes.write_text("- fixed a bug\n" * 80_000)  # a generated changelog of 1.1 MB
    result = relreg("new-release", "1.2.0", "--registry", base_registry, "--revision", "",
                    "--artifact", f"evt1={build / 'evt1.elf'}", *[arg.replace("{notes}", str(notes)) for arg in args])
    assert result.exit_code == 1, result.output
    assert "would not be a valid registry file" in result.output and message in result.output
    assert "Traceback" not in result.output
    assert not (base_registry / "releases" / "1.2.0.yaml").exists()
