"""The TUF repository, proven with python-tuf's unmodified ngclient.Updater over HTTP on loopback.

Each attack from the TUF specification that applies to a static registry is staged on the served
files and must be refused with its reason: tampered document and target file, rollback of the
timestamp and of the snapshot, freeze (expired timestamp), metadata mixed from two builds, metadata
signed by an unknown key, a threshold not met.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner
from test_signing_support import (
    ALL_ROLES,
    SiteServer,
    build,
    device_documents,
    key_bundle,
    key_file,
    keys_yaml,
    load_key,
    next_commit,
    signed_repo,
)
from tuf.api import exceptions
from tuf.api.metadata import Metadata, Targets, Timestamp
from tuf.ngclient import Updater

from relreg.cli.keys import keys as keys_group
from relreg.cli.keys import sign as sign_command
from relreg.trust.tufrepo import TIMESTAMP_STEP, SigningError, _sign, _tuf_signer, refresh, target_copy_path

CI = load_key("ci")
SECOND = load_key("second")
ATTACKER = load_key("attacker")


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build A (commit 1) and build B (commit 2) of the example registry, one key for every role."""
    base = tmp_path_factory.mktemp("tuf")
    repo = signed_repo(base / "repo", keys_yaml([("ci", ALL_ROLES)]), hours_ago=3)
    build(repo, base / "a", key_file("ci"))
    next_commit(repo, hours_ago=2)
    build(repo, base / "b", key_file("ci"))
    return {"a": base / "a", "b": base / "b", "repo": repo}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteServer]:
    with SiteServer(tmp_path_factory.mktemp("served") / "root") as running:
        yield running


class Device:
    """A device's TUF client state: its pinned root and its metadata cache, across updater runs."""

    def __init__(self, folder: Path, server: SiteServer, root: bytes) -> None:
        self.folder = folder
        self.server = server
        self.root = root
        (folder / "metadata").mkdir(parents=True, exist_ok=True)
        (folder / "targets").mkdir(exist_ok=True)

    def updater(self) -> Updater:
        return Updater(metadata_dir=str(self.folder / "metadata"), metadata_base_url=self.server.url + "tuf/",
                       target_dir=str(self.folder / "targets"), target_base_url=self.server.url + "tuf/targets/",
                       bootstrap=self.root)

    def fetch(self, path: str) -> bytes:
        updater = self.updater()
        updater.refresh()
        info = updater.get_targetinfo(path)
        assert info is not None, f"{path} is not a target"
        return Path(updater.download_target(info)).read_bytes()

    def trusted(self, role: str) -> Metadata:
        return Metadata.from_bytes((self.folder / "metadata" / f"{role}.json").read_bytes())


def _device(tmp_path: Path, server: SiteServer, site: Path, name: str = "device") -> Device:
    return Device(tmp_path / name, server, (site / "tuf/1.root.json").read_bytes())


def _timestamp(site: Path) -> Metadata:
    return Metadata.from_bytes((site / "tuf/timestamp.json").read_bytes())


def _rewrite_timestamp(server: SiteServer, change, keys=(CI,)) -> None:  # type: ignore[no-untyped-def]
    """Re-sign the served timestamp.json after `change` (with the online key unless told otherwise)."""
    metadata = Metadata.from_bytes(server.get("tuf/timestamp.json"))
    change(metadata.signed)
    metadata.signatures.clear()
    server.put("tuf/timestamp.json", _sign(metadata, list(keys)))


def _bump(timestamp: Timestamp) -> None:
    timestamp.version += 1


# --- the happy path ------------------------------------------------------------------------------

def test_unmodified_ngclient_downloads_a_device_document_over_http(builds: dict[str, Path], server: SiteServer,
                                                                   tmp_path: Path) -> None:
    site = builds["b"]
    server.serve(site)
    document = device_documents(site)[0]
    device = _device(tmp_path, server, site)
    assert device.fetch(document) == (site / document).read_bytes()
    assert device.fetch("api/v1/index.json") == (site / "api/v1/index.json").read_bytes()
    # every JSON document of the site is a target, and nothing else is
    targets = device.trusted("targets").signed.targets
    on_disk = {p.relative_to(site).as_posix() for p in site.rglob("*.json")
               if not p.relative_to(site).as_posix().startswith(("tuf/", "."))}
    assert set(targets) == on_disk and "api/v1/keys.json" in targets and "schemas/release.schema.json" in targets
    assert device.trusted("timestamp").signed.version == 2 * TIMESTAMP_STEP
    assert device.trusted("snapshot").signed.version == device.trusted("targets").signed.version == 2


