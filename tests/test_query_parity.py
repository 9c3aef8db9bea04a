"""The preview server's dynamic query and `relreg query` give identical answers.

A table of queries is asked four ways over the example registry, built from a
real git history in which several releases share a creation instant:
GET /api/v1/releases?... on a running preview server (`relreg serve`),
`relreg query --dir` on a built folder, `relreg query --site` on that folder
served by a plain static HTTP server, and `relreg query --site` on the
preview server's static files. All four must be byte-identical, and equal to
query.py's answer over every release.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from click.testing import CliRunner
from conftest import BASE_REGISTRY, EXAMPLE_REGISTRY
from git_helpers import commit_all, init_repo

from relreg.build import BuildOptions, build_site
from relreg.cli.service import query as query_command
from relreg.service.query import answer, parse_query_string
from relreg.service.query_client import FolderSource, all_releases
from relreg.service.serve import PreviewServer
from relreg.site.jobs import encode_json

# The example registry committed in batches: releases in one batch share their created_date.
BATCHES = [
    ("2024-01-10T09:00:00+00:00", ["1.0.0", "1.0.1", "1.1.0"]),
    ("2024-02-10T09:00:00+00:00", ["1.1.1", "1.2.0"]),
    ("2024-03-10T09:00:00+00:00", ["1.3.0", "1.3.1", "1.4.0"]),
    ("2024-04-10T09:00:00+00:00", ["2.0.0-rc.1", "2.0.0-rc.2"]),
    ("2024-05-10T09:00:00+00:00", ["2.0.0", "2.0.1"]),
    ("2024-06-10T09:00:00+00:00", ["2.1.0", "2.1.1"]),  # with the cohorts, which name 2.1.x
]


def example_repo(path: Path) -> tuple[Path, list[str]]:
    """The example registry in a new git repository, committed batch by batch; returns (repo, commits)."""
    repo = init_repo(path)
    registry = repo / "registry"
    registry.mkdir()
    shutil.copy(EXAMPLE_REGISTRY / "registry.yaml", registry)
    shutil.copytree(EXAMPLE_REGISTRY / "hardware", registry / "hardware")
    (registry / "releases").mkdir()
    commits = []
    for index, (date, batch) in enumerate(BATCHES):
        for version in batch:
            shutil.copy(EXAMPLE_REGISTRY / "releases" / f"{version}.yaml", registry / "releases")
        if index == len(BATCHES) - 1:
            shutil.copytree(EXAMPLE_REGISTRY / "cohorts", registry / "cohorts")
        commits.append(commit_all(repo, f"releases {', '.join(batch)}", date))
    return repo, commits


def build(registry: Path, out: Path, ref: str | None = None) -> Path:
    build_site(BuildOptions(registry_dir=registry, out=out, ref=ref))
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A built folder, a plain static server on it, and a running preview server, all on 127.0.0.1."""
    base = tmp_path_factory.mktemp("parity")
    repo, _ = example_repo(base / "repo")
    folder = build(repo / "registry", base / "public")
    static = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=static.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    preview = PreviewServer(repo / "registry", host="127.0.0.1", port=0, interval=60).start()
    try:
        assert preview.state.ok, preview.state.errors
        with httpx.Client(timeout=10) as client:
            yield {"folder": folder, "static_url": f"http://127.0.0.1:{static.server_address[1]}/",
                   "preview": preview, "http": client, "releases": all_releases(FolderSource(folder))}
    finally:
        preview.stop()
        static.shutdown()
        static.server_close()


def cli(*args: str):
    return CliRunner().invoke(query_command, list(args), prog_name="relreg query", catch_exceptions=False)


QUERIES = [
    # every parameter alone
    "",
    "version=2.0.1",
    "version=2.0.0-rc.1",
    "revision=bde467387e5c96fed1013f43974506354d4d4f1a",
    "hardware_version=evt2",
    "hardware_version=pvt",
    "build_id=a33d92e0f232d85cd58f10a563a48326daad7ae3",
    "build_id=f10965d509583a862c3fc6e710728410ec219c70",  # a delta artifact's build id
    # repeated: any value
    "version=2.0.1&version=1.0.0&version=1.4.0",
    "version=1.0.0&version=1.0.0",
    "revision=bde467387e5c96fed1013f43974506354d4d4f1a&revision=8ec88e1ea81d27ea6a9e7e307ead1590fcc26d97",
    "hardware_version=evt2&hardware_version=pvt-b",
    "build_id=a33d92e0f232d85cd58f10a563a48326daad7ae3&build_id=22cbf9e38e2cfa91dcfc5fa99be443d1d188b568",
    "hardware_version[]=evt2&version[]=1.0.1",
    # combined: all must match
    "hardware_version=pvt&version=2.0.1&version=1.0.0&version=2.1.1",
    "hardware_version=evt2&hardware_version=dvt1&version=1.4.0&version=1.0.1",
    "hardware_version=evt2&version=2.1.1",  # each matches, never together
    "hardware_version=dvt1&build_id=a33d92e0f232d85cd58f10a563a48326daad7ae3",  # build id of 1.2.0's evt2 artifact
    "version=1.2.0&revision=bde467387e5c96fed1013f43974506354d4d4f1a&hardware_version=pvt"
    "&build_id=4ab02487c18e4991ec6f76284afad8c78a7b063f",
    # both sort orders (ties in created_date included)
    "sort=created_date",
    "sort=-created_date",
    "sort=created_date&hardware_version=dvt1",
    "sort=-created_date&hardware_version=evt2&hardware_version=pvt-b",
    # paging edges (14 releases)
    "per_page=5",
    "per_page=5&page=2",
    "per_page=5&page=3",  # last page, partial
    "per_page=5&page=4",  # past the end
    "per_page=14",
    "per_page=13&page=2",
    "per_page=1&page=14&sort=created_date",
    "per_page=1000",
    "hardware_version=pvt-b&sort=created_date&per_page=2&page=3",
    "page=2",
    # no match
    "version=9.9.9",
    "hardware_version=nope",
    "hardware_version=evt2&hardware_version=nope",
    "build_id=0000000000000000000000000000000000000000",
    "version=../../api/v1/releases",
    "hardware_version=a%2Fb",
    "version=2.0.1%2Bbuild.5",
]

