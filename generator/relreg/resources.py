"""Where the schemas and site templates live: inside the wheel, or in a source checkout."""

from __future__ import annotations

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
