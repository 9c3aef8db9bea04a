"""Where a build looks for signing keys (names only: a module light enough for every build's first step)."""

from __future__ import annotations

from pathlib import Path

KEYS_FILE = "keys.yaml"  # in the registry folder
ENV_VAR = "RELREG_SIGNING_KEY"  # private key(s), PEM, or a path to them


def registry_keys_diagnostics(registry_dir: Path, root: str) -> list:
    """The problems of the keys.yaml in `registry_dir` as diagnostics (none when it has none), shown under
    `root` as the registry's other files are: `relreg validate` and `relreg check` report them, so that a
    pull request learns of them rather than the publish job's build. The crypto packages load only when
    there is a keys.yaml."""
    keys = registry_dir / KEYS_FILE
    if not keys.is_file() or keys.is_symlink():
        return []
    from relreg.trust.keys import keys_file_diagnostics

    return keys_file_diagnostics(keys.read_bytes(), f"{root}/{KEYS_FILE}" if root not in ("", ".") else KEYS_FILE)