def test_the_same_commit_gives_the_same_bytes_and_versions_grow_with_commits(builds: dict[str, Path],
                                                                             tmp_path: Path) -> None:
    again = tmp_path / "again"
    build(builds["repo"], again, key_file("ci"), ref="HEAD")  # keys.yaml and roots read from git objects
    def site_files(site: Path) -> list[str]:
        return sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()
                      and p.name != ".relreg-manifest.json")  # the manifest holds the build's fingerprint

    files = site_files(again)
    assert files == site_files(builds["b"])
    for relative in files:
        assert (again / relative).read_bytes() == (builds["b"] / relative).read_bytes(), relative
    assert _timestamp(builds["a"]).signed.version < _timestamp(builds["b"]).signed.version
    assert (builds["a"] / "tuf/1.targets.json").exists() and (builds["b"] / "tuf/2.targets.json").exists()
    # expiry comes from the commit date (2 hours ago), not the clock
    assert _timestamp(builds["b"]).signed.expires < datetime.now(timezone.utc) + timedelta(days=7, hours=-1)


def test_a_cdn_serving_files_of_two_builds_side_by_side_still_gives_one_consistent_state(
        builds: dict[str, Path], server: SiteServer, tmp_path: Path) -> None:
    """Consistent snapshots: versioned metadata and hash-named targets of A and B coexist safely."""
    server.serve(builds["a"])
    server.overlay(builds["b"])
    server.put("tuf/timestamp.json", (builds["a"] / "tuf/timestamp.json").read_bytes())  # an edge still has A's
    path = "api/v1/index.json"
    device = _device(tmp_path, server, builds["a"])
    assert device.fetch(path) == (builds["a"] / path).read_bytes()
    server.put("tuf/timestamp.json", (builds["b"] / "tuf/timestamp.json").read_bytes())
    assert device.fetch(path) == (builds["b"] / path).read_bytes()


# --- attacks -------------------------------------------------------------------------------------

def test_tampered_target_file_is_refused(builds: dict[str, Path], server: SiteServer, tmp_path: Path) -> None:
    site = builds["b"]
    server.serve(site)
    path = device_documents(site)[0]
    served = target_copy_path(path, hashlib.sha256((site / path).read_bytes()).hexdigest())
    server.put(served, server.get(served).replace(b'"', b"'", 1))
    with pytest.raises(exceptions.LengthOrHashMismatchError, match="hash"):
        _device(tmp_path, server, site).fetch(path)


