"""The signed site: a TUF repository over every JSON document, plus detached document signatures.

With a signing key configured, the build adds to the planned site:

    api/v1/keys.json                       the registry's public keys, roles, thresholds (published)
    <document>.sig                         detached signature of each device document (relreg.trust.signing)
    tuf/<N>.root.json, tuf/root.json       every root version; root.json is the newest (to pin)
    tuf/<V>.targets.json                   every JSON document of the site: length and sha256
    tuf/<V>.snapshot.json                  the version, length and hash of <V>.targets.json
    tuf/timestamp.json                     the only mutable file: points at <V>.snapshot.json
    tuf/targets/<dir>/<sha256>.<name>      consistent-snapshot copies of the documents

The layout is TUF's consistent snapshots, so a CDN can cache everything but
timestamp.json forever and never serves a mix of two builds.

Versions come from git, so a stateless CI build needs no state of its own:

- targets and snapshot: V = the number of commits on the first-parent history
  of the commit built (`git rev-list --first-parent --count`). It grows by at
  least one with every commit (every merge) on the published branch.
- timestamp: V * 2**20 at build time; `relreg sign --refresh` adds one, so a
  scheduled job can renew the timestamp about a million times before the
  next commit's build still comes out higher.
- detached document signatures: version V, like targets.
- root: committed signed roots in <registry>/roots/<N>.root.json (written by
  `relreg keys sign-root`, possibly offline). When keys.yaml asks for keys or
  thresholds that the newest committed root does not have, the build makes
  root N+1 itself if it holds enough root keys (and warns: commit it).

Expiry dates are counted from the committer date of the commit built (root:
of the commit that last changed keys.yaml), never from the wall clock, so
the same commit always gives the same bytes (Ed25519 signatures are
deterministic). Only `relreg sign --refresh` uses the clock, as it must.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import click

from relreg.trust.keys import (
    ROOTS_FOLDER,
    TUF_ROLES,
    KeysConfig,
    PrivateKey,
    load_private_keys,
    parse_keys_file,
    require_crypto,
)
from relreg.trust.where import ENV_VAR, KEYS_FILE

try:  # signing is optional: an unsigned build imports this module but needs none of these
    from securesystemslib.signer import CryptoSigner, SSlibKey
    from tuf.api.exceptions import UnsignedMetadataError
    from tuf.api.metadata import Metadata, MetaFile, Role, Root, Snapshot, TargetFile, Targets, Timestamp
    from tuf.api.serialization.json import JSONSerializer

    from relreg.trust import signing
except ImportError as _missing:  # pragma: no cover - depends on the installation
    TUF_MISSING: ImportError | None = _missing
    UnsignedMetadataError = Exception  # type: ignore[misc,assignment]
else:
    TUF_MISSING = None

TUF_DIR = "tuf"
TARGETS_DIR = f"{TUF_DIR}/targets"
KEYS_DOCUMENT = "api/v1/keys.json"
SPEC_VERSION = "1.0.31"
TIMESTAMP_STEP = 2 ** 20  # timestamp version = targets version * TIMESTAMP_STEP + refreshes
_SERIALIZER = JSONSerializer(compact=True) if TUF_MISSING is None else None
DAY = 86400


class SigningError(click.ClickException):
    """The site cannot be signed as asked; nothing is written."""


# --- pure parts: metadata from planned files --------------------------------------------------

def _expiry(seconds: int, days: int) -> datetime:
    return datetime.fromtimestamp(seconds + days * DAY, tz=timezone.utc)


def _tuf_signer(key: PrivateKey) -> CryptoSigner:
    return CryptoSigner(key.key, SSlibKey.from_crypto(key.key.public_key()))


def _ssl_key(public: str, keyid: str) -> SSlibKey:
    return SSlibKey(keyid, "ed25519", "ed25519", {"public": public})


def _to_bytes(metadata: Metadata) -> bytes:
    return metadata.to_bytes(_SERIALIZER) + b"\n"


def _sign(metadata: Metadata, keys: Iterable[PrivateKey]) -> bytes:
    for key in sorted(keys, key=lambda k: k.keyid):
        metadata.sign(_tuf_signer(key), append=True)
    return _to_bytes(metadata)


def role_signers(root: Root, role: str, available: Iterable[PrivateKey]) -> list[PrivateKey]:
    """The available keys that `root` accepts for `role`; SigningError when fewer than its threshold."""
    allowed = set(root.roles[role].keyids)
    keys = [key for key in available if key.keyid in allowed]
    need = root.roles[role].threshold
    if len(keys) < need:
        raise SigningError(
            f"cannot sign {role}: it needs {need} of the keys {sorted(k[:12] for k in allowed)} "
            f"but the signing keys given hold {len(keys)} of them "
            f"(given: {sorted(k.keyid[:12] for k in available) or 'none'})")
    return keys


def root_from_config(config: KeysConfig, version: int, expires: datetime) -> Root:
    root = Root(version=version, spec_version=SPEC_VERSION, expires=expires, keys={},
                roles={role: Role([], config.threshold(role)) for role in TUF_ROLES}, consistent_snapshot=True)
    for key in config.keys:
        for role in TUF_ROLES:
            if role in key.roles:
                root.add_key(_ssl_key(key.public, key.keyid), role)
    return root


def same_trust(a: Root, b: Root) -> bool:
    """Do two roots delegate to the same keys with the same thresholds (version and expiry aside)?"""
    def shape(root: Root) -> Any:
        return ({k: v.to_dict() for k, v in root.keys.items()},
                {r: (sorted(role.keyids), role.threshold) for r, role in root.roles.items()},
                root.consistent_snapshot)
    return shape(a) == shape(b)


def target_copy_path(path: str, digest: str) -> str:
    """Where ngclient fetches a target with consistent snapshots: <dir>/<sha256>.<name> under tuf/targets/."""
    return signing.content_addressed_path(path, digest)


def is_target(path: str) -> bool:
    return path.endswith(".json") and not path.startswith(f"{TUF_DIR}/")


def repository_files(files: Mapping[str, bytes], root: Root, keys: Iterable[PrivateKey], version: int,
                     base_time: int, expires_days: Mapping[str, int]) -> dict[str, bytes]:
    """targets, snapshot, timestamp (and the hashed target copies) for `files`. Pure."""
    keys = list(keys)
    out: dict[str, bytes] = {}
    targets: dict[str, TargetFile] = {}
    for path, content in sorted(files.items()):
        if not is_target(path):
            continue
        digest = hashlib.sha256(content).hexdigest()
        targets[path] = TargetFile(len(content), {"sha256": digest}, path)
        out[target_copy_path(path, digest)] = content
    targets_md = Metadata(Targets(version=version, spec_version=SPEC_VERSION,
                                  expires=_expiry(base_time, expires_days["targets"]), targets=targets))
    targets_bytes = _sign(targets_md, role_signers(root, "targets", keys))
    out[f"{TUF_DIR}/{version}.targets.json"] = targets_bytes
    snapshot_md = Metadata(Snapshot(version=version, spec_version=SPEC_VERSION,
                                    expires=_expiry(base_time, expires_days["snapshot"]),
                                    meta={"targets.json": _meta(version, targets_bytes)}))
    snapshot_bytes = _sign(snapshot_md, role_signers(root, "snapshot", keys))
    out[f"{TUF_DIR}/{version}.snapshot.json"] = snapshot_bytes
    timestamp_md = Metadata(Timestamp(version=version * TIMESTAMP_STEP, spec_version=SPEC_VERSION,
                                      expires=_expiry(base_time, expires_days["timestamp"]),
                                      snapshot_meta=_meta(version, snapshot_bytes)))
    out[f"{TUF_DIR}/timestamp.json"] = _sign(timestamp_md, role_signers(root, "timestamp", keys))
    return out


def _meta(version: int, content: bytes) -> MetaFile:
    return MetaFile(version=version, length=len(content), hashes={"sha256": hashlib.sha256(content).hexdigest()})


def keys_document(config: KeysConfig, site_url: str, root_version: int) -> bytes:
    """api/v1/keys.json: what a device or gateway needs to know to pin (a copy; pin out of band)."""
    data = {
        "keys": [key.to_document() for key in config.keys],
        "thresholds": {role: config.threshold(role) for role in TUF_ROLES},
        "expires_days": dict(sorted(config.expires_days.items())),
        "document_signatures": {
            "suffix": signing.SIG_SUFFIX,
            "type": signing.DOCUMENT_TYPE,
            "spec_version": signing.SPEC_VERSION,
            "signed_paths": [pattern.pattern for pattern in signing.SIGNED_DOCUMENTS],
        },
        "tuf": {
            "metadata_url": f"{site_url}{TUF_DIR}/",
            "targets_url": f"{site_url}{TARGETS_DIR}/",
            "root_version": root_version,
            "root_url": f"{site_url}{TUF_DIR}/{root_version}.root.json",
        },
    }
    return json.dumps({"data": data}, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


# --- roots ---------------------------------------------------------------------------------------

def check_root_chain(roots: Mapping[int, bytes], source: str) -> list[Metadata]:
    """Parse committed roots 1..M and check each is signed by its own and its predecessor's threshold."""
    chain: list[Metadata] = []
    for number in sorted(roots):
        where = f"{source}/{number}.root.json"
        if number != len(chain) + 1:
            raise SigningError(f"{where}: roots must be numbered 1, 2, 3... without gaps "
                               f"(expected {len(chain) + 1}.root.json)")
        try:
            metadata = Metadata[Root].from_bytes(roots[number])
        except Exception as error:  # noqa: BLE001 - python-tuf raises several kinds
            raise SigningError(f"{where}: not TUF root metadata ({error})") from None
        if not isinstance(metadata.signed, Root) or metadata.signed.version != number:
            raise SigningError(f"{where}: holds version {getattr(metadata.signed, 'version', '?')}, not {number}")
        try:
            if chain:
                chain[-1].verify_delegate(Root.type, metadata)
            metadata.verify_delegate(Root.type, metadata)
        except UnsignedMetadataError as error:
            raise SigningError(f"{where}: {error}: sign it with `relreg keys sign-root` "
                               "(a new root needs the threshold of the previous root's keys and of its own)") from None
        chain.append(metadata)
    return chain


