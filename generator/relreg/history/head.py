"""The git state a rebuild with nothing changed needs: which commit, and whether the registry is clean.

Three plumbing calls through `subprocess`, not GitPython: this runs before every build, and an
unchanged rebuild of a large registry stops right after it, so the tenth of a second GitPython
takes to import would be a large part of that rebuild. The full build reads git through
gitlog.py (GitPython) as before.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from relreg.registry import CONFIG_FILE


@dataclass(frozen=True)
class HeadState:
    """Where the registry sits in its repository, and the commit a build of it would be of."""

    prefix: str  # the registry folder relative to the repository's top, "" at the top
    commit: str | None  # the full id of `ref` (HEAD when no ref), None when it names no commit
    shallow: bool  # a shallow clone: dates would be wrong, so the full build refuses it
    clean: bool  # the registry folder holds exactly what HEAD holds (no change, untracked or ignored file)
    # When clean: git's index of the registry folder as `git ls-files --stage -v -z` lists it. It is
    # parsed (`tracked_files`) only by a build that reads the registry: an unchanged rebuild stops first.
    listing: str | None = field(default=None, compare=False, repr=False)

    def tracked_files(self) -> list[TrackedFile] | None:
        """When clean, every file git's index holds under the registry folder, with its blob id, in
        git's order (registry.source.read_tracked reads the registry from it without looking at each
        file); None otherwise.

        Parsed on each call, not kept: a HeadState lives as long as the build, and the parsed listing
        of 100,000 files is about 22 MB that every site worker would inherit."""
        return _parse_listing(self.listing) if self.listing is not None else None


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=False)
    except OSError:
        return None  # no git program: the full build reports what it needs
    return done.stdout if done.returncode == 0 else None


def tracked_registry_folders(start: Path, *, on_disk: bool = True) -> list[Path]:
    """The folders (absolute, sorted) of the registry.yaml files git tracks in the repository around `start`,
    present in the work tree beside a releases/, hardware/ or cohorts/ folder (another tool's registry.yaml,
    a container registry's settings, is not a release registry); none outside a repository or without git.
    With `on_disk` False, every folder whose registry.yaml git tracks, in the work tree or not (a sparse
    checkout may hide it)."""
    top = _git(start, "rev-parse", "--show-toplevel")
    if not top or not top.strip():
        return []
    root = Path(top.strip())
    listed = _git(root, "ls-files", "-z", "--", f":(glob)**/{CONFIG_FILE}") or ""
    folders = sorted({(root / name).parent for name in listed.split("\0") if name})
    if not on_disk:
        return folders
    return [folder for folder in folders if (folder / CONFIG_FILE).is_file()
            and any((folder / kind).is_dir() for kind in ("releases", "hardware", "cohorts"))]


class TrackedFile(NamedTuple):  # a tuple: ten thousand are made on every build of a clean registry
    """A file of git's index under the registry folder (`git ls-files --stage -v`)."""

    path: str  # relative to the registry folder, '/'-separated
    mode: str  # git's file mode: "100644", "100755", "120000" (a symbolic link), "160000" (a submodule)
    blob_id: str
    hidden: bool  # left out of the work tree (sparse, --skip-worktree) or --assume-unchanged


def tracked_files(registry_dir: Path) -> list[TrackedFile] | None:
    """Every file git's index holds under `registry_dir`, in git's order; None when it is not in a repository."""
    listed = _git(registry_dir, "ls-files", "--stage", "-v", "-z", "--", ".")
    return _parse_listing(listed) if listed is not None else None


# An entry of `git ls-files -v` whose tag says the work tree does not show the file as it is:
# S (skip-worktree) or a lower-case tag (assume-unchanged). Entries are NUL-separated and a path
# holds no NUL, so a tag is at the start or right after a NUL.
_HIDDEN_ENTRY = re.compile(r"(?:\A|\x00)(?:S|[a-z]) ")


def _parse_listing(listed: str) -> list[TrackedFile]:
    """The entries of `git ls-files --stage -v -z` output."""
    files = []
    for entry in listed.split("\0"):
        # "<tag> <mode> <blob id> <stage>\t<path>": tag H is a file as it is; S is skip-worktree and
        # a lower-case tag is assume-unchanged (see git ls-files -v).
        about, tab, path = entry.partition("\t")
        fields = about.split(" ")
        if not tab or len(fields) != 4:
            continue
        tag, mode, blob_id, _ = fields
        files.append(TrackedFile(path, mode, blob_id, tag == "S" or tag.islower()))
    return files


def hidden_paths(registry_dir: Path, tracked: list[TrackedFile] | None = None) -> list[str]:
    """Files under `registry_dir` that git has but the work tree does not show as they are: left out
    by a sparse checkout or `--skip-worktree`, or marked `--assume-unchanged` (their edits are not seen).

    `git status` calls such a tree clean, so a build from it would publish a partial registry as
    the commit's. Paths are relative to `registry_dir`; [] when it is not in a repository.
    `tracked`: tracked_files(registry_dir), when the caller has it.
    """
    if tracked is None:
        tracked = tracked_files(registry_dir)
    return [file.path for file in tracked or () if file.hidden]


def hidden_files_problem(registry_dir: Path) -> str | None:
    """Why the work tree of `registry_dir` cannot be read as the registry (see hidden_paths), or None."""
    hidden = hidden_paths(registry_dir)
    if not hidden:
        return None
    more = f" and {len(hidden) - 1} more" if len(hidden) > 1 else ""
    return (f"{registry_dir}/{hidden[0]}{more}: in git but hidden from the work tree (sparse checkout, "
            "--skip-worktree or --assume-unchanged), so the registry read from disk would be incomplete. "
            "Check out the whole registry (git sparse-checkout disable; git update-index --no-skip-worktree "
            "--no-assume-unchanged <file>), or read the commit itself with --ref HEAD")


def read_head(registry_dir: Path, ref: str | None = None) -> HeadState | None:
    """The state of `registry_dir`'s repository; None when it is not in one (or git cannot tell).

    `clean` is only computed without a ref (a build from the work tree); with a ref the work tree
    does not matter and it is True.
    """
    about = _git(registry_dir, "rev-parse", "--show-prefix", "--is-shallow-repository")
    if about is None:
        return None
    lines = about.splitlines()
    if len(lines) != 2:
        return None
    prefix, shallow = lines[0].rstrip("/"), lines[1].strip() == "true"
    commit = _git(registry_dir, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref or 'HEAD'}^{{commit}}")
    clean = True
    listing = None
    if ref is None:
        status = _git(registry_dir, "status", "--porcelain=v1", "--untracked-files=all", "--ignored=matching", "--", ".")
        listed = _git(registry_dir, "ls-files", "--stage", "-v", "-z", "--", ".") \
            if status is not None and not status.strip() else None
        clean = listed is not None and _HIDDEN_ENTRY.search(listed) is None
        listing = listed if clean else None
    return HeadState(prefix=prefix, commit=commit.strip() if commit else None, shallow=shallow, clean=clean,
                     listing=listing)
