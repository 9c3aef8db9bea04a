"""Reading a registry's files, from the work tree or from a git commit.

Both readers return the same `RegistryFiles`, raw bytes plus git blob ids,
so everything after this stage is indifferent to where the bytes came from.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from relreg.registry.diagnostics import Diagnostic
from relreg.registry.yamlload import MAX_FILE_BYTES

CONFIG_FILE = "registry.yaml"
# folder -> kind; releases may be grouped in subfolders (releases/1.4/1.4.2.yaml)
KIND_FOLDERS = {"releases": "release", "hardware": "hardware", "cohorts": "cohort"}
NESTED_KINDS = {"release"}


@dataclass(frozen=True)
class RawFile:
    kind: str  # "registry" | "release" | "hardware" | "cohort"
    path: str  # as shown to the user, forward slashes
    registry_path: str  # relative to the registry folder, e.g. "releases/1.2.3.yaml"
    content: bytes
    blob_id: str  # git's blob id of content: a cheap, stable cache key

    @property
    def stem(self) -> str:
        return PurePosixPath(self.registry_path).name.removesuffix(".yaml")


@dataclass(frozen=True)
class RegistryFiles:
    root: str  # display path of the registry folder
    files: tuple[RawFile, ...]
    problems: tuple[Diagnostic, ...]  # files that could not be read as registry files
    refused: tuple[tuple[str, str], ...] = ()  # (kind, name) of files refused before parsing

    def of_kind(self, kind: str) -> list[RawFile]:
        return [file for file in self.files if file.kind == kind]

    def names_not_loaded(self, kind: str, loaded_paths: set[str]) -> frozenset[str]:
        """Names of `kind` files that exist but did not load (their own errors say why)."""
        return frozenset({file.stem for file in self.of_kind(kind) if file.path not in loaded_paths}
                         | {name for refused_kind, name in self.refused if refused_kind == kind})


class RegistryNotFound(Exception):
    """The registry folder (or its registry.yaml) does not exist."""


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _kind_of(registry_path: str) -> tuple[str | None, str | None]:
    """(kind, problem) for a path relative to the registry folder."""
    parts = registry_path.split("/")
    if registry_path == CONFIG_FILE:
        return "registry", None
    if len(parts) < 2 or parts[0] not in KIND_FOLDERS:
        return None, None
    kind = KIND_FOLDERS[parts[0]]
    name = parts[-1]
    if name.startswith(".") or name.lower() in ("readme.md", "readme"):
        return None, None
    if name.endswith(".yml"):
        return None, "registry files end in .yaml; rename it to .yaml so that it is read"
    if not name.endswith(".yaml"):
        return None, None
    if len(parts) > 2 and kind not in NESTED_KINDS:
        return None, f"{parts[0]}/ files may not be in subfolders; move it to {parts[0]}/{name}"
    return kind, None


def _problem(path: str, message: str, rule: str) -> Diagnostic:
    return Diagnostic(path=path, line=1, column=1, message=message, rule=rule)


def display_path(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def read_worktree(registry_dir: Path, display_base: Path | None = None) -> RegistryFiles:
    """Read every registry file under `registry_dir` from disk."""
    base = display_base or Path.cwd()
    if not (registry_dir / CONFIG_FILE).is_file():
        raise RegistryNotFound(
            f"no registry at '{registry_dir}': expected {registry_dir / CONFIG_FILE} "
            "(use --registry DIR, or run relreg init DIR to create one)")
    root = display_path(registry_dir, base)
    files: list[RawFile] = []
    problems: list[Diagnostic] = []
    refused: list[tuple[str, str]] = []
    # Plain strings and one lstat per file: pathlib costs more than the reading on 10,000 files.
    top = os.fspath(registry_dir)
    candidates = [CONFIG_FILE]
    for folder in KIND_FOLDERS:
        if os.path.isdir(os.path.join(top, folder)):
            for dirpath, dirnames, filenames in os.walk(os.path.join(top, folder)):
                dirnames.sort()
                relative_dir = os.path.relpath(dirpath, top).replace(os.sep, "/")
                candidates.extend(f"{relative_dir}/{name}" for name in sorted(filenames))
    for registry_path in candidates:
        shown = f"{root}/{registry_path}" if root not in ("", ".") else registry_path
        kind, problem = _kind_of(registry_path)
        if problem:
            problems.append(_problem(shown, problem, "file-name"))
        if kind is None:
            continue
        name = registry_path.rpartition("/")[2].removesuffix(".yaml")
        file = os.path.join(top, registry_path)
        status = os.lstat(file)
        if stat.S_ISLNK(status.st_mode):
            refused.append((kind, name))
            problems.append(_problem(shown, "file is a symbolic link: registry files must be regular files",
                                     "file-symlink"))
            continue
        if status.st_size > MAX_FILE_BYTES:
            refused.append((kind, name))
            problems.append(_problem(shown, f"file is {status.st_size} bytes, over the limit of {MAX_FILE_BYTES} "
                                            "(1 MiB)", "file-too-large"))
            continue
        with open(file, "rb") as stream:
            content = stream.read()
        files.append(RawFile(kind, shown, registry_path, content, git_blob_id(content)))
    return RegistryFiles(root=root, files=tuple(files), problems=tuple(problems), refused=tuple(refused))


def read_git_tree(tree: "object", registry_prefix: str) -> RegistryFiles:
    """Read every registry file of a GitPython tree (a commit's tree) under `registry_prefix`."""
    import git  # imported here so that plain validation never pays for GitPython

    prefix = registry_prefix.strip("/")
    try:
        registry_tree = tree / prefix if prefix else tree  # type: ignore[operator]
        registry_tree / CONFIG_FILE  # type: ignore[operator]
    except KeyError:
        raise RegistryNotFound(f"no {prefix + '/' if prefix else ''}{CONFIG_FILE} in that commit") from None
    files: list[RawFile] = []
    problems: list[Diagnostic] = []
    refused: list[tuple[str, str]] = []
    for item in registry_tree.traverse():  # type: ignore[attr-defined]
        if item.type != "blob":
            continue
        registry_path = item.path[len(prefix) + 1:] if prefix else item.path
        kind, problem = _kind_of(registry_path)
        shown = item.path
        if problem:
            problems.append(_problem(shown, problem, "file-name"))
        if kind is None:
            continue
        if item.mode == git.objects.blob.Blob.link_mode:
            refused.append((kind, item.name.removesuffix(".yaml")))
            problems.append(_problem(shown, "file is a symbolic link: registry files must be regular files",
                                     "file-symlink"))
            continue
        if item.size > MAX_FILE_BYTES:
            refused.append((kind, item.name.removesuffix(".yaml")))
            problems.append(_problem(shown, f"file is {item.size} bytes, over the limit of {MAX_FILE_BYTES} (1 MiB)",
                                     "file-too-large"))
            continue
        files.append(RawFile(kind, shown, registry_path, item.data_stream.read(), item.hexsha))
    files.sort(key=lambda file: file.path)
    return RegistryFiles(root=prefix, files=tuple(files), problems=tuple(problems), refused=tuple(refused))
