"""Publishing a built site to an S3-compatible object store, in an order that keeps readers consistent.

Three layers, the first two pure:

- The header policy: `object_headers(path)` gives every file its Content-Type
  and Cache-Control. It is the single source of these headers: the upload
  uses it, the preview server takes its Content-Types from it, and a site
  `_headers` file (Netlify / Cloudflare Pages) is rendered from it by
  `headers_file(paths)`.
- The publish plan: `plan_publish(local, remote)` compares the site with
  what the store holds (by content hash) and returns the uploads, grouped in
  stages, and the deletes.
- `publish_site` lists the bucket, plans, and carries the plan out with boto3.

Order (`upload_rank`), in four stages: "leaves" (artifacts, assets, schemas,
release documents and pages); "indexes" (continuation pages before the first
page that links them, the per-dimension indexes before the lists that link
them); "devices" (api/v1/devices/, its own index.json last); "entry"
(api/v1/index.json, index.html, and on a signed site TUF's root.json, then
the snapshot, then timestamp.json). A detached signature (`<doc>.sig`) goes
right after the documents of its step. Each step finishes before the next
starts, so at every instant a reader who follows links from any object finds
what they name.
Objects that are no longer in the site are deleted only with `delete=True`,
after every upload, in the reverse order (entry points and indexes before the
documents they used to name).

Convergence: uploads are idempotent whole-object PUTs and the plan is
computed afresh from the store's state, so a publish interrupted at any point
and run again uploads what is still missing and ends at the new site. Until
the entry point is replaced, readers enter through the old entry point into
a store that holds everything the old site named.

Change detection: an object is unchanged when the store's ETag equals the
MD5 of the local bytes (single-part PUTs, which is how relreg uploads), or,
when the ETag is not a plain MD5 (multipart uploads, SSE-KMS), when the
object's `sha256` metadata equals the local SHA-256. Every object carries
`x-amz-meta-sha256` and `x-amz-meta-relreg-policy` (a hash of the header
policy). When the published entry point's policy hash differs from this
relreg's, every object is uploaded again so its headers follow the new policy.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

from relreg.site.paths import MANIFEST
from relreg.site.write import site_paths

# --------------------------------------------------------------------------------------------
# The header policy (pure)
# --------------------------------------------------------------------------------------------
# The header policy lives in serving.py, shared with the build's _headers and nginx.conf.
from relreg.site.serving import POLICY_ID, SIGNATURE_SUFFIX, object_headers  # noqa: E402

# --------------------------------------------------------------------------------------------
# Upload order (pure)
# --------------------------------------------------------------------------------------------

STAGES = ("leaves", "indexes", "devices", "entry")
ENTRY_POINTS = ("api/v1/index.json", "index.html")  # in upload order (then, when signed, TUF's root,
# snapshot and timestamp)

# (stage, rank within the stage, pattern); first match wins.
_ORDER_RULES: tuple[tuple[str, int, re.Pattern[str]], ...] = tuple(
    (stage, rank, re.compile(pattern)) for stage, rank, pattern in (
        ("entry", 0, r"^api/v1/index\.json$"),
        ("entry", 1, r"^index\.html$"),
        # A signed site (tufrepo.py): new roots and the documents' consistent-snapshot copies are leaves;
        # targets metadata names only those copies; then root.json, the snapshot and the timestamp, last.
        ("leaves", 0, r"^tuf/(?:\d+\.root\.json$|targets/)"),
        ("indexes", 3, r"^tuf/\d+\.targets\.json$"),
        ("entry", 2, r"^tuf/root\.json$"),
        ("entry", 3, r"^tuf/\d+\.snapshot\.json$"),
        ("entry", 4, r"^tuf/timestamp\.json$"),
        ("devices", 1, r"^api/v1/devices/index\.json$"),  # the device API's own entry point
        ("devices", 0, r"^api/v1/devices/"),
        # Continuation pages, then first pages (which link them), then the lists linking those.
        ("indexes", 0, r"^api/v1/.*/page/\d+\.json$"),
        ("leaves", 0, r"^api/v1/releases/[^/]+\.json$"),  # release documents
        ("indexes", 1, r"^api/v1/releases/[^/]+/[^/]+\.json$"),  # per-dimension indexes
        ("indexes", 2, r"^api/v1/"),  # releases.json, hardware_versions.json, cohorts.json, anything new
        ("leaves", 0, r"^releases/[^/]+/index\.html$"),  # a release's page
        ("indexes", 2, r"\.html$"),  # list pages (releases/, hardware/<hw>/, cohorts/<slug>/)
        ("indexes", 2, r"(?:^|/)feed\.xml$"),
        ("indexes", 2, r"^sitemaps/"),
        ("indexes", 3, r"^(?:sitemap\.xml|robots\.txt)$"),
        ("leaves", 0, r""),  # artifacts, assets, schemas, anything else that names nothing
    ))


class Rank(NamedTuple):
    stage: int  # index in STAGES
    step: int
    signature: int = 0  # 1 for a detached signature, uploaded right after the documents of its step

    @property
    def stage_name(self) -> str:
        return STAGES[self.stage]


def upload_rank(path: str) -> Rank:
    """Where `path` goes in the upload order: by stage, then step within the stage."""
    if path.endswith(SIGNATURE_SUFFIX) and len(path) > len(SIGNATURE_SUFFIX):
        document = upload_rank(path[:-len(SIGNATURE_SUFFIX)])
        return Rank(document.stage, document.step, 1)
    for stage, step, pattern in _ORDER_RULES:
        if pattern.search(path):
            return Rank(STAGES.index(stage), step)
    return Rank(0, 0)


# --------------------------------------------------------------------------------------------
# The publish plan (pure)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalFile:
    path: str
    md5: str  # hex
    sha256: str  # hex
    size: int


@dataclass(frozen=True)
class RemoteObject:
    path: str  # relative to the prefix
    etag: str  # without quotes
    size: int
    sha256: str | None = None  # from metadata, when it was read


@dataclass(frozen=True)
class Upload:
    path: str
    reason: str  # new | changed | headers | forced
    rank: Rank


@dataclass(frozen=True)
class PublishPlan:
    uploads: tuple[Upload, ...]  # in order
    deletes: tuple[str, ...]  # in order; empty unless delete=True
    stale: tuple[str, ...]  # objects not in the site (deleted only with delete=True)
    unchanged: int

    def upload_groups(self) -> list[tuple[Rank, list[Upload]]]:
        groups: list[tuple[Rank, list[Upload]]] = []
        for upload in self.uploads:
            if groups and groups[-1][0] == upload.rank:
                groups[-1][1].append(upload)
            else:
                groups.append((upload.rank, [upload]))
        return groups

    def delete_groups(self) -> list[tuple[Rank, list[str]]]:
        groups: list[tuple[Rank, list[str]]] = []
        for path in self.deletes:
            rank = upload_rank(path)
            if groups and groups[-1][0] == rank:
                groups[-1][1].append(path)
            else:
                groups.append((rank, [path]))
        return groups

    @property
    def changed(self) -> bool:
        return bool(self.uploads or self.deletes)


def needs_metadata(local: LocalFile, remote: RemoteObject) -> bool:
    """The listing does not settle it: same size, but the ETag is not the local MD5, which happens for
    changed bytes and also for objects whose ETag is no MD5 (multipart uploads, SSE-KMS). The object's
    sha256 metadata decides."""
    return remote.etag != local.md5 and remote.size == local.size and remote.sha256 is None


def same_content(local: LocalFile, remote: RemoteObject) -> bool:
    if remote.size != local.size:
        return False
    if remote.etag == local.md5:
        return True
    return remote.sha256 is not None and remote.sha256 == local.sha256


def plan_publish(local: Mapping[str, LocalFile], remote: Mapping[str, RemoteObject], *,
                 delete: bool = False, force: bool = False, refresh_headers: bool = False) -> PublishPlan:
    """What to upload (in order) and delete to turn `remote` into `local`.

    `refresh_headers` uploads unchanged objects too (the header policy
    changed); `force` uploads everything.
    """
    uploads = []
    unchanged = 0
    for path, file in local.items():
        existing = remote.get(path)
        if existing is None:
            reason = "new"
        elif not same_content(file, existing):
            reason = "changed"
        elif force:
            reason = "forced"
        elif refresh_headers:
            reason = "headers"
        else:
            unchanged += 1
            continue
        uploads.append(Upload(path, reason, upload_rank(path)))
    uploads.sort(key=lambda u: (u.rank, u.path))
    stale = sorted((p for p in remote if p not in local), key=lambda p: (upload_rank(p), p))
    deletes = tuple(sorted(stale, key=lambda p: (upload_rank(p), p), reverse=True)) if delete else ()
    return PublishPlan(uploads=tuple(uploads), deletes=deletes, stale=tuple(stale), unchanged=unchanged)


# --------------------------------------------------------------------------------------------
# Reading the site and the store
# --------------------------------------------------------------------------------------------


class PublishError(Exception):
    """The publish cannot start or did not finish (the store is left consistent; run it again)."""


@dataclass(frozen=True)
class Target:
    bucket: str
    prefix: str  # "" or ending in "/"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, path: str) -> str:
        return self.prefix + path


def parse_target(url: str) -> Target:
    """s3://bucket[/prefix] -> Target."""
    form = re.fullmatch(r"s3://([^/]*)(?:/(.*))?", url)
    if not form:
        raise PublishError(f"--to {url}: expected s3://BUCKET or s3://BUCKET/PREFIX")
    match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?", url)
    if not match:
        raise PublishError(f"--to {url}: '{form.group(1)}' is not a bucket name: 3 to 63 lower-case letters, digits, "
                           "'.' and '-', starting and ending with a letter or digit (S3's naming rules)")
    prefix = (match.group(2) or "").strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise PublishError(f"--to {url}: the prefix must not hold empty, '.' or '..' segments")
    return Target(match.group(1), prefix + "/" if prefix else "")


