"""Attacks on a signed site, staged against both device clients: `relreg device check` (Python) and
`relreg-device-c` (C, AddressSanitizer and UBSan). Tampered documents and signatures, expired and
rolled-back signatures, wrong keys, a signature moved to another path, and tampered images: both
refuse, with the same reason (the stable codes of relreg's signing module), and accept the same
intact site with the same output.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from c_client_helpers import run_c, run_python
from conftest import run_relreg
from device_helpers import rehost_example_registry
from git_helpers import commit_all, init_repo
from test_signing_support import ALL_ROLES, git_date, key_file, keys_yaml, load_key

SITE_URL = "https://fw.attack.test/"
FILES = "files/"
ANSWER = "api/v1/devices/beta/pvt/main/from/2.1.0.json"
OTHER_ANSWER = "api/v1/devices/beta/pvt/main/from/2.1.1.json"
CANDIDATES = "api/v1/devices/beta/pvt/main/candidates.json"
ROLLOUTS = "api/v1/devices/beta/pvt/main/rollouts.json"  # read after ANSWER, whose offer of 2.1.1 is staged
DEVICE = ["--cohort", "beta", "--hardware-version", "pvt", "--software-type", "main", "--serial", "AT100-000123"]


@pytest.fixture(scope="module")
def signed_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example registry, signed with the test key `ci`, its images inside the site folder."""
    base = tmp_path_factory.mktemp("attacks")
    repo = init_repo(base / "repo")
    artifacts = base / "artifacts"
    artifacts.mkdir()
    rehost_example_registry(repo / "registry", SITE_URL, SITE_URL + FILES, artifacts)
    (repo / "registry" / "keys.yaml").write_text(keys_yaml([("ci", ALL_ROLES)]))
    commit_all(repo, "signed registry", git_date(3600))  # signatures expire counting from the commit
    site = base / "site"
    result = run_relreg("build", "--registry", repo / "registry", "--out", site, "--signing-key", key_file("ci"))
    assert result.exit_code == 0, result.output
    shutil.copytree(artifacts, site / FILES)
    return site


def _pin(name: str = "ci", keyid_of: str | None = None) -> str:
    key = load_key(name)
    return f"{(load_key(keyid_of) if keyid_of else key).keyid}={key.public}"


def _both(site: Path, version: str, *extra: str, download: Path | None = None) -> tuple:
    args = ["--site", str(site), *DEVICE, "--current-version", version, *extra]
    python = run_python(*args, *(["--download", str(download / "py")] if download else []))
    c = run_c(*args, *(["--download", str(download / "c")] if download else []))
    return python, c


def _reason(stderr: str) -> str | None:
    marker = ": refused ("
    if marker not in stderr:
        return None
    return stderr.split(marker, 1)[1].split(")", 1)[0]


def _copy(site: Path, tmp_path: Path) -> Path:
    target = tmp_path / "site"
    shutil.copytree(site, target)
    return target


def _resign(site: Path, path: str, **changes: object) -> None:
    """Sign `path` again with the ci key, with some signed fields changed (as a key holder could)."""
    sig_path = site / (path + ".sig")
    signed = json.loads(sig_path.read_bytes())["signed"]
    signed.update(changes)
    message = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    key = load_key("ci")
    signatures = json.dumps([{"keyid": key.keyid, "sig": key.sign(message).hex()}], separators=(",", ":"))
    sig_path.write_bytes(b'{"signatures":' + signatures.encode() + b',"signed":' + message + b"}\n")


def test_an_intact_signed_site_is_accepted_by_both_with_the_same_output(signed_site: Path) -> None:
    for version in ("2.1.0", "2.1.1", "2.1.1-dev.3", "1.0.0"):
        python, c = _both(signed_site, version, "--trust", _pin(), "--exit-code")
        assert python.returncode in (0, 10), python.stderr
        assert (c.returncode, c.stdout, c.stderr) == (python.returncode, python.stdout, python.stderr), version


