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
from typing import Any

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
    # What the workflows and the README `pip install`: see default_install_spec().
    relreg_requirement: str = field(default_factory=lambda: default_install_spec()[0])
    git: bool = True


@dataclass
class InitResult:
    written: list[str]  # paths relative to the directory
    validation: ValidationResult
    git_initialized: bool = False
    kept: list[str] = field(default_factory=list)  # files that existed and were left alone


def _git_output(directory: Path, *args: str) -> str | None:
    try:
        completed = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True)
    except OSError:
        return None
    return completed.stdout.strip() if completed.returncode == 0 and completed.stdout.strip() else None


def default_install_spec() -> tuple[str, str | None]:
    """(pip requirement, note) that installs the relreg running now, for the workflows `init` writes.

    relreg is not on the public package index, so `relreg==X.Y.Z` only works
    where it was installed from an index that has it. The running install
    says where it came from (PEP 610 direct_url.json):

    - from a git URL: `relreg @ git+URL@COMMIT`, the same commit;
    - from a local folder that is a git checkout with an `origin` remote:
      `relreg @ git+ORIGIN@HEAD-COMMIT` (a CI runner can fetch it);
    - from a local folder without one: `relreg @ file:///PATH`, with a note
      that a CI runner cannot see that path;
    - from an archive URL: `relreg @ URL`;
    - from a package index: `relreg==X.Y.Z`.
    """
    import importlib.metadata

    try:
        direct = json.loads(importlib.metadata.distribution("relreg").read_text("direct_url.json") or "null")
    except (importlib.metadata.PackageNotFoundError, ValueError):
        direct = None
    return install_spec_from(direct)


def install_spec_from(direct: Any) -> tuple[str, str | None]:
    """(pip requirement, note) for an install described by PEP 610's direct_url.json (None: from an index)."""
    if not isinstance(direct, dict) or not isinstance(direct.get("url"), str):
        return f"relreg=={__version__}", None
    url: str = direct["url"]
    vcs = direct.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs") == "git":
        commit = vcs.get("commit_id") or vcs.get("requested_revision")
        return f"relreg @ git+{url}" + (f"@{commit}" if commit else ""), None
    if "dir_info" in direct and url.startswith("file://"):
        folder = Path(url[len("file://"):])
        origin = _git_output(folder, "remote", "get-url", "origin")
        commit = _git_output(folder, "rev-parse", "HEAD")
        if origin and commit and not origin.startswith(("/", ".", "file:")):
            return f"relreg @ git+{origin}@{commit}", None
        return f"relreg @ {url}", (f"the workflows install relreg from {folder}, which a CI runner does not have: "
                                   "run init again with --install-spec (e.g. "
                                   "'relreg @ git+https://github.com/OWNER/relreg@v" + __version__ + "')")
    return f"relreg @ {url}", None


def next_steps(options: InitOptions, given: set[str]) -> str:
    """The "Next:" hint after init: only what the command line did not already say (`given`: option names)."""
    steps = []
    unset = [name for name in ("site_url", "artifact_base_url") if name not in given]
    if unset:
        steps.append(f"set {' and '.join(unset)} in registry/registry.yaml")
    if not options.hardware:
        steps.append("add hardware/ files")
    last = "`relreg new-release VERSION --artifact HW=PATH ...` and `relreg validate`"
    return "Next: " + (", ".join(steps) + ", then " + last if steps else last) + "."


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
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file in the path, no permission, a read-only file system
        raise InitError(f"cannot create {directory}: {error.strerror or error}; choose another folder",
                        usage=True) from None
    git_initialized = False
    if options.git and not _inside_git(directory.resolve()):
        completed = subprocess.run(["git", "init", "-q", "-b", "main", str(directory)], capture_output=True, text=True)
        git_initialized = completed.returncode == 0
    for path, content in files.items():
        if path in kept:
            continue
        target = directory / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("xb") as stream:
                stream.write(content)
        except OSError as error:
            raise InitError(f"cannot write {target}: {error.strerror or error}") from None
    return InitResult(sorted(set(files) - set(kept)), validation, git_initialized, kept)
