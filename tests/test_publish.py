"""`relreg publish` against a real S3 API: moto's server mode, started by the tests on 127.0.0.1.

Two builds of a small registry from real git history: A (1.0.0, 1.1.0 and 0.9.0)
and B (0.9.0 dropped, 1.0.0's notes corrected, 1.2.0 added), so going from A to B
adds, changes and removes releases. Each test publishes under its own prefix.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

# Not skipped when missing: boto3 and moto[server] are test dependencies, and a skip would hide that.
import boto3
import moto.server as moto_server
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from click.testing import CliRunner
from conftest import BASE_REGISTRY
from git_helpers import commit_all, init_repo

from relreg.build import BuildOptions, build_site
from relreg.cli.service import publish as publish_command
from relreg.service import publish as publish_module
from relreg.service.publish import (
    STAGES,
    LocalFile,
    PublishError,
    PublishHooks,
    RemoteObject,
    Target,
    parse_target,
    plan_publish,
    publish_site,
    read_site,
    upload_rank,
)
from relreg.site.paths import MANIFEST, release_path
from relreg.site.write import site_paths
from relreg.site.serving import headers_file, object_headers

BUCKET = "relreg-site"
SITE_URL = "https://fw.example.test/"  # site_url of the base registry
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

RELEASE_090 = """version: "0.9.0"
revision: 09aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
notes: A preview.
artifacts:
  - hardware_version: evt1
    build_id: "0900000000000000000000000000000000000009"
    url: 0.9.0/evt1.bin
    size: 900
    sha256: "0900000000000000000000000000000000000000000000000000000000000009"
"""
RELEASE_120 = """version: "1.2.0"
revision: 12aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
notes: Third release.
artifacts:
  - hardware_version: dvt1
    build_id: "1200000000000000000000000000000000000012"
    url: 1.2.0/dvt1.bin
    size: 1200
    sha256: "1200000000000000000000000000000000000000000000000000000000000012"
"""


class Interrupted(Exception):
    """Injected: the publish stops here, as if killed."""


# ---------------------------------------------------------------------------------------------
# Fixtures: the S3 server, the two sites, a fresh prefix per test
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3() -> Iterator[SimpleNamespace]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing",
                              config=Config(max_pool_connections=32, retries={"max_attempts": 2}))
        client.create_bucket(Bucket=BUCKET)
        yield SimpleNamespace(endpoint=endpoint, client=client)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("publish")
    repo = init_repo(base / "repo")
    registry = repo / "registry"
    shutil.copytree(BASE_REGISTRY, registry)
    commit_all(repo, "base", "2024-01-01T10:00:00+00:00")
    (registry / "releases" / "0.9.0.yaml").write_text(RELEASE_090)  # created last in A: ids stay put in B
    a = commit_all(repo, "A", "2024-01-02T10:00:00+00:00")
    (registry / "releases" / "0.9.0.yaml").unlink()
    notes = registry / "releases" / "1.0.0.yaml"
    notes.write_text(notes.read_text().replace("First release.", "First release, notes corrected."))
    (registry / "releases" / "1.2.0.yaml").write_text(RELEASE_120)
    b = commit_all(repo, "B", "2024-02-01T10:00:00+00:00")
    built = {}
    for name, ref in (("A", a), ("B", b)):
        build_site(BuildOptions(registry_dir=registry, out=base / name, ref=ref))
        built[name] = base / name
    return built


_prefixes = itertools.count()


@pytest.fixture
def target(request: pytest.FixtureRequest, s3: SimpleNamespace) -> Target:
    """A bucket of the test's own (moto lists a prefix by scanning the whole bucket) and a prefix in it."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:50].strip("-")
    bucket = f"t{next(_prefixes)}-{name}"
    s3.client.create_bucket(Bucket=bucket)
    return parse_target(f"s3://{bucket}/site")


def files_of(folder: Path) -> dict[str, bytes]:
    return {path: (folder / path).read_bytes() for path in site_paths(folder) or []}


