"""Compiled templates kept between builds, in the work cache (I/O: not part of the pure plan)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from jinja2 import FileSystemBytecodeCache

from relreg.resources import code_digest
from relreg.site.pages import environment


def keep_compiled_templates(folder: Path) -> None:
    """Keep the templates compiled to Python bytecode in a folder under `folder` (a work cache), so that a
    rebuild loads the few it uses instead of compiling them (0.17 s for all). The folder is named by the
    code's digest (Jinja2's own key is the template's source: not the environment's options, which are
    code); Jinja2 checks the Python version and the source, and writes each file atomically. Folders of
    other code are removed. A folder that cannot be made only costs the compiling."""
    target = folder / f"templates-{code_digest().hex()[:16]}"
    try:
        if not target.is_dir():
            for old in folder.glob("templates-*"):
                shutil.rmtree(old, ignore_errors=True)
            target.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    environment().bytecode_cache = _BytecodeCache(str(target))


class _BytecodeCache(FileSystemBytecodeCache):
    """Jinja2's cache of compiled templates in a folder, where a failure to write (the folder removed by a build
    of other code meanwhile, a read-only repository) only costs the compiling, never the build."""

    def dump_bytecode(self, bucket: Any) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass
