"""Detached signatures of device-facing documents, for devices too small for TUF.

PURE: no disk, no clock, no git. Versions, expiry dates and keys are inputs.

Every device-facing document (paths under api/v1/devices/) and the API entry
point api/v1/index.json gets a signature file next to it, `<document>.sig`.
The document's bytes are served unchanged; the signature file is one line of
canonical JSON (sorted keys, no spaces, ASCII):

    {"signatures":[{"keyid":"<64 hex>","sig":"<128 hex>"}, ...],
     "signed":{"_type":"relreg-document","expires":<unix seconds>,"length":<bytes>,
               "path":"api/v1/...json","sha256":"<64 hex>","spec_version":1,"version":<n>}}

Each `sig` is an Ed25519 signature over the exact bytes of the `signed`
object as they appear in the file: everything after `"signed":` up to the
closing `}` of the file (the file ends in `}}` and a newline). A device:

1. reads the .sig file, finds a signature whose keyid it pins, and checks it
   with one Ed25519 verification over those bytes (several signatures appear
   while keys are rotated: any one trusted key suffices, unless the device
   asks for more);
2. only then reads the signed fields: `_type` must be "relreg-document",
   `path` the path it asked for, `sha256` and `length` those of the document
   bytes it received, `expires` later than its clock, and `version` at least
   the highest version it has accepted before (it stores that number);
3. acts on the document only when all of that holds.

`version` only grows from one build to the next (the registry's first-parent
commit count); `expires` is renewed by `relreg sign --refresh --documents`
without changing the version. `verify_document` below is the reference
implementation of those steps.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SIG_SUFFIX = ".sig"
DOCUMENT_TYPE = "relreg-document"
SPEC_VERSION = 1
# Which planned files get a detached signature.
SIGNED_DOCUMENTS = (re.compile(r"^api/v1/devices/.+\.json$"), re.compile(r"^api/v1/index\.json$"))

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX128 = re.compile(r"^[0-9a-f]{128}$")
_SIGNED_MARK = b',"signed":'


class Signer(Protocol):
    keyid: str

    def sign(self, message: bytes) -> bytes: ...


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, ASCII only, no floats: the same bytes wherever it is produced."""
    def check(item: Any) -> None:
        if isinstance(item, float):
            raise ValueError("canonical JSON holds no floating-point numbers")
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise ValueError("canonical JSON keys are strings")
                check(inner)
        elif isinstance(item, (list, tuple)):
            for inner in item:
                check(inner)
    check(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def content_addressed_path(path: str, sha256: str) -> str:
    """The immutable copy of a document in a signed site: tuf/targets/<dir>/<sha256>.<name>.

    A device that verified a .sig can fetch the document from here instead of
    (or after a digest mismatch on) its plain URL, so a CDN that has the new
    signature but still the old document (or the reverse) cannot stall it.
    """
    folder, _, name = path.rpartition("/")
    return f"tuf/targets/{folder + '/' if folder else ''}{sha256}.{name}"


def is_signed_document(path: str) -> bool:
    return any(pattern.match(path) for pattern in SIGNED_DOCUMENTS)


def signed_fields(path: str, document: bytes, version: int, expires: int) -> dict[str, Any]:
    return {"_type": DOCUMENT_TYPE, "spec_version": SPEC_VERSION, "path": path,
            "sha256": hashlib.sha256(document).hexdigest(), "length": len(document),
            "version": int(version), "expires": int(expires)}


def signature_file(signed: Mapping[str, Any], signers: Iterable[Signer]) -> bytes:
    """The .sig file for `signed`, signed by every signer (sorted by key id, so the bytes are stable)."""
    message = canonical_json(dict(signed))
    signatures = [{"keyid": signer.keyid, "sig": signer.sign(message).hex()}
                  for signer in sorted(signers, key=lambda s: s.keyid)]
    if not signatures:
        raise ValueError("a signature file needs at least one signing key")
    # `signatures` sorts before `signed`: the file is itself canonical JSON and ends with the signed bytes.
    return b'{"signatures":' + canonical_json(signatures) + _SIGNED_MARK + message + b"}\n"


def sign_document(path: str, document: bytes, version: int, expires: int, signers: Iterable[Signer]) -> bytes:
    return signature_file(signed_fields(path, document, version, expires), signers)


def sign_documents(files: Mapping[str, bytes], version: int, expires: int,
                   signers: Iterable[Signer]) -> dict[str, bytes]:
    """{path + '.sig': signature file} for every document of `files` that devices verify."""
    signers = list(signers)
    return {path + SIG_SUFFIX: sign_document(path, content, version, expires, signers)
            for path, content in files.items() if is_signed_document(path)}


# --- verification (the reference for device clients) -------------------------------------------

class DocumentRefused(Exception):
    """A document failed verification. `reason` is a stable code; the message says what was wrong."""

    reason = "refused"

    def __init__(self, message: str) -> None:
        super().__init__(f"{self.reason}: {message}")
        self.detail = message


class MalformedSignature(DocumentRefused):
    reason = "malformed-signature"


class UnknownKey(DocumentRefused):
    reason = "unknown-key"


class BadSignature(DocumentRefused):
    reason = "bad-signature"


class ThresholdNotMet(DocumentRefused):
    reason = "threshold-not-met"


class WrongType(DocumentRefused):
    reason = "wrong-type"


class WrongPath(DocumentRefused):
    reason = "wrong-path"


class DigestMismatch(DocumentRefused):
    reason = "digest-mismatch"


class Expired(DocumentRefused):
    reason = "expired"


class Rollback(DocumentRefused):
    reason = "rollback"


@dataclass(frozen=True)
class VerifiedDocument:
    path: str
    version: int  # store it: the next document must have at least this version
    expires: int
    keyids: tuple[str, ...]  # the trusted keys whose signatures verified
    sha256: str  # of the signed document: fetch it from content_addressed_path(path, sha256) if need be
    length: int

    def check(self, doc_bytes: bytes) -> None:
        """DigestMismatch unless `doc_bytes` are exactly the signed document."""
        if len(doc_bytes) != self.length or hashlib.sha256(doc_bytes).hexdigest() != self.sha256:
            raise DigestMismatch(f"the document's bytes are not the signed ones ({len(doc_bytes)} bytes, "
                                 f"signed {self.length})")


def _unix(now: int | float | datetime) -> int:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        return int(now.timestamp())
    return int(now)


def _public_key(value: str | bytes | Ed25519PublicKey) -> Ed25519PublicKey:
    if isinstance(value, Ed25519PublicKey):
        return value
    raw = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
    return Ed25519PublicKey.from_public_bytes(raw)


def _split(sig_bytes: bytes) -> tuple[list[Any], bytes]:
    """The signature list and the exact signed bytes of a .sig file."""
    body = sig_bytes[:-1] if sig_bytes.endswith(b"\n") else sig_bytes
    if not body.startswith(b'{"signatures":') or not body.endswith(b"}}"):
        raise MalformedSignature("not a relreg signature file")
    index = body.rfind(_SIGNED_MARK)
    if index < 0:
        raise MalformedSignature("no signed part")
    try:
        signatures = json.loads(body[len(b'{"signatures":'):index])
    except ValueError:
        raise MalformedSignature("the signature list is not JSON") from None
    return signatures, body[index + len(_SIGNED_MARK):-1]


def verify_document(doc_bytes: bytes, sig_bytes: bytes, trusted_keys: Mapping[str, str | bytes | Ed25519PublicKey],
                    now: int | float | datetime, min_version: int = 0, *, path: str | None = None,
                    threshold: int = 1) -> VerifiedDocument:
    """Check a document against its detached signature; raise a DocumentRefused subclass on any failure.

    trusted_keys: {keyid: Ed25519 public key (64 hex, 32 raw bytes, or a key object)}, the keys the
    device pins. now: the device's clock (unix seconds or datetime). min_version: the highest version
    accepted before (the returned version is at least this). path: the path the document was asked
    for (recommended: binds the signature to it, so one signed document cannot stand in for another).
    threshold: how many distinct trusted keys must have signed (1 for a single pinned key).
    """
    verified = verify_signature(sig_bytes, trusted_keys, now, min_version, path=path, threshold=threshold)
    verified.check(doc_bytes)
    return verified


def verify_signature(sig_bytes: bytes, trusted_keys: Mapping[str, str | bytes | Ed25519PublicKey],
                     now: int | float | datetime, min_version: int = 0, *, path: str | None = None,
                     threshold: int = 1) -> VerifiedDocument:
    """Every check of verify_document that needs no document: for a client that reads the signature
    first and then fetches the document (by its plain path, or by its hash), calling `.check(bytes)`."""
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    signatures, signed_bytes = _split(sig_bytes)
    if not isinstance(signatures, list) or not all(
            isinstance(s, dict) and isinstance(s.get("keyid"), str) and isinstance(s.get("sig"), str)
            for s in signatures):
        raise MalformedSignature("signatures must be a list of {keyid, sig}")
    # 1. signatures first: nothing in `signed` is read before a trusted key vouches for it
    verified: list[str] = []
    unknown: list[str] = []
    bad: list[str] = []
    for entry in signatures:
        keyid = entry["keyid"]
        if keyid not in trusted_keys:
            unknown.append(keyid)
            continue
        if keyid in verified:
            continue
        if not _HEX128.match(entry["sig"]):
            bad.append(keyid)
            continue
        try:
            _public_key(trusted_keys[keyid]).verify(bytes.fromhex(entry["sig"]), signed_bytes)
        except (InvalidSignature, ValueError):
            bad.append(keyid)
            continue
        verified.append(keyid)
    if len(verified) < threshold:
        if not verified and bad:
            raise BadSignature(f"the signature by key {bad[0][:16]}... does not match the signed content")
        if not verified and not bad:
            named = ", ".join(k[:16] + "..." for k in unknown) or "none"
            raise UnknownKey(f"no signature by a trusted key (signed by: {named})")
        raise ThresholdNotMet(f"{len(verified)} of the required {threshold} trusted keys signed it")
    # 2. the signed fields
    try:
        signed = json.loads(signed_bytes)
    except ValueError:
        raise MalformedSignature("the signed part is not JSON") from None
    if not isinstance(signed, dict) or signed.get("_type") != DOCUMENT_TYPE:
        found = signed.get("_type") if isinstance(signed, dict) else None
        raise WrongType(f"signed content is not a {DOCUMENT_TYPE} (got {found!r})")
    fields = {"path": str, "sha256": str, "length": int, "version": int, "expires": int}
    for name, kind in fields.items():
        if not isinstance(signed.get(name), kind) or isinstance(signed.get(name), bool):
            raise MalformedSignature(f"signed field {name!r} is missing or not a {kind.__name__}")
    if not _HEX64.match(signed["sha256"]):
        raise MalformedSignature("signed field 'sha256' is not 64 hex digits")
    if path is not None and signed["path"] != path:
        raise WrongPath(f"the signature is for {signed['path']}, not {path}")
    moment = _unix(now)
    if moment >= signed["expires"]:
        raise Expired(f"the signature expired at {_iso(signed['expires'])} (now {_iso(moment)})")
    if signed["version"] < min_version:
        raise Rollback(f"version {signed['version']} is older than version {min_version} accepted before")
    return VerifiedDocument(signed["path"], signed["version"], signed["expires"], tuple(verified),
                            signed["sha256"], signed["length"])


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def resign(sig_bytes: bytes, expires: int, signers: Iterable[Signer]) -> bytes:
    """The same signed fields with a new expiry (same version), e.g. from `relreg sign --refresh`.

    The caller verifies the old signature first (see tufrepo.refresh)."""
    _, signed_bytes = _split(sig_bytes)
    return signature_file({**json.loads(signed_bytes), "expires": int(expires)}, signers)
