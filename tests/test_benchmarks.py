"""The benchmark scripts run against the code as it is (`make bench` is not part of `make test`, so a change
of an internal call they use would otherwise show only when someone measures)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import EXAMPLE_REGISTRY
from git_helpers import commit_all, init_repo

ROOT = Path(__file__).resolve().parent.parent


def test_html_pages_writes_the_release_and_list_pages(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    shutil.copytree(EXAMPLE_REGISTRY, repo / "registry")
    commit_all(repo, "example", "2025-06-01T12:00:00+00:00")
    out = tmp_path / "pages"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "html_pages.py"), str(repo / "registry"),
                           str(out), "--cold-history"], capture_output=True, text=True, cwd=repo)
    assert done.returncode == 0, done.stderr
    pages = sorted(path.relative_to(out).as_posix() for path in out.rglob("index.html"))
    assert int(done.stdout.split()[-1]) == len(pages)
    releases = len(list((EXAMPLE_REGISTRY / "releases").rglob("*.yaml")))
    assert sum(page.startswith("releases/") and page.count("/") == 2 for page in pages) == releases
    assert "index.html" in pages and "releases/index.html" in pages


def test_bench_measures_every_build_kind_on_a_small_registry(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--sizes", "12", "--layouts", "flat",
                           "--runs", "1", "--no-naive", "--no-hugo"], capture_output=True, text=True,
                          env={**os.environ, "RELREG_BENCH_WORK": str(tmp_path / "bench"),
                               "RELREG_BENCH_RESULTS": str(tmp_path / "results.json")}, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    for figure in ("full build", "rebuild unchanged", "one added", "notes fix", "rollout change", "validate warm",
                   "cold", "with the daemon"):
        assert figure in done.stdout, done.stdout
    row = json.loads((tmp_path / "results.json").read_text())["rows"][0]
    assert row["daemon_rebuild_notes_fix_s"] > 0 and row["rebuild_notes_fix_cpu_s"] > 0
    assert not [line for line in Path("/proc").glob("[0-9]*/cmdline")
                if b"relreg.daemon" in _read(line) and str(tmp_path).encode() in _read(line)], "a daemon was left"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
