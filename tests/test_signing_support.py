"""Helpers shared by the signing and TUF tests (no tests here): test keys, signed registries in
throwaway git repositories, builds, and a static HTTP server on loopback."""

from __future__ import annotations

import atexit
import functools
import hashlib
import http.server
import os
import shutil
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from conftest import EXAMPLE_REGISTRY
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from git_helpers import commit_all, init_repo

from relreg.build import BuildOptions, BuildReport, build_site
from relreg.trust.keys import PrivateKey, parse_private_keys

ALL_ROLES = ("root", "targets", "snapshot", "timestamp", "documents")
# ci: the registry's key; second: thresholds and rotation; attacker: trusted by no registry
TEST_KEYS = ("ci", "second", "attacker")
_KEY_DIR = Path(tempfile.mkdtemp(prefix="relreg-test-keys-"))
atexit.register(shutil.rmtree, _KEY_DIR, True)


def _private(name: str) -> Ed25519PrivateKey:
    """Test-only keys derived from their names, so no private key file is ever committed."""
    assert name in TEST_KEYS
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"relreg test key " + name.encode()).digest())


def key_file(name: str) -> Path:
    """The key as a PEM file, as `relreg keys generate` writes it (for --signing-key)."""
    path = _KEY_DIR / f"{name}.pem"
    if not path.exists():
        path.write_bytes(_private(name).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return path


def load_key(name: str) -> PrivateKey:
    return parse_private_keys(key_file(name).read_bytes(), name)[0]


def keys_yaml(entries: Iterable[tuple[str, Iterable[str]]], thresholds: dict[str, int] | None = None,
              expires_days: dict[str, int] | None = None) -> str:
    lines = ["keys:"]
    for name, roles in entries:
        key = load_key(name)
        lines += [f"  - keyid: {key.keyid}", f"    public: {key.public}", f"    name: {name}",
                  f"    roles: [{', '.join(roles)}]"]
    for title, values in (("thresholds", thresholds), ("expires_days", expires_days)):
        if values:
            lines.append(f"{title}:")
            lines += [f"  {role}: {value}" for role, value in values.items()]
    return "\n".join(lines) + "\n"


def git_date(seconds_ago: float) -> str:
    return datetime.fromtimestamp(time.time() - seconds_ago, tz=timezone.utc).isoformat(timespec="seconds")


def signed_repo(path: Path, keys_text: str, *, hours_ago: float = 3) -> Path:
    """The example registry plus keys.yaml, committed `hours_ago` hours ago; returns the repository."""
    repo = init_repo(path)
    shutil.copytree(EXAMPLE_REGISTRY, repo / "registry")
    (repo / "registry" / "keys.yaml").write_text(keys_text)
    commit_all(repo, "registry with signing keys", git_date(hours_ago * 3600))
    return repo


def next_commit(repo: Path, *, hours_ago: float, note: str = "a later change") -> None:
    """A further commit that changes the registry's output (the description in registry.yaml)."""
    config = repo / "registry" / "registry.yaml"
    config.write_text(config.read_text().replace("every merge", f"every merge ({note})", 1))
    commit_all(repo, note, git_date(hours_ago * 3600))


def key_bundle(folder: Path, *names: str) -> Path:
    """One PEM file holding several private keys, as a CI secret may."""
    target = folder / ("-".join(names) + ".pem")
    target.write_bytes(b"".join(key_file(name).read_bytes() for name in names))
    return target


def build(repo: Path, out: Path, signing_key: Path | None, *, ref: str | None = None) -> BuildReport:
    return build_site(BuildOptions(registry_dir=repo / "registry", out=out, signing_key=signing_key, ref=ref,
                                   force=True))


def device_documents(site: Path) -> list[str]:
    return sorted(p.relative_to(site).as_posix() for p in (site / "api/v1/devices").rglob("*.json"))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class SiteServer:
    """A built site served over HTTP on 127.0.0.1 (ephemeral port) from a folder tests may change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def serve(self, site: Path) -> Path:
        """Serve exactly the files of `site` from now on (hard links: change files only with `put`)."""
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.copytree(site, self.root, copy_function=os.link)
        return self.root

    def overlay(self, site: Path) -> None:
        """Add the files of `site` to what is served, replacing files of the same name."""
        for source in site.rglob("*"):
            if source.is_file():
                self.put(source.relative_to(site).as_posix(), source.read_bytes())

    def put(self, relative: str, content: bytes) -> None:
        """Replace one served file (a new inode, so the build it was linked from stays intact)."""
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        target.write_bytes(content)

    def get(self, relative: str) -> bytes:
        return (self.root / relative).read_bytes()

    def __enter__(self) -> "SiteServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

