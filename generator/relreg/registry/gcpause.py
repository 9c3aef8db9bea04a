"""Pausing Python's cycle collector for steps that build many objects and no cycles; returning freed memory."""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import sys
from contextlib import contextmanager
from typing import Iterator


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


def die_with_parent() -> None:
    """In a worker process: be killed when the process that forked it dies (Linux PR_SET_PDEATHSIG).

    A build or validation killed with SIGKILL (the OOM killer) cannot stop its workers; without
    this they wait forever on the pipe to it, each holding a share of its memory.
    """
    libc = linux_libc()
    prctl = getattr(libc, "prctl", None)
    if prctl is None:
        return
    prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)