def next_root(config: KeysConfig, chain: list[Metadata], expires: datetime,
              keys: Iterable[PrivateKey], existing: Metadata | None = None) -> Metadata:
    """The root that keys.yaml asks for, after `chain`, signed by the given keys (added to `existing`)."""
    version = len(chain) + 1
    wanted = root_from_config(config, version, expires)
    if existing is not None and existing.signed.version == version and same_trust(existing.signed, wanted):
        metadata = existing
    else:
        metadata = Metadata(wanted)
    eligible = set(wanted.roles["root"].keyids)
    if chain:
        eligible |= set(chain[-1].signed.roles["root"].keyids)
    for key in sorted(keys, key=lambda k: k.keyid):
        if key.keyid in eligible and key.keyid not in metadata.signatures:
            metadata.sign(_tuf_signer(key), append=True)
    return metadata


def root_is_complete(chain: list[Metadata], metadata: Metadata) -> str | None:
    """None when `metadata` may follow `chain`; else what is missing."""
    try:
        if chain:
            chain[-1].verify_delegate(Root.type, metadata)
        metadata.verify_delegate(Root.type, metadata)
    except UnsignedMetadataError as error:
        return str(error)
    return None


# --- git: versions and dates ---------------------------------------------------------------------

@dataclass(frozen=True)
class GitState:
    version: int  # first-parent commit count
    commit_time: int  # committer date of the commit built
    keys_time: int  # committer date of the last first-parent commit that changed keys.yaml


