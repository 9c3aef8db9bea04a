"""Real throwaway git repositories for tests, with commit dates under the test's control."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def git(repo: Path, *args: str, date: str | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Release Bot", "GIT_AUTHOR_EMAIL": "bot@example.test",
           "GIT_COMMITTER_NAME": "Release Bot", "GIT_COMMITTER_EMAIL": "bot@example.test",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_SYSTEM": "/dev/null"}
    if date is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    completed = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {completed.stderr}")
    return completed.stdout.strip()


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def commit_all(repo: Path, message: str, date: str) -> str:
    """Stage everything and commit at `date` (ISO 8601 with zone); returns the commit id."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, date=date)
    return git(repo, "rev-parse", "HEAD")


def committed_registry(path: Path, base: Path) -> Path:
    """A git repository at `path` holding a copy of the registry at `base` as registry/, in one commit
    (2024-01-01 10:00 UTC)."""
    repo = init_repo(path)
    shutil.copytree(base, repo / "registry")
    commit_all(repo, "registry", "2024-01-01T10:00:00+00:00")
    return repo


def registry_without_releases(repo: Path, base: Path) -> Path:
    """`repo`/registry with the config and hardware files of the registry at `base` and an empty releases/
    folder (nothing committed): the start of a test that commits its releases one by one."""
    registry = repo / "registry"
    registry.mkdir()
    shutil.copy(base / "registry.yaml", registry)
    shutil.copytree(base / "hardware", registry / "hardware")
    (registry / "releases").mkdir()
    return registry


def numbered_release(index: int) -> str:
    """The text of release file number `index` of a synthetic registry (version 2.<index // 100>.<index % 100>,
    one evt1 artifact, eight lines of notes): for tests that need a registry of some hundreds of releases."""
    version = f"2.{index // 100}.{index % 100}"
    notes = "\\n".join(f"- Fixed issue #{index * 10 + line}: the scheduler keeps work item {line}." for line in range(8))
    return (f'version: "{version}"\nrevision: a{index:039x}\nnotes: "## {version}\\n\\n{notes}"\nartifacts:\n'
            f"  - hardware_version: evt1\n    build_id: b{index:039x}\n    url: {version}/evt1.bin\n"
            f"    size: {1000 + index}\n    sha256: c{index:063x}\n")