ERRORS = [
    ("colour=blue", "unknown parameter 'colour'"),
    ("hardware=evt2", "unknown parameter 'hardware'"),
    ("sort=version", "sort must be -created_date"),
    ("sort=created_date&sort=-created_date", "sort was given 2 times"),
    ("page=0", "page must be a whole number 1 or more"),
    ("page=first", "page must be a whole number 1 or more, not 'first'"),
    ("per_page=0", "per_page must be a whole number from 1 to 1000"),
    ("per_page=1001", "per_page must be a whole number from 1 to 1000"),
    ("version=", "version must not be empty"),
]


def _server(site: dict, query_string: str) -> httpx.Response:
    return site["http"].get(site["preview"].url + "api/v1/releases" + (f"?{query_string}" if query_string else ""))


@pytest.mark.parametrize("query_string", QUERIES)
def test_server_and_cli_give_identical_answers(site: dict, query_string: str) -> None:
    expected = encode_json(answer(parse_query_string(query_string), site["releases"]))

    response = _server(site, query_string)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.content == expected

    extra = [query_string] if query_string else []
    for where in (["--dir", str(site["folder"])], ["--site", site["static_url"]], ["--site", site["preview"].url]):
        result = cli(*where, *extra)
        assert result.exit_code == 0, (where, result.output)
        assert result.stdout.encode() == expected, where


def test_the_table_exercises_what_it_claims(site: dict) -> None:
    def versions(query_string: str) -> list[str]:
        return [r["version"] for r in json.loads(_server(site, query_string).content)["data"]]

    assert versions("hardware_version=evt2&hardware_version=pvt-b") == [
        "2.1.1", "2.1.0", "2.0.1", "2.0.0", "2.0.0-rc.2", "2.0.0-rc.1", "1.2.0", "1.1.1", "1.1.0", "1.0.1", "1.0.0"]
    # 1.0.0, 1.0.1 and 1.1.0 share a commit: the tie is broken the same way both directions.
    newest = versions("")
    assert newest[-3:] == ["1.1.0", "1.0.1", "1.0.0"]
    assert versions("sort=created_date") == list(reversed(newest))
    assert versions("hardware_version=pvt&version=2.0.1&version=1.0.0&version=2.1.1") == ["2.1.1", "2.0.1", "1.0.0"]
    assert versions("hardware_version=evt2&version=2.1.1") == []
    assert versions("per_page=5&page=3") == newest[10:]
    assert versions("per_page=5&page=4") == []


def test_the_options_are_the_query_string(site: dict) -> None:
    by_options = cli("--dir", str(site["folder"]), "--hardware-version", "evt2", "--hardware-version", "pvt-b",
                     "--version", "1.0.0", "--version", "2.1.1", "--sort", "created_date", "--per-page", "1",
                     "--page", "2")
    response = _server(site, "hardware_version=evt2&hardware_version=pvt-b&version=1.0.0&version=2.1.1"
                             "&sort=created_date&per_page=1&page=2")
    assert by_options.exit_code == 0, by_options.output
    assert by_options.stdout.encode() == response.content
    assert [r["version"] for r in response.json()["data"]] == ["2.1.1"]

    revision = cli("--site", site["static_url"], "--revision", "bde467387e5c96fed1013f43974506354d4d4f1a",
                   "--build-id", "4ab02487c18e4991ec6f76284afad8c78a7b063f")
    assert [r["version"] for r in json.loads(revision.stdout)["data"]] == ["1.2.0"]


@pytest.mark.parametrize(("query_string", "message"), ERRORS)
def test_bad_queries_are_a_400_and_exit_2_with_the_same_message(site: dict, query_string: str,
                                                                 message: str) -> None:
    response = _server(site, query_string)
    assert response.status_code == 400
    error = response.json()["error"]
    assert message in error["message"]
    assert error["http_code"] == 400 and error["type"] == "invalid_query"

    for where in (["--dir", str(site["folder"])], ["--site", site["static_url"]]):
        result = cli(*where, query_string)
        assert result.exit_code == 2, result.output
        assert f"Error: {error['message']}" in result.output