def git_state(repo: Any, commit: str, keys_path: str) -> GitState:
    count = int(repo.git.rev_list("--first-parent", "--count", commit).strip())
    commit_time = int(repo.git.log("-1", "--format=%ct", commit).strip())
    changed = repo.git.log("-1", "--first-parent", "--format=%ct", commit, "--", keys_path).strip()
    return GitState(count, commit_time, int(changed) if changed else commit_time)


def _read_registry_bytes(repo: Any, commit: str | None, registry_dir: Path, prefix: str, relative: str,
                         from_git: bool) -> bytes | None:
    if not from_git:
        path = registry_dir / relative
        return path.read_bytes() if path.is_file() and not path.is_symlink() else None
    tree = repo.commit(commit).tree
    full = f"{prefix}/{relative}" if prefix else relative
    try:
        return tree[full].data_stream.read()
    except KeyError:
        return None


def _read_roots(repo: Any, commit: str | None, registry_dir: Path, prefix: str, from_git: bool) -> dict[int, bytes]:
    roots: dict[int, bytes] = {}
    names: list[str] = []
    if not from_git:
        folder = registry_dir / ROOTS_FOLDER
        names = sorted(p.name for p in folder.glob("*.root.json")) if folder.is_dir() else []
    else:
        tree = repo.commit(commit).tree
        full = f"{prefix}/{ROOTS_FOLDER}" if prefix else ROOTS_FOLDER
        try:
            names = sorted(item.name for item in tree[full].blobs if item.name.endswith(".root.json"))
        except KeyError:
            names = []
    for name in names:
        number = name.removesuffix(".root.json")
        if not number.isdigit() or number.startswith("0"):
            raise SigningError(f"{ROOTS_FOLDER}/{name}: root files are named <version>.root.json (1.root.json, ...)")
        content = _read_registry_bytes(repo, commit, registry_dir, prefix, f"{ROOTS_FOLDER}/{name}", from_git)
        if content is not None:
            roots[int(number)] = content
    return roots


