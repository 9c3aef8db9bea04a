"""Reading a registry's files, from the work tree or from a git commit.

Both readers return the same `RegistryFiles`, raw bytes plus git blob ids,
so everything after this stage is indifferent to where the bytes came from.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import posixpath
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Protocol, Sequence

from relreg.registry import CONFIG_FILE
from relreg.registry.diagnostics import Diagnostic
from relreg.registry.gcpause import gc_paused
from relreg.registry.yamlload import MAX_FILE_BYTES

# folder -> kind; releases may be grouped in subfolders (releases/1.4/1.4.2.yaml)
KIND_FOLDERS = {"releases": "release", "hardware": "hardware", "cohorts": "cohort"}
NESTED_KINDS = {"release"}


@dataclass(frozen=True, slots=True)  # slots: a build holds one per registry file, 100,000 of them
class RawFile:
    kind: str  # "registry" | "release" | "hardware" | "cohort"
    path: str  # as shown to the user, forward slashes
    registry_path: str  # relative to the registry folder, e.g. "releases/1.2.3.yaml"
    # The bytes, or None when they were not read (their blob id was known from the file's
    # status): `content` then reads them from `disk_path` when asked, without keeping them.
    held_content: bytes | None
    blob_id: str  # git's blob id of content: a cheap, stable cache key
    disk_path: str | None = None

    @property
    def stem(self) -> str:
        return PurePosixPath(self.registry_path).name.removesuffix(".yaml")

    @property
    def content(self) -> bytes:
        """The file's bytes (read from disk on each call when not held; b"" if it has gone since)."""
        if self.held_content is not None:
            return self.held_content
        try:
            with open(self.disk_path, "rb", buffering=0) as stream:  # type: ignore[arg-type]
                return stream.readall()
        except OSError:
            return b""

    def without_content(self) -> "RawFile":
        """The same file, its bytes let go when they can be read again from disk."""
        if self.disk_path is None or self.held_content is None:
            return self
        return RawFile(self.kind, self.path, self.registry_path, None, self.blob_id, self.disk_path)


@dataclass(frozen=True)
class RegistryFiles:
    root: str  # display path of the registry folder
    files: tuple[RawFile, ...]
    problems: tuple[Diagnostic, ...]  # files that could not be read as registry files
    refused: tuple[tuple[str, str], ...] = ()  # (kind, name) of files refused before parsing

    def without_contents(self) -> "RegistryFiles":
        """The same files, holding no bytes that can be read again from disk (see RawFile.without_content)."""
        return RegistryFiles(self.root, tuple(file.without_content() for file in self.files), self.problems,
                             self.refused)

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


# Files that may sit next to registry files without being read: the README that
# `relreg init` writes, and the empty file that keeps an empty folder in git.
ALLOWED_OTHER_FILES = frozenset({"README.md", ".gitkeep"})
_FOLDER_HOLDS = {"releases": "<version>.yaml", "hardware": "<name>.yaml", "cohorts": "<slug>.yaml"}


def shown_name(text: str) -> str:
    """`text` with control characters, backslashes and non-ASCII characters escaped, safe to print anywhere.

    Bytes of a file name that are not UTF-8 (decoded by Python as lone
    surrogates) show as `\\xNN`, other characters as `\\xNN` or `\\uNNNN`.
    """
    if text.isascii() and text.isprintable() and "\\" not in text and text.strip() == text:
        return text
    out = []
    body = text.rstrip()
    for character in body:
        code = ord(character)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif character == "\\":
            out.append("\\\\")
        elif 0x20 <= code < 0x7F:
            out.append(character)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    # Trailing white space is invisible in a message: spell it out.
    out.extend(f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}" for c in text[len(body):])
    return "".join(out)


