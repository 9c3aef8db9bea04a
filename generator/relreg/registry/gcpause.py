"""Pausing Python's cycle collector for steps that build many objects and no cycles; returning freed memory;
worker processes that die with the process that forked them."""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import signal
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cycle collector for a bounded step; it resumes (if it was on) afterwards.

    Reading and validating 10,000 releases makes millions of objects (raw
    files, documents, the model, rule indexes), and each collection walks all
    that survived so far again: together as costly as the step itself. The
    objects made hold no cycles, so nothing is left for the collector later.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@functools.lru_cache(maxsize=None)
def linux_libc() -> ctypes.CDLL | None:
    """The C library this process runs with (its functions with errno kept), on Linux; None elsewhere.

    Found among the symbols already loaded (dlopen(NULL)), not by `ctypes.util.find_library`, which
    runs `/sbin/ldconfig -p` each time: two programs started per build for two calls.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def return_freed_memory() -> None:
    """Hand the heap memory freed so far back to the OS (glibc's malloc_trim); elsewhere, nothing.

    Python frees objects into the C allocator, which keeps the pages for later. Before the build
    forks its workers, the validation's documents have been freed but their pages still count in
    this process and, once forked, in every worker: at 10,000 releases, 330 MiB before and 237 MiB
    after the trim.
    """
    libc = linux_libc()
    trim = getattr(libc, "malloc_trim", None)  # musl and others have none
    if trim is not None:
        trim(0)


def die_with_parent(parent: int | None = None) -> None:
    """In a worker process: be killed when the process that forked it dies (Linux PR_SET_PDEATHSIG).

    A build or validation killed with SIGKILL (the OOM killer) cannot stop its workers; without
    this they wait forever on the pipe to it, each holding a share of its memory. `parent`: the pid
    of the process that forked this one, taken before the fork: a worker whose parent died before
    prctl took effect ends at once (an orphan's parent is pid 1 or a subreaper, such as a user's
    systemd, so without it only pid 1 is recognized).
    """
    libc = linux_libc()
    prctl = getattr(libc, "prctl", None)
    if prctl is None:
        return
    prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    if (os.getppid() != parent) if parent is not None else (os.getppid() == 1):
        os._exit(1)


def _start_forked(initializer: Callable[[], None] | None, parent: int) -> None:
    die_with_parent(parent)
    if initializer is not None:
        initializer()


@contextmanager
def forked_pool(workers: int, initializer: Callable[[], None] | None = None) -> Iterator["ProcessPoolExecutor"]:
    """A ProcessPoolExecutor of `workers` processes forked from this one, each of which dies with it
    (die_with_parent) and then runs `initializer`; shut down, waiting for its workers, after the block.

    When the block raises (Ctrl-C reaches the whole process group at any moment), the workers are killed
    first. Without that, a KeyboardInterrupt that lands after the workers are forked and before the
    executor's manager thread starts leaves them waiting for work that never comes, and this process
    hangs at exit: multiprocessing joins its children then (CPython's Lib/multiprocessing/util.py,
    _exit_function). A test of the daemon's signal forwarding hung so, twice in 18 runs.
    Loaded on use: a rebuild that runs its few jobs in this process does without multiprocessing (30-40 ms).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=functools.partial(_start_forked, initializer, os.getpid()))
    try:
        yield pool
    except BaseException:
        # A second Ctrl-C waits (blocked) until the workers are killed, or it could leave some to be joined
        # forever. The pool is told to stop first: Python 3.11's manager thread, finding its workers dead,
        # would otherwise fail on the futures the interrupted map cancelled (fixed in 3.12, gh-107219).
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            pool.shutdown(wait=False, cancel_futures=True)
            for child in multiprocessing.active_children():
                if child not in before:
                    child.kill()
            pool.shutdown(wait=True)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        raise
    pool.shutdown(wait=True)