def read_keys_config(registry_dir: Path, repo: Any = None, commit: str | None = None, prefix: str = "",
                     from_git: bool = False) -> KeysConfig | None:
    raw = _read_registry_bytes(repo, commit, registry_dir, prefix, KEYS_FILE, from_git)
    if raw is None:
        return None
    shown = f"{prefix}/{KEYS_FILE}" if from_git and prefix else (registry_dir / KEYS_FILE).as_posix()
    return parse_keys_file(raw, shown)


# --- the build step --------------------------------------------------------------------------------

@dataclass
class SiteSigning:
    """Signing configured for one build: keys.yaml, the private keys, the roots and git's versions."""

    config: KeysConfig
    keys: list[PrivateKey]
    state: GitState
    chain: list[Metadata]
    root_bytes: dict[int, bytes]  # every root to publish, by version

    @classmethod
    def configure(cls, options: Any, repo: Any, prefix: str | None, commit: str | None, dirty: bool,
                  warnings: list[str], environ: Mapping[str, str] | None = None) -> "SiteSigning | None":
        """None when no signing key is given (the site is built unsigned); SigningError when misconfigured."""
        if TUF_MISSING is not None:
            if getattr(options, "signing_key", None) or (environ if environ is not None else os.environ).get(ENV_VAR):
                require_crypto()
                raise SigningError(f"signing needs python-tuf and securesystemslib ({TUF_MISSING}): "
                                   "pip install 'securesystemslib[crypto]>=1.0' 'tuf>=7.0'")
            if (Path(options.registry_dir) / KEYS_FILE).is_file():
                warnings.append(f"the registry has {KEYS_FILE} but python-tuf is not installed: the site is NOT signed")
            return None
        keys = load_private_keys(getattr(options, "signing_key", None), environ)
        from_git = getattr(options, "ref", None) is not None
        registry_dir = Path(options.registry_dir)
        config = read_keys_config(registry_dir, repo, commit, prefix or "", from_git) \
            if (commit is not None or not from_git) else None
        if not keys:
            if config is not None:
                warnings.append(f"the registry has {KEYS_FILE} but no signing key was given (--signing-key FILE "
                                f"or {ENV_VAR}): the site is NOT signed")
            return None
        if config is None:
            raise SigningError(f"a signing key was given but the registry has no {KEYS_FILE}: add the public "
                               f"key there first (relreg keys generate prints the entry)")
        if repo is None or commit is None:
            raise SigningError("signing needs git history: metadata versions and expiry dates come from the "
                               "first-parent commit count and the commit date; commit the registry first")
        known = {key.keyid for key in config.keys}
        strangers = [key.keyid for key in keys if key.keyid not in known]
        if strangers:
            raise SigningError(f"signing key {strangers[0]} is not listed in {KEYS_FILE}; clients would refuse "
                               "what it signs. Add its public key first (relreg keys generate prints the entry)")
        keys_path = f"{prefix}/{KEYS_FILE}" if prefix else KEYS_FILE
        state = git_state(repo, commit, keys_path)
        if dirty:
            warnings.append("signing a work tree with uncommitted registry changes: the signed versions are "
                            "those of HEAD; build a commit (--ref) to publish")
        roots_source = f"{prefix}/{ROOTS_FOLDER}" if prefix else ROOTS_FOLDER
        committed = _read_roots(repo, commit, registry_dir, prefix or "", from_git)
        chain = check_root_chain(committed, roots_source)
        root_bytes = dict(committed)
        wanted = root_from_config(config, len(chain) + 1, _expiry(state.keys_time, config.expires_days["root"]))
        if not chain or not same_trust(chain[-1].signed, wanted):
            made = next_root(config, chain, _expiry(state.keys_time, config.expires_days["root"]), keys)
            missing = root_is_complete(chain, made)
            if missing is not None:
                raise SigningError(
                    f"{KEYS_FILE} asks for keys or thresholds that no committed root holds, and the signing keys "
                    f"given cannot sign root {made.signed.version} ({missing}). Sign it with the root keys: "
                    f"relreg keys sign-root, then commit {roots_source}/{made.signed.version}.root.json")
            root_bytes[made.signed.version] = _to_bytes(made)
            chain = [*chain, made]
            warnings.append(f"root {made.signed.version} was made by this build from {KEYS_FILE} and is not "
                            f"committed: run `relreg keys sign-root` and commit {roots_source}/"
                            f"{made.signed.version}.root.json before the next change of {KEYS_FILE}")
        latest = chain[-1].signed
        if latest.is_expired(datetime.fromtimestamp(state.commit_time, tz=timezone.utc)):
            raise SigningError(f"root {latest.version} expired on {latest.expires:%Y-%m-%d}: sign a new root "
                               f"(relreg keys sign-root) and commit it")
        for role in ("targets", "snapshot", "timestamp"):
            role_signers(latest, role, keys)  # fail early, before anything is planned
        if config.trusted_document_keys() and not [k for k in keys if k.keyid in config.trusted_document_keys()]:
            raise SigningError(f"no signing key given has the 'documents' role of {KEYS_FILE}: device documents "
                               "cannot be signed")
        if not config.trusted_document_keys():
            warnings.append(f"no key in {KEYS_FILE} has the 'documents' role: device documents get no detached "
                            "signature (only the TUF repository)")
        warnings.extend(_expired_on_arrival(config, state.commit_time, int(time.time())))
        return cls(config, keys, state, chain, root_bytes)

    def fingerprint(self, base: str) -> str:
        """The build fingerprint, extended with everything signing adds (never a private key)."""
        digest = hashlib.sha256(base.encode())
        digest.update(self.config.raw)
        for version, content in sorted(self.root_bytes.items()):
            digest.update(b"%d\0" % version + content)
        digest.update(",".join(sorted(key.keyid for key in self.keys)).encode())
        return "signed-" + digest.hexdigest()

    def sign(self, planned: dict[str, bytes], site_url: str) -> dict[str, bytes]:
        """The planned site plus keys.json, document signatures and the TUF repository."""
        files = dict(planned)
        clashes = [p for p in files if p.startswith(f"{TUF_DIR}/") or p == KEYS_DOCUMENT
                   or p.endswith(signing.SIG_SUFFIX)]
        if clashes:
            raise SigningError(f"the planned site already holds {clashes[0]}, which signing writes")
        root = self.chain[-1].signed
        files[KEYS_DOCUMENT] = keys_document(self.config, site_url, root.version)
        document_keys = [k for k in self.keys if k.keyid in self.config.trusted_document_keys()]
        if document_keys:
            files.update(signing.sign_documents(
                files, self.state.version, self.state.commit_time + self.config.expires_days["documents"] * DAY,
                document_keys))
        files.update(repository_files(files, root, self.keys, self.state.version, self.state.commit_time,
                                      self.config.expires_days))
        for version, content in self.root_bytes.items():
            files[f"{TUF_DIR}/{version}.root.json"] = content
        files[f"{TUF_DIR}/root.json"] = self.root_bytes[root.version]
        return dict(sorted(files.items()))


