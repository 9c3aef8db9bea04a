"""Answering the seed's release query from a built site's static index files.

`relreg query` works against a built folder or a site URL, and reads only the
static files `relreg build` writes: for each filtered dimension the index
files api/v1/releases/<dimension>/<key>.json (and their further pages), or
api/v1/releases.json when there is no filter.

Every index entry is a whole release document, so one dimension's indexes
are enough: the client measures the candidate indexes first (file sizes, or
HEAD requests for a URL), fetches only the smallest dimension's (the union of
its values), and intersects the rest on the documents themselves, which carry
the same keys the indexes were built from. A value with no index file matches
nothing; a dimension none of whose values has an index ends the query
without fetching anything. The answer is then `query.answer` over those
documents, exactly what the preview server computes over all releases.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Protocol
from urllib.parse import quote

from relreg.service.query import Query, answer
from relreg.site.paths import DIMENSIONS, all_releases_path, index_path

# A key that can name a file: what the input schemas allow for versions, revisions,
# hardware versions and build ids. Other values cannot have an index: they match nothing.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_UNKNOWN_SIZE = 1 << 62
# When sizes are unknown, the dimension most likely to be small goes first.
_SELECTIVITY = {"version": 0, "build_id": 1, "revision": 2, "hardware_version": 3}
MAX_PAGES = 100_000


class SiteError(Exception):
    """The site cannot be read, or is not a relreg site."""


class Source(Protocol):
    description: str

    def size(self, path: str) -> int | None:
        """Bytes of the file at `path` (relative to the site root); None when it does not exist."""

    def read(self, path: str) -> bytes | None:
        """The file's bytes; None when it does not exist."""


def is_key(value: str) -> bool:
    return bool(_KEY.match(value)) and ".." not in value


class FolderSource:
    """A built folder on disk."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.description = str(root)
        if not (self.root / all_releases_path()).is_file():
            raise SiteError(f"{root} is not a built relreg site: {all_releases_path()} is missing "
                            "(build it with `relreg build --out FOLDER`)")

    def _file(self, path: str) -> str:
        return os.path.join(self.root, *path.split("/"))

    def size(self, path: str) -> int | None:
        try:
            return os.stat(self._file(path)).st_size
        except FileNotFoundError:
            return None
        except OSError as error:
            raise SiteError(f"{self._file(path)}: {error.strerror}") from None

    def read(self, path: str) -> bytes | None:
        try:
            with open(self._file(path), "rb") as stream:
                return stream.read()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise SiteError(f"{self._file(path)}: {error.strerror}") from None


@functools.lru_cache(maxsize=1)
def _tls_context() -> Any:
    """httpx's default verifying TLS context, made once per process (loading the CA bundle takes ~30 ms)."""
    import httpx

    return httpx.create_ssl_context()


class HttpSource:
    """A site served over HTTP(S), read with httpx. `base_url` is the site root (where api/v1/ is)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, client: Any = None) -> None:
        try:
            import httpx
        except ImportError:
            raise SiteError("reading a site over HTTP needs httpx: pip install httpx") from None

        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.description = self.base_url
        self._httpx = httpx
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=True, verify=_tls_context(),
                                              headers={"Accept": "application/json"})
        self._owns_client = client is None

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> "HttpSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        # Keys may hold '+' (SemVer build metadata): escaped, since some stores read '+' in a path as a space.
        return self.base_url + "/".join(quote(part, safe="-._~") for part in path.split("/"))

    def _request(self, method: str, path: str) -> Any:
        url = self.url(path)
        try:
            response = self._client.request(method, url)
        except self._httpx.HTTPError as error:
            raise SiteError(f"{method} {url}: {error}") from None
        if response.status_code in (404, 410):
            return None
        if response.status_code >= 400:
            raise SiteError(f"{method} {url}: HTTP {response.status_code}")
        return response

    def size(self, path: str) -> int | None:
        response = self._request("HEAD", path)
        if response is None:
            return None
        length = response.headers.get("content-length")
        return int(length) if length and length.isdigit() else _UNKNOWN_SIZE

    def read(self, path: str) -> bytes | None:
        response = self._request("GET", path)
        return None if response is None else response.content


def open_source(*, folder: Path | None = None, site: str | None = None) -> FolderSource | HttpSource:
    if (folder is None) == (site is None):
        raise ValueError("give exactly one of folder and site")
    if folder is not None:
        return FolderSource(folder)
    assert site is not None
    if not re.match(r"^https?://", site):
        raise SiteError(f"--site {site}: expected an http:// or https:// URL")
    return HttpSource(site)


def _decode(path: str, content: bytes, source: Source) -> dict[str, Any]:
    try:
        document = json.loads(content)
    except ValueError as error:
        raise SiteError(f"{source.description}: {path} is not JSON ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list) \
            or not isinstance(document.get("paging"), dict):
        raise SiteError(f"{source.description}: {path} is not a release list")
    return document


def read_list(source: Source, path_of: Callable[[int], str]) -> list[dict[str, Any]] | None:
    """Every release of a paged static list (all its pages); None when its first page does not exist."""
    first = source.read(path_of(1))
    if first is None:
        return None
    document = _decode(path_of(1), first, source)
    items = list(document["data"])
    page_count = document["paging"].get("page_count", 1)
    if not isinstance(page_count, int) or not 1 <= page_count <= MAX_PAGES:
        raise SiteError(f"{source.description}: {path_of(1)} has a bad page_count {page_count!r}")
    for page in range(2, page_count + 1):
        content = source.read(path_of(page))
        if content is None:
            raise SiteError(f"{source.description}: {path_of(1)} has {page_count} pages but "
                            f"{path_of(page)} is missing")
        items.extend(_decode(path_of(page), content, source)["data"])
    return items


def all_releases(source: Source) -> list[dict[str, Any]]:
    releases = read_list(source, all_releases_path)
    if releases is None:
        raise SiteError(f"{source.description} is not a relreg site: {all_releases_path()} is missing")
    return releases


def _index_reader(dimension: str, key: str) -> Callable[[int], str]:
    return lambda page: index_path(dimension, key, page)


def candidates(source: Source, query: Query) -> list[dict[str, Any]]:
    """Releases that may match: the union of the smallest filtered dimension's indexes, or every release."""
    if not query.filters:
        return all_releases(source)
    sizes: dict[str, dict[str, int]] = {}
    for dimension, values in query.filters:
        present = {}
        for value in values:
            size = source.size(index_path(dimension, value)) if is_key(value) else None
            if size is not None:
                present[value] = size
        if not present:
            return []  # no value of this dimension has any release: nothing can match
        sizes[dimension] = present
    dimension = min(sizes, key=lambda d: (min(sum(sizes[d].values()), _UNKNOWN_SIZE), _SELECTIVITY[d]))
    found: dict[str, dict[str, Any]] = {}
    for value in sizes[dimension]:
        for document in read_list(source, _index_reader(dimension, value)) or []:
            found.setdefault(document["version"], document)
    return list(found.values())


def answer_from_site(source: Source, query: Query) -> dict[str, Any]:
    """The seed's answer to `query`, read from the static files of `source`."""
    return answer(query, candidates(source, query))


__all__ = ["DIMENSIONS", "FolderSource", "HttpSource", "SiteError", "all_releases", "answer_from_site",
           "candidates", "open_source", "read_list"]