def store(client: Any, target: Target) -> dict[str, dict[str, Any]]:
    """Every object under the prefix: bytes, headers and metadata."""
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=target.prefix):
        for item in page.get("Contents", []):
            response = client.get_object(Bucket=target.bucket, Key=item["Key"])
            objects[item["Key"][len(target.prefix):]] = {
                "body": response["Body"].read(), "content_type": response["ContentType"],
                "cache_control": response.get("CacheControl"), "metadata": response["Metadata"],
                "etag": response["ETag"].strip('"')}
    return objects


def etags(client: Any, target: Target) -> dict[str, str]:
    """{path: ETag} of every object under the prefix, from one listing (the ETag is the MD5 of the bytes)."""
    listing = client.list_objects_v2(Bucket=target.bucket, Prefix=target.prefix)
    assert not listing["IsTruncated"]
    return {item["Key"][len(target.prefix):]: item["ETag"].strip('"') for item in listing.get("Contents", [])}


def assert_store_holds(client: Any, target: Target, folder: Path, *, headers: bool = False) -> dict[str, Any]:
    """The store holds exactly the site's files, byte for byte (and, with headers, with the policy's headers)."""
    expected = files_of(folder)
    if not headers:
        held = etags(client, target)
        assert held == {path: hashlib.md5(content).hexdigest() for path, content in expected.items()}
        return held
    objects = store(client, target)
    assert sorted(objects) == sorted(expected)
    for path, content in expected.items():
        held = objects[path]
        assert held["body"] == content, path
        assert (held["content_type"], held["cache_control"]) == tuple(object_headers(path)), path
        assert held["metadata"]["sha256"] == hashlib.sha256(content).hexdigest()
        assert held["metadata"]["relreg-policy"] == publish_module.POLICY_ID
    return objects


# ---------------------------------------------------------------------------------------------
# Readers: what a client of the published site can see
# ---------------------------------------------------------------------------------------------


def references(path: str, body: bytes) -> set[str]:
    """The JSON documents a JSON object names: releases listed in it and site URLs it links."""
    if not path.endswith(".json"):
        return set()
    try:
        document = json.loads(body)
    except ValueError:
        return set()
    named: set[str] = set()
    data = document.get("data") if isinstance(document, dict) else None
    if isinstance(data, list):
        named |= {release_path(item["version"]) for item in data
                  if isinstance(item, dict) and "version" in item and "artifacts" in item}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value.startswith(SITE_URL) and value.endswith(".json") and "{" not in value:
            named.add(value[len(SITE_URL):])

    walk(document)
    named.discard(path)
    return named


class MirrorChecker:
    """Checks the store after every single change the publisher makes ("at every instant").

    It keeps what each object names, re-reading each object the publisher
    writes back from the store, and after every upload and delete checks that
    no object in the store names a document that is not there.
    """

    def __init__(self, client: Any, target: Target) -> None:
        self.client = client
        self.target = target
        self.lock = threading.Lock()
        self.names: dict[str, set[str]] = {}
        self.violations: list[str] = []
        self.events: list[tuple[str, str]] = []
        for path, held in store(client, target).items():
            self.names[path] = references(path, held["body"])
        self.check("start")

    def check(self, when: str) -> None:
        for path, named in self.names.items():
            for missing in sorted(named - self.names.keys()):
                self.violations.append(f"after {when}: {path} names {missing}, which is not in the store")

    def uploaded(self, path: str) -> None:
        body = self.client.get_object(Bucket=self.target.bucket, Key=self.target.key(path))["Body"].read()
        with self.lock:
            self.events.append(("upload", path))
            self.names[path] = references(path, body)
            self.check(f"upload {path}")

    def deleted(self, path: str) -> None:
        with pytest.raises(ClientError):
            self.client.head_object(Bucket=self.target.bucket, Key=self.target.key(path))
        with self.lock:
            self.events.append(("delete", path))
            self.names.pop(path, None)
            self.check(f"delete {path}")

    def stage(self, name: str) -> None:
        with self.lock:
            self.events.append(("stage", name))

    def hooks(self, interrupt_after_stage: str | None = None, interrupt_after_uploads: int | None = None,
              interrupt_after_deletes: int | None = None) -> PublishHooks:
        def after_upload(path: str) -> None:
            self.uploaded(path)
            if interrupt_after_uploads is not None and \
                    sum(1 for kind, _ in self.events if kind == "upload") >= interrupt_after_uploads:
                raise Interrupted(f"after upload {path}")

        def after_stage(name: str) -> None:
            self.stage(name)
            if name == interrupt_after_stage:
                raise Interrupted(f"after stage {name}")

        def after_delete(path: str) -> None:
            self.deleted(path)
            if interrupt_after_deletes is not None and \
                    sum(1 for kind, _ in self.events if kind == "delete") >= interrupt_after_deletes:
                raise Interrupted(f"after delete {path}")

        return PublishHooks(after_upload=after_upload, after_stage=after_stage, after_delete=after_delete)