def _expired_on_arrival(config: KeysConfig, commit_time: int, now: int) -> list[str]:
    """A warning when what a build signs expires before `now` (unix seconds, the real clock): expiry counts
    from the commit's date so that a build stays byte-identical, so an old commit (a redeploy, a registry
    left alone for a month) is signed already expired, and every device would refuse it."""
    lifetimes = {"timestamp": config.expires_days["timestamp"]}
    if config.trusted_document_keys():
        lifetimes["documents"] = config.expires_days["documents"]
    expired = sorted(role for role, days in lifetimes.items() if commit_time + days * DAY <= now)
    if not expired:
        return []
    dated = datetime.fromtimestamp(commit_time, tz=timezone.utc)
    return [f"the commit built is dated {dated:%Y-%m-%d}, and the {' and '.join(expired)} signatures, which expire "
            f"{' and '.join(f'{lifetimes[role]} days' for role in expired)} after it, have expired already: "
            "devices refuse this site as built. Renew them before publishing: relreg sign --refresh "
            "--documents --out <the output folder>"]


# --- relreg keys sign-root ---------------------------------------------------------------------

def sign_root(registry_dir: Path, keys: list[PrivateKey], now: int,
              expires_days: int | None = None) -> tuple[Path, str | None]:
    """Sign the root that keys.yaml asks for into <registry>/roots/<N>.root.json.

    The newest root file, when it is not yet signed by enough keys and says what
    keys.yaml says, collects the given keys' signatures (one signer after the
    other, e.g. offline, each running this command). Otherwise a new version is
    started: after a change of keys.yaml, or to renew the expiry
    (`expires_days`). Returns the file written and what it still lacks (None
    when it is complete: commit it).
    """
    config = read_keys_config(registry_dir)
    if config is None:
        raise SigningError(f"{registry_dir / KEYS_FILE} does not exist")
    source = (registry_dir / ROOTS_FOLDER).as_posix()
    roots = _read_roots(None, None, registry_dir, "", False)
    pending: Metadata | None = None
    try:
        chain = check_root_chain(roots, source)
    except SigningError as incomplete:
        if not roots:
            raise incomplete from None
        newest = max(roots)
        chain = check_root_chain({n: c for n, c in roots.items() if n != newest}, source)
        try:
            pending = Metadata[Root].from_bytes(roots[newest])
        except Exception as error:  # noqa: BLE001
            raise SigningError(f"{source}/{newest}.root.json: not TUF root metadata ({error})") from None
        if pending.signed.version != newest or newest != len(chain) + 1:
            raise SigningError(f"{source}/{newest}.root.json: holds version {pending.signed.version}") from None
    wanted = root_from_config(config, len(chain) + 1, _expiry(now, expires_days or config.expires_days["root"]))
    if pending is not None and same_trust(pending.signed, wanted) and not expires_days:
        made = next_root(config, chain, pending.signed.expires, keys, pending)
    elif pending is None and chain and same_trust(chain[-1].signed, wanted) and not expires_days:
        raise SigningError(f"root {len(chain)} already says what {KEYS_FILE} says and is fully signed; "
                           "to renew its expiry pass --expires-days")
    else:
        made = next_root(config, chain, wanted.expires, keys)
    if not any(key.keyid in made.signatures for key in keys):
        raise SigningError("none of the keys given is a root key of keys.yaml or of the previous root")
    target = registry_dir / ROOTS_FOLDER / f"{made.signed.version}.root.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, _to_bytes(made))
    return target, root_is_complete(chain, made)