def test_tampered_document_listed_in_tampered_targets_metadata_is_refused(builds: dict[str, Path],
                                                                         server: SiteServer, tmp_path: Path) -> None:
    """The attacker changes a document and its hash in targets metadata: the snapshot's hash refuses it."""
    site = builds["b"]
    server.serve(site)
    path = "api/v1/index.json"
    evil = (site / path).read_bytes().replace(b'"v1"', b'"v9"')
    digest = hashlib.sha256(evil).hexdigest()
    server.put(target_copy_path(path, digest), evil)
    targets = json.loads(server.get("tuf/2.targets.json"))
    targets["signed"]["targets"][path] = {"hashes": {"sha256": digest}, "length": len(evil)}
    server.put("tuf/2.targets.json", json.dumps(targets, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    assert len(server.get("tuf/2.targets.json")) == len((site / "tuf/2.targets.json").read_bytes())
    with pytest.raises(exceptions.LengthOrHashMismatchError, match="does not match expected hash"):
        _device(tmp_path, server, site).fetch(path)
    # even with the snapshot's hash out of the way, the targets signature no longer verifies
    metadata = Metadata.from_bytes(server.get("tuf/2.targets.json"))
    with pytest.raises(exceptions.UnsignedMetadataError, match="signed by 0/1 keys"):
        Metadata.from_bytes((site / "tuf/1.root.json").read_bytes()).verify_delegate(Targets.type, metadata)


def test_replayed_older_timestamp_is_refused(builds: dict[str, Path], server: SiteServer, tmp_path: Path) -> None:
    server.serve(builds["b"])
    device = _device(tmp_path, server, builds["b"])
    device.fetch("api/v1/index.json")
    server.serve(builds["a"])  # an attacker (or a stale mirror) replays build A in full
    with pytest.raises(exceptions.BadVersionNumberError, match="timestamp version 1048576 must be >= 2097152"):
        device.fetch("api/v1/index.json")


def test_rolled_back_snapshot_is_refused(builds: dict[str, Path], server: SiteServer, tmp_path: Path) -> None:
    """Even with the online timestamp key, an attacker cannot point devices at an older snapshot."""
    server.serve(builds["b"])
    device = _device(tmp_path, server, builds["b"])
    device.fetch("api/v1/index.json")
    server.overlay(builds["a"])
    server.put("tuf/timestamp.json", (builds["b"] / "tuf/timestamp.json").read_bytes())
    old_snapshot = Metadata.from_bytes((builds["a"] / "tuf/timestamp.json").read_bytes()).signed.snapshot_meta

    def point_back(timestamp: Timestamp) -> None:
        timestamp.version += 1
        timestamp.snapshot_meta = old_snapshot

    _rewrite_timestamp(server, point_back)
    with pytest.raises(exceptions.BadVersionNumberError, match="snapshot version must be >= 2"):
        device.fetch("api/v1/index.json")


def test_expired_timestamp_is_refused_as_freeze_and_a_refresh_recovers(builds: dict[str, Path], server: SiteServer,
                                                                       tmp_path: Path) -> None:
    frozen = tmp_path / "frozen"
    shutil.copytree(builds["b"], frozen)
    ten_days_ago = int(time.time()) - 10 * 86400
    refresh(frozen, [CI], ten_days_ago, timestamp_days=1)  # a timestamp that expired 9 days ago
    server.serve(frozen)
    with pytest.raises(exceptions.ExpiredMetadataError, match="timestamp.json is expired"):
        _device(tmp_path, server, builds["b"]).fetch("api/v1/index.json")
    result = CliRunner().invoke(sign_command, ["--refresh", "--out", str(frozen), "--signing-key",
                                               str(key_file("ci"))], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    renewed = _timestamp(frozen).signed
    assert renewed.version == 2 * TIMESTAMP_STEP + 2 and not renewed.is_expired()
    # only the timestamp changed
    changed = [p.relative_to(frozen).as_posix() for p in frozen.rglob("*") if p.is_file()
               and (builds["b"] / p.relative_to(frozen)).read_bytes() != p.read_bytes()]
    assert changed == ["tuf/timestamp.json"]
    server.serve(frozen)
    assert _device(tmp_path, server, builds["b"], "fresh").fetch("api/v1/index.json") \
        == (builds["b"] / "api/v1/index.json").read_bytes()


def test_metadata_mixed_from_two_builds_is_refused(builds: dict[str, Path], server: SiteServer,
                                                   tmp_path: Path) -> None:
    # B's timestamp with A's snapshot under B's name
    server.serve(builds["b"])
    server.put("tuf/2.snapshot.json", (builds["a"] / "tuf/1.snapshot.json").read_bytes())
    with pytest.raises((exceptions.LengthOrHashMismatchError, exceptions.DownloadLengthMismatchError)):
        _device(tmp_path, server, builds["b"], "one").fetch("api/v1/index.json")
    # B's snapshot with A's targets under B's name
    server.serve(builds["b"])
    server.put("tuf/2.targets.json", (builds["a"] / "tuf/1.targets.json").read_bytes())
    with pytest.raises((exceptions.LengthOrHashMismatchError, exceptions.DownloadLengthMismatchError)):
        _device(tmp_path, server, builds["b"], "two").fetch("api/v1/index.json")
    # A's document served as B's target copy
    server.serve(builds["b"])
    path = "api/v1/index.json"
    b_copy = target_copy_path(path, hashlib.sha256((builds["b"] / path).read_bytes()).hexdigest())
    server.put(b_copy, (builds["a"] / path).read_bytes())
    with pytest.raises(exceptions.LengthOrHashMismatchError):
        _device(tmp_path, server, builds["b"], "three").fetch(path)


def test_metadata_signed_by_an_unknown_key_is_refused(builds: dict[str, Path], server: SiteServer,
                                                      tmp_path: Path) -> None:
    server.serve(builds["b"])
    _rewrite_timestamp(server, _bump, keys=[ATTACKER])
    with pytest.raises(exceptions.UnsignedMetadataError, match="timestamp was signed by 0/1 keys"):
        _device(tmp_path, server, builds["b"], "one").fetch("api/v1/index.json")
    # nor can the attacker hand out a new root that trusts their key
    server.serve(builds["b"])
    evil_root = Metadata.from_bytes((builds["b"] / "tuf/1.root.json").read_bytes())
    evil_root.signed.version = 2
    evil_root.signed.add_key(_tuf_signer(ATTACKER).public_key, "root")
    evil_root.signatures.clear()
    server.put("tuf/2.root.json", _sign(evil_root, [ATTACKER]))
    with pytest.raises(exceptions.UnsignedMetadataError, match="root was signed by 0/1 keys"):
        _device(tmp_path, server, builds["b"], "two").fetch("api/v1/index.json")


def test_threshold_not_met_is_refused(tmp_path: Path, server: SiteServer) -> None:
    both = keys_yaml([("ci", ALL_ROLES), ("second", ALL_ROLES)],
                     thresholds={"root": 2, "targets": 2, "snapshot": 2, "timestamp": 2})
    repo = signed_repo(tmp_path / "repo", both, hours_ago=1)
    with pytest.raises(SigningError, match="cannot sign root 1|the signing keys given cannot sign root 1"):
        build(repo, tmp_path / "one-key", key_file("ci"))  # the build refuses to publish half-signed metadata
    site = tmp_path / "site"
    build(repo, site, key_bundle(tmp_path, "ci", "second"))
    server.serve(site)
    assert _device(tmp_path, server, site, "ok").fetch("api/v1/index.json") == (site / "api/v1/index.json").read_bytes()
    server.serve(site)
    assert set(_timestamp(site).signatures) == {CI.keyid, SECOND.keyid}
    _rewrite_timestamp(server, _bump, keys=[CI])  # one of the two keys stolen: the attacker signs with one
    with pytest.raises(exceptions.UnsignedMetadataError, match="timestamp was signed by 1/2 keys"):
        _device(tmp_path, server, site, "attacked").fetch("api/v1/index.json")


def test_root_rotation_is_followed_by_devices_pinned_to_the_old_root(tmp_path: Path, server: SiteServer) -> None:
    """keys.yaml replaces key ci by key second; the new root is signed by both and committed; devices follow."""
    from git_helpers import commit_all
    from test_signing_support import git_date

    repo = signed_repo(tmp_path / "repo", keys_yaml([("ci", ALL_ROLES)]), hours_ago=3)
    registry = repo / "registry"
    signed = CliRunner().invoke(keys_group, ["sign-root", "--registry", str(registry), "--signing-key",
                                             str(key_file("ci"))], catch_exceptions=False)
    assert signed.exit_code == 0 and "complete" in signed.output, signed.output
    commit_all(repo, "commit root 1", git_date(2.5 * 3600))
    first = tmp_path / "first"
    build(repo, first, key_file("ci"))
    server.serve(first)
    device = _device(tmp_path, server, first)
    device.fetch("api/v1/index.json")

    (registry / "keys.yaml").write_text(keys_yaml([("second", ALL_ROLES)]))
    commit_all(repo, "rotate keys", git_date(2 * 3600))
    with pytest.raises(SigningError, match="cannot sign root 2"):  # the old root's key must sign the new root
        build(repo, tmp_path / "refused", key_file("second"))
    for holder in ("second", "ci"):  # e.g. two people, one after the other
        result = CliRunner().invoke(keys_group, ["sign-root", "--registry", str(registry), "--signing-key",
                                                 str(key_file(holder))], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert "complete" in result.output
    commit_all(repo, "root 2", git_date(1.5 * 3600))
    second = tmp_path / "second"
    report = build(repo, second, key_file("second"))
    assert not [w for w in report.warnings if "root" in w]
    assert sorted(p.name for p in (second / "tuf").glob("*root.json")) == ["1.root.json", "2.root.json",
                                                                         "root.json"]
    server.serve(second)
    assert device.fetch("api/v1/index.json") == (second / "api/v1/index.json").read_bytes()
    assert device.trusted("root").signed.version == 2
    assert set(device.trusted("timestamp").signatures) == {SECOND.keyid}


def test_a_committed_root_that_is_not_fully_signed_stops_the_build(tmp_path: Path) -> None:
    both = keys_yaml([("ci", ALL_ROLES), ("second", ALL_ROLES)], thresholds={"root": 2})
    repo = signed_repo(tmp_path / "repo", both, hours_ago=1)
    result = CliRunner().invoke(keys_group, ["sign-root", "--registry", str(repo / "registry"), "--signing-key",
                                             str(key_file("ci"))], catch_exceptions=False)
    assert result.exit_code == 0 and "still missing" in result.output
    with pytest.raises(SigningError, match=r"roots/1.root.json: root was signed by 1/2 keys"):
        build(repo, tmp_path / "out", key_bundle(tmp_path, "ci", "second"))
