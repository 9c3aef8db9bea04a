"""Keys and detached document signatures: the small-device path, and every attack staged against it.

The device side is `relreg.trust.signing.verify_document`, the reference the device client calls: one
Ed25519 verification with a pinned key over the exact served bytes' digest, version and expiry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest
from api_schemas import _schemas, api_schema_errors, schema_names_for
from click.testing import CliRunner
from test_signing_support import (
    ALL_ROLES,
    build,
    device_documents,
    key_bundle,
    key_file,
    keys_yaml,
    load_key,
    next_commit,
    signed_repo,
)

from relreg.cli.keys import keys as keys_group
from relreg.cli.keys import sign as sign_command
from relreg.trust import signing
from relreg.trust.keys import ENV_VAR, SigningKeyError, keyid_of, load_private_keys, parse_keys_file
from relreg.trust.signing import (
    BadSignature,
    DigestMismatch,
    Expired,
    MalformedSignature,
    Rollback,
    ThresholdNotMet,
    UnknownKey,
    WrongPath,
    WrongType,
    verify_document,
)
from relreg.trust.tufrepo import SigningError

CI = load_key("ci")
SECOND = load_key("second")
ATTACKER = load_key("attacker")
PINNED = {CI.keyid: CI.public}


# --- one registry, two builds (an older A and a newer B) ---------------------------------------

@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("signing")
    repo = signed_repo(base / "repo", keys_yaml([("ci", ALL_ROLES)]), hours_ago=3)
    build(repo, base / "a", key_file("ci"))
    next_commit(repo, hours_ago=2)
    report = build(repo, base / "b", key_file("ci"))
    return {"a": base / "a", "b": base / "b", "repo": repo, "warnings": report.warnings}  # type: ignore[dict-item]


def _pair(site: Path, path: str) -> tuple[bytes, bytes]:
    return (site / path).read_bytes(), (site / (path + ".sig")).read_bytes()


def _signed(sig: bytes) -> dict:
    return json.loads(sig)["signed"]


def test_every_device_document_and_the_entry_point_are_signed_over_the_served_bytes(builds: dict[str, Path]) -> None:
    site = builds["b"]
    documents = device_documents(site)
    assert documents, "the build has device documents to sign"
    for path in [*documents, "api/v1/index.json"]:
        document, sig = _pair(site, path)
        signed = _signed(sig)
        assert signed["sha256"] == hashlib.sha256(document).hexdigest() and signed["length"] == len(document)
        assert signed["path"] == path and signed["version"] == 2
        result = verify_document(document, sig, PINNED, time.time(), min_version=2, path=path)
        assert result.version == 2 and result.keyids == (CI.keyid,)
    # only those: release lists and the HTML are for people
    signed_paths = {p.relative_to(site).as_posix() for p in site.rglob("*.sig")}
    assert signed_paths == {p + ".sig" for p in [*documents, "api/v1/index.json"]}


def test_the_signed_bytes_are_a_byte_range_of_the_signature_file(builds: dict[str, Path]) -> None:
    """What a C client does: verify Ed25519 over the bytes after ,"signed": up to the final }."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    _, sig = _pair(builds["b"], "api/v1/index.json")
    assert sig.endswith(b"}}\n")
    start = sig.index(b',"signed":') + len(b',"signed":')
    signed_bytes = sig[start:-2]
    entry = json.loads(sig)["signatures"][0]
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(CI.public)).verify(bytes.fromhex(entry["sig"]), signed_bytes)
    assert signed_bytes == signing.canonical_json(json.loads(sig)["signed"])


def test_a_verified_signature_names_an_immutable_copy_of_its_document(builds: dict[str, Path]) -> None:
    """Signature first, then the document: a CDN edge with B's signature but still A's document cannot
    stall a device, which falls back to the document's content-addressed copy."""
    path = "api/v1/index.json"
    _, sig = _pair(builds["b"], path)
    verified = signing.verify_signature(sig, PINNED, time.time(), min_version=1, path=path)
    stale = (builds["a"] / path).read_bytes()
    with pytest.raises(DigestMismatch):
        verified.check(stale)
    copy = builds["b"] / signing.content_addressed_path(path, verified.sha256)
    verified.check(copy.read_bytes())
    assert verify_document(copy.read_bytes(), sig, PINNED, time.time(), path=path) == verified


