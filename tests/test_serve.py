"""`relreg serve`: builds, serves on 127.0.0.1, rebuilds on change, shows errors instead of crashing."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from conftest import BASE_REGISTRY
from git_helpers import commit_all, init_repo

from relreg.service.serve import PreviewServer

RELEASE_120 = """version: "1.2.0"
revision: 0c1b2c3d4e5f60718293a4b5c6d7e8f901234567
artifacts:
  - hardware_version: evt1
    build_id: e555555555555555555555555555555555555555
    url: https://cdn.example.test/fw/1.2.0/evt1.bin
    size: 1200
    sha256: e555555555555555555555555555555555555555555555555555555555555555
"""
WAIT = 15.0  # seconds, an upper bound: builds take well under one


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    import shutil

    repo = init_repo(tmp_path / "repo")
    shutil.copytree(BASE_REGISTRY, repo / "registry")
    commit_all(repo, "base registry", "2024-01-01T10:00:00+00:00")
    return repo / "registry"


@pytest.fixture
def preview(registry: Path) -> Iterator[tuple[PreviewServer, httpx.Client, list[str]]]:
    messages: list[str] = []
    server = PreviewServer(registry, host="127.0.0.1", port=0, interval=0.05, echo=messages.append)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            yield server, client, messages
    finally:
        server.stop()


def _change(path: Path, text: str) -> None:
    """Write and make sure the modification time moves, whatever the file system's resolution."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    if path.stat().st_mtime_ns == before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def _versions(client: httpx.Client, query: str = "") -> list[str]:
    return [r["version"] for r in client.get("/api/v1/releases" + query).json()["data"]]


def test_serves_the_site_and_the_dynamic_query(preview) -> None:
    server, client, messages = preview
    assert server.url.startswith("http://127.0.0.1:")
    status = client.get("/__relreg/status").json()
    assert status["ok"] and status["generation"] == 1 and status["has_site"]
    assert any(message.startswith("built 2 releases") for message in messages)

    home = client.get("/")
    assert home.status_code == 200 and home.headers["content-type"] == "text/html; charset=utf-8"
    assert "relreg-build-errors" not in home.text
    assert home.headers["cache-control"] == "no-store"
    # What the preview adds to a page is same-origin script and style only: the site's CSP forbids inline ones.
    original = (server.site_dir / "index.html").read_text()
    cut = original.lower().rfind("</body>")
    added = home.text[cut:len(home.text) - (len(original) - cut)]
    assert home.text == original[:cut] + added + original[cut:]
    assert added == ('<link rel="stylesheet" href="/__relreg/preview.css">\n'
                     '<script src="/__relreg/preview.js?generation=1" defer></script>')
    assert "script-src 'self'" in original  # (why the additions are files)
    assert client.get("/__relreg/preview.js").headers["content-type"] == "text/javascript; charset=utf-8"
    assert client.get("/__relreg/preview.css").headers["content-type"] == "text/css; charset=utf-8"
    unchanged = client.get("/__relreg/unchanged.gif?generation=1&t=5")
    assert unchanged.status_code == 200 and unchanged.content.startswith(b"GIF89a")
    assert client.get("/__relreg/unchanged.gif?generation=0&t=5").status_code == 404  # the page reloads

    index = client.get("/api/v1/index.json")
    assert index.headers["content-type"] == "application/json; charset=utf-8"
    assert index.json()["data"]["site_url"] == server.url  # built with the preview's own URL

    assert client.get("/releases", follow_redirects=False).headers["location"] == "/releases/"
    head = client.head("/api/v1/releases.json")
    assert head.status_code == 200 and int(head.headers["content-length"]) > 0 and head.content == b""

    assert _versions(client) == ["1.1.0", "1.0.0"]
    assert _versions(client, "?hardware_version=evt1&sort=created_date") == ["1.0.0", "1.1.0"]
    bad = client.get("/api/v1/releases?hardware=evt1")
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("unknown parameter 'hardware'")
    missing = client.get("/api/v1/releases/9.9.9.json")
    assert missing.status_code == 404 and missing.json()["error"]["http_code"] == 404
    not_found = client.get("/nowhere/")
    assert not_found.status_code == 404 and not_found.text.startswith((server.site_dir / "404.html").read_text()[:50])