def concurrent_reader(client: Any, target: Target, paths: list[str], stop: threading.Event,
                      report: dict[str, Any], progress: threading.Condition, deadline: float) -> None:
    """A client reading the store while it is published: every index it reads must name only documents
    that are there. A miss is confirmed (the document still missing and the index still naming it) so a
    document deleted after its index was replaced is not mistaken for a violation."""

    def get(path: str) -> bytes | None:
        try:
            return client.get_object(Bucket=target.bucket, Key=target.key(path))["Body"].read()
        except ClientError:
            return None

    def exists(path: str) -> bool:
        try:
            client.head_object(Bucket=target.bucket, Key=target.key(path))
            return True
        except ClientError:
            return False

    for iteration in range(100_000):  # bounded; normally ended by `stop`
        if stop.is_set() or time.monotonic() > deadline:
            break
        path = paths[iteration % len(paths)]
        body = get(path)
        if body is None:
            continue
        for named in sorted(references(path, body)):
            if not exists(named):
                again = get(path)
                if again is not None and named in references(path, again) and not exists(named):
                    report["violations"].append(f"{path} names {named}, which is missing")
        with progress:
            report["reads"] += 1
            progress.notify_all()


def publish(folder: Path, target: Target, client: Any, **options: Any):
    return publish_site(folder, target, client, **options)


# ---------------------------------------------------------------------------------------------
# The policy and the plan (pure)
# ---------------------------------------------------------------------------------------------


def test_header_policy() -> None:
    assert object_headers("api/v1/index.json") == ("application/json; charset=utf-8", "public, no-cache")
    assert object_headers("index.html") == ("text/html; charset=utf-8", "public, no-cache")
    assert object_headers("static/site.bdc3e109b7.css") == ("text/css; charset=utf-8",
                                                            "public, max-age=31536000, immutable")
    assert object_headers("static/site.css").cache_control == "public, max-age=60"  # not content-addressed
    assert object_headers("api/v1/releases/1.2.0.json") == ("application/json; charset=utf-8", "public, max-age=300")
    assert object_headers("releases/1.2.0/index.html").cache_control == "public, max-age=300"
    assert object_headers("api/v1/releases/hardware_version/evt1.json").cache_control == "public, max-age=60"
    assert object_headers("api/v1/devices/stable/evt1/_/candidates.json").cache_control == "public, max-age=60"
    assert object_headers("api/v1/devices/index.json.sig") == object_headers("api/v1/devices/index.json")
    assert object_headers("api/v1/index.json.sig") == ("application/json; charset=utf-8", "public, no-cache")
    assert object_headers("feed.xml").content_type == "application/atom+xml; charset=utf-8"
    assert object_headers("hardware/evt1/feed.xml").content_type == "application/atom+xml; charset=utf-8"
    assert object_headers("sitemap.xml").content_type == "application/xml; charset=utf-8"
    assert object_headers("schemas/release.schema.json") == ("application/json; charset=utf-8", "public, max-age=3600")
    assert object_headers("fw/1.0.0/evt1.bin").content_type == "application/octet-stream"
    assert object_headers("tuf/timestamp.json").cache_control == "public, no-cache"
    assert object_headers("tuf/root.json").cache_control == "public, no-cache"
    for immutable in ("tuf/3.root.json", "tuf/41.targets.json", "tuf/41.snapshot.json",
                      "tuf/targets/api/v1/releases/" + "a" * 64 + ".1.0.0.json"):
        assert object_headers(immutable).cache_control == "public, max-age=31536000, immutable", immutable
    assert object_headers("LICENSE").content_type == "application/octet-stream"


