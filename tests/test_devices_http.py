"""The update channel over real HTTP: nginx serves built sites and small real artifact files; the
reference client and `relreg device check` talk to it, download and verify images, and a fleet of
devices updates itself until nothing is left to install."""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from api_schemas import API_SCHEMA_DIR
from click.testing import CliRunner
from device_helpers import (
    FLEET_COHORTS,
    FLEET_RELEASES,
    SEMVER,
    HostedSite,
    Spec,
    artifact_bytes,
    channel,
    host_registry,
    nginx_or_skip,
    oracle,
    oracle_bucket,
    rehost_example_registry,
    write_fleet_registry,
)
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from relreg.cli.device import EXIT_UP_TO_DATE, EXIT_UPDATE_AVAILABLE, device
from relreg.devices.client import ClientError, DeviceClient, HttpTransport, UnknownChannel, VerificationError
from relreg.devices.paths import answer_path, candidates_path
from relreg.devices.update import DeviceIdentity


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory):
    nginx_or_skip()
    yield from host_registry(tmp_path_factory.mktemp("example"), rehost_example_registry)


@pytest.fixture(scope="module")
def fleet_site(tmp_path_factory: pytest.TempPathFactory):
    nginx_or_skip()
    yield from host_registry(tmp_path_factory.mktemp("fleet"), write_fleet_registry)


def _response_validator() -> Draft202012Validator:
    schemas = [json.loads(p.read_text()) for p in API_SCHEMA_DIR.glob("*.schema.json")]
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas)
    [response] = [s for s in schemas if s["$id"].endswith("/device-response.schema.json")]
    return Draft202012Validator(response, registry=registry)


# --------------------------------------------------------------------------------------------
# The origin


def test_nginx_serves_documents_as_utf8_json_with_etags(example_site: HostedSite) -> None:
    url = example_site.url + answer_path("beta", "pvt", "main", "2.1.0")
    first = httpx.get(url)
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json; charset=utf-8"
    assert first.json()["data"]["current_version"] == "2.1.0"
    etag = first.headers["etag"]
    again = httpx.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert httpx.get(example_site.url + answer_path("beta", "pvt", "main", "9.9.9")).status_code == 404
    artifact = httpx.get(example_site.artifact_base_url + "2.0.1/aurora-pvt-2.0.1.bin")
    assert artifact.status_code == 200 and artifact.content == artifact_bytes("2.0.1/aurora-pvt-2.0.1.bin")


# --------------------------------------------------------------------------------------------
# The reference client against the example registry


def test_client_gets_the_rules_answer_and_verifies_the_download(example_site: HostedSite, tmp_path: Path) -> None:
    with DeviceClient(example_site.url) as client:
        result = client.check(DeviceIdentity("production", "pvt", "2.0.0", "AT100-000001"))
        # two GETs: the answer offers 2.1.0 staged (10.5 %), so its percent comes from rollouts.json
        assert (result.source, result.requests, result.version) == ("answer", 2, "2.0.1")
        assert result.document["is_delta"] and result.payload.delta_from == "2.0.0"
        assert result.payload.url == example_site.artifact_base_url + "2.0.1/aurora-pvt-2.0.0-to-2.0.1.delta"
        path = client.download(result.payload, tmp_path)
        assert path == tmp_path / "aurora-pvt-2.0.0-to-2.0.1.delta"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == result.payload.sha256
        assert path.stat().st_size == result.payload.size
        assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial files left

        full = client.check(DeviceIdentity("production", "pvt", "1.4.0", "AT100-000001"))
        assert (full.version, full.payload.is_delta) == ("2.0.1", False)
        blocked = client.check(DeviceIdentity("production", "pvt", "1.2.0", "AT100-000001"))
        assert blocked.document == {"up_to_date": True, "current_version": "1.2.0", "reason": "blocked"}


def test_staged_rollout_over_http_matches_the_bucket(example_site: HostedSite) -> None:
    with DeviceClient(example_site.url) as client:
        for n in range(60):
            serial = f"AT110-{n:06d}"
            result = client.check(DeviceIdentity("beta", "pvt-b", "2.1.0", serial, software_type="main"))
            inside = oracle_bucket(serial, "beta", "2.1.1") < 2500
            assert result.version == ("2.1.1" if inside else None)
            if not inside:
                assert result.document["reason"] == "outside_rollout"