def test_rebuilds_on_change_shows_errors_and_recovers(preview, registry: Path) -> None:
    server, client, messages = preview
    _change(registry / "releases" / "1.2.0.yaml", RELEASE_120)
    state = server.wait_for_generation(2, WAIT)
    assert state.generation >= 2 and state.ok, state.errors
    assert _versions(client)[0] == "1.2.0"

    # A schema error: the server keeps running, prints the diagnostic, shows it over every page.
    broken = RELEASE_120.replace("size: 1200", "size: many")
    _change(registry / "releases" / "1.2.0.yaml", broken)
    state = server.wait_for_generation(3, WAIT)
    assert not state.ok and state.has_site
    assert any("releases/1.2.0.yaml:" in line and "error" in line for line in state.errors), state.errors
    assert any("releases/1.2.0.yaml:" in message for message in messages)
    assert any(message.startswith("build failed: serving the last good build") for message in messages)
    status = client.get("/__relreg/status").json()
    assert status["ok"] is False and status["generation"] == 3
    page = client.get("/")
    assert page.status_code == 200 and page.headers["x-relreg-build"] == "failed"
    assert 'id="relreg-build-errors"' in page.text and "releases/1.2.0.yaml:" in page.text
    assert "/__relreg/preview.js?generation=3" in page.text
    # JSON and the query keep answering from the last good build.
    assert client.get("/api/v1/releases/1.2.0.json").status_code == 200
    assert _versions(client) == ["1.2.0", "1.1.0", "1.0.0"]

    # Fixed: the overlay goes, the new content is served.
    _change(registry / "releases" / "1.2.0.yaml", RELEASE_120.replace("size: 1200", "size: 1300"))
    state = server.wait_for_generation(4, WAIT)
    assert state.ok, state.errors
    assert "relreg-build-errors" not in client.get("/").text
    assert client.get("/api/v1/releases/1.2.0.json").json()["data"]["artifacts"][0]["size"] == 1300

    # Deleting a release file is a change too.
    (registry / "releases" / "1.2.0.yaml").unlink()
    assert server.wait_for_generation(5, WAIT).ok
    assert _versions(client) == ["1.1.0", "1.0.0"]


def test_a_registry_broken_from_the_start_gets_an_error_page(registry: Path) -> None:
    (registry / "releases" / "1.1.0.yaml").write_text("version: [oops\n")
    messages: list[str] = []
    with PreviewServer(registry, port=0, interval=0.05, echo=messages.append) as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        assert not server.state.ok and not server.state.has_site
        page = client.get("/")
        assert page.status_code == 503 and "The registry has errors" in page.text
        assert "releases/1.1.0.yaml:2:1: error: invalid YAML" in page.text
        api = client.get("/api/v1/releases?version=1.0.0")
        assert api.status_code == 503 and "the registry has errors" in api.json()["error"]["message"]
        assert any(message.startswith("build failed: nothing to serve") for message in messages)

        _change(registry / "releases" / "1.1.0.yaml", (BASE_REGISTRY / "releases" / "1.1.0.yaml").read_text())
        assert server.wait_for_generation(2, WAIT).ok
        assert client.get("/").status_code == 200
        assert _versions(client) == ["1.1.0", "1.0.0"]


def test_a_busy_port_is_a_clear_error(preview) -> None:
    import click

    server, _, _ = preview
    with pytest.raises(click.ClickException, match=f"cannot listen on 127.0.0.1:{server.port}"):
        PreviewServer(server.registry_dir, port=server.port).start()


def test_the_serve_command_runs_until_terminated(registry: Path) -> None:
    """`relreg serve` as a process: prints its URL, serves, stops cleanly on SIGTERM."""
    generator = Path(__file__).parent.parent / "generator"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(generator), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, "-c", "from relreg.cli.service import serve; serve()", "--registry", str(registry),
         "--port", "0", "--interval", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], WAIT)  # bounded: never hang on a stuck server
        assert ready, "relreg serve printed nothing"
        line = process.stdout.readline()  # the first line is printed once the server listens
        assert line.startswith("serving "), line + (process.stderr.read() if process.poll() is not None else "")
        url = line.split(" at ")[1].split(" ")[0]
        assert url.startswith("http://127.0.0.1:")
        response = httpx.get(url + "api/v1/releases?version=1.0.0", timeout=10)
        assert [r["version"] for r in response.json()["data"]] == ["1.0.0"]
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=WAIT)
        assert process.returncode == 0, err
        assert out.strip().endswith("stopped")
        assert "built 2 releases" in err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=WAIT)


def test_the_watcher_sees_commits(preview, registry: Path) -> None:
    """Committing changes the dates: git's HEAD log is watched too."""
    server, client, _ = preview
    _change(registry / "releases" / "1.2.0.yaml", RELEASE_120)
    state = server.wait_for_generation(2, WAIT)
    created = client.get("/api/v1/releases/1.2.0.json").json()["data"]["created_date"]
    commit_all(registry.parent, "1.2.0", "2024-05-05T05:05:05+00:00")
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        created_now = client.get("/api/v1/releases/1.2.0.json").json()["data"]["created_date"]
        if created_now != created:
            break
        time.sleep(0.05)
    assert state.ok
    assert created_now == "2024-05-05T05:05:05.000000+00:00"
