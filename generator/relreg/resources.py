"""Where the schemas and the site's theme (templates and static assets) live, and the code's digest."""

from __future__ import annotations

import hashlib
import os
import sys
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


# Libraries whose version can change the bytes relreg writes: Markdown, the sanitizer, templates
# and their escaping, the YAML readers. Distribution names as their .dist-info folders spell them,
# lower-cased.
OUTPUT_LIBRARIES = frozenset({"cmarkgfm", "nh3", "jinja2", "markupsafe", "rapidyaml", "pyyaml"})


def library_versions() -> list[str]:
    """The installed distributions of OUTPUT_LIBRARIES, as their metadata folders are named
    (e.g. 'nh3-0.3.8.dist-info'), sorted.

    Read from the folder names on sys.path rather than importlib.metadata, which takes a tenth
    of a second: this is on the path of every build, including one with nothing to rebuild.
    """
    found = []
    for folder in sys.path:
        try:
            names = os.listdir(folder or ".")
        except OSError:
            continue
        found += [name for name in names
                  if name.endswith(".dist-info") and name.split("-", 1)[0].lower() in OUTPUT_LIBRARIES]
    return sorted(found)


@lru_cache(maxsize=1)
def code_digest() -> bytes:
    """The generator's code, templates, assets and schemas, and the versions of the libraries that shape
    its output: the output depends on them as much as on the registry, so every cache key takes it in."""
    digest = hashlib.sha256("\n".join(library_versions()).encode() + b"\0")
    # Paths relative to each folder: the same code in another checkout (a CI runner, a worktree) has
    # the same digest, so caches and keys carry over.
    for label, root, pattern in (("relreg", _PACKAGE, "*.py"), ("site", site_dir(), "*"),
                                 ("schemas", schema_dir(), "*.json")):
        for path in sorted(root.rglob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(f"{label}/{path.relative_to(root).as_posix()}".encode() + b"\0" + path.read_bytes())
    return digest.digest()
