"""Where each API document lives, relative to the site root: the URL contract that clients rely on.

Clients (`relreg query`, `relreg serve`, devices) build these paths themselves, so they never change
without a new API version.
"""

from __future__ import annotations

API = "api/v1"
PER_PAGE = 100
MANIFEST = ".relreg-manifest.json"  # what the last build wrote, with keys and digests; never served
DIMENSIONS = ("version", "revision", "hardware_version", "build_id")  # the seed's query dimensions


def release_path(version: str) -> str:
    return f"{API}/releases/{version}.json"


def index_path(dimension: str, key: str, page: int = 1) -> str:
    return f"{API}/releases/{dimension}/{key}.json" if page == 1 else \
        f"{API}/releases/{dimension}/{key}/page/{page}.json"


def all_releases_path(page: int = 1) -> str:
    return f"{API}/releases.json" if page == 1 else f"{API}/releases/page/{page}.json"
