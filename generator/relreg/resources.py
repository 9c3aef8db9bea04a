"""Where the schemas and the site's theme (templates and static assets) live, and the code's digest."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def schema_dir() -> Path:
    """The input and API JSON Schemas: inside the wheel, or schemas/ at the root of a source checkout."""
    installed = _PACKAGE / "schemas"  # the wheel maps the repository's schemas/ into the package
    if installed.is_dir():
        return installed
    return _PACKAGE.parent.parent / "schemas"  # editable install: generator/relreg -> repository root


def site_dir() -> Path:
    """The site's theme: templates/ (Jinja2) and static/ (CSS, JS, icons)."""
    return _PACKAGE / "site" / "theme"


@lru_cache(maxsize=1)
def code_digest() -> bytes:
    """The generator's code, templates, assets and schemas: the output depends on them as much as on the registry."""
    digest = hashlib.sha256()
    paths = [*_PACKAGE.rglob("*.py"), *site_dir().rglob("*"), *schema_dir().rglob("*.json")]
    for path in sorted(paths):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.as_posix().removeprefix(_PACKAGE.parent.as_posix()).encode() + b"\0" + path.read_bytes())
    return digest.digest()
