"""The reference device client: ask a built relreg site what to install next.

A device (or a gateway acting for one) knows its cohort, hardware version,
optional software type, current version and serial. The client fetches at most
two static documents:

1. `api/v1/devices/<cohort>/<hardware>/<software type or _>/from/<version>.json`,
   the precomputed answer for a version the registry knows; the device takes
   the first offer whose rollout it is in. When an offer is staged (below
   100 %), its percent is in the channel's `.../rollouts.json`, read second.
2. Only when the answer is not found (a development build, a version the registry
   never saw): `.../candidates.json`, and decides locally.

Both paths run `relreg.devices.update`, the code that precomputed the answers. Repeat
checks send `If-None-Match`, so an unchanged document costs a 304. When asked,
the client downloads the chosen image and checks its size and sha256 before it
reports success; a file that does not match is deleted.

httpx is imported only when the site is an http(s) URL, so a client reading a
local folder (a mounted image, a test) needs nothing beyond relreg itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol
from urllib.parse import quote, unquote

from relreg.devices.paths import answer_path, candidates_path, rollouts_path
from relreg.devices.update import (Channel, DeviceIdentity, Payload, answer_thresholds, choose_index, plan_update,
                                   up_to_date_document)
from relreg.registry.versions import VersionError, VersionScheme, scheme_named
from relreg.trust.signing import SIG_SUFFIX, DocumentRefused, content_addressed_path, verify_signature

USER_AGENT = "relreg-device-client/1"
# A version that may be part of a path: what the registry schema allows for versions.
_PATH_SAFE_VERSION = re.compile(r"^(?!.*\.\.)[0-9][0-9A-Za-z.+-]{0,63}\Z")
_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$")
_CHUNK = 64 * 1024


class ClientError(Exception):
    """The check or the download failed; the message says why."""


class UnknownChannel(ClientError):
    """The site has no documents for this cohort, hardware version and software type."""


class VerificationError(ClientError):
    """A downloaded image does not match the size or sha256 the registry published."""


class SignatureRefused(ClientError):
    """A document's detached signature is missing or does not verify; `reason` is the stable code."""

    def __init__(self, url: str, reason: str, detail: str) -> None:
        super().__init__(f"{url}: refused ({reason}): {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Fetched:
    status: int  # 200, 304 or 404 (anything else raises)
    body: bytes = b""
    etag: str | None = None


class Transport(Protocol):
    def get(self, url: str, etag: str | None) -> Fetched: ...

    def download(self, url: str, sink: Any, limit: int) -> None: ...


class HttpTransport:
    """GETs over HTTP(S) with httpx; one connection pool for every request."""

    def __init__(self, timeout: float = 30.0, client: Any = None) -> None:
        import httpx  # only needed for http(s) sites

        self._httpx = httpx
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=True,
                                              headers={"User-Agent": USER_AGENT})
        self._owned = client is None

    def get(self, url: str, etag: str | None) -> Fetched:
        headers = {"Accept": "application/json"}
        if etag:
            headers["If-None-Match"] = etag
        try:
            response = self._client.get(url, headers=headers)
        except self._httpx.HTTPError as error:
            raise ClientError(f"GET {url}: {error}") from None
        if response.status_code in (200, 304, 404):
            return Fetched(response.status_code, response.content if response.status_code == 200 else b"",
                           response.headers.get("ETag"))
        raise ClientError(f"GET {url}: HTTP {response.status_code}")

    def download(self, url: str, sink: Any, limit: int) -> None:
        try:
            with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise ClientError(f"GET {url}: HTTP {response.status_code}")
                received = 0
                for chunk in response.iter_bytes(_CHUNK):
                    received += len(chunk)
                    if received > limit:
                        raise VerificationError(f"{url}: more than the published {limit} bytes")
                    sink.write(chunk)
        except self._httpx.HTTPError as error:
            raise ClientError(f"GET {url}: {error}") from None

    def close(self) -> None:
        if self._owned:
            self._client.close()