def test_bad_option_values_are_usage_errors(site: dict) -> None:
    for args, message in ((["--sort", "version"], "sort must be -created_date"),
                          (["--per-page", "0"], "per_page must be a whole number"),
                          (["--version", ""], "version must not be empty"),
                          (["--colour", "blue"], "No such option")):
        result = cli("--dir", str(site["folder"]), *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output
    both = cli("--dir", str(site["folder"]), "--site", site["static_url"])
    assert both.exit_code == 2 and "not both" in both.output


def test_unreadable_sites_exit_1(site: dict, tmp_path: Path) -> None:
    missing = cli("--dir", str(tmp_path))
    assert missing.exit_code == 1 and "not a built relreg site" in missing.output
    # A server that is not a relreg site: the static server's root has no api/v1 under /nothing/.
    not_a_site = cli("--site", site["static_url"] + "nothing/")
    assert not_a_site.exit_code == 1 and "is not a relreg site" in not_a_site.output


def test_table_format(site: dict) -> None:
    result = cli("--dir", str(site["folder"]), "--format", "table", "--hardware-version", "evt2", "--per-page", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["VERSION", "CREATED", "HARDWARE", "REVISION", "YANKED"]
    assert lines[1].startswith("1.2.0 ") and "2024-02-10 09:00" in lines[1] and "dvt1, evt2, pvt" in lines[1]
    assert lines[-1] == "page 1 of 3: 2 of 5 releases"
    empty = cli("--dir", str(site["folder"]), "--format", "table", "--version", "0.0.1")
    assert empty.stdout.splitlines() == ["no release matches", "page 1 of 1: 0 of 0 releases"]


def test_the_client_reads_only_the_smallest_index(site: dict) -> None:
    """hardware_version=pvt (13 releases) and version=1.0.0: only version/1.0.0.json is read."""
    from relreg.service.query_client import answer_from_site

    class Recording(FolderSource):
        def __init__(self, root: Path) -> None:
            super().__init__(root)
            self.reads: list[str] = []

        def read(self, path: str) -> bytes | None:
            self.reads.append(path)
            return super().read(path)

    source = Recording(site["folder"])
    result = answer_from_site(source, parse_query_string("hardware_version=pvt&version=1.0.0&version=1.1.0"))
    assert [r["version"] for r in result["data"]] == ["1.1.0", "1.0.0"]
    assert sorted(source.reads) == ["api/v1/releases/version/1.0.0.json", "api/v1/releases/version/1.1.0.json"]

    source = Recording(site["folder"])
    answer_from_site(source, parse_query_string("hardware_version=nope&version=1.0.0"))
    assert source.reads == []  # a dimension none of whose values has an index: nothing to read


def test_multi_page_indexes_are_read_whole(tmp_path: Path) -> None:
    """Static lists hold 100 releases a page: 105 releases make the client follow further pages."""
    repo = init_repo(tmp_path / "repo")
    registry = repo / "registry"
    shutil.copytree(BASE_REGISTRY, registry)
    template = (BASE_REGISTRY / "releases" / "1.0.0.yaml").read_text()
    for minor in range(105):
        version = f"3.{minor}.0"
        text = template.replace('"1.0.0"', f'"{version}"').replace("1.0.0", version)
        text = _unique_ids(text, minor)
        (registry / "releases" / f"{version}.yaml").write_text(text)
    commit_all(repo, "many releases", "2024-01-01T00:00:00+00:00")
    folder = build(registry, tmp_path / "public")
    listing = json.loads((folder / "api/v1/releases.json").read_bytes())
    assert listing["paging"]["page_count"] == 2
    releases = all_releases(FolderSource(folder))
    assert len(releases) == listing["paging"]["total_count"]

    static = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    threading.Thread(target=static.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{static.server_address[1]}/"
        hardware = releases[0]["artifacts"][0]["hardware_version"]
        for query_string in ("", f"hardware_version={hardware}&per_page=1000", "sort=created_date&per_page=7&page=16",
                             f"hardware_version={hardware}&version=3.104.0&version=3.0.0&sort=created_date"):
            expected = encode_json(answer(parse_query_string(query_string), releases))
            for where in (["--dir", str(folder)], ["--site", url]):
                result = cli(*where, query_string) if query_string else cli(*where)
                assert result.exit_code == 0, result.output
                assert result.stdout.encode() == expected, (where, query_string)
        everything = json.loads(cli("--dir", str(folder), f"hardware_version={hardware}&per_page=1000").stdout)
        assert everything["paging"]["total_count"] > 100
    finally:
        static.shutdown()
        static.server_close()


def _unique_ids(text: str, minor: int) -> str:
    """Give each generated release its own revision and build ids (40 hex digits)."""
    import re

    counter = iter(range(1000))
    return re.sub(r"\b[0-9a-f]{40}\b", lambda m: f"{minor:04x}{next(counter):04x}".ljust(40, "c"), text)
