"""A rebuild killed at any moment leaves the served folder as the whole previous site or the whole new one.

The build runs as a real `relreg build` process (with its worker processes) and is sent SIGKILL
after a random delay, several seeds over the span of a rebuild; the output folder is then compared
byte for byte with the two sites it may legitimately hold. A later build must still give the new
site exactly, whatever the killed one left behind beside the output.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BASE_REGISTRY
from git_helpers import commit_all, init_repo, numbered_release

RELEASES = 320  # above build.PARALLEL_RELEASES, so the worker processes are killed too
SEEDS = range(4)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _build(registry: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "relreg", "build", "--registry", str(registry), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate()
    assert process.returncode == 0, stderr.decode()


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, bytes], dict[str, bytes], float]:
    """(registry, folder holding the output `public` and its spare, previous site, new site, rebuild seconds).

    The output was built at two commits, so a spare (the older site, see write.py) sits beside it;
    the registry is one commit further on.
    """
    root = tmp_path_factory.mktemp("killed")
    repo = init_repo(root / "repo")
    registry = repo / "registry"
    shutil.copytree(BASE_REGISTRY, registry)
    for index in range(RELEASES):
        (registry / "releases" / f"2.{index // 100}.{index % 100}.yaml").write_text(numbered_release(index))
    commit_all(repo, "releases", "2024-01-01T10:00:00+00:00")
    served = root / "served"
    _finish(_build(registry, served / "public"))
    (registry / "releases" / "2.0.0.yaml").write_text(numbered_release(0).replace("item 1.", "item 1 again."))
    commit_all(repo, "a notes fix", "2024-01-15T10:00:00+00:00")
    _finish(_build(registry, served / "public"))
    assert (served / ".public.spare").is_dir()
    previous = _tree(served / "public")

    (registry / "releases" / "3.0.0.yaml").write_text(numbered_release(RELEASES).replace("2.3.20", "3.0.0"))
    (registry / "releases" / "1.0.0.yaml").write_text(
        (registry / "releases" / "1.0.0.yaml").read_text().replace("First release.", "First release, fixed."))
    # A new name is on every page: the rebuild rewrites a large part of the site.
    (registry / "registry.yaml").write_text(
        (registry / "registry.yaml").read_text().replace("name: Test Widget", "name: Test Widget Pro"))
    commit_all(repo, "3.0.0, a notes fix and a new name", "2024-02-01T10:00:00+00:00")
    fresh = root / "fresh"
    started = time.monotonic()
    _finish(_build(registry, fresh))
    new = _tree(fresh)
    assert len(previous) > 1000 and previous != new
    return registry, served, previous, new, time.monotonic() - started


@pytest.mark.parametrize("spare", [True, False], ids=["spare", "no-spare"])
@pytest.mark.parametrize("seed", SEEDS)
def test_killed_rebuild_serves_the_whole_previous_or_the_whole_new_site(
        sites: tuple[Path, Path, dict[str, bytes], dict[str, bytes], float], tmp_path: Path, seed: int,
        spare: bool) -> None:
    registry, served, old_site, new_site, seconds = sites
    shutil.copytree(served, tmp_path / "served", symlinks=True)
    out = tmp_path / "served" / "public"
    if not spare:
        shutil.rmtree(tmp_path / "served" / ".public.spare")
    process = _build(registry, out)
    # Mostly past start-up (imports, reading, validating), where the files are written.
    time.sleep(seconds * random.Random(seed).uniform(0.2, 1.05))
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it finished first: then the new site must be there
    process.wait()
    served_now = _tree(out)
    assert served_now == old_site or served_now == new_site, \
        f"seed {seed}: a mix of sites ({sum(served_now.get(p) != b for p, b in new_site.items())} files differ from new)"

    # Whatever the killed build left beside the output, the next builds give the new site exactly.
    _finish(_build(registry, out))
    assert _tree(out) == new_site
    _finish(_build(registry, out))
    assert _tree(out) == new_site


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads child processes from Linux's /proc")
def test_workers_die_with_a_killed_build_and_its_leftovers_go(
        sites: tuple[Path, Path, dict[str, bytes], dict[str, bytes], float], tmp_path: Path) -> None:
    """SIGKILL to the build process alone (as the OOM killer sends it): no worker is left waiting on it."""
    registry, served, old_site, new_site, seconds = sites
    shutil.copytree(served, tmp_path / "served", symlinks=True)
    out = tmp_path / "served" / "public"
    shutil.rmtree(tmp_path / "served" / ".public.spare")  # the site is written in a staging folder
    process = _build(registry, out)
    deadline = time.monotonic() + 60 + 4 * seconds
    while len(_children(process.pid)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # until the site's workers run
    assert process.poll() is None, "the build ended before its workers were seen"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("worker processes outlived the killed build")
    assert _tree(out) == old_site
    _finish(_build(registry, out))
    assert _tree(out) == new_site
    deadline = time.monotonic() + 30  # the killed build's staging folder goes, in the background
    while list(out.parent.glob(".public.staging-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(out.parent.glob(".public.staging-*"))
