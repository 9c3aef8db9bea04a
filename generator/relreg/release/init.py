"""`relreg init DIR`: scaffold a registry repository that works out of the box.

The scaffold comes from templates_init/ (dot-folders are stored without the
dot, so that packaging and tools leave them alone, and renamed on the way
out), plus a copy of the input schemas for editors and one file per
`--hardware`. Everything is rendered in memory and the registry is validated
before anything is written; an existing file is never overwritten.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from relreg import __version__
from relreg.history.cache import WorkCache
from relreg.registry.schemas import INPUT_SCHEMAS
from relreg.registry.source import RawFile, RegistryFiles, git_blob_id
from relreg.registry.validate import ValidationResult, validate_files
from relreg.resources import schema_dir

TEMPLATES = Path(__file__).resolve().parent / "templates_init"
DOT_NAMES = {"github": ".github", "vscode": ".vscode", "gitignore": ".gitignore"}
SCHEMA_FOLDER = "schemas"
REGISTRY_FOLDER = "registry"
KEEP_IF_PRESENT = {"README.md", ".gitignore"}
_SEGMENT = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")


class InitError(Exception):
    """The scaffold cannot be written: nothing is written."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage  # True: a bad option (exit 2); False: files in the way (exit 1)


@dataclass
class InitOptions:
    directory: Path
    name: str = "Firmware"
    site_url: str = "https://firmware.example.com/"
    artifact_base_url: str = "https://downloads.example.com/firmware/"
    repository_url: str | None = None
    version_scheme: str = "semver"
    hardware: list[str] = field(default_factory=list)
    relreg_requirement: str = f"relreg=={__version__}"
    git: bool = True


@dataclass
class InitResult:
    written: list[str]  # paths relative to the directory
    validation: ValidationResult
    git_initialized: bool = False
    kept: list[str] = field(default_factory=list)  # files that existed and were left alone


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _shell_word(text: str) -> str:
    """A pip requirement as one shell word in the workflows and README."""
    return text if all(c.isalnum() or c in "._-=<>!~[],:/@+" for c in text) else "'" + text.replace("'", "") + "'"


def render(options: InitOptions) -> dict[str, bytes]:
    """Every file of the scaffold, by path relative to the directory (forward slashes)."""
    repository_line = (f"repository_url: {_quoted(options.repository_url)}" if options.repository_url
                       else "# repository_url: https://github.com/OWNER/FIRMWARE/commit/{revision}")
    substitutions = {
        "@@NAME@@": options.name,
        "@@SITE_URL@@": options.site_url,
        "@@ARTIFACT_BASE_URL@@": options.artifact_base_url,
        "@@REPOSITORY_URL@@": repository_line,
        "@@VERSION_SCHEME@@": options.version_scheme,
        "@@RELREG_REQUIREMENT@@": _shell_word(options.relreg_requirement),
    }
    yaml_values = {"@@NAME@@": _quoted(options.name), "@@SITE_URL@@": _quoted(options.site_url),
                   "@@ARTIFACT_BASE_URL@@": _quoted(options.artifact_base_url)}
    files: dict[str, bytes] = {}
    for template in sorted(TEMPLATES.rglob("*")):
        if not template.is_file() or template.name.startswith(".") or "__pycache__" in template.parts:
            continue
        parts = template.relative_to(TEMPLATES).parts
        target = "/".join((DOT_NAMES.get(parts[0], parts[0]), *parts[1:]))
        text = template.read_text(encoding="utf-8")
        values = {**substitutions, **yaml_values} if target.endswith(".yaml") else substitutions
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        files[target] = text.encode("utf-8")
    for hardware in options.hardware:
        files[f"{REGISTRY_FOLDER}/hardware/{hardware}.yaml"] = (
            "# yaml-language-server: $schema=../../schemas/hardware.schema.json\n"
            f"name: {_quoted(hardware)}\n"
            "description: \"\"\n").encode("utf-8")
    source = schema_dir()
    for name in INPUT_SCHEMAS.values():
        files[f"{SCHEMA_FOLDER}/{name}"] = (source / name).read_bytes()
    return files


def _registry_files(files: dict[str, bytes], shown_root: str) -> RegistryFiles:
    from relreg.registry.source import _kind_of  # the reader's own rule for which files are registry files

    prefix = f"{REGISTRY_FOLDER}/"
    raw = []
    for path, content in sorted(files.items()):
        if not path.startswith(prefix):
            continue
        registry_path = path[len(prefix):]
        kind, _ = _kind_of(registry_path)
        if kind is not None:
            shown = str(PurePosixPath(shown_root) / path) if shown_root not in ("", ".") else path
            raw.append(RawFile(kind, shown, registry_path, content, git_blob_id(content)))
    return RegistryFiles(root=f"{shown_root}/{REGISTRY_FOLDER}" if shown_root not in ("", ".") else REGISTRY_FOLDER,
                         files=tuple(raw), problems=())


def _inside_git(directory: Path) -> bool:
    for folder in (directory, *directory.parents):
        if (folder / ".git").exists():
            return True
    return False


def init_registry(options: InitOptions, shown_root: str | None = None) -> InitResult:
    directory = options.directory
    if directory.exists() and not directory.is_dir():
        raise InitError(f"{directory} exists and is not a folder", usage=True)
    for name in options.hardware:
        if not _SEGMENT.match(name):
            raise InitError(f"--hardware {name!r}: expected 1 to 64 letters, digits, '.', '_' or '-', starting and "
                            "ending with a letter or digit (e.g. evt1, pvt-b)", usage=True)
    files = render(options)
    shown = shown_root if shown_root is not None else directory.as_posix()
    validation = validate_files(_registry_files(files, shown), WorkCache())
    if not validation.ok:
        return InitResult([], validation)
    existing = {path for path in files if (directory / path).exists() or (directory / path).is_symlink()}
    kept = sorted(existing & KEEP_IF_PRESENT)  # a fresh clone's own README or .gitignore stays as it is
    in_the_way = sorted(existing - KEEP_IF_PRESENT)
    if in_the_way:
        listed = ", ".join(in_the_way[:8]) + (f" and {len(in_the_way) - 8} more" if len(in_the_way) > 8 else "")
        raise InitError(f"{directory} already holds {listed}: `relreg init` never overwrites a file; "
                        "choose an empty folder or move those files away")
    git_initialized = False
    if options.git and not _inside_git(directory.resolve()):
        directory.mkdir(parents=True, exist_ok=True)
        completed = subprocess.run(["git", "init", "-q", "-b", "main", str(directory)], capture_output=True, text=True)
        git_initialized = completed.returncode == 0
    for path, content in files.items():
        if path in kept:
            continue
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("xb") as stream:
            stream.write(content)
    return InitResult(sorted(set(files) - set(kept)), validation, git_initialized, kept)
