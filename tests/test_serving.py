"""The serving configuration the build writes, proven on a real nginx."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import EXAMPLE_REGISTRY, run_relreg
from device_helpers import free_port, start_nginx
from git_helpers import commit_all, init_repo

from relreg.site.paths import MANIFEST
from relreg.site.serving import (
    ENTRY,
    HEADERS_MAX_LINE,
    HEADERS_MAX_RULES,
    IMMUTABLE,
    LIST,
    NO_CACHE,
    SCHEMA,
    family_of,
    headers_file,
    object_headers,
    path_families,
)


@pytest.fixture(scope="module")
def served_site(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("serving")
    repo = init_repo(root / "repo")
    shutil.copytree(EXAMPLE_REGISTRY, repo / "registry")
    commit_all(repo, "example", "2025-06-01T12:00:00+00:00")
    site = root / "public"
    assert run_relreg("build", "--registry", repo / "registry", "--out", site).exit_code == 0
    server = start_nginx(root / "nginx", {}, free_port(), server_body=f"    root {site};\n    include {site}/nginx.conf;\n")
    try:
        yield site, server.url
    finally:
        server.stop()


def test_build_writes_headers_for_static_hosts(served_site) -> None:  # type: ignore[no-untyped-def]
    site, _ = served_site
    headers = (site / "_headers").read_text()
    assert f"/api/v1/index.json\n  Content-Type: application/json; charset=utf-8\n  Cache-Control: {ENTRY}\n" \
        in headers
    assert f"/api/v1/releases.json\n  Content-Type: application/json; charset=utf-8\n  Cache-Control: {LIST}\n" \
        in headers
    assert "/api/v1/releases/:a.json\n  Content-Type: application/json; charset=utf-8\n  Cache-Control: " \
           "public, max-age=300\n" in headers


def _cloudflare_rules(text: str) -> list[tuple[re.Pattern[str], list[tuple[str, str]]]]:
    """A _headers file parsed and compiled as Cloudflare's rules engine does (workers-shared generateRulesMatcher):
    `*` is `(?<splat>.*)`, `:name` is `(?<name>[^/]+)`, anchored at both ends."""
    rules: list[tuple[re.Pattern[str], list[tuple[str, str]]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            source = "(?P<splat>.*)".join(re.sub(r"([-/\\^$*+?.()|[\]{}])", r"\\\1", part) for part in line.split("*"))
            source = re.sub(r":(\w+)", r"(?P<\1>[^/]+)", source)
            rules.append((re.compile(f"^{source}$"), []))
        else:
            name, _, value = line.strip().partition(": ")
            rules[-1][1].append((name.lower(), value))
    return rules


def _cloudflare_headers(rules: list, path: str) -> dict[str, str]:
    """Every rule that matches applies; a header given by several rules gets their values joined by ', '."""
    found: dict[str, list[str]] = {}
    for regex, headers in rules:
        if regex.match(path):
            for name, value in headers:
                found.setdefault(name, []).append(value)
    return {name: ", ".join(values) for name, values in found.items()}


def _site_files(site: Path) -> list[str]:
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())


def test_headers_file_gives_every_file_of_the_site_its_policy(served_site) -> None:  # type: ignore[no-untyped-def]
    """Each file gets, under Cloudflare's matching, the Content-Type and Cache-Control of the per-path policy."""
    site, _ = served_site
    text = (site / "_headers").read_text()
    rules = _cloudflare_rules(text)
    assert len(rules) <= HEADERS_MAX_RULES and max(map(len, text.splitlines())) <= HEADERS_MAX_LINE
    files = [path for path in _site_files(site) if path not in ("_headers", MANIFEST)]
    assert len(files) > 200
    for path in files:
        expected = object_headers(path)
        assert _cloudflare_headers(rules, "/" + path) == \
            {"content-type": expected.content_type, "cache-control": expected.cache_control}, path


def test_headers_file_stays_within_the_limits_at_any_size(served_site) -> None:  # type: ignore[no-untyped-def]
    """The example site's files with 3,000 more releases, plus a signed site's TUF and signature files."""
    site, _ = served_site
    files = [path for path in _site_files(site) if path not in ("_headers", MANIFEST)]
    grown = set(files)
    for number in range(3000):
        grown.update(path.replace("2.1.0", f"9.{number}.0") for path in files if "2.1.0" in path)
    grown.update(f"{path}.sig" for path in list(grown) if path.endswith(".json") and path.startswith("api/"))
    grown.update({"tuf/root.json", "tuf/timestamp.json", "tuf/1.root.json", "tuf/2.root.json",
                  "tuf/7.snapshot.json", "tuf/7.targets.json", "tuf/targets/api/v1/index.json"})
    grown.update(f"tuf/{n}.targets.json" for n in range(1, 500))
    text = headers_file(grown).decode()
    rules = _cloudflare_rules(text)
    assert len(grown) > 90_000
    assert len(rules) <= HEADERS_MAX_RULES and max(map(len, text.splitlines())) <= HEADERS_MAX_LINE
    assert len(rules) <= len(_cloudflare_rules((site / "_headers").read_text())) + 16  # structure, not size
    for path in sorted(grown)[::97] + [p for p in grown if p.startswith("tuf/") or "2.1.0" in p]:
        expected = object_headers(path)
        assert _cloudflare_headers(rules, "/" + path) == \
            {"content-type": expected.content_type, "cache-control": expected.cache_control}, path


