"""The seed's release query, as a pure function over release documents.

`GET /api/v1/releases?hardware_version=a&hardware_version=b&build_id=...&sort=created_date`
in Memfault's Releases API. The same semantics answer the preview server's
dynamic endpoint (serve.py) and `relreg query` (query_client.py), so both give
byte-identical answers:

- Filters are `version`, `revision`, `hardware_version` and `build_id` (the
  seed's `name[]` spelling is accepted too). A filter may repeat and matches a
  release when any of its values does; different filters must all match. A
  release matches `hardware_version`/`build_id` when any of its artifacts does.
- `sort` is `-created_date` (the default, newest first) or `created_date`.
  Releases created at the same instant are ordered by id (which numbers
  releases in creation order, ties by version), so the order is total and
  `created_date` is exactly the reverse of `-created_date`.
- `page` (from 1) and `per_page` (1 to 1000, default 100) page the answer in
  the seed's list envelope {"data", "paging"}, plus "links" like the static
  lists; links are relative references ("?..."), resolved against the URL the
  query was asked at. A page past the last one is empty, not an error.
- Anything else (an unknown parameter, an empty or malformed value, `sort`,
  `page` or `per_page` given twice) is a QueryError with a message that names
  the parameter and says what is allowed.

No disk, no network: callers hand in the release documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qsl, urlencode

from relreg.site.paths import DIMENSIONS, PER_PAGE

SORTS = ("-created_date", "created_date")
DEFAULT_SORT = "-created_date"
DEFAULT_PER_PAGE = PER_PAGE
MAX_PER_PAGE = 1000
MAX_VALUE_LENGTH = 256
CONTROL_PARAMETERS = ("sort", "page", "per_page")
PARAMETERS = (*DIMENSIONS, *CONTROL_PARAMETERS)


class QueryError(ValueError):
    """A query the API does not accept: HTTP 400, exit status 2."""

    def __init__(self, message: str, *, code: str = "invalid_parameter", parameter: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.parameter = parameter

    def to_document(self) -> dict[str, Any]:
        """The seed's error body: {"error": {"message", "type", "code", "http_code"}}."""
        return {"error": {"message": self.message, "type": "invalid_query", "code": self.code,
                          "http_code": 400, "parameter": self.parameter}}


@dataclass(frozen=True)
class Query:
    """A parsed query. `filters` holds only the given dimensions, in DIMENSIONS order, values de-duplicated."""

    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    sort: str = DEFAULT_SORT
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    def values(self, dimension: str) -> tuple[str, ...] | None:
        for name, values in self.filters:
            if name == dimension:
                return values
        return None

    def pairs(self, page: int | None = None) -> list[tuple[str, str]]:
        """The canonical form: filters in DIMENSIONS order, then sort, page and per_page."""
        pairs = [(name, value) for name, values in self.filters for value in values]
        pairs += [("sort", self.sort), ("page", str(self.page if page is None else page)),
                  ("per_page", str(self.per_page))]
        return pairs

    def query_string(self, page: int | None = None) -> str:
        return urlencode(self.pairs(page))


def _single(name: str, values: list[str]) -> str:
    if len(values) > 1:
        raise QueryError(f"{name} was given {len(values)} times; give it at most once",
                         code="repeated_parameter", parameter=name)
    return values[0]


def _whole_number(name: str, text: str, low: int, high: int | None) -> int:
    limits = f"from {low} to {high}" if high is not None else f"{low} or more"
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise QueryError(f"{name} must be a whole number {limits}, not {text!r}", code="invalid_value", parameter=name)
    number = int(text)
    if number < low or (high is not None and number > high):
        raise QueryError(f"{name} must be a whole number {limits}, not {text!r}", code="invalid_value", parameter=name)
    return number