def test_dev_build_is_decided_locally_over_http(example_site: HostedSite) -> None:
    with DeviceClient(example_site.url) as client:
        result = client.check(DeviceIdentity("canary", "dvt1", "2.1.1-dev.3+g1a2b3c", "LAB-7", software_type="main"))
        assert (result.source, result.requests, result.version) == ("candidates", 2, "2.1.1")
        with pytest.raises(UnknownChannel):
            client.check(DeviceIdentity("canary", "evt2", "1.0.0", "LAB-7"))
        with pytest.raises(ClientError, match="SemVer"):
            client.check(DeviceIdentity("canary", "dvt1", "nightly", "LAB-7", software_type="main"))


def test_repeat_checks_send_if_none_match(example_site: HostedSite) -> None:
    with DeviceClient(example_site.url) as client:
        device_ = DeviceIdentity("beta", "pvt", "2.1.0", "AT100-000002", software_type="main")
        first = client.check(device_)
        second = client.check(device_)
        assert (first.not_modified, second.not_modified) == (0, 2)  # the answer and its rollouts: both 304
        assert first.document == second.document
        unknown = DeviceIdentity("beta", "pvt", "2.0.9", "AT100-000002", software_type="main")
        client.check(unknown)
        assert client.check(unknown).not_modified == 1  # 404 is not cached; the candidates are


def test_a_tampered_artifact_is_rejected_and_removed(example_site: HostedSite, tmp_path: Path) -> None:
    relative = "2.1.0/aurora-pvt-bootloader-2.1.0.bin"
    original = (example_site.artifacts / relative).read_bytes()
    try:
        with DeviceClient(example_site.url) as client:
            result = client.check(DeviceIdentity("beta", "pvt", "2.0.9", "AT100-3", software_type="bootloader"))
            assert result.payload.filename == "aurora-pvt-bootloader-2.1.0.bin"
            (example_site.artifacts / relative).write_bytes(bytes([original[0] ^ 1]) + original[1:])  # same size
            with pytest.raises(VerificationError, match="sha256"):
                client.download(result.payload, tmp_path)
            (example_site.artifacts / relative).write_bytes(original[:-1])  # short
            with pytest.raises(VerificationError, match="received"):
                client.download(result.payload, tmp_path)
            (example_site.artifacts / relative).write_bytes(original + b"x")  # long
            with pytest.raises(VerificationError, match="more than"):
                client.download(result.payload, tmp_path)
            assert list(tmp_path.iterdir()) == []
    finally:
        (example_site.artifacts / relative).write_bytes(original)


# --------------------------------------------------------------------------------------------
# `relreg device check`


def _check(*args: str):
    return CliRunner().invoke(device, ["check", *args], prog_name="relreg device", catch_exceptions=False)


def test_cli_prints_the_device_response_and_downloads(example_site: HostedSite, tmp_path: Path) -> None:
    validator = _response_validator()
    result = _check("--site", example_site.url, "--cohort", "production", "--hardware-version", "pvt",
                    "--current-version", "2.0.0", "--serial", "AT100-9", "--download", str(tmp_path / "ota"))
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert list(validator.iter_errors(printed)) == []
    assert printed["version"] == "2.0.1" and printed["is_delta"] is True
    assert "sha256 verified" in result.stderr
    image = tmp_path / "ota" / printed["artifacts"][0]["filename"]
    assert hashlib.sha256(image.read_bytes()).hexdigest() == printed["artifacts"][0]["sha256"]

    up = _check("--site", example_site.url, "--cohort", "canary", "--hardware-version", "pvt", "--software-type",
                "main", "--current-version", "2.1.1", "--serial", "AT100-9")
    assert up.exit_code == 0
    assert json.loads(up.stdout) == {"up_to_date": True, "current_version": "2.1.1", "reason": "latest"}
    assert list(validator.iter_errors(json.loads(up.stdout))) == []


def test_cli_exit_codes(example_site: HostedSite) -> None:
    common = ["--site", example_site.url, "--hardware-version", "pvt", "--serial", "AT100-9", "--exit-code"]
    assert _check(*common, "--cohort", "production", "--current-version", "2.0.0").exit_code == EXIT_UPDATE_AVAILABLE
    assert _check(*common, "--cohort", "production", "--current-version", "2.0.1").exit_code == EXIT_UP_TO_DATE
    failed = _check(*common, "--cohort", "nowhere", "--current-version", "2.0.1")
    assert failed.exit_code == 1 and "no update channel" in failed.output
    assert _check("--site", example_site.url).exit_code == 2  # usage


def test_cli_reads_a_site_folder_too(example_site: HostedSite) -> None:
    result = _check("--site", str(example_site.site), "--cohort", "production", "--hardware-version", "pvt",
                    "--current-version", "2.0.0", "--serial", "AT100-9")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == "2.0.1"


# --------------------------------------------------------------------------------------------
# A fleet updating itself over HTTP

