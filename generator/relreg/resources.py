"""Where the schemas and site templates live: inside the wheel, or in a source checkout."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _resource_dir(name: str) -> Path:
    installed = _PACKAGE / name  # the wheel maps schemas/ and site/ into the package
    if installed.is_dir():
        return installed
    return _PACKAGE.parent.parent / name  # editable install: generator/relreg -> repository root


def schema_dir() -> Path:
    return _resource_dir("schemas")


def site_dir() -> Path:
    return _resource_dir("site")


@lru_cache(maxsize=1)
def code_digest() -> bytes:
    """The generator's code, templates, assets and schemas: the output depends on them as much as on the registry."""
    digest = hashlib.sha256()
    for path in sorted([*_PACKAGE.glob("*.py"), *site_dir().rglob("*"), *schema_dir().rglob("*.json")]):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.digest()