# --- relreg sign --refresh -----------------------------------------------------------------------

def atomic_write(path: Path, content: bytes) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class RefreshReport:
    timestamp_version: int
    timestamp_expires: datetime
    documents: int


def refresh(site: Path, keys: list[PrivateKey], now: int, timestamp_days: int | None = None,
            documents: bool = False, documents_days: int | None = None) -> RefreshReport:
    """Re-sign tuf/timestamp.json of a built site (version + 1, new expiry); optionally renew the
    expiry of the detached document signatures. Nothing else changes."""
    root_path = site / TUF_DIR / "root.json"
    timestamp_path = site / TUF_DIR / "timestamp.json"
    try:
        root_md = Metadata[Root].from_bytes(root_path.read_bytes())
        old = Metadata[Timestamp].from_bytes(timestamp_path.read_bytes())
    except FileNotFoundError as error:
        raise SigningError(f"{site} is not a signed site ({error.filename} is missing)") from None
    except Exception as error:  # noqa: BLE001
        raise SigningError(f"{site}: cannot read the TUF metadata ({error})") from None
    try:
        root_md.verify_delegate(Timestamp.type, old)
    except UnsignedMetadataError as error:
        raise SigningError(f"{timestamp_path}: the current timestamp does not verify ({error}); "
                           "rebuild instead of refreshing") from None
    settings = _published_settings(site)
    days = timestamp_days or settings.get("timestamp", 7)
    snapshot = site / TUF_DIR / f"{old.signed.snapshot_meta.version}.snapshot.json"
    if not snapshot.is_file():
        raise SigningError(f"{snapshot} is missing: the timestamp points at a snapshot this folder lacks")
    old.signed.snapshot_meta.verify_length_and_hashes(snapshot.read_bytes())
    new = Metadata(Timestamp(version=old.signed.version + 1, spec_version=old.signed.spec_version,
                             expires=_expiry(now, days), snapshot_meta=old.signed.snapshot_meta))
    content = _sign(new, role_signers(root_md.signed, "timestamp", keys))
    count = 0
    if documents:
        count = _refresh_documents(site, keys, now + (documents_days or settings.get("documents", 30)) * DAY)
    atomic_write(timestamp_path, content)
    return RefreshReport(new.signed.version, new.signed.expires, count)


