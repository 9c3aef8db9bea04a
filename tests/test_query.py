"""query.py: the seed's release query semantics, as a pure function over release documents."""

from __future__ import annotations

import pytest

from relreg.service.query import MAX_PER_PAGE, Query, QueryError, answer, matches, parse_query, parse_query_string


def release(id_: int, version: str, created: str, artifacts: list[tuple[str, str]], revision: str = "") -> dict:
    return {"id": id_, "created_date": f"2024-{created}T10:00:00.000000+00:00", "version": version,
            "revision": revision,
            "artifacts": [{"hardware_version": hw, "build_id": build} for hw, build in artifacts]}


RELEASES = [
    release(1, "1.0.0", "01-01", [("evt", "a1"), ("dvt", "a2")], revision="r1"),
    release(2, "1.1.0", "02-01", [("evt", "b1")], revision="r2"),
    release(3, "1.2.0", "02-01", [("dvt", "c1")], revision="r3"),  # same instant as 1.1.0: id breaks the tie
    release(4, "1.3.0", "02-01", [("pvt", "d1")]),  # no revision
    release(5, "2.0.0", "03-01", [("pvt", "e1"), ("dvt", "e2")], revision="r5"),
]


def versions(result: dict) -> list[str]:
    return [r["version"] for r in result["data"]]


def ask(query_string: str, releases: list[dict] = RELEASES) -> dict:
    return answer(parse_query_string(query_string), releases)