def test_headers_file_comes_from_the_same_policy() -> None:
    text = headers_file(["index.html", "api/v1/index.json", "static/site.bdc3e109b7.css", MANIFEST]).decode()
    assert text.endswith(
        "/api/:a/:b.json\n  Content-Type: application/json; charset=utf-8\n  Cache-Control: public, no-cache\n"
        "/index.html\n  Content-Type: text/html; charset=utf-8\n  Cache-Control: public, no-cache\n"
        "/static/:a.css\n  Content-Type: text/css; charset=utf-8\n"
        "  Cache-Control: public, max-age=31536000, immutable\n")


def test_upload_order() -> None:
    paths = ["index.html", "api/v1/index.json", "api/v1/devices/index.json", "api/v1/devices/c/h/_/candidates.json",
             "api/v1/devices/c/h/_/candidates.json.sig", "api/v1/releases.json", "api/v1/releases/page/2.json",
             "api/v1/releases/hardware_version/evt1.json", "api/v1/releases/hardware_version/evt1/page/2.json",
             "api/v1/hardware_versions.json", "api/v1/releases/1.0.0.json", "releases/1.0.0/index.html",
             "releases/index.html", "static/site.bdc3e109b7.css", "schemas/release.schema.json", "fw/evt1.bin",
             "sitemaps/1.xml", "sitemap.xml", "feed.xml"]
    ordered = sorted(paths, key=lambda p: (upload_rank(p), p))
    position = {path: index for index, path in enumerate(ordered)}
    for leaf in ("api/v1/releases/1.0.0.json", "releases/1.0.0/index.html", "static/site.bdc3e109b7.css",
                 "schemas/release.schema.json", "fw/evt1.bin"):
        assert upload_rank(leaf).stage_name == "leaves"
    assert position["api/v1/releases/hardware_version/evt1/page/2.json"] < \
        position["api/v1/releases/hardware_version/evt1.json"] < position["api/v1/hardware_versions.json"]
    assert position["api/v1/releases/page/2.json"] < position["api/v1/releases.json"]
    assert position["sitemaps/1.xml"] < position["sitemap.xml"]
    assert position["api/v1/devices/c/h/_/candidates.json"] < position["api/v1/devices/c/h/_/candidates.json.sig"] \
        < position["api/v1/devices/index.json"]
    assert max(position[p] for p in paths if upload_rank(p).stage_name != "entry") < position["api/v1/index.json"]
    assert ordered[-2:] == ["api/v1/index.json", "index.html"]

    signed = paths + ["tuf/timestamp.json", "tuf/7.snapshot.json", "tuf/7.targets.json", "tuf/root.json",
                      "tuf/2.root.json", "tuf/targets/api/v1/" + "b" * 64 + ".index.json", "api/v1/index.json.sig"]
    ordered = sorted(signed, key=lambda p: (upload_rank(p), p))
    assert ordered[-6:] == ["api/v1/index.json", "api/v1/index.json.sig", "index.html", "tuf/root.json",
                            "tuf/7.snapshot.json", "tuf/timestamp.json"]
    assert upload_rank("tuf/2.root.json").stage_name == "leaves"
    assert upload_rank("tuf/targets/api/v1/" + "b" * 64 + ".index.json").stage_name == "leaves"
    assert upload_rank("tuf/7.targets.json").stage_name == "indexes"