def test_nginx_serves_every_file_of_the_site_with_the_policy(served_site) -> None:  # type: ignore[no-untyped-def]
    site, url = served_site
    with httpx.Client() as client:
        for path in _site_files(site):
            response = client.get(url + path)
            assert response.status_code == 200, path
            expected = object_headers(path)
            assert (response.headers["content-type"], response.headers["cache-control"]) == \
                (expected.content_type, expected.cache_control), path


@pytest.mark.parametrize("path, content_type, cache", [
    ("api/v1/releases.json", "application/json; charset=utf-8", LIST),
    ("api/v1/index.json", "application/json; charset=utf-8", ENTRY),
    ("api/v1/releases/2.1.0.json", "application/json; charset=utf-8", "public, max-age=300"),
    ("api/v1/devices/index.json", "application/json; charset=utf-8", LIST),
    ("schemas/release.schema.json", "application/json; charset=utf-8", SCHEMA),
    ("index.html", "text/html; charset=utf-8", ENTRY),
    ("releases/2.1.0/index.html", "text/html; charset=utf-8", "public, max-age=300"),
])
def test_nginx_serves_each_kind_with_the_policy(served_site, path: str, content_type: str,  # type: ignore[no-untyped-def]
                                                 cache: str) -> None:
    _, url = served_site
    response = httpx.get(url + path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type == object_headers(path).content_type
    assert response.headers["cache-control"] == cache == object_headers(path).cache_control
    assert response.headers["access-control-allow-origin"] == "*"
    etag = response.headers["etag"]
    assert httpx.get(url + path, headers={"If-None-Match": etag}).status_code == 304


def test_hashed_assets_are_cached_forever(served_site) -> None:  # type: ignore[no-untyped-def]
    site, url = served_site
    assets = sorted(p.relative_to(site).as_posix() for p in (site / "static").glob("*.*.*"))
    assert assets, "the site has content-hashed assets"
    response = httpx.get(url + assets[0])
    assert response.status_code == 200 and response.headers["cache-control"] == IMMUTABLE


def test_missing_page_gets_the_404_page_uncached(served_site) -> None:  # type: ignore[no-untyped-def]
    site, url = served_site
    response = httpx.get(url + "releases/9.9.9/")
    assert response.status_code == 404
    assert response.headers["cache-control"] == NO_CACHE
    assert response.text == (site / "404.html").read_text()


def test_cors_preflight_on_the_api(served_site) -> None:  # type: ignore[no-untyped-def]
    _, url = served_site
    response = httpx.options(url + "api/v1/index.json")
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "GET" in response.headers["access-control-allow-methods"]


def test_nginx_serves_signatures_like_the_documents_they_sign(served_site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A detached signature (<document>.sig) is JSON and as fresh as its document, on nginx as in the policy."""
    site, _ = served_site
    copy = tmp_path / "public"
    shutil.copytree(site, copy)
    signatures = ["api/v1/releases/2.1.0.json.sig", "api/v1/index.json.sig", "api/v1/devices/index.json.sig",
                  "api/v1/releases.json.sig"]
    for path in signatures:
        (copy / path).write_text('{"signature": "x"}\n')
    server = start_nginx(tmp_path / "nginx", {}, free_port(), server_body=f"    root {copy};\n    include {copy}/nginx.conf;\n")
    try:
        for path in signatures:
            response = httpx.get(server.url + path)
            expected = object_headers(path)
            assert response.status_code == 200
            assert (response.headers["content-type"], response.headers["cache-control"]) == \
                (expected.content_type, expected.cache_control), path
        assert object_headers("api/v1/releases/2.1.0.json.sig").cache_control == "public, max-age=300"
    finally:
        server.stop()


# Path segments as a site has them and as it could (dots first, no extension, upper case, signatures, the
# names with a content type of their own, the folders the cache rules name).
_SEGMENTS = st.sampled_from(["api", "v1", "releases", "build_id", "devices", "static", "tuf", "targets", "schemas",
                             "page", "x", ".hidden", "index.html", "index.json", "feed.xml", "_headers",
                             "_redirects", "1.0.0.json", "1.0.0.json.sig", "3.root.json", "root.json",
                             "timestamp.json", "app.0123456789.css", "app.css", "A.JSON", "README", "a.b.c",
                             "nginx.conf", MANIFEST, ""])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_SEGMENTS, min_size=1, max_size=5).map("/".join), max_size=30))
def test_path_families_is_each_paths_family_and_headers(paths: list[str]) -> None:
    """path_families (written out for speed) gives what family_of and object_headers give path by path."""
    expected = {(family_of(path), *object_headers(path)) for path in paths if path not in ("_headers", MANIFEST)}
    assert path_families(paths) == [list(item) for item in sorted(expected)]