def _odd_character(name: str) -> str | None:
    """What is wrong with a file name's characters, or None when it is printable ASCII."""
    if name.isascii() and name.isprintable() and " " not in name:
        return None  # the common case, without a loop over the characters
    for index, character in enumerate(name, start=1):
        code = ord(character)
        if 0x20 < code < 0x7F:
            continue
        if 0xDC80 <= code <= 0xDCFF:
            return f"byte 0x{code - 0xDC00:02x} at character {index} is not UTF-8"
        if code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            return f"control character U+{code:04X} at character {index}"
        if character.isspace():
            where = "ends in" if name[index - 1:].strip() == "" else "holds"
            return f"{where} a space character (U+{code:04X}) at character {index}"
        import unicodedata  # only for the rare bad name

        what = unicodedata.name(character, "unnamed")
        return f"non-ASCII character '{character}' (U+{code:04X} {what}) at character {index}"
    return None


# A path that passes every check of _checked_kind_of: printable ASCII names without spaces, a file
# `<name>.yaml` not starting with '.', in subfolders only under releases/. Nearly every path is one.
_SEGMENT = r"[!-.0-~]+"  # printable ASCII but ' ' and '/'
_PLAIN_REGISTRY_FILE = re.compile(
    rf"(?:(releases)/(?:{_SEGMENT}/)*|(hardware|cohorts)/)(?!\.){_SEGMENT}\.yaml\Z")


def _kind_of(registry_path: str) -> tuple[str | None, str | None]:
    """(kind, problem) for a path relative to the registry folder.

    Every file under releases/, hardware/ and cohorts/ is accounted for: a
    registry file named exactly `<name>.yaml`, a file of ALLOWED_OTHER_FILES,
    or a problem that names it.
    """
    plain = _PLAIN_REGISTRY_FILE.match(registry_path)
    if plain is not None:  # the answer of _checked_kind_of, in one match (tests/test_file_names.py)
        return KIND_FOLDERS[plain.group(1) or plain.group(2)], None
    return _checked_kind_of(registry_path)


def _checked_kind_of(registry_path: str) -> tuple[str | None, str | None]:
    """_kind_of, every check made one by one."""
    parts = registry_path.split("/")
    if registry_path == CONFIG_FILE:
        return "registry", None
    if len(parts) < 2 or parts[0] not in KIND_FOLDERS:
        return None, _misplaced(parts)
    kind = KIND_FOLDERS[parts[0]]
    name = parts[-1]
    if name in ALLOWED_OTHER_FILES:
        return None, None
    holds = f"{parts[0]}/ holds {_FOLDER_HOLDS[parts[0]]} files, README.md and .gitkeep only"
    odd = _odd_character(name)
    if odd is not None:
        clean = name.strip()
        fix = f"rename it to '{clean}'" if clean != name and _odd_character(clean) is None \
            else "rename it using ASCII letters, digits, '.', '_' and '-'"
        return None, f"file name: {odd}; registry file names are plain ASCII, so {fix}"
    for folder in parts[1:-1]:
        odd = _odd_character(folder)
        if odd is not None:
            return None, f"folder name '{shown_name(folder)}': {odd}; rename the folder using ASCII letters, " \
                         "digits, '.', '_' and '-'"
    stem, dot, extension = name.rpartition(".")
    if dot and extension.lower() in ("yaml", "yml") and extension != "yaml":
        return None, f"registry files end in .yaml (lower case), not .{extension}; rename it to {stem}.yaml " \
                     "so that it is read"
    if not name.endswith(".yaml"):
        if ".yaml" in name.lower() or ".yml" in name.lower():
            cut = name.lower().find(".yaml") if ".yaml" in name.lower() else name.lower().find(".yml")
            return None, f"'{name}' is not a registry file ({holds}): rename it to {name[:cut]}.yaml, " \
                         "or move it out of the registry"
        return None, f"'{name}' is not a registry file ({holds}): move it out of the registry, " \
                     "or name it <name>.yaml if it is one"
    if name == ".yaml" or name.startswith("."):
        return None, f"'{name}' is not a registry file ({holds}): a registry file is named after what it holds, " \
                     "without a leading '.'"
    if len(parts) > 2 and kind not in NESTED_KINDS:
        return None, f"{parts[0]}/ files may not be in subfolders; move it to {parts[0]}/{name}"
    return kind, None


