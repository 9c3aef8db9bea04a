"""The site's and the notes' worker pools (gcpause.forked_pool): Ctrl-C at any moment ends the build.

A Ctrl-C reaches the build process at a moment of the kernel's choosing. Each case below raises
KeyboardInterrupt at one such moment, in a process of its own, and asserts that the process ends at
once with the interrupt and leaves no worker behind.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

GENERATOR = Path(__file__).resolve().parents[1] / "generator"

# Each case is run between `with forked_pool(2) as pool:` and the block's end, with `work` a function
# the workers can run, and the process's workers' pids written to `pids` as they start.
CASES = {
    # Where the build hung once: after the workers are forked, before the executor's manager thread
    # starts (the thread that would tell them to stop).
    "after the fork, before the manager thread": """
        from concurrent.futures import ProcessPoolExecutor
        launch = ProcessPoolExecutor._launch_processes
        def interrupted(self):
            launch(self)
            raise KeyboardInterrupt
        ProcessPoolExecutor._launch_processes = interrupted
        list(pool.map(work, range(100)))
    """,
    "while the workers work": """
        for result in pool.map(work, range(100)):
            if result == 3:
                raise KeyboardInterrupt
    """,
    "after the last result": """
        list(pool.map(work, range(4)))
        raise KeyboardInterrupt
    """,
}

PROGRAM = """
import os, sys, time
sys.path.insert(0, {generator!r})
from relreg.registry.gcpause import forked_pool

def note_pid():
    with open({pids!r}, "a") as file:
        file.write(f"{{os.getpid()}}\\n")

def work(number):
    time.sleep(0.01)
    return number

try:
    with forked_pool(2, initializer=note_pid) as pool:
{case}
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
print("finished", flush=True)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux")
@pytest.mark.parametrize("case", sorted(CASES))
def test_an_interrupt_ends_the_process_and_its_workers(tmp_path: Path, case: str) -> None:
    pids = tmp_path / "pids"
    program = PROGRAM.format(generator=str(GENERATOR), pids=str(pids),
                             case=textwrap.indent(textwrap.dedent(CASES[case]).strip(), " " * 8))
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30)
    assert (run.returncode, run.stdout) == (130, "interrupted\n"), run.stderr
    workers = [int(line) for line in pids.read_text().split()] if pids.exists() else []
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [pid for pid in workers if _alive(pid)] == []


def test_without_an_interrupt_every_result_comes_back_in_order(tmp_path: Path) -> None:
    program = PROGRAM.format(generator=str(GENERATOR), pids=str(tmp_path / "pids"),
                             case=" " * 8 + "assert list(pool.map(work, range(50))) == list(range(50))")
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30)
    assert (run.returncode, run.stdout) == (0, "finished\n"), run.stderr
    assert len((tmp_path / "pids").read_text().split()) == 2  # each worker ran the initializer once


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("named, status", [("its parent", 0), ("another process", 1)])
def test_a_worker_whose_parent_died_before_it_could_follow_ends_at_once(named: str, status: int) -> None:
    """A worker names the pid that forked it (taken before the fork); finding another parent (pid 1, or a
    subreaper that adopted it), it ends rather than wait for work from a build that is gone."""
    import os

    from relreg.registry.gcpause import die_with_parent

    parent = os.getpid()
    child = os.fork()
    if child == 0:
        die_with_parent(parent if named == "its parent" else parent + 4_000_000)
        os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == status