ATTACKS = {
    # name: (how the site is changed, extra options, current version, expected reason)
    "tampered-document": ("tamper-doc", [], "2.1.0", "digest-mismatch"),
    "tampered-candidates": ("tamper-candidates", [], "2.1.1-dev.3", "digest-mismatch"),
    "tampered-rollouts": ("tamper-rollouts", [], "2.1.0", "digest-mismatch"),
    "missing-rollouts-signature": ("drop-rollouts-sig", [], "2.1.0", "missing-signature"),
    "tampered-signature": ("tamper-sig", [], "2.1.0", "bad-signature"),
    "missing-signature": ("drop-sig", [], "2.1.0", "missing-signature"),
    "malformed-signature": ("garbage-sig", [], "2.1.0", "malformed-signature"),
    "expired": ("expired", [], "2.1.0", "expired"),
    "rolled-back": (None, ["--min-signed-version", "999"], "2.1.0", "rollback"),
    "unknown-key": (None, ["--trust-as", "attacker"], "2.1.0", "unknown-key"),
    "wrong-key-under-the-pinned-id": (None, ["--trust-as", "attacker-under-ci"], "2.1.0", "bad-signature"),
    "signature-moved-to-another-path": ("swap", [], "2.1.0", "wrong-path"),
    "not-a-relreg-document": ("wrong-type", [], "2.1.0", "wrong-type"),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_both_clients_refuse_an_attack_with_the_same_reason(name: str, signed_site: Path, tmp_path: Path) -> None:
    change, extra, version, reason = ATTACKS[name]
    site = _copy(signed_site, tmp_path)
    if change in ("tamper-doc", "tamper-candidates", "tamper-rollouts", "swap"):
        shutil.rmtree(site / "tuf" / "targets")  # no intact copy named by the signature to fall back on
    target = {"tamper-candidates": CANDIDATES, "tamper-rollouts": ROLLOUTS,
              "drop-rollouts-sig": ROLLOUTS}.get(change or "", ANSWER)
    if change in ("tamper-doc", "tamper-candidates", "tamper-rollouts"):
        document = site / target
        document.write_bytes(document.read_bytes().replace(b'"beta"', b'"beta" ', 1))
    elif change == "tamper-sig":
        sig = site / (target + ".sig")
        sig.write_bytes(sig.read_bytes().replace(b'"version":', b'"version":1', 1))
    elif change in ("drop-sig", "drop-rollouts-sig"):
        (site / (target + ".sig")).unlink()
    elif change == "garbage-sig":
        (site / (target + ".sig")).write_bytes(b'{"signatures":[{"keyid":"x"}],"signed":{}}\n')
    elif change == "expired":
        _resign(site, target, expires=1_000_000_000)
    elif change == "wrong-type":
        _resign(site, target, _type="tuf-targets")
    elif change == "swap":  # another answer, with its own valid signature, served at this path
        (site / target).write_bytes((site / OTHER_ANSWER).read_bytes())
        (site / (target + ".sig")).write_bytes((site / (OTHER_ANSWER + ".sig")).read_bytes())
    pins = ["--trust", _pin()]
    if "--trust-as" in extra:
        who = extra[extra.index("--trust-as") + 1]
        pins = ["--trust", _pin("attacker")] if who == "attacker" else ["--trust", _pin("attacker", keyid_of="ci")]
        extra = []
    python, c = _both(site, version, *pins, *extra)
    assert python.returncode == 1 and c.returncode == 1, (python.stderr, c.stderr)
    assert python.stdout == c.stdout == ""
    assert _reason(python.stderr) == reason, python.stderr
    assert _reason(c.stderr) == reason, c.stderr
    # the refusal names the same document
    assert python.stderr.split(": refused")[0] == c.stderr.split(": refused")[0]
    assert (target.rsplit("/", 1)[-1] + ": refused" in python.stderr) or change is None or target == ANSWER


def test_a_rollouts_document_older_than_its_answer_counts_as_0_percent_for_both(tmp_path: Path) -> None:
    """A cache between two builds serves the new answer with the previous build's rollouts document (and its
    signature): its signed version is below the answer's, which the device has just accepted. Neither client
    reads it (its percents may be ones since lowered: here the rollout was paused), nor stops: the staged
    offer counts as 0 %, as one the rollouts document does not list (docs/devices.md). A document older than
    one accepted before is still refused when it is the answer."""
    repo = init_repo(tmp_path / "repo")
    rehost_example_registry(repo / "registry", SITE_URL, SITE_URL + FILES, tmp_path / "artifacts")
    (repo / "registry" / "keys.yaml").write_text(keys_yaml([("ci", ALL_ROLES)]))
    commit_all(repo, "signed registry", git_date(7200))
    builds = {}
    for name in ("before", "after"):
        if name == "after":  # the kill switch: 2.1.1 paused in beta, a rollouts-only change
            beta = repo / "registry" / "cohorts" / "beta.yaml"
            beta.write_text(beta.read_text().replace("rollout_percent: 25", "rollout_percent: 0"))
            commit_all(repo, "pause 2.1.1 in beta", git_date(3600))
        builds[name] = tmp_path / name
        result = run_relreg("build", "--registry", repo / "registry", "--out", builds[name], "--signing-key",
                            key_file("ci"))
        assert result.exit_code == 0, result.output
    versions = {name: json.loads((site / (ROLLOUTS + ".sig")).read_bytes())["signed"]["version"]
                for name, site in builds.items()}
    assert versions["before"] < versions["after"]
    assert (builds["before"] / ANSWER).read_bytes() == (builds["after"] / ANSWER).read_bytes()  # staged in both
    mixed = tmp_path / "mixed"
    shutil.copytree(builds["after"], mixed)
    for suffix in ("", ".sig"):
        shutil.copyfile(builds["before"] / (ROLLOUTS + suffix), mixed / (ROLLOUTS + suffix))

    def check(site: Path, serial: str, *extra: str) -> tuple:
        args = ["--site", str(site), *DEVICE[:-2], "--serial", serial, "--current-version", "2.1.0",
                "--trust", _pin(), *extra]
        return run_python(*args), run_c(*args)

    pushed = 0  # devices the stale 25 % would have pushed into 2.1.1
    for serial in [f"SN-{n}" for n in range(16)]:
        python, c = check(mixed, serial)
        assert (c.returncode, c.stdout, c.stderr) == (python.returncode, python.stdout, python.stderr), serial
        assert python.returncode == 0, python.stderr
        assert json.loads(python.stdout).get("up_to_date") is True, python.stdout  # 2.1.1 is not offered
        paused, _ = check(builds["after"], serial)
        assert python.stdout == paused.stdout  # what the paused rollout gives
        stale, _ = check(builds["before"], serial)
        pushed += '"version": "2.1.1"' in stale.stdout
    assert pushed > 0, "some devices were in the 25 % rollout the stale document still lists"
    # the answer itself is never taken from an older build than one accepted before
    python, c = check(mixed, "SN-1", "--min-signed-version", str(versions["after"] + 1))
    assert python.returncode == c.returncode == 1
    assert _reason(python.stderr) == _reason(c.stderr) == "rollback"
    assert python.stderr.split(": refused")[0] == c.stderr.split(": refused")[0]
    assert python.stderr.split(": refused")[0].endswith(ANSWER)


def test_a_tampered_document_is_recovered_from_its_content_addressed_copy_by_both(signed_site: Path,
                                                                                  tmp_path: Path) -> None:
    site = _copy(signed_site, tmp_path)
    intact = _both(site, "2.1.0", "--trust", _pin())
    document = site / ANSWER
    document.write_bytes(document.read_bytes().replace(b'"beta"', b'"beta" ', 1))
    python, c = _both(site, "2.1.0", "--trust", _pin())
    assert python.returncode == 0 and python.stdout == intact[0].stdout
    assert (c.returncode, c.stdout) == (0, intact[1].stdout)


def test_without_a_pin_neither_client_checks_signatures(signed_site: Path, tmp_path: Path) -> None:
    site = _copy(signed_site, tmp_path)
    (site / (ANSWER + ".sig")).unlink()
    python, c = _both(site, "2.1.0")
    assert python.returncode == 0 and (c.returncode, c.stdout) == (0, python.stdout)


@pytest.mark.parametrize("change", ["same-size-other-bytes", "truncated", "longer"])
def test_both_clients_refuse_a_tampered_image_with_the_same_message(change: str, signed_site: Path,
                                                                    tmp_path: Path) -> None:
    site = _copy(signed_site, tmp_path)
    intact_py, intact_c = _both(site, "2.0.0", "--trust", _pin(), download=tmp_path / "ok")
    assert intact_py.returncode == 0 and intact_c.returncode == 0, (intact_py.stderr, intact_c.stderr)
    release = json.loads(intact_py.stdout)
    filename = release["artifacts"][0]["filename"]
    image_py = (tmp_path / "ok" / "py" / filename).read_bytes()
    assert (tmp_path / "ok" / "c" / filename).read_bytes() == image_py
    assert hashlib.sha256(image_py).hexdigest() == release["artifacts"][0]["sha256"]
    assert intact_c.stderr.replace("/c/", "/py/") == intact_py.stderr

    url = release["artifacts"][0]["url"]
    stored = site / url.removeprefix(SITE_URL)
    content = stored.read_bytes()
    stored.write_bytes({"same-size-other-bytes": content[:-1] + bytes([content[-1] ^ 1]),
                        "truncated": content[:-10], "longer": content + b"\0"}[change])
    python, c = _both(site, "2.0.0", "--trust", _pin(), download=tmp_path / "bad")
    assert python.returncode == 1 and c.returncode == 1
    assert python.stdout == c.stdout == intact_py.stdout  # the answer is printed, then the image refused
    assert c.stderr == python.stderr and url in c.stderr, (python.stderr, c.stderr)
    for folder in ("py", "c"):  # nothing left behind
        assert not any((tmp_path / "bad" / folder).iterdir())
