"""The static device documents (relreg.site.device_documents): paths, shapes, sizes, speed, and that every
precomputed answer equals what the reference client decides locally from the candidates."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pytest
from api_schemas import api_schema_errors, schema_names_for
from conftest import EXAMPLE_REGISTRY
from device_helpers import SEMVER, oracle, planned_devices, site_inputs, synthetic_inputs, write_files

from relreg.devices.client import DeviceClient
from relreg.devices.paths import NO_SOFTWARE_TYPE, answer_path, candidates_path, index_path, rollouts_path
from relreg.devices.update import Channel, DeviceIdentity, answer_thresholds
from relreg.registry.versions import scheme_named
from relreg.site.device_documents import device_documents
from relreg.site.jobs import encode_json, release_views
from relreg.site.plan import plan_site

SERIALS = [f"AT100-{n:06d}" for n in range(120)]


@pytest.fixture(scope="module")
def example_files() -> dict[str, bytes]:
    return planned_devices(EXAMPLE_REGISTRY)


def data(files: dict[str, bytes], path: str) -> dict:
    return json.loads(files[path])["data"]


def channels_of(files: dict[str, bytes]) -> list[tuple[str, str, str | None]]:
    index = data(files, index_path())
    return [(c["cohort"], c["hardware_version"], c["software_type"]) for c in index["channels"]]


# --------------------------------------------------------------------------------------------
# Paths and shapes


def test_every_document_is_under_api_v1_devices_and_validates_against_its_schema(
        example_files: dict[str, bytes], tmp_path: Path) -> None:
    assert all(re.fullmatch(r"api/v1/devices/[A-Za-z0-9._+/-]+\.json", p) and ".." not in p for p in example_files)
    write_files(example_files, tmp_path)
    assert api_schema_errors(tmp_path) == []
    names = {schema_names_for(p)[0] for p in example_files}
    assert names == {"device-index.schema.json", "device-candidates.schema.json", "device-answer.schema.json",
                     "device-rollouts.schema.json"}


def test_the_whole_site_plan_includes_the_device_documents(example_files: dict[str, bytes]) -> None:
    inputs = site_inputs(EXAMPLE_REGISTRY)
    planned = plan_site(inputs)
    assert {p: planned[p] for p in example_files} == example_files


def test_channels_of_the_example_registry(example_files: dict[str, bytes]) -> None:
    channels = channels_of(example_files)
    # cohorts x their hardware versions x (no software type, and each software type used for that hardware)
    expected = [(cohort, hardware, software)
                for cohort, hardware_list in (("beta", ["pvt", "pvt-b"]), ("canary", ["dvt1", "pvt", "pvt-b"]),
                                              ("production", ["pvt", "pvt-b"]))
                for hardware in hardware_list for software in (None, "bootloader", "main")]
    assert channels == expected
    for channel in channels:
        assert candidates_path(*channel) in example_files
    assert candidates_path("beta", "pvt", None) == "api/v1/devices/beta/pvt/_/candidates.json"
    assert answer_path("beta", "pvt", "main", "2.1.0") == "api/v1/devices/beta/pvt/main/from/2.1.0.json"
    assert NO_SOFTWARE_TYPE == "_"


def test_known_versions_are_every_release_with_an_image_for_the_channel(example_files: dict[str, bytes]) -> None:
    def known(cohort: str, hardware: str, software: str | None) -> list[str]:
        prefix = answer_path(cohort, hardware, software, "x")[:-len("x.json")]
        return sorted((p[len(prefix):-5] for p in example_files if p.startswith(prefix)),
                      key=lambda v: SEMVER.parse(v).key)

    # pvt declares default_software_type main: devices reporting none also run main's 2.1.x images
    assert known("production", "pvt", None) == ["1.0.0", "1.0.1", "1.1.0", "1.1.1", "1.2.0", "1.3.0", "1.3.1",
                                                "1.4.0", "2.0.0-rc.1", "2.0.0-rc.2", "2.0.0", "2.0.1",
                                                "2.1.0", "2.1.1"]
    assert "1.3.0" in known("canary", "dvt1", None)  # yanked, but devices may still run it
    assert known("production", "pvt-b", None) == ["2.0.0-rc.1", "2.0.0-rc.2", "2.0.0", "2.0.1", "2.1.0", "2.1.1"]
    assert known("production", "evt2", None) == []  # not production hardware: no channel
    assert known("beta", "pvt", "main") == ["2.1.0", "2.1.1"]
    assert known("beta", "pvt", "bootloader") == ["2.1.0"]


def test_candidates_list_deployed_releases_with_gates_and_images(example_files: dict[str, bytes]) -> None:
    production = data(example_files, candidates_path("production", "pvt", None))
    assert production["version_scheme"] == "semver"
    assert production["must_pass_through"] == ["1.4.0"]
    # 2.1.0 has only typed images: devices without a type take main's (default_software_type)
    release, typed = production["candidates"]
    assert (typed["version"], typed["rollout_percent"]) == ("2.1.0", 10.5)
    assert [(a["software_type"], a["filename"]) for a in typed["artifacts"]] == [("main", "aurora-pvt-2.1.0.bin")]
    assert release["version"] == "2.0.1" and release["min_version"] == "1.4.0"
    assert release["rollout_percent"] == 100 and release["rollout_threshold"] == 10000
    assert [(a["delta_from"], a["filename"]) for a in release["artifacts"]] == [
        (None, "aurora-pvt-2.0.1.bin"), ("2.0.0", "aurora-pvt-2.0.0-to-2.0.1.delta")]
    assert release["artifacts"][0]["url"] == "https://downloads.aurora.example/firmware/2.0.1/aurora-pvt-2.0.1.bin"
    assert release["release_url"] == "https://firmware.aurora.example/api/v1/releases/2.0.1.json"

    main = data(example_files, candidates_path("production", "pvt", "main"))
    assert [(c["version"], c["rollout_percent"], c["rollout_threshold"]) for c in main["candidates"]] == [
        ("2.1.0", 10.5, 1050)]
    beta = data(example_files, candidates_path("beta", "pvt-b", "main"))
    assert [(c["version"], c["rollout_percent"]) for c in beta["candidates"]] == [("2.1.0", 100), ("2.1.1", 25)]
    bootloader = data(example_files, candidates_path("beta", "pvt", "bootloader"))
    assert [c["version"] for c in bootloader["candidates"]] == ["2.1.0"]
    assert bootloader["candidates"][0]["artifacts"][0]["filename"] == "aurora-pvt-bootloader-2.1.0.bin"
    # 1.3.0 is yanked: never a candidate anywhere
    for cohort, hardware, software in channels_of(example_files):
        versions = [c["version"] for c in data(example_files, candidates_path(cohort, hardware, software))["candidates"]]
        assert "1.3.0" not in versions


def test_answers_of_the_example_registry(example_files: dict[str, bytes]) -> None:
    delta = data(example_files, answer_path("production", "pvt", None, "2.0.0"))
    assert delta["up_to_date"] is None
    staged_main, offer = delta["offers"]  # 2.1.0 (main, 10.5 %) first, then 2.0.1 for everybody
    assert (staged_main["release"]["version"], staged_main["staged"]) == ("2.1.0", True)
    assert staged_main["release"]["artifacts"][0]["filename"] == "aurora-pvt-2.1.0.bin"
    assert offer["staged"] is False
    # the percent of a staged offer is in the channel's rollouts document, not in the answer
    assert data(example_files, rollouts_path("production", "pvt", None)) == {
        "cohort": "production", "hardware_version": "pvt", "software_type": None,
        "rollouts": [{"version": "2.1.0", "rollout_percent": 10.5, "rollout_threshold": 1050}]}
    release = offer["release"]
    assert list(release) == ["id", "version", "revision", "min_version", "is_delta", "must_pass_through", "reason",
                             "created_date", "release_url", "artifacts"]
    assert (release["version"], release["is_delta"], release["reason"]) == ("2.0.1", True, "outside_rollout")
    assert release["artifacts"][0]["delta_from"] == "2.0.0" and release["artifacts"][0]["file_size"] == 116091

    full = data(example_files, answer_path("production", "pvt", None, "1.4.0"))["offers"][-1]["release"]
    assert (full["version"], full["is_delta"]) == ("2.0.1", False)

    # production does not deploy 1.4.0, which every device must pass through: devices below it wait
    blocked = data(example_files, answer_path("production", "pvt", None, "1.3.0"))
    assert blocked["offers"] == [] and blocked["up_to_date"]["reason"] == "blocked"

    staged = data(example_files, answer_path("beta", "pvt", "main", "2.1.0"))
    assert [(o["release"]["version"], o["staged"]) for o in staged["offers"]] == [("2.1.1", True)]
    assert data(example_files, rollouts_path("beta", "pvt", "main"))["rollouts"] == [
        {"version": "2.1.1", "rollout_percent": 25, "rollout_threshold": 2500}]
    assert staged["up_to_date"] == {"up_to_date": True, "current_version": "2.1.0", "reason": "outside_rollout"}

    latest = data(example_files, answer_path("canary", "dvt1", "main", "2.1.1"))
    assert latest["offers"] == [] and latest["up_to_date"]["reason"] == "latest"


def test_every_answer_of_the_example_is_under_2_kib(example_files: dict[str, bytes]) -> None:
    answers = {p: len(b) for p, b in example_files.items() if "/from/" in p}
    assert len(answers) > 50
    assert max(answers.values()) < 2048, max(answers.items(), key=lambda item: item[1])


def test_documents_are_deterministic_and_compact_json(example_files: dict[str, bytes]) -> None:
    assert planned_devices(EXAMPLE_REGISTRY) == example_files
    for path, content in example_files.items():  # answers are assembled from pre-encoded parts
        assert encode_json(json.loads(content)) == content, path


# (rollout_percent as written in the cohort file, as every JSON document must write it): a whole percent is an
# integer everywhere (cohorts.json used to write 100.0 and 50.0 where the device documents wrote 100 and 50).
PERCENT_FORMS = [("0", "0"), ("0.01", "0.01"), ("12.5", "12.5"), ("50", "50"), ("50.0", "50"), ("99.99", "99.99"),
                 ("100", "100"), ("100.0", "100")]


@pytest.mark.parametrize(("written", "expected"), PERCENT_FORMS)
def test_a_rollout_percent_has_the_same_form_in_cohorts_json_and_the_device_documents(
        written: str, expected: str, base_registry: Path, tmp_path: Path) -> None:
    cohort = base_registry / "cohorts" / "stable.yaml"
    cohort.write_text(cohort.read_text().replace("rollout_percent: 50", f"rollout_percent: {written}"))
    files = plan_site(site_inputs(base_registry))
    percents = {path: re.findall(r'"rollout_percent":([^,}]*)', files[path].decode())
                for path in ("api/v1/cohorts.json", candidates_path("stable", "evt1", None),
                             rollouts_path("stable", "evt1", None))}
    # 1.0.0 at 100 % (the default), then 1.1.0; only a staged release is in the rollouts document
    assert percents == {"api/v1/cohorts.json": ["100", expected],
                        candidates_path("stable", "evt1", None): ["100", expected],
                        rollouts_path("stable", "evt1", None): [] if expected == "100" else [expected]}
    stable = json.loads(files["api/v1/cohorts.json"])["data"][0]
    assert [type(r["rollout_percent"]) for r in stable["releases"]] == [int, float if "." in expected else int]
    write_files({p: b for p, b in files.items() if p.startswith("api/")}, tmp_path / "site")
    assert api_schema_errors(tmp_path / "site") == []


def test_answer_files_hold_the_answer_document(example_files: dict[str, bytes]) -> None:
    from relreg.devices.update import plan_update
    from relreg.site.device_documents import answer_document

    document = data(example_files, candidates_path("beta", "pvt", "main"))
    channel = Channel.from_document(document, SEMVER)
    for version in ("2.1.0", "2.1.1"):
        expected = answer_document(channel, plan_update(channel, SEMVER.parse(version)), "semver")
        assert json.loads(example_files[answer_path("beta", "pvt", "main", version)]) == expected


def test_candidates_documents_round_trip_through_the_client_model(example_files: dict[str, bytes]) -> None:
    for channel in channels_of(example_files):
        document = data(example_files, candidates_path(*channel))
        parsed = Channel.from_document(document, SEMVER)
        assert json.loads(json.dumps(parsed.document("semver"))) == document


# --------------------------------------------------------------------------------------------
# Precomputed answers == the client's local decision, for every known version and many serials


def _site_without_answers(files: dict[str, bytes], root: Path) -> Path:
    write_files({p: b for p, b in files.items() if "/from/" not in p}, root)
    return root


def test_precomputed_answers_equal_the_local_decision_for_every_known_version(
        example_files: dict[str, bytes], tmp_path: Path) -> None:
    site_url = "https://firmware.aurora.example/"
    full = DeviceClient(str(write_files(example_files, tmp_path / "full")), site_url=site_url)
    local = DeviceClient(str(_site_without_answers(example_files, tmp_path / "local")), site_url=site_url)
    checked = 0
    for path in sorted(p for p in example_files if "/from/" in p):
        answer = json.loads(example_files[path])["data"]
        candidates = Channel.from_document(
            data(example_files, candidates_path(answer["cohort"], answer["hardware_version"], answer["software_type"])),
            SEMVER)
        for serial in SERIALS[:40]:
            device = DeviceIdentity(cohort=answer["cohort"], hardware_version=answer["hardware_version"],
                                    software_type=answer["software_type"], current_version=answer["current_version"],
                                    serial=serial)
            precomputed = full.check(device)
            decided = local.check(device)
            staged = any(o["staged"] for o in answer["offers"])
            assert (precomputed.source, precomputed.requests) == ("answer", 2 if staged else 1)
            assert (decided.source, decided.requests) == ("candidates", 2)
            assert precomputed.document == decided.document, (path, serial)
            assert precomputed.payload == decided.payload
            expected = oracle(candidates, device.current_version, serial)
            assert (None if decided.payload is None else (decided.version, decided.payload.is_delta)) == expected
            checked += 1
    assert checked > 50 * 40


def test_unknown_versions_are_decided_locally_with_two_requests(example_files: dict[str, bytes],
                                                                tmp_path: Path) -> None:
    client = DeviceClient(str(write_files(example_files, tmp_path)), site_url="https://firmware.aurora.example/")
    dev = client.check(DeviceIdentity("production", "pvt", "2.0.1-dev.7", "AT100-1"))
    assert (dev.source, dev.requests, dev.version) == ("candidates", 2, "2.0.1")
    assert dev.document["artifacts"][0]["delta_from"] is None  # a delta applies only to the exact base version
    assert client.check(DeviceIdentity("production", "pvt", "2.0.0", "AT100-1")).payload.is_delta
    ahead = client.check(DeviceIdentity("production", "pvt", "3.0.0-local", "AT100-1"))
    assert ahead.document == {"up_to_date": True, "current_version": "3.0.0-local", "reason": "latest"}


# --------------------------------------------------------------------------------------------
# Must-pass-through and yanked releases across a whole registry


TINY_RELEASE = """version: "{version}"
{extra}artifacts:
  - hardware_version: evt1
    build_id: "{build}"
    url: {version}/evt1.bin
    size: 100
    sha256: "{sha}"