@pytest.mark.parametrize(("query_string", "expected"), [
    ("", ["2.0.0", "1.3.0", "1.2.0", "1.1.0", "1.0.0"]),
    ("sort=-created_date", ["2.0.0", "1.3.0", "1.2.0", "1.1.0", "1.0.0"]),
    ("sort=created_date", ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.0.0"]),
    ("version=1.1.0", ["1.1.0"]),
    ("version=1.1.0&version=2.0.0", ["2.0.0", "1.1.0"]),
    ("version=1.1.0&version=1.1.0", ["1.1.0"]),
    ("version=9.9.9", []),
    ("revision=r3", ["1.2.0"]),
    ("revision=r3&revision=r1&sort=created_date", ["1.0.0", "1.2.0"]),
    ("hardware_version=dvt", ["2.0.0", "1.2.0", "1.0.0"]),
    ("hardware_version=evt&hardware_version=pvt", ["2.0.0", "1.3.0", "1.1.0", "1.0.0"]),
    ("build_id=e2", ["2.0.0"]),
    ("build_id=e2&build_id=a1&build_id=zz", ["2.0.0", "1.0.0"]),
    ("hardware_version=dvt&version=1.0.0&version=1.1.0", ["1.0.0"]),  # different parameters all match
    ("hardware_version=evt&build_id=c1", []),  # each matches a release, never the same one
    ("hardware_version=dvt&build_id=a1", ["1.0.0"]),  # any artifact matches each (here: different artifacts)
    ("hardware_version[]=pvt&version[]=1.3.0", ["1.3.0"]),  # the seed's documented spelling
    ("hardware_version=DVT", []),  # exact, case-sensitive
])
def test_semantics(query_string: str, expected: list[str]) -> None:
    assert versions(ask(query_string)) == expected


def test_ties_are_broken_by_id_and_the_orders_are_exact_reverses() -> None:
    shuffled = [RELEASES[i] for i in (3, 0, 4, 2, 1)]
    newest = versions(ask("", shuffled))
    oldest = versions(ask("sort=created_date", shuffled))
    assert newest == list(reversed(oldest))
    assert newest[1:4] == ["1.3.0", "1.2.0", "1.1.0"]  # three releases created at the same instant


def test_an_empty_revision_is_not_a_key() -> None:
    assert matches(parse_query([("revision", "r2")]), RELEASES[1])
    with pytest.raises(QueryError):
        parse_query([("revision", "")])


@pytest.mark.parametrize(("query_string", "page_versions", "paging", "prev", "next_"), [
    ("per_page=2", ["2.0.0", "1.3.0"], (1, 2, 3, 2, 5), None, 2),
    ("per_page=2&page=2", ["1.2.0", "1.1.0"], (2, 2, 3, 2, 5), 1, 3),
    ("per_page=2&page=3", ["1.0.0"], (3, 2, 3, 1, 5), 2, None),  # last, partial
    ("per_page=2&page=4", [], (4, 2, 3, 0, 5), 3, None),  # past the end: empty, not an error
    ("per_page=2&page=9", [], (9, 2, 3, 0, 5), 3, None),
    ("per_page=5", ["2.0.0", "1.3.0", "1.2.0", "1.1.0", "1.0.0"], (1, 5, 1, 5, 5), None, None),
    ("per_page=1&page=5&sort=created_date", ["2.0.0"], (5, 1, 5, 1, 5), 4, None),
    ("version=7.0.0&page=1", [], (1, 100, 1, 0, 0), None, None),  # no match: one empty page
])
def test_paging(query_string: str, page_versions: list[str], paging: tuple, prev: int | None,
                next_: int | None) -> None:
    result = ask(query_string)
    assert versions(result) == page_versions
    page, per_page, page_count, item_count, total = paging
    assert result["paging"] == {"page": page, "per_page": per_page, "page_count": page_count,
                                "item_count": item_count, "total_count": total}
    links = result["links"]
    assert links["self"].startswith("?") and f"page={page}&" in links["self"]
    assert links["first"].endswith(f"page=1&per_page={per_page}") or "page=1&" in links["first"]
    assert f"page={page_count}&" in links["last"]
    assert (links["prev"] is None) == (prev is None) and (prev is None or f"page={prev}&" in links["prev"])
    assert (links["next"] is None) == (next_ is None) and (next_ is None or f"page={next_}&" in links["next"])


def test_links_are_canonical_relative_queries() -> None:
    result = ask("sort=created_date&hardware_version=pvt&version[]=2.0.0&hardware_version=evt&per_page=1")
    assert result["links"]["self"] == \
        "?version=2.0.0&hardware_version=pvt&hardware_version=evt&sort=created_date&page=1&per_page=1"
    # Following a link gives the same query again.
    assert parse_query_string(result["links"]["self"][1:]) == \
        parse_query_string("sort=created_date&hardware_version=pvt&version=2.0.0&hardware_version=evt&per_page=1")


def test_defaults() -> None:
    assert parse_query_string("") == Query()
    assert Query().sort == "-created_date" and Query().per_page == 100 and Query().page == 1


@pytest.mark.parametrize(("query_string", "code", "fragment"), [
    ("colour=blue", "unknown_parameter", "unknown parameter 'colour'"),
    ("hardware=evt", "unknown_parameter", "the parameters are version, revision, hardware_version, build_id"),
    ("version", "invalid_value", "version must not be empty"),
    ("version=", "invalid_value", "version must not be empty"),
    ("sort=version", "invalid_value", "sort must be -created_date"),
    ("sort=+created_date", "invalid_value", "sort must be -created_date"),
    ("sort=created_date&sort=-created_date", "repeated_parameter", "sort was given 2 times"),
    ("page=0", "invalid_value", "page must be a whole number 1 or more, not '0'"),
    ("page=-1", "invalid_value", "page must be a whole number"),
    ("page=1.5", "invalid_value", "page must be a whole number"),
    ("page=%EF%BC%91", "invalid_value", "page must be a whole number"),  # a full-width digit
    ("page=1&page=2", "repeated_parameter", "page was given 2 times"),
    ("per_page=0", "invalid_value", f"per_page must be a whole number from 1 to {MAX_PER_PAGE}"),
    (f"per_page={MAX_PER_PAGE + 1}", "invalid_value", "per_page must be a whole number from 1 to"),
    ("per_page=ten", "invalid_value", "not 'ten'"),
    ("build_id=" + "a" * 300, "invalid_value", "longer than 256 characters"),
    ("version=%FF", "invalid_query", "cannot be read"),
])
def test_bad_queries_raise_clear_errors(query_string: str, code: str, fragment: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query_string(query_string)
    assert caught.value.code == code
    assert fragment in str(caught.value)
    document = caught.value.to_document()
    assert document["error"]["http_code"] == 400 and document["error"]["message"] == str(caught.value)


def test_the_largest_page_size_is_allowed() -> None:
    assert parse_query_string(f"per_page={MAX_PER_PAGE}").per_page == MAX_PER_PAGE