class FolderTransport:
    """A built site in a local folder (site URLs map to files); images still come over HTTP."""

    def __init__(self, root: Path, site_url: str, timeout: float = 30.0) -> None:
        self.root = root
        self.site_url = site_url
        self._timeout = timeout
        self._http: HttpTransport | None = None

    def _file(self, url: str) -> Path | None:
        if not url.startswith(self.site_url):
            return None
        from urllib.parse import unquote
        relative = unquote(url[len(self.site_url):])
        path = (self.root / relative).resolve()
        return path if path.is_relative_to(self.root.resolve()) else None

    def get(self, url: str, etag: str | None) -> Fetched:
        path = self._file(url)
        if path is None:
            raise ClientError(f"{url} is outside the site folder {self.root}")
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            return Fetched(404)
        except OSError as error:
            raise ClientError(f"{path}: {error.strerror}") from None
        tag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return Fetched(304, etag=tag) if etag == tag else Fetched(200, body, tag)

    def download(self, url: str, sink: Any, limit: int) -> None:
        path = self._file(url)
        if path is not None and path.is_file():
            with path.open("rb") as source:
                received = 0
                while chunk := source.read(_CHUNK):
                    received += len(chunk)
                    if received > limit:
                        raise VerificationError(f"{url}: more than the published {limit} bytes")
                    sink.write(chunk)
            return
        if self._http is None:
            self._http = HttpTransport(self._timeout)
        self._http.download(url, sink, limit)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


@dataclass(frozen=True)
class CheckResult:
    """What the check found: the device response document, and the image to fetch if any."""

    document: dict[str, Any]  # the seed's device response, or the up-to-date document
    payload: Payload | None  # None when up to date
    source: str  # "answer" (precomputed) or "candidates" (decided locally)
    requests: int  # GETs made (1 or 2: the answer and the rollouts, or the answer's 404 and the candidates)
    not_modified: int = 0  # of those, answered 304 from the client's cache

    @property
    def update_available(self) -> bool:
        return self.payload is not None

    @property
    def version(self) -> str | None:
        return self.document.get("version") if self.payload else None