def parse_query(pairs: Iterable[tuple[str, str]]) -> Query:
    """A Query from (name, value) pairs in the order given; raises QueryError."""
    given: dict[str, list[str]] = {}
    for raw_name, value in pairs:
        name = raw_name[:-2] if raw_name.endswith("[]") else raw_name
        if name not in PARAMETERS:
            raise QueryError(f"unknown parameter {raw_name!r}; the parameters are {', '.join(PARAMETERS)}",
                             code="unknown_parameter", parameter=raw_name)
        given.setdefault(name, []).append(value)

    filters: list[tuple[str, tuple[str, ...]]] = []
    for dimension in DIMENSIONS:
        if dimension not in given:
            continue
        unique: dict[str, None] = {}
        for value in given[dimension]:
            if value == "":
                raise QueryError(f"{dimension} must not be empty", code="invalid_value", parameter=dimension)
            if len(value) > MAX_VALUE_LENGTH:
                raise QueryError(f"{dimension} is longer than {MAX_VALUE_LENGTH} characters",
                                 code="invalid_value", parameter=dimension)
            unique[value] = None
        filters.append((dimension, tuple(unique)))

    sort = DEFAULT_SORT
    if "sort" in given:
        sort = _single("sort", given["sort"])
        if sort not in SORTS:
            raise QueryError(f"sort must be -created_date (newest first, the default) or created_date "
                             f"(oldest first), not {sort!r}", code="invalid_value", parameter="sort")
    page = _whole_number("page", _single("page", given["page"]), 1, None) if "page" in given else 1
    per_page = _whole_number("per_page", _single("per_page", given["per_page"]), 1, MAX_PER_PAGE) \
        if "per_page" in given else DEFAULT_PER_PAGE
    return Query(filters=tuple(filters), sort=sort, page=page, per_page=per_page)


def parse_query_string(query_string: str) -> Query:
    """A Query from a URL's query string (`a=1&a=2&sort=created_date`); raises QueryError."""
    try:
        pairs = parse_qsl(query_string, keep_blank_values=True, strict_parsing=False,
                          encoding="utf-8", errors="strict", max_num_fields=1000)
    except (ValueError, UnicodeDecodeError) as error:
        raise QueryError(f"the query string cannot be read: {error}", code="invalid_query") from None
    return parse_query(pairs)


def release_keys(document: Mapping[str, Any]) -> dict[str, set[str]]:
    """The values a release document is found under, per dimension (the static indexes' keys)."""
    artifacts = document.get("artifacts") or []
    revision = document.get("revision") or ""
    return {
        "version": {document["version"]},
        "revision": {revision} if revision else set(),
        "hardware_version": {a["hardware_version"] for a in artifacts},
        "build_id": {a["build_id"] for a in artifacts},
    }


def matches(query: Query, document: Mapping[str, Any]) -> bool:
    if not query.filters:
        return True
    keys = release_keys(document)
    return all(not keys[dimension].isdisjoint(values) for dimension, values in query.filters)


def sort_releases(documents: Iterable[Mapping[str, Any]], sort: str = DEFAULT_SORT) -> list[Mapping[str, Any]]:
    """Oldest first for created_date, newest first for -created_date; ties by id, then version.

    created_date is always UTC in one fixed-width form, so it sorts as text.
    """
    ordered = sorted(documents, key=lambda d: (d["created_date"], d["id"], d["version"]))
    if sort == "-created_date":
        ordered.reverse()
    return ordered


def answer(query: Query, documents: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The seed's list envelope for `query` over `documents` (any order, each release once)."""
    selected = sort_releases((d for d in documents if matches(query, d)), query.sort)
    total = len(selected)
    page_count = max(1, -(-total // query.per_page))
    start = (query.page - 1) * query.per_page
    chunk = selected[start:start + query.per_page]
    links = {
        "self": "?" + query.query_string(),
        "first": "?" + query.query_string(1),
        "last": "?" + query.query_string(page_count),
        "prev": "?" + query.query_string(min(query.page - 1, page_count)) if query.page > 1 else None,
        "next": "?" + query.query_string(query.page + 1) if query.page < page_count else None,
    }
    return {
        "data": list(chunk),
        "paging": {"page": query.page, "per_page": query.per_page, "page_count": page_count,
                   "item_count": len(chunk), "total_count": total},
        "links": links,
    }
