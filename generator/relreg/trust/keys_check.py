"""The registry's keys.yaml checked as its other files are, for `relreg validate` and `relreg check`.

Apart from keys.py so that a registry without a keys.yaml never loads the crypto packages.
"""

from __future__ import annotations

from pathlib import Path

from relreg.registry.diagnostics import Diagnostic
from relreg.trust.where import KEYS_FILE


def registry_keys_diagnostics(registry_dir: Path, root: str) -> list[Diagnostic]:
    """The problems of the keys.yaml in `registry_dir` as diagnostics (none when it has none), shown under
    `root` as the registry's other files are: `relreg validate` and `relreg check` report them, so that a
    pull request learns of them rather than the publish job's build. The crypto packages load only when
    there is a keys.yaml."""
    keys = registry_dir / KEYS_FILE
    if not keys.is_file() or keys.is_symlink():
        return []
    from relreg.trust.keys import keys_file_diagnostics

    return keys_file_diagnostics(keys.read_bytes(), f"{root}/{KEYS_FILE}" if root not in ("", ".") else KEYS_FILE)
