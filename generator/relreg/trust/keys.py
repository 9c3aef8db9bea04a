"""Signing keys: Ed25519 key pairs, the registry's public keys file, private keys at build time.

Public keys live in the registry, in `keys.yaml` next to `registry.yaml`
(schema: schemas/keys.schema.json). Each key is named by its key id, the TUF
key id: the sha256 of the canonical JSON of
`{"keytype": "ed25519", "keyval": {"public": <hex>}, "scheme": "ed25519"}`,
so the same id names the key in TUF metadata and in detached document
signatures. Each key lists the roles it may sign for:

- `root`, `targets`, `snapshot`, `timestamp`: the TUF roles (thresholds in
  `thresholds:`, 1 when not given);
- `documents`: detached signatures of the device-facing documents.

Private keys never live in the registry. At build time they come from a file
(`--signing-key FILE`) or from the environment variable RELREG_SIGNING_KEY (a
CI secret), as PEM (PKCS#8) text; a file or the variable may hold several
PEM blocks (several keys, e.g. during a rotation), and the variable may also
hold the PEM base64-encoded on one line. Key material is never printed: error
messages name only the source and the key id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    from relreg.registry.diagnostics import Diagnostic

import click

from relreg.trust.where import ENV_VAR

try:  # signing is optional: an unsigned build needs none of this
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
except ImportError as _missing:  # pragma: no cover - depends on the installation
    CRYPTO_MISSING: ImportError | None = _missing
    Ed25519PrivateKey = Ed25519PublicKey = object  # type: ignore[misc,assignment]
else:
    CRYPTO_MISSING = None

ROOTS_FOLDER = "roots"  # committed, signed TUF root metadata: <registry>/roots/<N>.root.json
TUF_ROLES = ("root", "targets", "snapshot", "timestamp")
ROLES = (*TUF_ROLES, "documents")
DEFAULT_EXPIRES_DAYS = {"root": 365, "targets": 365, "snapshot": 365, "timestamp": 7, "documents": 30}

_PEM_BLOCK = re.compile(rb"-----BEGIN PRIVATE KEY-----.+?-----END PRIVATE KEY-----", re.S)


class SigningKeyError(click.ClickException):
    """A signing key or the keys file cannot be used. The message never holds key material."""


# --- key ids and encodings ---------------------------------------------------------------------

def public_hex(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def keyid_of(public: str) -> str:
    """The TUF key id of an Ed25519 public key given as 64 hex digits (securesystemslib's default)."""
    form = {"keytype": "ed25519", "keyval": {"public": public}, "scheme": "ed25519"}
    return hashlib.sha256(json.dumps(form, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def public_key_from_hex(public: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(public))


@dataclass(frozen=True)
class PrivateKey:
    """A loaded private key with its public half and key id."""

    key: Ed25519PrivateKey = field(repr=False)
    public: str
    keyid: str

    @classmethod
    def of(cls, key: Ed25519PrivateKey) -> "PrivateKey":
        public = public_hex(key)
        return cls(key, public, keyid_of(public))

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)

    def __repr__(self) -> str:  # never shows the secret
        return f"PrivateKey(keyid={self.keyid[:12]}...)"


def generate() -> tuple[PrivateKey, bytes]:
    """A new Ed25519 key and its private PEM (PKCS#8, unencrypted: store it as a CI secret)."""
    require_crypto()
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return PrivateKey.of(key), pem


def require_crypto() -> None:
    if CRYPTO_MISSING is not None:
        raise SigningKeyError("signing needs the packages cryptography, securesystemslib and tuf: "
                              "pip install 'cryptography>=42' 'securesystemslib[crypto]>=1.0' 'tuf>=7.0'")


def parse_private_keys(data: bytes, source: str) -> list[PrivateKey]:
    """Every Ed25519 private key in `data`: PEM blocks, or one line of base64 holding PEM."""
    require_crypto()
    text = data.strip()
    if text and b"-----BEGIN" not in text:
        try:
            text = base64.b64decode(b"".join(text.split()), validate=True).strip()
        except (binascii.Error, ValueError):
            raise SigningKeyError(f"{source}: not a PEM private key (nor base64-encoded PEM)") from None
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        raise SigningKeyError(f"{source}: no '-----BEGIN PRIVATE KEY-----' block (expected an Ed25519 key "
                              "in PKCS#8 PEM, as `relreg keys generate` writes)")
    keys: list[PrivateKey] = []
    for number, block in enumerate(blocks, start=1):
        try:
            key = serialization.load_pem_private_key(block, password=None)
        except (ValueError, TypeError):
            raise SigningKeyError(f"{source}: private key {number} cannot be read (encrypted, damaged "
                                  "or not PKCS#8)") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"{source}: private key {number} is not an Ed25519 key")
        keys.append(PrivateKey.of(key))
    return keys


def load_private_keys(path: Path | None, environ: Mapping[str, str] | None = None) -> list[PrivateKey]:
    """The signing keys of this build: from `path`, else from RELREG_SIGNING_KEY; [] when neither is set."""
    if path is not None:
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise SigningKeyError(f"--signing-key {path}: {error.strerror}") from None
        return parse_private_keys(data, f"--signing-key {path}")
    value = (environ if environ is not None else os.environ).get(ENV_VAR, "")
    if not value.strip():
        return []
    return parse_private_keys(value.encode(), ENV_VAR)


def write_private_key(path: Path, pem: bytes) -> None:
    """Write a private key readable by its owner only; never overwrite an existing file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError:
        raise SigningKeyError(f"{path} exists: refusing to overwrite a private key") from None
    except OSError as error:
        raise SigningKeyError(f"{path}: {error.strerror}") from None
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(pem)


# --- the registry's keys file -----------------------------------------------------------------

@dataclass(frozen=True)
class PublicKey:
    keyid: str
    public: str  # 64 hex digits
    name: str
    roles: tuple[str, ...]

    def to_document(self) -> dict[str, Any]:
        return {"keyid": self.keyid, "keytype": "ed25519", "scheme": "ed25519", "public": self.public,
                "name": self.name, "roles": list(self.roles)}


@dataclass(frozen=True)
class KeysConfig:
    """registry/keys.yaml: the public keys, which roles each signs for, thresholds and expiry periods."""

    keys: tuple[PublicKey, ...]
    thresholds: Mapping[str, int]
    expires_days: Mapping[str, int]
    raw: bytes = b""  # the file's bytes, part of the build fingerprint

    def keys_for(self, role: str) -> list[PublicKey]:
        return [key for key in self.keys if role in key.roles]

    def threshold(self, role: str) -> int:
        return self.thresholds.get(role, 1)

    def trusted_document_keys(self) -> dict[str, str]:
        """{keyid: public hex} of the keys that sign device documents: what a device pins."""
        return {key.keyid: key.public for key in self.keys_for("documents")}


class KeysFileError(SigningKeyError):
    """keys.yaml is invalid: `problems` are (line, column, message), the message names the file at each."""

    def __init__(self, path: str, problems: list[tuple[int, int, str]]) -> None:
        super().__init__("\n".join(f"{path}:{line}:{column}: {message}" for line, column, message in problems))
        self.path = path
        self.problems = problems


def keys_file_diagnostics(raw: bytes, path: str) -> list[Diagnostic]:
    """The problems of a keys.yaml (`raw`, shown as `path`) as registry diagnostics (rule keys-file), for
    `relreg validate` and `relreg check`: [] when it is valid."""
    from relreg.registry.diagnostics import Diagnostic

    try:
        parse_keys_file(raw, path)
    except KeysFileError as error:
        return [Diagnostic(path, line, column, message, "keys-file") for line, column, message in error.problems]
    except SigningKeyError:
        return []  # without the crypto packages the keys cannot be read: the signed build says so
    return []


@lru_cache(maxsize=1)
def _keys_validator():  # type: ignore[no-untyped-def]
    from jsonschema import Draft202012Validator

    from relreg.resources import schema_dir

    schema = json.loads((schema_dir() / "keys.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def parse_keys_file(raw: bytes, path: str) -> KeysConfig:
    """Read keys.yaml strictly (as registry files are), check it against its schema and its rules."""
    from relreg.registry.yamlload import YamlLoadError, parse_yaml

    require_crypto()
    try:
        doc = parse_yaml(raw, path)
    except YamlLoadError as error:
        raise KeysFileError(path, [(error.position.line, error.position.column, error.message)]) from None
    problems: list[tuple[int, int, str]] = []
    for error in sorted(_keys_validator().iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path))):
        where = doc.position(tuple(error.absolute_path))
        field_path = ".".join(str(part) for part in error.absolute_path) or "the file"
        problems.append((where.line, where.column, f"{field_path}: {error.message}"))
    if problems:
        raise KeysFileError(path, problems)
    data = doc.data
    keys: list[PublicKey] = []
    seen: set[str] = set()
    for index, entry in enumerate(data["keys"]):
        where = doc.position(("keys", index, "keyid"))
        public = entry["public"].lower()
        expected = keyid_of(public)
        keyid = entry["keyid"].lower()
        if keyid != expected:
            problems.append((where.line, where.column, f"keys[{index}].keyid does not match its public "
                            f"key: the key id of that public key is {expected}"))
        if keyid in seen:
            problems.append((where.line, where.column, f"keys[{index}]: key {keyid} is listed twice"))
        seen.add(keyid)
        try:
            public_key_from_hex(public)
        except ValueError:
            problems.append((where.line, where.column, f"keys[{index}].public is not an Ed25519 key"))
        keys.append(PublicKey(keyid, public, entry.get("name", ""), tuple(r for r in ROLES if r in entry["roles"])))
    thresholds = {role: int(data.get("thresholds", {}).get(role, 1)) for role in TUF_ROLES}
    for role in TUF_ROLES:
        count = sum(1 for key in keys if role in key.roles)
        if count < thresholds[role]:
            where = doc.position(("thresholds", role)) if role in data.get("thresholds", {}) else doc.position(())
            problems.append((where.line, where.column, f"role '{role}' needs {thresholds[role]} "
                            f"signature(s) but only {count} key(s) have that role"))
    if problems:
        raise KeysFileError(path, problems)
    expires = {**DEFAULT_EXPIRES_DAYS, **{k: int(v) for k, v in data.get("expires_days", {}).items()}}
    return KeysConfig(tuple(keys), thresholds, expires, raw)


def key_entry_yaml(key: PrivateKey | PublicKey, name: str, roles: Iterable[str]) -> str:
    """The keys.yaml list entry of a key (public half only)."""
    return (f"  - keyid: {key.keyid}\n"
            f"    public: {key.public}\n"
            f"    name: {json.dumps(name)}\n"
            f"    roles: [{', '.join(roles)}]\n")


def new_keys_file(entries: str) -> str:
    return ("# yaml-language-server: $schema=../schemas/keys.schema.json\n"
            "# Public signing keys of this registry (see docs/security.md). Never put a private key here.\n"
            "keys:\n" + entries)