def test_plan_compares_by_content_hash() -> None:
    def local(path: str, content: bytes) -> LocalFile:
        return LocalFile(path, hashlib.md5(content).hexdigest(), hashlib.sha256(content).hexdigest(), len(content))

    files = {p: local(p, p.encode()) for p in ("a.json", "b.json", "c.json", "d.json", "api/v1/index.json")}
    remote = {
        "a.json": RemoteObject("a.json", files["a.json"].md5, files["a.json"].size),  # same
        "b.json": RemoteObject("b.json", "0" * 32, files["b.json"].size),  # other bytes
        "c.json": RemoteObject("c.json", "abc-2", files["c.json"].size, sha256=files["c.json"].sha256),  # multipart
        "d.json": RemoteObject("d.json", "abc-2", files["d.json"].size, sha256=""),  # multipart, no metadata
        "api/v1/index.json": RemoteObject("api/v1/index.json", files["api/v1/index.json"].md5, 99),  # size differs
        "old.json": RemoteObject("old.json", "1" * 32, 3),
        "api/v1/releases/hardware_version/gone.json": RemoteObject("x", "2" * 32, 3),
    }
    plan = plan_publish(files, remote)
    assert [(u.path, u.reason) for u in plan.uploads] == [("b.json", "changed"), ("d.json", "changed"),
                                                          ("api/v1/index.json", "changed")]
    assert plan.unchanged == 2 and plan.deletes == ()
    assert plan.stale == ("old.json", "api/v1/releases/hardware_version/gone.json")
    with_delete = plan_publish(files, remote, delete=True)
    assert with_delete.deletes == ("api/v1/releases/hardware_version/gone.json", "old.json")  # indexes first
    assert {u.reason for u in plan_publish(files, remote, refresh_headers=True).uploads} >= {"headers"}
    assert len(plan_publish(files, remote, force=True).uploads) == len(files)


def test_targets() -> None:
    assert parse_target("s3://bucket") == Target("bucket", "")
    assert parse_target("s3://bucket/") == Target("bucket", "")
    assert parse_target("s3://bucket/site/v1/") == Target("bucket", "site/v1/")
    for bad in ("bucket/site", "s3://", "s3://Bucket", "s3://bucket/a//b", "s3://bucket/a/../b", "https://x/y"):
        with pytest.raises(PublishError):
            parse_target(bad)


# ---------------------------------------------------------------------------------------------
# Against the S3 server
# ---------------------------------------------------------------------------------------------


def test_publish_uploads_everything_with_policy_headers_then_nothing(s3, sites, target) -> None:
    report = publish(sites["A"], target, s3.client)
    assert sorted(report.uploaded) == sorted(files_of(sites["A"]))
    assert {u.reason for u in report.plan.uploads} == {"new"}
    objects = assert_store_holds(s3.client, target, sites["A"], headers=True)
    assert objects["api/v1/index.json"]["cache_control"] == "public, no-cache"
    assert objects["api/v1/releases/1.0.0.json"]["cache_control"] == "public, max-age=300"
    assert objects["index.html"]["content_type"] == "text/html; charset=utf-8"
    assert objects["api/v1/releases/1.0.0.json"]["etag"] == hashlib.md5(objects["api/v1/releases/1.0.0.json"]
                                                                        ["body"]).hexdigest()

    again = publish(sites["A"], target, s3.client)
    assert again.uploaded == [] and again.plan.unchanged == len(files_of(sites["A"]))
    assert "uploaded 0 objects" in again.summary()