def test_tampered_document_is_refused(builds: dict[str, Path]) -> None:
    path = device_documents(builds["b"])[0]
    document, sig = _pair(builds["b"], path)
    tampered = document.replace(b'"', b"'", 1)
    with pytest.raises(DigestMismatch, match="digest-mismatch: the document's bytes are not the signed ones"):
        verify_document(tampered, sig, PINNED, time.time(), path=path)
    with pytest.raises(DigestMismatch):
        verify_document(document + b" ", sig, PINNED, time.time(), path=path)


def test_tampered_signed_fields_break_the_signature(builds: dict[str, Path]) -> None:
    document, sig = _pair(builds["b"], "api/v1/index.json")
    later = sig.replace(b'"expires":', b'"expires":9', 1)  # push the expiry out
    with pytest.raises(BadSignature, match="bad-signature: the signature by key"):
        verify_document(document, later, PINNED, time.time())


def test_replayed_older_document_is_refused_as_rollback(builds: dict[str, Path]) -> None:
    path = "api/v1/index.json"
    old_document, old_sig = _pair(builds["a"], path)
    accepted = verify_document(*_pair(builds["b"], path), PINNED, time.time(), path=path)  # the device saw B
    assert accepted.version == 2 and verify_document(old_document, old_sig, PINNED, time.time()).version == 1
    with pytest.raises(Rollback, match="rollback: version 1 is older than version 2 accepted before"):
        verify_document(old_document, old_sig, PINNED, time.time(), min_version=accepted.version, path=path)


def test_expired_signature_is_refused_as_freeze(builds: dict[str, Path]) -> None:
    document, sig = _pair(builds["b"], "api/v1/index.json")
    expires = _signed(sig)["expires"]
    verify_document(document, sig, PINNED, expires - 1)
    with pytest.raises(Expired, match="expired: the signature expired at"):
        verify_document(document, sig, PINNED, expires)


def test_documents_mixed_from_two_builds_are_refused(builds: dict[str, Path]) -> None:
    path = "api/v1/index.json"
    document_a, _ = _pair(builds["a"], path)
    _, sig_b = _pair(builds["b"], path)
    assert document_a != _pair(builds["b"], path)[0]
    with pytest.raises(DigestMismatch):
        verify_document(document_a, sig_b, PINNED, time.time(), path=path)


def test_a_signed_document_served_at_another_path_is_refused(builds: dict[str, Path]) -> None:
    first, second = device_documents(builds["b"])[:2]
    document, sig = _pair(builds["b"], first)
    with pytest.raises(WrongPath, match=f"wrong-path: the signature is for {first}, not {second}"):
        verify_document(document, sig, PINNED, time.time(), path=second)


def test_document_signed_by_an_unknown_key_is_refused(builds: dict[str, Path]) -> None:
    path = "api/v1/index.json"
    document, _ = _pair(builds["b"], path)
    forged = signing.sign_document(path, document, 99, int(time.time()) + 3600, [ATTACKER])
    with pytest.raises(UnknownKey, match="unknown-key: no signature by a trusted key"):
        verify_document(document, forged, PINNED, time.time(), path=path)

    class Impostor:  # the attacker's key, presented under the trusted key id
        keyid = CI.keyid

        def sign(self, message: bytes) -> bytes:
            return ATTACKER.sign(message)

    impostor = signing.sign_document(path, document, 99, int(time.time()) + 3600, [Impostor()])
    with pytest.raises(BadSignature):
        verify_document(document, impostor, PINNED, time.time(), path=path)


def test_threshold_not_met_is_refused_and_met_is_accepted(builds: dict[str, Path]) -> None:
    path = "api/v1/index.json"
    document, sig = _pair(builds["b"], path)
    both = {CI.keyid: CI.public, SECOND.keyid: SECOND.public}
    with pytest.raises(ThresholdNotMet, match="threshold-not-met: 1 of the required 2 trusted keys signed it"):
        verify_document(document, sig, both, time.time(), threshold=2)
    twice = signing.sign_document(path, document, 2, int(time.time()) + 3600, [CI, SECOND])
    assert verify_document(document, twice, both, time.time(), threshold=2).keyids == tuple(sorted(both))
    # one key signing twice does not count twice
    doubled = twice.replace(SECOND.keyid.encode(), CI.keyid.encode())
    with pytest.raises((ThresholdNotMet, BadSignature)):
        verify_document(document, doubled, both, time.time(), threshold=2)