FLEET = {r.version: r for r in FLEET_RELEASES}
DEV_BUILDS = ("0.9.0", "1.3.5-dev.2", "1.4.0-rc.1", "2.0.0+local.1", "2.0.5-dev", "2.3.0-dev.1")
COHORT_WEIGHTS = {"stable": 40, "beta": 30, "frozen": 15, "paused": 15}


def expected_channel(cohort: str, hardware: str):
    """The channel as the rules define it, from the fleet's spec (independent of relreg.site.device_documents)."""
    specs = []
    for version, percent in FLEET_COHORTS[cohort]:
        release = FLEET[version]
        if release.yanked or hardware not in release.hardware:
            continue
        specs.append(Spec(version, percent=percent, min_version=release.min_version, mpt=False,
                          deltas=tuple(s for s in release.deltas if hardware in FLEET[s].hardware)))
    barriers = [r.version for r in FLEET_RELEASES if r.mpt and not r.yanked and hardware in r.hardware]
    return channel(*specs, barriers=barriers, cohort=cohort)


def expected_path(cohort: str, hardware: str, current: str, serial: str) -> list[str]:
    ch = expected_channel(cohort, hardware)
    path = [current]
    while (step := oracle(ch, path[-1], serial)) is not None:
        path.append(step[0])
    return path


def make_fleet(count: int, seed: int = 11) -> list[DeviceIdentity]:
    rng = random.Random(seed)
    cohorts = [c for c, weight in COHORT_WEIGHTS.items() for _ in range(weight)]
    fleet = []
    for n in range(count):
        hardware = rng.choice(["h1", "h1", "h2"])
        known = [r.version for r in FLEET_RELEASES if hardware in r.hardware]
        current = rng.choice(known + list(DEV_BUILDS)) if rng.random() < 0.25 else rng.choice(known[:4])
        fleet.append(DeviceIdentity(rng.choice(cohorts), hardware, current, f"FLEET-{n:05d}"))
    return fleet


@pytest.mark.slow
def test_a_fleet_of_1200_devices_updates_to_what_the_rules_predict(fleet_site: HostedSite, tmp_path: Path) -> None:
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def record(response: httpx.Response) -> None:
        with lock:
            statuses[response.status_code] += 1

    known = {r.version for r in FLEET_RELEASES}
    fleet = make_fleet(1200)

    def run(identity: DeviceIdentity) -> tuple[list[str], list[bool], int]:
        # Each device has its own connection, as in the field (32 threads sharing one httpx pool
        # once failed with EBADF on a reused connection).
        with httpx.Client(timeout=30, event_hooks={"response": [record]}) as http:
            return update(DeviceClient(fleet_site.url, transport=HttpTransport(client=http)), identity)

    def update(client: DeviceClient, identity: DeviceIdentity) -> tuple[list[str], list[bool], int]:
        folder = tmp_path / identity.serial
        current, path, deltas, checks = identity.current_version, [identity.current_version], [], 0
        while True:
            checks += 1
            result = client.check(DeviceIdentity(identity.cohort, identity.hardware_version, current,
                                                 identity.serial))
            # a known version: its answer (and the rollouts when an offer is staged); else a 404 and the candidates
            assert result.source == ("answer" if current in known else "candidates")
            assert result.requests in ((1, 2) if current in known else (2,))
            if result.payload is None:
                return path, deltas, checks
            image = client.download(result.payload, folder)  # raises unless size and sha256 match
            relative = result.payload.url.removeprefix(fleet_site.artifact_base_url)
            assert image.read_bytes() == artifact_bytes(relative)
            image.unlink()  # "installed"
            assert result.payload.delta_from in (None, current)
            deltas.append(result.payload.is_delta)
            current = result.version
            path.append(current)
            assert len(path) < 12, path

    with ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = list(pool.map(run, fleet))

    hops = Counter()
    for identity, (path, deltas, checks) in zip(fleet, outcomes):
        assert path == expected_path(identity.cohort, identity.hardware_version, identity.current_version,
                                     identity.serial), identity
        hops[len(path) - 1] += 1
        for before, after in zip(path, path[1:]):
            release = FLEET[after]
            assert SEMVER.parse(after) > SEMVER.parse(before)
            assert not release.yanked and identity.hardware_version in release.hardware
            assert release.min_version is None or SEMVER.parse(before) >= SEMVER.parse(release.min_version), \
                (identity, before, after)
            barriers = [r.version for r in FLEET_RELEASES if r.mpt and identity.hardware_version in r.hardware]
            assert not any(SEMVER.parse(before) < SEMVER.parse(b) < SEMVER.parse(after) for b in barriers)
            assert dict(FLEET_COHORTS[identity.cohort]).get(after, 0) > 0
        if identity.cohort == "paused":
            assert "2.0.0" not in path[1:]
    assert hops[0] and hops[1] and max(hops) >= 4, hops  # long paths through gates and barriers were walked
    assert any(any(d) for _, d, _ in outcomes), "some devices took a delta"

    # staged rollouts: the share of devices that went on to the staged release matches its percent
    # among the devices that at some point ran a version from which it was installable
    for cohort, staged in (("stable", "2.1.0"), ("beta", "2.2.0-rc.1")):
        percent = dict(FLEET_COHORTS[cohort])[staged]
        low, high = SEMVER.parse(FLEET[staged].min_version), SEMVER.parse(staged)
        eligible = [(identity, path) for identity, (path, _, _) in zip(fleet, outcomes)
                    if identity.cohort == cohort and any(low <= SEMVER.parse(v) < high for v in path)]
        share = sum(staged in path for _, path in eligible) / len(eligible)
        tolerance = 4 * (percent / 100 * (1 - percent / 100) / len(eligible)) ** 0.5
        assert len(eligible) > 150 and abs(share - percent / 100) <= tolerance, (cohort, share, len(eligible))

    # zero HTTP errors: only 200s, 304s (a device reading its channel's rollouts.json again on a later hop),
    # plus one 404 for each check of a version the registry does not know
    unknown_checks = sum(checks for identity, (path, _, checks) in zip(fleet, outcomes)
                         if identity.current_version not in known and len(path) == 1) + \
        sum(1 for identity, (path, _, _) in zip(fleet, outcomes) if identity.current_version not in known
            and len(path) > 1)
    assert set(statuses) <= {200, 304, 404}, statuses
    assert statuses[404] == unknown_checks
    assert fleet_site.nginx.process.poll() is None
    assert "[error]" not in fleet_site.nginx.error_log()