def _published_settings(site: Path) -> dict[str, int]:
    try:
        return json.loads((site / KEYS_DOCUMENT).read_bytes())["data"]["expires_days"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _refresh_documents(site: Path, keys: list[PrivateKey], expires: int) -> int:
    try:
        published = json.loads((site / KEYS_DOCUMENT).read_bytes())["data"]["keys"]
    except (OSError, ValueError, KeyError, TypeError):
        raise SigningError(f"{site / KEYS_DOCUMENT} is missing or unreadable: cannot tell the document keys") from None
    trusted = {k["keyid"]: k["public"] for k in published if "documents" in k.get("roles", [])}
    document_keys = [k for k in keys if k.keyid in trusted]
    if not document_keys:
        raise SigningError("no signing key given has the 'documents' role of this site")
    renewed: dict[Path, bytes] = {}
    for sig_path in sorted((site / "api").rglob("*" + signing.SIG_SUFFIX)):
        document_path = sig_path.with_name(sig_path.name.removesuffix(signing.SIG_SUFFIX))
        relative = document_path.relative_to(site).as_posix()
        old = sig_path.read_bytes()
        document = document_path.read_bytes()
        try:  # only documents that verify now are renewed (expired or not): a refresh never launders a change
            signing.verify_document(document, old, trusted, 0, path=relative)
        except signing.DocumentRefused as error:
            raise SigningError(f"{relative}: {error}; rebuild instead of refreshing") from None
        renewed[sig_path] = signing.resign(old, expires, document_keys)
    for sig_path, content in renewed.items():
        atomic_write(sig_path, content)
    return len(renewed)