def test_malformed_or_foreign_signatures_are_refused(builds: dict[str, Path]) -> None:
    document, sig = _pair(builds["b"], "api/v1/index.json")
    for broken in (b"", b"{}", sig[:-10], b"not json at all"):
        with pytest.raises(MalformedSignature):
            verify_document(document, broken, PINNED, time.time())
    # a TUF metadata signature by the same key is not a document signature
    timestamp = (builds["b"] / "tuf/timestamp.json").read_bytes()
    as_document = b'{"signatures":' + json.dumps(json.loads(timestamp)["signatures"], separators=(",", ":")).encode() \
        + b',"signed":' + signing.canonical_json(json.loads(timestamp)["signed"]) + b"}\n"
    with pytest.raises(WrongType, match="wrong-type"):
        verify_document(document, as_document, PINNED, time.time())


def test_rotation_two_document_keys_sign_and_either_pin_is_accepted(tmp_path: Path) -> None:
    repo = signed_repo(tmp_path / "repo", keys_yaml([("ci", ALL_ROLES), ("second", ["documents"])]), hours_ago=1)
    site = tmp_path / "site"
    build(repo, site, key_bundle(tmp_path, "ci", "second"))
    document, sig = _pair(site, "api/v1/index.json")
    assert [s["keyid"] for s in json.loads(sig)["signatures"]] == sorted([CI.keyid, SECOND.keyid])
    for pinned in ({CI.keyid: CI.public}, {SECOND.keyid: SECOND.public}):
        verify_document(document, sig, pinned, time.time())
    published = json.loads((site / "api/v1/keys.json").read_bytes())["data"]
    assert {k["keyid"]: k["roles"] for k in published["keys"]} == {CI.keyid: list(ALL_ROLES),
                                                                   SECOND.keyid: ["documents"]}


def test_keys_json_is_published_and_covered_by_one_output_schema(builds: dict[str, Path]) -> None:
    assert api_schema_errors(builds["b"]) == []  # every JSON document under api/ of a signed site
    assert schema_names_for("api/v1/keys.json") == ["signature-keys.schema.json"]
    document = json.loads((builds["b"] / "api/v1/keys.json").read_bytes())
    assert list(_schemas()[0]["signature-keys.schema.json"].iter_errors(document)) == []
    assert document["data"]["keys"][0]["keyid"] == CI.keyid
    assert schema_names_for("api/v1/index.json.sig") == []  # .sig files are not JSON documents of the API


# --- refresh of document signatures -----------------------------------------------------------