def test_devices_running_the_c_client_update_over_http_like_the_rules_predict(fleet_site: HostedSite,
                                                                             tmp_path: Path) -> None:
    """Part of the fleet runs the C client (relreg-device-c, ASan+UBSan, libcurl) against the same nginx:
    every check prints what the Python client prints, every image is downloaded and verified, and every
    device walks the path the rules predict."""
    from c_client_helpers import run_c

    fleet = make_fleet(60, seed=23)
    python = DeviceClient(fleet_site.url)

    def run(identity: DeviceIdentity) -> tuple[list[str], int]:
        folder = tmp_path / identity.serial
        current, path, deltas = identity.current_version, [identity.current_version], 0
        while True:
            result = run_c("--site", fleet_site.url, "--cohort", identity.cohort, "--hardware-version",
                           identity.hardware_version, "--current-version", current, "--serial", identity.serial,
                           "--download", folder, "--exit-code")
            assert result.returncode in (EXIT_UP_TO_DATE, EXIT_UPDATE_AVAILABLE), result.stderr
            reference = python.check(DeviceIdentity(identity.cohort, identity.hardware_version, current,
                                                    identity.serial))
            assert result.stdout == json.dumps(reference.document, indent=2, ensure_ascii=False) + "\n"
            document = json.loads(result.stdout)
            if result.returncode == EXIT_UP_TO_DATE:
                assert document["up_to_date"] is True and not (folder.exists() and any(folder.iterdir()))
                return path, deltas
            artifact = document["artifacts"][0]
            image = folder / artifact["filename"]
            assert image.read_bytes() == artifact_bytes(artifact["url"].removeprefix(fleet_site.artifact_base_url))
            assert f"downloaded {image} ({artifact['file_size']} bytes, sha256 verified)" in result.stderr
            image.unlink()  # "installed"
            assert artifact["delta_from"] in (None, current)
            deltas += artifact["delta_from"] is not None
            current = document["version"]
            path.append(current)
            assert len(path) < 12, path

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(run, fleet))
    python.close()
    for identity, (path, _) in zip(fleet, outcomes):
        assert path == expected_path(identity.cohort, identity.hardware_version, identity.current_version,
                                     identity.serial), identity
    assert max(len(path) for path, _ in outcomes) >= 4, "long paths through gates and barriers were walked"
    assert sum(deltas for _, deltas in outcomes), "some C devices took a delta"
    assert "[error]" not in fleet_site.nginx.error_log()


def test_fleet_site_documents_match_the_expected_channels(fleet_site: HostedSite) -> None:
    for cohort in FLEET_COHORTS:
        for hardware in ("h1", "h2"):
            served = httpx.get(fleet_site.url + candidates_path(cohort, hardware, None)).json()["data"]
            expected = expected_channel(cohort, hardware)
            assert [c["version"] for c in served["candidates"]] == [c.version for c in expected.candidates]
            assert served["must_pass_through"] == list(expected.barriers)