def read_site(folder: Path) -> tuple[dict[str, LocalFile], dict[str, bytes]]:
    """The files of a built site (as listed in its manifest) with their hashes, and their bytes."""
    folder = Path(folder)
    manifest = site_paths(folder)
    if manifest is None:
        raise PublishError(f"{folder} is not a site built by relreg ({MANIFEST} is missing or unreadable); "
                           "run `relreg build --out FOLDER` first")
    files: dict[str, LocalFile] = {}
    contents: dict[str, bytes] = {}
    for path in sorted(manifest):
        try:
            content = (folder / path).read_bytes()
        except OSError as error:
            raise PublishError(f"{folder / path}: {error.strerror}; rebuild the site") from None
        files[path] = LocalFile(path, hashlib.md5(content).hexdigest(), hashlib.sha256(content).hexdigest(),
                                len(content))
        contents[path] = content
    return files, contents


def list_remote(client: Any, target: Target) -> dict[str, RemoteObject]:
    objects: dict[str, RemoteObject] = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=target.bucket, Prefix=target.prefix):
        for item in page.get("Contents", []):
            path = item["Key"][len(target.prefix):]
            if path:
                objects[path] = RemoteObject(path, item["ETag"].strip('"'), int(item["Size"]))
    return objects


def _head(client: Any, target: Target, path: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return client.head_object(Bucket=target.bucket, Key=target.key(path))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


# --------------------------------------------------------------------------------------------
# Carrying the plan out
# --------------------------------------------------------------------------------------------


@dataclass
class PublishHooks:
    """Called as the publish goes; an exception from a hook stops it there (tests inject interruptions)."""

    after_upload: Callable[[str], None] | None = None  # path, after its PUT succeeded
    after_stage: Callable[[str], None] | None = None  # stage name, after all its uploads (also if it had none)
    after_delete: Callable[[str], None] | None = None  # path, after its DELETE succeeded


@dataclass
class PublishReport:
    target: Target
    plan: PublishPlan
    dry_run: bool
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What changes (or would, with dry_run): one line per object, then a summary."""
        verb = "would " if self.dry_run else ""
        lines = [f"{verb}upload {u.path} ({u.reason})" for u in self.plan.uploads]
        if self.plan.deletes:
            lines += [f"{verb}delete {path}" for path in self.plan.deletes]
        else:
            lines += [f"keep {path} (no longer in the site; --delete removes it)" for path in self.plan.stale]
        return lines

    def summary(self) -> str:
        plan = self.plan
        new = sum(1 for u in plan.uploads if u.reason == "new")
        head = "dry run: would upload" if self.dry_run else "uploaded"
        text = (f"{head} {len(plan.uploads)} objects ({new} new, {len(plan.uploads) - new} changed) to "
                f"{self.target.url}, {plan.unchanged} unchanged, ")
        if plan.deletes:
            text += f"{'would delete' if self.dry_run else 'deleted'} {len(plan.deletes)}"
        else:
            text += f"{len(plan.stale)} stale kept"
        return text


def make_client(endpoint_url: str | None = None) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise PublishError("publishing needs boto3: pip install boto3 (or relreg[publish])") from None
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32)
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)


def _upload(client: Any, target: Target, path: str, content: bytes, file: LocalFile) -> None:
    headers = object_headers(path)
    client.put_object(
        Bucket=target.bucket, Key=target.key(path), Body=content,
        ContentType=headers.content_type, CacheControl=headers.cache_control,
        ContentMD5=base64.b64encode(bytes.fromhex(file.md5)).decode(),
        Metadata={"sha256": file.sha256, "relreg-policy": POLICY_ID},
    )


def _run_group(pool: ThreadPoolExecutor, action: Callable[[str], None], paths: list[str]) -> None:
    futures = [pool.submit(action, path) for path in paths]
    done, pending = wait(futures, return_when=FIRST_EXCEPTION)
    for future in pending:
        future.cancel()
    wait(pending)
    for future in futures:
        if future.done() and not future.cancelled() and future.exception() is not None:
            raise future.exception()  # type: ignore[misc]


def _policy_marker(local: Mapping[str, LocalFile]) -> str | None:
    for path in ENTRY_POINTS:
        if path in local:
            return path
    return None


def publish_site(folder: Path, target: Target, client: Any, *, delete: bool = False, dry_run: bool = False,
                 force: bool = False, workers: int = 8, hooks: PublishHooks | None = None) -> PublishReport:
    """Make the store under `target` hold exactly the built site in `folder` (stale objects too unless delete)."""
    hooks = hooks or PublishHooks()
    local, contents = read_site(folder)
    try:
        remote = list_remote(client, target)
    except Exception as error:  # botocore's errors: no bucket, no credentials, no connection
        raise PublishError(f"cannot list {target.url}: {error}") from None

    # Settle the objects the listing cannot by their sha256 metadata, and read the policy id the
    # published entry point was uploaded with.
    unsettled = [path for path, file in local.items() if path in remote and needs_metadata(file, remote[path])]
    marker = _policy_marker(local)
    heads = ([marker] if marker is not None and marker in remote else []) + unsettled
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(heads) or 1))) as pool:
        metadata = dict(zip(heads, pool.map(lambda path: (_head(client, target, path) or {}).get("Metadata", {}),
                                            heads)))
    for path in unsettled:
        existing = remote[path]
        remote[path] = RemoteObject(path, existing.etag, existing.size, metadata[path].get("sha256") or "")
    refresh_headers = marker in metadata and metadata[marker].get("relreg-policy") != POLICY_ID

    plan = plan_publish(local, remote, delete=delete, force=force, refresh_headers=refresh_headers)
    report = PublishReport(target=target, plan=plan, dry_run=dry_run)
    if dry_run:
        return report

    lock = threading.Lock()

    def upload(path: str) -> None:
        _upload(client, target, path, contents[path], local[path])
        with lock:
            report.uploaded.append(path)
        if hooks.after_upload:
            hooks.after_upload(path)

    def remove(path: str) -> None:
        client.delete_object(Bucket=target.bucket, Key=target.key(path))
        with lock:
            report.deleted.append(path)
        if hooks.after_delete:
            hooks.after_delete(path)

    groups = plan.upload_groups()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="relreg-publish") as pool:
        for stage_index, stage in enumerate(STAGES):
            for rank, uploads in groups:
                if rank.stage == stage_index:
                    _run_group(pool, upload, [u.path for u in uploads])
            if hooks.after_stage:
                hooks.after_stage(stage)
        for _rank, paths in plan.delete_groups():
            _run_group(pool, remove, paths)
    return report