"""


def _tiny_registry(root: Path, extras: dict[str, str], cohort: list[str]) -> Path:
    shutil.copytree(EXAMPLE_REGISTRY.parent / "tests" / "fixtures" / "base", root)
    for old in (root / "releases").glob("*.yaml"):
        old.unlink()
    for index, (version, extra) in enumerate(extras.items()):
        (root / "releases" / f"{version}.yaml").write_text(TINY_RELEASE.format(
            version=version, extra=extra, build=f"{index + 1:x}" * 40, sha=f"{index + 10:x}" * 64))
    (root / "cohorts" / "stable.yaml").write_text(
        "slug: stable\nname: Stable\nreleases:\n" + "".join(f'  - version: "{v}"\n' for v in cohort))
    return root


def test_a_must_pass_through_release_holds_devices_even_when_the_cohort_does_not_deploy_it(tmp_path: Path) -> None:
    registry = _tiny_registry(tmp_path / "r", {"1.0.0": "", "1.1.0": "must_pass_through: true\n", "2.0.0": ""},
                              ["1.0.0", "2.0.0"])
    files = planned_devices(registry)
    assert data(files, candidates_path("stable", "evt1", None))["must_pass_through"] == ["1.1.0"]
    assert data(files, answer_path("stable", "evt1", None, "1.0.0"))["up_to_date"]["reason"] == "blocked"
    assert data(files, answer_path("stable", "evt1", None, "1.1.0"))["offers"][0]["release"]["version"] == "2.0.0"


def test_a_yanked_must_pass_through_release_holds_nobody(tmp_path: Path) -> None:
    registry = _tiny_registry(tmp_path / "r", {"1.0.0": "", "1.1.0": "must_pass_through: true\nyanked: bad\n",
                                               "2.0.0": ""}, ["1.0.0", "2.0.0"])
    files = planned_devices(registry)
    assert data(files, candidates_path("stable", "evt1", None))["must_pass_through"] == []
    assert data(files, answer_path("stable", "evt1", None, "1.0.0"))["offers"][0]["release"]["version"] == "2.0.0"
    # devices that installed the yanked release still get an answer
    assert data(files, answer_path("stable", "evt1", None, "1.1.0"))["offers"][0]["release"]["version"] == "2.0.0"


def test_cohort_without_hardware_list_covers_every_hardware_version(tmp_path: Path) -> None:
    registry = _tiny_registry(tmp_path / "r", {"1.0.0": "", "2.0.0": ""}, ["2.0.0"])
    files = planned_devices(registry)
    assert channels_of(files) == [("stable", "dvt1", None), ("stable", "evt1", None)]
    assert data(files, candidates_path("stable", "dvt1", None))["candidates"] == []  # no images for dvt1


# --------------------------------------------------------------------------------------------
# Size and speed on large registries


def test_sizes_stay_bounded_for_large_registries() -> None:
    # Speed is measured by `make bench`, not asserted here: shared machines make timings flaky.
    for releases in (500, 2000):
        inputs = synthetic_inputs(releases)
        files = device_documents(inputs, release_views(inputs))
        answers = [len(b) for p, b in files.items() if "/from/" in p]
        # one answer per cohort x hardware x release with an image for it
        assert len(answers) == 3 * 5 * releases
        assert max(answers) < 2048
        assert max(len(b) for p, b in files.items() if p.endswith("candidates.json")) < 8 * 1024


def test_a_1000_release_registry_answers_match_the_local_decision() -> None:
    inputs = synthetic_inputs(1000)
    files = device_documents(inputs, release_views(inputs))
    rng = random.Random(3)
    scheme = scheme_named("semver")
    answer_paths = sorted(p for p in files if "/from/" in p)
    for path in rng.sample(answer_paths, 300):
        answer = json.loads(files[path])["data"]
        channel = Channel.from_document(
            data(files, candidates_path(answer["cohort"], answer["hardware_version"], answer["software_type"])), scheme)
        from relreg.devices.update import answer as local_answer
        from relreg.devices.update import choose_index
        for serial in rng.sample(SERIALS, 10):
            rollouts = data(files, rollouts_path(answer["cohort"], answer["hardware_version"],
                                                 answer["software_type"]))["rollouts"]
            index = choose_index(answer_thresholds(answer["offers"], rollouts), serial, answer["cohort"])
            precomputed = answer["up_to_date"] if index is None else answer["offers"][index]["release"]
            assert precomputed == local_answer(channel, scheme.parse(answer["current_version"]), serial)


# --------------------------------------------------------------------------------------------
# What a rollout change reaches (issue 16): an answer names its staged offers, the percents are in the
# channel's rollouts.json, so moving a staged rollout rewrites a few small files, not every answer.


def _device_jobs_of(registry_dir: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """(every device document, {answer path: the key of the job that wrote it}) of a registry folder."""
    from relreg.site.device_documents import device_jobs
    from relreg.site.jobs import KeyedJob

    inputs = site_inputs(registry_dir, None)
    files: dict[str, bytes] = {}
    keys: dict[str, str] = {}
    for job in device_jobs(inputs, release_views(inputs)):
        made = dict(job())
        files.update(made)
        if isinstance(job, KeyedJob):
            keys.update(dict.fromkeys([path for path in made if "/from/" in path], job.key))
    return files, keys


@pytest.mark.parametrize("percent, answers_change", [
    ("40", False),  # a staged rollout moves on
    ("0.01", False),
    ("0", False),  # paused: the kill switch rewrites no answer
    ("100", True),  # done: devices no longer need the offers below it
])
def test_a_rollout_change_rewrites_the_answers_only_when_a_release_reaches_everybody(
        tmp_path: Path, percent: str, answers_change: bool) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(EXAMPLE_REGISTRY, registry)
    before, before_keys = _device_jobs_of(registry)
    beta = registry / "cohorts" / "beta.yaml"
    beta.write_text(beta.read_text().replace("rollout_percent: 25", f"rollout_percent: {percent}"))
    after, after_keys = _device_jobs_of(registry)

    changed = sorted(p for p in after if after[p] != before.get(p))
    answers = [p for p in changed if "/from/" in p]
    beta_channels = [c for c in channels_of(after) if c[0] == "beta"]
    if answers_change:
        assert answers and all(p.startswith("api/v1/devices/beta/") for p in answers)
    else:
        assert answers == []
        assert changed == sorted([candidates_path(*c) for c in beta_channels if "2.1.1" in _candidates(after, c)]
                                 + [rollouts_path(*c) for c in beta_channels if "2.1.1" in _candidates(after, c)])
        assert after_keys == before_keys  # the writer reuses every answer job as it is
    for channel in beta_channels:  # the rollouts document holds the new percent of every staged release
        rollouts = data(after, rollouts_path(*channel))["rollouts"]
        staged = [c for c in data(after, candidates_path(*channel))["candidates"] if c["rollout_threshold"] < 10000]
        assert rollouts == [{k: c[k] for k in ("version", "rollout_percent", "rollout_threshold")} for c in staged]
    # and the reference client still decides from the answers what it decides from the candidates
    site_url = "https://firmware.aurora.example/"
    full = DeviceClient(str(write_files(after, tmp_path / "full")), site_url=site_url)
    local = DeviceClient(str(_site_without_answers(after, tmp_path / "local")), site_url=site_url)
    for cohort, hardware, software in beta_channels:
        for path in (p for p in after if p.startswith(answer_path(cohort, hardware, software, ""))):
            version = data(after, path)["current_version"]
            for serial in SERIALS[:30]:
                device = DeviceIdentity(cohort, hardware, version, serial, software)
                assert full.check(device).document == local.check(device).document, (path, serial)


def _candidates(files: dict[str, bytes], channel: tuple[str, str, str | None]) -> list[str]:
    return [c["version"] for c in data(files, candidates_path(*channel))["candidates"]]