def test_second_publish_uploads_only_what_changed_and_deletes_only_when_asked(s3, sites, target) -> None:
    publish(sites["A"], target, s3.client)
    a, b = files_of(sites["A"]), files_of(sites["B"])
    changed = {path for path in b if a.get(path) != b[path]}
    stale = set(a) - set(b)
    assert "api/v1/releases/1.1.0.json" not in changed  # untouched release: not uploaded again
    assert {"api/v1/releases/1.2.0.json", "api/v1/releases/1.0.0.json", "api/v1/index.json"} <= changed
    assert "api/v1/releases/0.9.0.json" in stale

    report = publish(sites["B"], target, s3.client)
    assert sorted(report.uploaded) == sorted(changed)
    assert {u.path for u in report.plan.uploads if u.reason == "new"} == set(b) - set(a)
    assert report.deleted == [] and set(report.plan.stale) == stale
    assert set(etags(s3.client, target)) == set(a) | set(b)  # stale objects kept without --delete
    assert all(any(line == f"keep {path} (no longer in the site; --delete removes it)" for line in report.lines())
               for path in stale)

    checker = MirrorChecker(s3.client, target)
    deleting = publish(sites["B"], target, s3.client, delete=True, workers=1, hooks=checker.hooks())
    assert deleting.uploaded == [] and sorted(deleting.deleted) == sorted(stale)
    ranks = [upload_rank(path) for path in deleting.deleted]
    assert ranks == sorted(ranks, reverse=True)  # entry points and indexes before the documents they named
    assert checker.violations == []
    assert_store_holds(s3.client, target, sites["B"])


def test_order_keeps_every_instant_consistent(s3, sites, target) -> None:
    publish(sites["A"], target, s3.client)
    checker = MirrorChecker(s3.client, target)
    report = publish(sites["B"], target, s3.client, delete=True, workers=1, hooks=checker.hooks())
    assert checker.violations == []
    kinds = [kind for kind, _ in checker.events]
    assert kinds.index("delete") > max(i for i, kind in enumerate(kinds) if kind == "upload")
    stages = [name for kind, name in checker.events if kind == "stage"]
    assert stages == list(STAGES)
    uploads = [path for kind, path in checker.events if kind == "upload"]
    ranks = [upload_rank(path) for path in uploads]
    assert ranks == sorted(ranks)
    assert uploads[-2:] == ["api/v1/index.json", "index.html"]
    # No upload of a stage happens before every upload of the stages before it has finished.
    finished = 0
    for kind, name in checker.events:
        if kind == "upload":
            assert upload_rank(name).stage >= finished, name
        elif kind == "stage":
            finished = STAGES.index(name) + 1
    assert report.deleted and sorted(report.deleted) == sorted(set(files_of(sites["A"])) - set(files_of(sites["B"])))


def test_the_checker_catches_a_wrong_order(s3, sites, target, monkeypatch) -> None:
    """The consistency checks are not vacuous: indexes uploaded before their documents are caught."""
    publish(sites["A"], target, s3.client)
    real_rank = publish_module.upload_rank
    monkeypatch.setattr(publish_module, "upload_rank",
                        lambda path: publish_module.Rank(3 - real_rank(path).stage, 0))  # stages reversed
    checker = MirrorChecker(s3.client, target)
    publish(sites["B"], target, s3.client, delete=True, workers=1, hooks=checker.hooks())
    assert any("api/v1/releases/1.2.0.json, which is not in the store" in v for v in checker.violations)


@pytest.mark.parametrize("interruption", [
    {"interrupt_after_stage": "leaves"},
    {"interrupt_after_stage": "indexes"},
    {"interrupt_after_stage": "devices"},
    {"interrupt_after_stage": "entry"},  # everything uploaded, nothing deleted yet
    {"interrupt_after_uploads": 3},  # in the middle of the first stage
    {"interrupt_after_deletes": 2},  # in the middle of the deletes
], ids=["after-leaves", "after-indexes", "after-devices", "after-entry", "mid-leaves", "mid-deletes"])
def test_an_interrupted_publish_is_consistent_and_a_rerun_converges(s3, sites, target, interruption) -> None:
    publish(sites["A"], target, s3.client)
    a_entry = files_of(sites["A"])["api/v1/index.json"]
    checker = MirrorChecker(s3.client, target)
    with pytest.raises(Interrupted):
        publish(sites["B"], target, s3.client, delete=True, workers=4, hooks=checker.hooks(**interruption))
    assert checker.violations == []
    entry_now = s3.client.get_object(Bucket=target.bucket, Key=target.key("api/v1/index.json"))["Body"].read()
    if interruption.get("interrupt_after_stage") in ("leaves", "indexes", "devices") \
            or "interrupt_after_uploads" in interruption:
        assert entry_now == a_entry  # readers still enter the old site

    already = {path for kind, path in checker.events if kind == "upload"}
    rerun = publish(sites["B"], target, s3.client, delete=True, workers=4, hooks=checker.hooks())
    assert checker.violations == []
    assert not already & set(rerun.uploaded)  # what the interrupted run uploaded is not uploaded again
    a, b = files_of(sites["A"]), files_of(sites["B"])
    assert already | set(rerun.uploaded) == {path for path in b if a.get(path) != b[path]}
    assert_store_holds(s3.client, target, sites["B"])
    final = publish(sites["B"], target, s3.client, delete=True)
    assert final.uploaded == [] and final.deleted == []