@dataclass
class DeviceClient:
    """Checks for updates against one site. Keeps ETags and bodies for repeat checks."""

    site: str  # http(s) URL of the site root, or a local folder holding a built site
    timeout: float = 30.0
    site_url: str | None = None  # for a folder: the URL the site was built for (default: from its index)
    transport: Transport | None = None
    # Pinned {keyid: Ed25519 public key hex} of the registry's `documents` keys (api/v1/keys.json lists
    # them; pin them out of band). When set, every document is verified against its .sig before use.
    trusted_keys: Mapping[str, str] | None = None
    min_version: int = 0  # highest signed version accepted so far: persist it and pass it back next run
    clock: Callable[[], float] = time.time
    _cache: dict[str, tuple[str, Any, bytes]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.transport is not None:
            self._base = self.site if self.site.endswith("/") else self.site + "/"
            return
        if re.match(r"^https?://", self.site):
            self._base = self.site if self.site.endswith("/") else self.site + "/"
            self.transport = HttpTransport(self.timeout)
            return
        root = Path(self.site)
        if not (root / "api" / "v1").is_dir():
            raise ClientError(f"{self.site}: not a URL and not a built site folder (no api/v1/ in it)")
        base = self.site_url or _site_url_of(root)
        self._base = base if base.endswith("/") else base + "/"
        self.transport = FolderTransport(root, self._base, self.timeout)

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close:
            close()

    def __enter__(self) -> "DeviceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get_json(self, path: str) -> tuple[Any | None, bool]:
        """(document, from cache) of a site path; (None, False) when it does not exist."""
        url = self._base + path
        cached = self._cache.get(url)
        assert self.transport is not None
        fetched = self.transport.get(url, cached[0] if cached else None)
        if fetched.status == 404:
            self._cache.pop(url, None)
            return None, False
        if fetched.status == 304:
            if cached is None:
                raise ClientError(f"GET {url}: 304 Not Modified to a request without If-None-Match")
            if self.trusted_keys is not None:
                self._verified(path, cached[2])  # the signature may have expired since, or been rolled back
            return cached[1], True
        body = self._verified(path, fetched.body) if self.trusted_keys is not None else fetched.body
        try:
            if body.startswith(b"\xef\xbb\xbf"):  # json.loads skips it; relreg writes none, the C client refuses it
                raise ValueError("a byte-order mark before the JSON")
            document = json.loads(body)
        except ValueError as error:
            raise ClientError(f"GET {url}: not JSON ({error})") from None
        if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
            raise ClientError(f"GET {url}: not a relreg document (no data object)")
        if fetched.etag:
            self._cache[url] = (fetched.etag, document, body)
        return document, False

    def _verified(self, path: str, body: bytes) -> bytes:
        """The signed bytes of the document at `path` (its immutable copy when `body` is not them)."""
        assert self.transport is not None and self.trusted_keys is not None
        url = self._base + path
        signed_path = unquote(path)  # signatures name the site path, not its URL-quoted form
        sig = self.transport.get(url + SIG_SUFFIX, None)
        if sig.status != 200:
            raise SignatureRefused(url, "missing-signature", f"GET {url}{SIG_SUFFIX}: HTTP {sig.status}")
        try:
            verified = verify_signature(sig.body, self.trusted_keys, self.clock(), self.min_version,
                                        path=signed_path)
            try:
                verified.check(body)
            except DocumentRefused as first:  # a CDN edge between two builds: fetch the copy named by its hash
                copy_url = self._base + quote(content_addressed_path(signed_path, verified.sha256))
                copy = self.transport.get(copy_url, None)
                if copy.status != 200:
                    raise SignatureRefused(url, first.reason, f"{first.detail}, and its signed copy is not on the "
                                                              f"site (GET {copy_url}: HTTP {copy.status})") from None
                body = copy.body
                verified.check(body)
        except DocumentRefused as error:
            raise SignatureRefused(url, error.reason, error.detail) from None
        self.min_version = max(self.min_version, verified.version)
        return body

    def check(self, device: DeviceIdentity) -> CheckResult:
        requests = not_modified = 0
        channel_key = (device.cohort, device.hardware_version, device.software_type)
        if _PATH_SAFE_VERSION.match(device.current_version):
            path = answer_path(*channel_key, quote(device.current_version, safe=""))
            document, cached = self._get_json(path)
            requests += 1
            not_modified += cached
            if document is not None:
                return self._from_answer(document["data"], device, requests, not_modified)
        document, cached = self._get_json(candidates_path(*channel_key))
        requests += 1
        not_modified += cached
        if document is None:
            software = f", software type {device.software_type}" if device.software_type else ", no software type"
            raise UnknownChannel(f"the site has no update channel for cohort {device.cohort}, hardware version "
                                 f"{device.hardware_version}{software}")
        data = document["data"]
        try:
            scheme = scheme_named(data["version_scheme"])
            channel = Channel.from_document(data, scheme)
            current = scheme.parse(device.current_version)
        except VersionError as error:
            # The registry's advice (another version_scheme) is for its maintainers, not for a device.
            raise ClientError(f"current version: {str(error).partition('; set version_scheme')[0]}, "
                              "the version scheme of this registry") from None
        except (KeyError, TypeError, ValueError) as error:
            raise ClientError(f"malformed candidates document: {error!r}") from None
        _check_identity(data, device, channel_key, "candidates")
        plan = plan_update(channel, current)
        offer = plan.choose(device.serial)
        if offer is None:
            return CheckResult(plan.answer(device.serial), None, "candidates", requests, not_modified)
        return CheckResult(offer.response(), offer.payload, "candidates", requests, not_modified)

    def _from_answer(self, data: dict[str, Any], device: DeviceIdentity, requests: int,
                     not_modified: int) -> CheckResult:
        _check_identity(data, device, (device.cohort, device.hardware_version, device.software_type), "answer")
        if data.get("current_version") != device.current_version:
            raise ClientError(f"the answer is for version {data.get('current_version')}, "
                              f"not {device.current_version}")
        try:
            offers = data["offers"]
            _check_upgrades(offers, scheme_named(data["version_scheme"]), device.current_version)
            staged = any(offer["staged"] for offer in offers)
            rollouts = None
            if staged:
                found = self._rollouts(device)
                requests += 1
                not_modified += found[1] if found is not None else 0
                rollouts = found[0] if found is not None else []  # older than the answer: every staged offer 0 %
            thresholds = answer_thresholds(offers, rollouts)
            index = choose_index(thresholds, device.serial, device.cohort)
            if index is None:
                document = data["up_to_date"] or up_to_date_document(device.current_version, "latest")
                return CheckResult(document, None, "answer", requests, not_modified)
            release = offers[index]["release"]
            payload = Payload.from_document(release["artifacts"][0])
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise ClientError(f"malformed answer or rollouts document: {error!r}") from None
        return CheckResult(release, payload, "answer", requests, not_modified)

    def _rollouts(self, device: DeviceIdentity) -> tuple[Any, bool] | None:
        """(the entries of the channel's rollouts document, from cache), or None when its signature is older
        than a document accepted before (`rollback`): a rollouts document older than its answer (a cache
        between two builds) is not read, and every staged offer counts as 0 %, as an unlisted one does. Its
        percents may be ones the operator has lowered or paused since, so it must not push a device into a
        rollout; and it must not stop the device either. Any other refusal stands."""
        key = (device.cohort, device.hardware_version, device.software_type)
        try:
            document, cached = self._get_json(rollouts_path(*key))
        except SignatureRefused as error:
            if error.reason != "rollback":
                raise
            return None
        if document is None:
            raise ClientError("the site has an answer with staged offers but no rollouts document for this channel")
        _check_identity(document["data"], device, key, "rollouts")
        return document["data"]["rollouts"], cached

    def download(self, payload: Payload, folder: Path) -> Path:
        """Fetch the image into `folder`, verify size and sha256, and return its path.

        The bytes go to a temporary file beside the target and are renamed into
        place only when they match; on any mismatch nothing is left behind.
        """
        if not _SAFE_FILENAME.match(payload.filename) or ".." in payload.filename:
            raise ClientError(f"refusing to write the file name {payload.filename!r}")
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        handle, temporary = tempfile.mkstemp(prefix=".relreg-", suffix=".part", dir=folder)
        try:
            with os.fdopen(handle, "wb") as file:
                sink = _HashingSink(file, digest)
                assert self.transport is not None
                self.transport.download(payload.url, sink, payload.size)
                size = sink.size
            if size != payload.size:
                raise VerificationError(f"{payload.url}: received {size} bytes, the registry says {payload.size}")
            if digest.hexdigest() != payload.sha256:
                raise VerificationError(f"{payload.url}: sha256 {digest.hexdigest()} does not match the "
                                        f"published {payload.sha256}")
            target = folder / payload.filename
            os.replace(temporary, target)
            return target
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class _HashingSink:
    def __init__(self, file: Any, digest: Any) -> None:
        self._file = file
        self._digest = digest
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._digest.update(chunk)
        self.size += len(chunk)


def _check_identity(data: dict[str, Any], device: DeviceIdentity, key: tuple[str, str, str | None],
                    what: str) -> None:
    found = (data.get("cohort"), data.get("hardware_version"), data.get("software_type"))
    if found != key:
        raise ClientError(f"the {what} document is for {found}, not {key}")


def _check_upgrades(offers: Any, scheme: VersionScheme, current_version: str) -> None:
    """Refuse an answer that offers a release not above the device's version in the registry's scheme.

    relreg never writes one (rule 2: never a downgrade, never a reinstall; a cohort that drops a release
    leaves its devices up to date), so such an offer is a changed document. Every offer is checked before
    one is taken, as the C client does. Raises ClientError, or KeyError, TypeError or ValueError (a
    VersionError) on a malformed offer."""
    current = scheme.parse(current_version)
    if not isinstance(offers, list):
        raise TypeError("offers is a list")
    for offer in offers:
        version = offer["release"]["version"]
        if not isinstance(version, str) or not isinstance(offer["staged"], bool):
            raise TypeError("an offer's staged is a boolean and its release's version a string")
        if scheme.parse(version).key <= current.key:
            raise ClientError(f"the answer offers version {version}, which is not above the current version "
                              f"{current_version}: refused (downgrade-offer)")


def _site_url_of(root: Path) -> str:
    try:
        return json.loads((root / "api" / "v1" / "index.json").read_bytes())["data"]["site_url"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ClientError(f"{root}: no readable api/v1/index.json to learn the site URL from") from None


def check(site: str, device: DeviceIdentity, *, download_to: Path | None = None,
          timeout: float = 30.0) -> tuple[CheckResult, Path | None]:
    """One check (and optionally the download), for scripts: returns the result and the file written."""
    with DeviceClient(site, timeout=timeout) as client:
        result = client.check(device)
        path = client.download(result.payload, download_to) if result.payload and download_to else None
        return result, path