def test_refresh_documents_renews_expiry_and_keeps_the_version(builds: dict[str, Path], tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(builds["b"], site)
    path = "api/v1/index.json"
    before = _signed(_pair(site, path)[1])
    later = int(time.time()) + 10 * 86400
    result = CliRunner().invoke(sign_command, ["--refresh", "--documents", "--out", str(site),
                                               "--signing-key", str(key_file("ci"))], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "renewed" in result.output
    after = verify_document(*_pair(site, path), PINNED, later, min_version=before["version"], path=path)
    assert after.version == before["version"] and after.expires > before["expires"]
    # a document changed on the server is never re-signed by a refresh
    device_path = site / device_documents(site)[0]
    device_path.write_bytes(device_path.read_bytes() + b" ")
    result = CliRunner().invoke(sign_command, ["--refresh", "--documents", "--out", str(site),
                                               "--signing-key", str(key_file("ci"))])
    assert result.exit_code == 1 and "digest-mismatch" in result.output


def test_refresh_waits_for_no_build_it_is_refused_while_one_holds_the_output(builds: dict[str, Path],
                                                                             tmp_path: Path) -> None:
    """A refresh during a build into the same folder could leave signatures of the old site beside the new
    documents; it is refused, as a second build is, and changes nothing."""
    import fcntl

    site = tmp_path / "site"
    shutil.copytree(builds["b"], site)
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    descriptor = os.open(tmp_path / ".site.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(descriptor, fcntl.LOCK_EX)  # what a running build holds
    try:
        result = CliRunner().invoke(sign_command, ["--refresh", "--documents", "--out", str(site),
                                                   "--signing-key", str(key_file("ci"))])
    finally:
        os.close(descriptor)
    assert result.exit_code == 1 and "a relreg build is writing --out" in result.output, result.output
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == before
    result = CliRunner().invoke(sign_command, ["--refresh", "--out", str(site), "--signing-key", str(key_file("ci"))])
    assert result.exit_code == 0, result.output  # once the build is done


# --- keys ---------------------------------------------------------------------------------------

def test_keys_generate_writes_a_private_file_and_prints_only_the_public_entry(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    registry.mkdir()
    private = tmp_path / "secret" / "ci.pem"
    private.parent.mkdir()
    result = CliRunner().invoke(
        keys_group, ["generate", "--private", str(private), "--name", "ci-2025", "--registry", str(registry)],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    pem = private.read_bytes()
    body = b"".join(pem.splitlines()[1:-1]).decode()
    assert "PRIVATE" not in result.output and body not in result.output
    key = load_private_keys(private)[0]
    config = parse_keys_file((registry / "keys.yaml").read_bytes(), "keys.yaml")
    assert [(k.keyid, k.public, k.name, k.roles) for k in config.keys] == [
        (key.keyid, key.public, "ci-2025", ALL_ROLES)]
    # the key id is python-tuf's (securesystemslib's default key id)
    from securesystemslib.signer import SSlibKey
    assert SSlibKey.from_crypto(key.key.public_key()).keyid == key.keyid == keyid_of(key.public)
    # a second key is appended; an existing private key file is never overwritten
    again = CliRunner().invoke(keys_group, ["generate", "--private", str(tmp_path / "two.pem"), "--role", "documents",
                                            "--registry", str(registry)], catch_exceptions=False)
    assert again.exit_code == 0
    assert len(parse_keys_file((registry / "keys.yaml").read_bytes(), "keys.yaml").keys) == 2
    refused = CliRunner().invoke(keys_group, ["generate", "--private", str(private)])
    assert refused.exit_code == 1 and "refusing to overwrite" in refused.output
    assert private.read_bytes() == pem


def test_private_keys_load_from_a_file_or_the_environment_and_errors_never_show_them(tmp_path: Path) -> None:
    pem = key_file("ci").read_bytes()
    assert load_private_keys(None, {ENV_VAR: pem.decode()})[0].keyid == CI.keyid
    assert load_private_keys(None, {ENV_VAR: base64.b64encode(pem).decode()})[0].keyid == CI.keyid
    assert [k.keyid for k in load_private_keys(key_bundle(tmp_path, "ci", "second"))] == [CI.keyid, SECOND.keyid]
    assert load_private_keys(None, {}) == []
    damaged = pem.replace(pem.splitlines()[1][:8], b"AAAAAAAA")
    with pytest.raises(SigningKeyError) as caught:
        load_private_keys(None, {ENV_VAR: damaged.decode()})
    assert ENV_VAR in caught.value.message and pem.splitlines()[1][8:].decode() not in caught.value.message
    assert "PrivateKey(keyid=" in repr(CI) and CI.public not in repr(CI)


def test_keys_file_errors_name_the_line(tmp_path: Path) -> None:
    text = keys_yaml([("ci", ALL_ROLES)]).replace(CI.keyid, SECOND.keyid)
    with pytest.raises(SigningKeyError, match=r"keys.yaml:2:\d+: keys\[0\].keyid does not match its public key"):
        parse_keys_file(text.encode(), "keys.yaml")
    with pytest.raises(SigningKeyError, match="role 'targets' needs 2 signature"):
        parse_keys_file(keys_yaml([("ci", ALL_ROLES)], thresholds={"targets": 2}).encode(), "keys.yaml")
    with pytest.raises(SigningKeyError, match=r"keys.yaml:5:\d+: keys.0.roles.0: 'owner' is not one of"):
        parse_keys_file(keys_yaml([("ci", ["owner"])]).encode(), "keys.yaml")


@pytest.mark.parametrize("command", ["validate", "check"])
def test_validate_and_check_report_keys_yaml_problems_at_their_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  command: str) -> None:
    """A keys.yaml broken in a pull request is caught by the pull request's check, not by the publish job."""
    from conftest import run_relreg
    from git_helpers import commit_all

    repo = signed_repo(tmp_path / "repo", keys_yaml([("ci", ALL_ROLES)]))
    keys = repo / "registry" / "keys.yaml"
    keys.write_text(keys.read_text().replace(CI.keyid, SECOND.keyid))
    commit_all(repo, "a typo in keys.yaml", "2026-01-02T10:00:00+00:00")
    monkeypatch.chdir(repo)
    arguments = ["--registry", "registry", "--format", "json"] + (["--base", "HEAD~1"] if command == "check" else [])
    result = run_relreg(command, *arguments)
    assert result.exit_code == 1, result.output
    found = json.loads(result.stdout)["diagnostics"]
    assert [(d["path"], d["line"], d["rule"]) for d in found] == [("registry/keys.yaml", 2, "keys-file")]
    assert "keys[0].keyid does not match its public key" in found[0]["message"]


def test_build_refuses_a_key_that_keys_yaml_does_not_list(builds: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="is not listed in keys.yaml"):
        build(builds["repo"], tmp_path / "out", key_file("attacker"))
    assert not (tmp_path / "out").exists()


def test_build_with_the_key_in_the_environment(builds: dict[str, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, key_file("ci").read_text())
    build(builds["repo"], tmp_path / "out", None)
    assert (tmp_path / "out/tuf/timestamp.json").read_bytes() == (builds["b"] / "tuf/timestamp.json").read_bytes()
    monkeypatch.delenv(ENV_VAR)
    report = build(builds["repo"], tmp_path / "unsigned", None)
    assert not (tmp_path / "unsigned/tuf").exists()
    assert any("the site is NOT signed" in warning for warning in report.warnings)


def test_device_cli_verifies_pinned_signatures(builds: dict[str, Path], tmp_path: Path) -> None:
    from conftest import run_relreg

    answer = next(p for p in device_documents(builds["b"]) if "/from/" in p and "/_/" in p)
    _, _, _, cohort, hardware, _, _, version = answer.removesuffix(".json").split("/")
    pin = f"{CI.keyid}={CI.public}"
    arguments = ["latest", "--cohort", cohort, "--hardware-version", hardware, "--current-version", version,
                 "--serial", "SN-1", "--trust", pin]
    trusted = run_relreg(*arguments, "--site", builds["b"])
    assert trusted.exit_code in (0, 10), trusted.output

    tampered = tmp_path / "site"
    shutil.copytree(builds["b"], tampered)
    document = tampered / answer
    document.write_bytes(document.read_bytes().replace(b'"', b"'", 1))
    recovered = run_relreg(*arguments, "--site", tampered)  # the signature names an intact copy: used instead
    assert (recovered.exit_code, recovered.output) == (trusted.exit_code, trusted.output)

    shutil.rmtree(tampered / "tuf")  # no intact copy left anywhere: the device must refuse
    refused = run_relreg(*arguments, "--site", tampered)
    assert refused.exit_code == 1
    assert "digest-mismatch" in refused.output, refused.output
    size = (tampered / answer).stat().st_size  # the bytes it got, not the missing copy's "0 bytes"
    assert f"({size} bytes, signed {size})" in refused.output and "its signed copy is not on the site" in refused.output

    unpinned = run_relreg(*arguments[:-2], "--site", tampered)  # without a pin nothing is checked
    assert unpinned.exit_code != 1 or "digest-mismatch" not in unpinned.output


@pytest.mark.parametrize("days_ago, expired", [(0, None), (8, "timestamp"), (31, "documents and timestamp")])
def test_a_build_of_a_commit_whose_signatures_are_already_expired_warns(tmp_path: Path, days_ago: int,
                                                                        expired: str | None) -> None:
    """Expiry counts from the commit's date (the same commit, the same bytes): an old commit is signed expired.
    Defaults: the timestamp lives 7 days, document signatures 30."""
    repo = signed_repo(tmp_path / "repo", keys_yaml([("ci", ALL_ROLES)]), hours_ago=24 * days_ago + 1)
    report = build(repo, tmp_path / "site", key_file("ci"))
    warned = [w for w in report.warnings if "have expired already" in w]
    if expired is None:
        assert warned == []
    else:
        assert len(warned) == 1 and f"the {expired} signatures" in warned[0]
        assert "relreg sign --refresh --documents" in warned[0]