def test_a_concurrent_reader_never_sees_an_index_naming_a_missing_document(s3, sites, target) -> None:
    publish(sites["A"], target, s3.client)
    json_paths = sorted(path for path in set(files_of(sites["A"])) | set(files_of(sites["B"]))
                        if path.endswith(".json") and not re.match(r"^api/v1/releases/[^/]+\.json$", path))
    # Read the lists that name most first, then everything else.
    json_paths.sort(key=lambda p: (p not in ("api/v1/releases.json", "api/v1/hardware_versions.json",
                                             "api/v1/index.json", "api/v1/devices/index.json"), p))
    reader_client = boto3.client("s3", endpoint_url=s3.endpoint, region_name="us-east-1",
                                 aws_access_key_id="testing", aws_secret_access_key="testing")
    report: dict[str, Any] = {"violations": [], "reads": 0}
    progress = threading.Condition()
    stop = threading.Event()
    reader = threading.Thread(target=concurrent_reader, args=(reader_client, target, json_paths, stop, report,
                                                              progress, time.monotonic() + 30))
    mutations = 0

    def let_the_reader_read(_: str) -> None:
        """After each change, wait (at most 2 s) until the reader has read once more: reads interleave
        with the publish at every step, however busy the machine is."""
        nonlocal mutations
        with progress:
            mutations += 1
            seen = report["reads"]
            progress.wait_for(lambda: report["reads"] > seen, timeout=2)

    reader.start()
    try:
        publish(sites["B"], target, s3.client, delete=True, workers=2,
                hooks=PublishHooks(after_upload=let_the_reader_read, after_delete=let_the_reader_read))
    finally:
        stop.set()
        reader.join(timeout=30)
    assert not reader.is_alive()
    assert report["violations"] == []
    assert mutations > 20 and report["reads"] >= mutations // 2, (mutations, report)
    assert_store_holds(s3.client, target, sites["B"])


