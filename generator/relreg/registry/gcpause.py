"""Pausing Python's cycle collector for steps that build many objects and no cycles."""

from __future__ import annotations

import gc
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