# A top-level file named like a release ("2.2.0.yaml", "v3.0.0-rc.1.yaml").
_VERSION_LIKE = re.compile(r"[vV]?[0-9]+\.[0-9]")


def misplaced_folder(folder: str) -> str | None:
    """The registry folder that `folder` (a top-level folder of the registry that is none of them) is
    likely a slip for: `release`, `Releases`, `relases` -> "releases"; None for an unrelated name."""
    if folder.startswith(".") or folder in KIND_FOLDERS:
        return None
    close = difflib.get_close_matches(folder.lower(), KIND_FOLDERS, n=1, cutoff=0.85)
    return close[0] if close else None


def _misplaced(parts: list[str]) -> str | None:
    """Why a YAML file outside releases/, hardware/ and cohorts/ that looks like a registry file is not
    read: a release at the top, or a file in a folder named like a registry folder. None for any other
    path (other files may sit beside the registry's, e.g. when it is the repository's top)."""
    name = parts[-1]
    if not name.lower().endswith((".yaml", ".yml")) or any(part.startswith(".") for part in parts):
        return None
    if len(parts) == 1:
        if name.lower() in ("registry.yml", "registry.yaml"):
            return f"the registry's settings file is named {CONFIG_FILE}: rename it, so that it is read"
        if _VERSION_LIKE.match(name):
            return f"'{name}' is named like a release, but releases are read from releases/ only: " \
                   f"move it to releases/{name}"
        return None
    folder = misplaced_folder(parts[0])
    if folder is None:
        return None
    return f"'{parts[0]}/' is not a registry folder, so this file is not read: did you mean {folder}/? " \
           f"(registry files are read from {', '.join(f'{kind}/' for kind in KIND_FOLDERS)})"


FOLDER_LINK = "is a symbolic link to a folder: registry folders must be real folders (git keeps a link as a " \
              "link, so a build of the commit would not see the files it points to); move the files here"


def _problem(path: str, message: str, rule: str) -> Diagnostic:
    return Diagnostic(path=path, line=1, column=1, message=message, rule=rule)


