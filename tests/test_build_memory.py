"""What the site workers inherit: the build process lets go of what only reading and validating needed
before it forks them (a worker starts at the build process's size; at 100,000 releases these objects were
about 115 MB of the 947 MB a worker began with)."""

from __future__ import annotations

import gc
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_REGISTRY, run_relreg
from tests.git_helpers import committed_registry

# Objects of reading and validating, one or more per file or per commit, by class name: the index's
# listing, the files read, validation's result and its index of documents, the git history and its dates.
LET_GO_OF = {"relreg.history.head.TrackedFile", "relreg.registry.source.RawFile",
             "relreg.registry.validate.ValidationResult", "relreg.registry.validate.SourceDocuments",
             "relreg.history.gitlog.History", "relreg.history.gitlog.FileDates", "relreg.history.gitlog.FileChange"}


def _name(item: object) -> str:
    return f"{type(item).__module__}.{type(item).__qualname__}"


def _alive_at_fork(monkeypatch: pytest.MonkeyPatch, registry: Path, out: Path) -> Counter[str]:
    import relreg.build

    seen: Counter[str] = Counter()
    compile_templates = relreg.build.compile_templates
    gc.collect()
    # Another test run earlier in this process may keep some alive (pytest keeps a failed test's frames).
    before = {id(item) for item in gc.get_objects() if _name(item) in LET_GO_OF}

    def at_fork() -> None:
        compile_templates()
        gc.collect()  # the build pauses the collector; what a cycle holds is not what this asks
        seen.update(name for item in gc.get_objects() if (name := _name(item)) in LET_GO_OF and id(item) not in before)
        seen["forks"] += 1

    monkeypatch.setattr(relreg.build, "compile_templates", at_fork)
    monkeypatch.setattr(relreg.build, "PARALLEL_RELEASES", 1)  # fork workers for the example's few releases
    monkeypatch.setattr(relreg.build.os, "cpu_count", lambda: 2)
    result = run_relreg("build", "--registry", registry, "--out", out)
    assert result.exit_code == 0, result.output
    return seen


def test_the_site_workers_inherit_no_file_listing_validation_result_or_git_history(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clean registry in git (read from the index, dated from the history): at the fork, none of those
    objects is alive in the build process, and the build still writes the site."""
    repo = committed_registry(tmp_path / "repo", EXAMPLE_REGISTRY)
    # Sanity: the probe does see these objects while the build reads and validates.
    import relreg.history.head

    assert relreg.history.head.read_head(repo / "registry").tracked_files()
    alive = _alive_at_fork(monkeypatch, repo / "registry", tmp_path / "out")
    assert alive.pop("forks") == 1, "the build forked no site workers: the probe did not run"
    assert alive == Counter(), f"alive in the build process when the site workers fork: {dict(alive)}"
    assert (tmp_path / "out" / "index.html").is_file()