def test_dry_run_lists_and_changes_nothing(s3, sites, target) -> None:
    publish(sites["A"], target, s3.client)
    before = etags(s3.client, target)
    result = CliRunner().invoke(publish_command, [str(sites["B"]), "--to", target.url, "--endpoint-url", s3.endpoint,
                                                  "--delete", "--dry-run"], env=CREDENTIALS, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    a, b = files_of(sites["A"]), files_of(sites["B"])
    assert "would upload api/v1/releases/1.2.0.json (new)" in lines
    assert "would upload api/v1/releases/1.0.0.json (changed)" in lines
    assert "would delete api/v1/releases/0.9.0.json" in lines
    assert not any("api/v1/releases/1.1.0.json" in line for line in lines)
    uploads = [line for line in lines if line.startswith("would upload")]
    assert len(uploads) == sum(1 for path in b if a.get(path) != b[path])
    assert lines[-1].startswith("dry run: would upload")
    assert etags(s3.client, target) == before

    real = CliRunner().invoke(publish_command, [str(sites["B"]), "--to", target.url, "--endpoint-url", s3.endpoint,
                                                "--delete"], env=CREDENTIALS, catch_exceptions=False)
    assert real.exit_code == 0, real.output
    assert "upload api/v1/releases/1.2.0.json (new)" in real.output.splitlines()
    assert_store_holds(s3.client, target, sites["B"])


@pytest.mark.parametrize("url, message", [
    ("bucket/x", "expected s3://BUCKET or s3://BUCKET/PREFIX"),
    ("s3://ab", "'ab' is not a bucket name: 3 to 63"),
    ("s3://My_Bucket/fw", "'My_Bucket' is not a bucket name"),
    ("s3://fw-bucket/a/../b", "must not hold empty, '.' or '..' segments"),
])
def test_a_bad_target_says_which_part_is_wrong(url: str, message: str) -> None:
    from relreg.service.publish import PublishError, parse_target

    with pytest.raises(PublishError, match=re.escape(message)):
        parse_target(url)


def test_cli_errors(s3, sites, tmp_path) -> None:
    runner = CliRunner()
    bad_target = runner.invoke(publish_command, [str(sites["A"]), "--to", "bucket/x"], env=CREDENTIALS)
    assert bad_target.exit_code == 2 and "expected s3://BUCKET" in bad_target.output
    (tmp_path / "loose.json").write_text("{}")
    not_built = runner.invoke(publish_command, [str(tmp_path), "--to", f"s3://{BUCKET}/x", "--endpoint-url",
                                                s3.endpoint], env=CREDENTIALS)
    assert not_built.exit_code == 1 and "not a site built by relreg" in not_built.output
    no_bucket = runner.invoke(publish_command, [str(sites["A"]), "--to", "s3://no-such-bucket/x", "--endpoint-url",
                                                s3.endpoint], env=CREDENTIALS)
    assert no_bucket.exit_code == 1 and "cannot list s3://no-such-bucket/x/" in no_bucket.output


def test_a_new_header_policy_reuploads_everything_once(s3, sites, target, monkeypatch) -> None:
    publish(sites["A"], target, s3.client)
    original = publish_module.object_headers

    def stricter(path: str):
        headers = original(path)
        return headers._replace(cache_control="public, max-age=30") if path.endswith(".json") and \
            headers.cache_control == "public, max-age=60" else headers

    monkeypatch.setattr(publish_module, "object_headers", stricter)
    monkeypatch.setattr(publish_module, "POLICY_ID", "a-new-policy")
    report = publish(sites["A"], target, s3.client)
    assert {u.reason for u in report.plan.uploads} == {"headers"}
    assert len(report.uploaded) == len(files_of(sites["A"]))
    head = s3.client.head_object(Bucket=target.bucket, Key=target.key("api/v1/releases.json"))
    assert head["CacheControl"] == "public, max-age=30" and head["Metadata"]["relreg-policy"] == "a-new-policy"
    assert publish(sites["A"], target, s3.client).uploaded == []
    assert len(publish(sites["A"], target, s3.client, force=True).uploaded) == len(files_of(sites["A"]))


def test_objects_with_multipart_etags_are_compared_by_their_sha256(s3, sites, target) -> None:
    publish(sites["A"], target, s3.client)
    files, contents = read_site(sites["A"])
    for path, sha256 in (("api/v1/releases/1.1.0.json", files["api/v1/releases/1.1.0.json"].sha256),
                         ("api/v1/releases/1.0.0.json", "0" * 64)):
        key = target.key(path)
        upload = s3.client.create_multipart_upload(Bucket=target.bucket, Key=key, ContentType="application/json",
                                                   Metadata={"sha256": sha256})
        part = s3.client.upload_part(Bucket=target.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1,
                                     Body=contents[path])
        s3.client.complete_multipart_upload(Bucket=target.bucket, Key=key, UploadId=upload["UploadId"],
                                            MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
        assert "-" in s3.client.head_object(Bucket=target.bucket, Key=key)["ETag"]
    report = publish(sites["A"], target, s3.client)
    assert report.uploaded == ["api/v1/releases/1.0.0.json"]  # its sha256 metadata does not match