def display_path(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


class BlobIds(Protocol):
    """Blob ids of files read by earlier runs, by the file's status: relreg.history.cache.WorkCache, or none.

    `status` is (size, mtime_ns, ctime_ns, inode, device) of the file: any write
    changes ctime, so equal statuses mean equal bytes (as git's index assumes),
    except for a file written again within the file system's timestamp
    granularity, which `read_worktree` never remembers (see RACY_NS).
    """

    def blob_id_of(self, file: str, status: tuple[int, ...]) -> str | None: ...

    def remember_blob_id(self, file: str, status: tuple[int, ...], blob_id: str) -> None: ...


class IndexedFile(Protocol):
    """A file of git's index (history.head.TrackedFile): path relative to the registry folder, git's mode, blob id."""

    path: str
    mode: str
    blob_id: str


# A file changed less than this long before it was read may change again without its
# status changing (a coarse timestamp): its blob id is not remembered by status.
RACY_NS = 3_000_000_000


def read_worktree(registry_dir: Path, display_base: Path | None = None,
                  known: BlobIds | None = None) -> RegistryFiles:
    """Read every registry file under `registry_dir` from disk.

    With `known`, a file whose status matches an earlier run's is not read: its
    RawFile has the remembered blob id and reads its bytes only when asked.
    """
    with gc_paused():
        return _read_worktree(registry_dir, display_base, known)


def _read_worktree(registry_dir: Path, display_base: Path | None, known: BlobIds | None) -> RegistryFiles:
    base = display_base or Path.cwd()
    _require_config(registry_dir)
    # Plain strings and one lstat per file: pathlib costs more than the reading on 10,000 files.
    top = os.path.abspath(registry_dir)
    candidates = [CONFIG_FILE]
    top_files, slips = [], []
    with os.scandir(top) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if misplaced_folder(entry.name) is not None:
                    slips.append(entry.name)
            elif entry.name != CONFIG_FILE and not (entry.is_symlink() and entry.is_dir()):
                top_files.append(entry.name)  # a link to a folder is not walked into, as below
    candidates.extend(sorted(top_files))
    folder_links = []
    for folder in [*KIND_FOLDERS, *sorted(slips)]:
        if os.path.islink(os.path.join(top, folder)):
            if folder in KIND_FOLDERS and os.path.isdir(os.path.join(top, folder)):
                folder_links.append(folder)
            continue
        if os.path.isdir(os.path.join(top, folder)):
            for dirpath, dirnames, filenames in os.walk(os.path.join(top, folder)):
                dirnames.sort()
                relative_dir = os.path.relpath(dirpath, top).replace(os.sep, "/")
                candidates.extend(f"{relative_dir}/{name}" for name in sorted(filenames))
                if folder in KIND_FOLDERS:  # os.walk lists links to folders with the folders, and skips them
                    folder_links.extend(f"{relative_dir}/{name}" for name in dirnames
                                        if os.path.islink(os.path.join(dirpath, name)))
    reader = _DiskReader(top, display_path(registry_dir, base), known)
    for registry_path in sorted(candidates + folder_links, key=lambda path: _walk_order(path.split("/"))) \
            if folder_links else candidates:
        if registry_path in folder_links:
            reader.folder_link(registry_path)
            continue
        kind = reader.kind_of(registry_path)
        if kind is not None:
            reader.read(kind, registry_path)
    return reader.result()


def read_tracked(registry_dir: Path, tracked: Sequence["IndexedFile"], holds: Callable[[str, str], bool],
                 display_base: Path | None = None, known: BlobIds | None = None) -> RegistryFiles | None:
    """read_worktree's result for a registry folder that is exactly what git's index holds (`git status`
    clean, nothing ignored or hidden: head.read_head's `tracked_files()`), from the index instead of each file.

    A file whose blob `holds(kind, blob_id)` (a validated document of it is cached) is taken by its blob
    id without looking at it; the others are looked at as read_worktree does (links and oversized files
    refused) but not read: the process that checks a file reads it, and refuses it if its bytes are no
    longer the index's blob (a cold build of 100,000 releases held 370 MB of files through validation).
    Their blob ids are not remembered by status (`known`): nothing here hashed their bytes.
    None (read the work tree instead) when the folder holds a submodule, which the index does not list.
    """
    base = display_base or Path.cwd()
    _require_config(registry_dir)
    top = os.path.abspath(registry_dir)
    entries = []
    for file in tracked:
        parts = file.path.split("/")
        folder_link = file.mode == "120000" and os.path.isdir(os.path.join(top, file.path))
        if file.path in KIND_FOLDERS and folder_link:
            entries.append((_walk_order(parts), file))
            continue
        if file.path != CONFIG_FILE and (len(parts) < 2 or parts[0] not in KIND_FOLDERS):
            if _misplaced(parts) is not None and not folder_link:
                entries.append((_walk_order(parts), file))  # not read, but named as a problem
            continue
        if file.mode == "160000":
            return None
        entries.append((_walk_order(parts), file))
    entries.sort(key=lambda entry: entry[0])
    reader = _DiskReader(top, display_path(registry_dir, base), known)
    for _, file in entries:
        if file.mode == "120000" and os.path.isdir(os.path.join(top, file.path)):
            reader.folder_link(file.path)
            continue
        kind = reader.kind_of(file.path)
        if kind is None:
            continue
        if file.mode != "120000" and holds(kind, file.blob_id):
            reader.files.append(RawFile(kind, reader.shown(file.path), file.path, None, file.blob_id,
                                        os.path.join(top, file.path)))
        else:
            reader.read(kind, file.path, file.blob_id if file.mode != "120000" else None)
    return reader.result()


_FOLDER_ORDER = {folder: index for index, folder in enumerate(KIND_FOLDERS)}


def _walk_order(parts: list[str]) -> tuple[object, ...]:
    """The place of a path in read_worktree's walk: registry.yaml, then each kind's folder in turn, and
    in a folder its files by name before its subfolders by name."""
    if len(parts) == 1:
        return (0,) if parts[0] == CONFIG_FILE else (0, parts[0])
    folder = _FOLDER_ORDER.get(parts[0])
    return (1, *((folder,) if folder is not None else (len(_FOLDER_ORDER), parts[0])),
            *[(1, folder) for folder in parts[1:-1]], (0, parts[-1]))


def _require_config(registry_dir: Path) -> None:
    if not (registry_dir / CONFIG_FILE).is_file():
        raise RegistryNotFound(
            f"no registry at '{registry_dir}': expected {registry_dir / CONFIG_FILE} "
            "(use --registry DIR, or run relreg init DIR to create one)")


class _DiskReader:
    """The files, problems and refusals of a registry folder on disk, gathered one path at a time."""

    def __init__(self, top: str, root: str, known: BlobIds | None) -> None:
        self.top, self.root, self.known = top, root, known
        self.settled = time.time_ns() - RACY_NS
        self.files: list[RawFile] = []
        self.problems: list[Diagnostic] = []
        self.refused: list[tuple[str, str]] = []

    def shown(self, registry_path: str) -> str:
        return f"{self.root}/{registry_path}" if self.root not in ("", ".") else registry_path

    def kind_of(self, registry_path: str) -> str | None:
        """The path's kind (None: not a registry file), noting the problem with its name if there is one."""
        kind, problem = _kind_of(registry_path)
        if problem:
            self.problems.append(_problem(shown_name(self.shown(registry_path)), problem, "file-name"))
        return kind

    def folder_link(self, registry_path: str) -> None:
        """Note a link to a folder at or under a registry folder (never followed)."""
        self.problems.append(_problem(shown_name(self.shown(registry_path)),
                                      f"'{registry_path}' {FOLDER_LINK}", "file-symlink"))

    def read(self, kind: str, registry_path: str, blob_id: str | None = None) -> None:
        """Read one registry file (refused when a symbolic link or too large), or take its blob id from
        `known` when its status is the remembered one; with `blob_id` (git's index's, for a clean
        registry), take that one and leave the bytes to the process that checks the file."""
        shown = self.shown(registry_path)
        name = registry_path.rpartition("/")[2].removesuffix(".yaml")
        file = os.path.join(self.top, registry_path)
        status = os.lstat(file)
        if stat.S_ISLNK(status.st_mode):
            self.refused.append((kind, name))
            self.problems.append(_problem(shown, "file is a symbolic link: registry files must be regular files",
                                          "file-symlink"))
            return
        if status.st_size > MAX_FILE_BYTES:
            self.refused.append((kind, name))
            self.problems.append(_problem(shown, f"file is {status.st_size} bytes, over the limit of "
                                                 f"{MAX_FILE_BYTES} (1 MiB)", "file-too-large"))
            return
        if blob_id is not None:
            self.files.append(RawFile(kind, shown, registry_path, None, blob_id, file))
            return
        known = self.known
        if known is not None:
            status_key = (status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino, status.st_dev)
            blob_id = known.blob_id_of(file, status_key)
            if blob_id is not None:
                self.files.append(RawFile(kind, shown, registry_path, None, blob_id, file))
                return
        with open(file, "rb", buffering=0) as stream:  # unbuffered: one read, no buffer object per file
            content = stream.readall()
        blob_id = git_blob_id(content)
        if known is not None and len(content) == status.st_size \
                and max(status.st_mtime_ns, status.st_ctime_ns) < self.settled:
            known.remember_blob_id(file, status_key, blob_id)
        self.files.append(RawFile(kind, shown, registry_path, content, blob_id, file))

    def result(self) -> RegistryFiles:
        return RegistryFiles(root=self.root, files=tuple(self.files), problems=tuple(self.problems),
                             refused=tuple(self.refused))


def _links_to_folder(tree: Any, link: Any) -> bool:
    """Whether `link` (a symbolic link's blob in the commit of `tree`) points to a folder of that commit."""
    target = link.data_stream.read().decode("utf-8", "surrogateescape")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link.path), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        return False  # outside the repository: not a folder of this commit
    try:
        return (tree / resolved).type == "tree" if resolved != "." else True
    except KeyError:
        return False


