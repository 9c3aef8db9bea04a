"""The serving configuration the build writes, proven on a real nginx."""

from __future__ import annotations

import shutil

import httpx
import pytest
from conftest import EXAMPLE_REGISTRY, run_relreg
from device_helpers import free_port, start_nginx
from git_helpers import commit_all, init_repo

from relreg.site.serving import ENTRY, IMMUTABLE, LIST, NO_CACHE, SCHEMA, object_headers


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