@dataclass(frozen=True)
class _TreeFile(RawFile):
    """A registry file of a commit whose bytes were not read: `content` reads them from its blob when asked."""

    blob: Any = None  # a GitPython Blob

    @property
    def content(self) -> bytes:
        if self.held_content is not None:
            return self.held_content
        # A git process of its own, not the object reader GitPython keeps open: a forked worker may ask.
        return self.blob.repo.git.cat_file("blob", self.blob_id, stdout_as_string=False,
                                           strip_newline_in_stdout=False)


def read_git_tree(tree: "object", registry_prefix: str,
                  holds: Callable[[str, str], bool] | None = None) -> RegistryFiles:
    """Read every registry file of a GitPython tree (a commit's tree) under `registry_prefix`.

    A file whose blob `holds(kind, blob_id)` (a validated document of it is cached, so its size was
    checked when it was read) is taken by its blob id: neither its size nor its bytes are asked of
    git, which costs two round trips per file (a check against a base of 10,000 releases spent
    half its time there); its bytes are read from the blob if something asks for them."""
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
    try:
        items = list(registry_tree.traverse())  # type: ignore[attr-defined]
    except ValueError as error:  # GitPython refuses some tree entries (e.g. names aliasing .git on NTFS)
        shown = shown_name(str(error))
        return RegistryFiles(root=prefix, files=(), problems=(_problem(
            prefix or ".", f"the commit's tree holds a file name git tools refuse ({shown}); rename that file",
            "file-name"),))
    for item in items:
        if item.type != "blob":
            continue
        registry_path = item.path[len(prefix) + 1:] if prefix else item.path
        shown = item.path
        if item.mode == git.objects.blob.Blob.link_mode and registry_path.split("/")[0] in KIND_FOLDERS \
                and _links_to_folder(tree, item):
            problems.append(_problem(shown_name(shown), f"'{registry_path}' {FOLDER_LINK}", "file-symlink"))
            continue
        kind, problem = _kind_of(registry_path)
        if problem:
            problems.append(_problem(shown_name(shown), problem, "file-name"))
        if kind is None:
            continue
        if item.mode == git.objects.blob.Blob.link_mode:
            refused.append((kind, item.name.removesuffix(".yaml")))
            problems.append(_problem(shown, "file is a symbolic link: registry files must be regular files",
                                     "file-symlink"))
            continue
        if holds is not None and holds(kind, item.hexsha):
            files.append(_TreeFile(kind, shown, registry_path, None, item.hexsha, None, item))
            continue
        if item.size > MAX_FILE_BYTES:
            refused.append((kind, item.name.removesuffix(".yaml")))
            problems.append(_problem(shown, f"file is {item.size} bytes, over the limit of {MAX_FILE_BYTES} (1 MiB)",
                                     "file-too-large"))
            continue
        files.append(RawFile(kind, shown, registry_path, item.data_stream.read(), item.hexsha))
    files.sort(key=lambda file: file.path)
    return RegistryFiles(root=prefix, files=tuple(files), problems=tuple(problems), refused=tuple(refused))
