"""The `relreg publish`, `relreg serve` and `relreg query` commands (added to the group in cli/main.py).

Each command only parses options and calls its module in relreg/service/: publish.py, serve.py,
query.py and query_client.py.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from relreg.cli.common import resolve_registry

# The stages are imported inside each command, so that loading the CLI (and `relreg --help`) stays quick.


# ---------------------------------------------------------------------------------------------
# relreg query
# ---------------------------------------------------------------------------------------------


def _table(result: dict[str, Any]) -> str:
    rows = [("VERSION", "CREATED", "HARDWARE", "REVISION", "YANKED")]
    for release in result["data"]:
        hardware = ", ".join(sorted({a["hardware_version"] for a in release.get("artifacts", [])}))
        created = release["created_date"][:16].replace("T", " ")
        rows.append((release["version"], created, hardware or "-", (release.get("revision") or "-")[:12],
                     "yes" if release.get("yanked") else ""))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    paging = result["paging"]
    if not result["data"]:
        lines = ["no release matches" if paging["total_count"] == 0 else "no release on this page"]
    lines.append(f"page {paging['page']} of {paging['page_count']}: {paging['item_count']} of "
                 f"{paging['total_count']} release{'s' if paging['total_count'] != 1 else ''}")
    return "\n".join(lines)


@click.command("query")
@click.argument("query_string", metavar="[QUERY]", required=False)
@click.option("--site", metavar="URL", help="Base URL of a published site (where api/v1/ is).")
@click.option("--dir", "folder", type=click.Path(path_type=Path, file_okay=False),
              help="A built site folder. Default: public/ when neither --site nor --dir is given.")
@click.option("--version", "versions", multiple=True, metavar="V", help="Release version (repeatable).")
@click.option("--revision", "revisions", multiple=True, metavar="R", help="Source revision (repeatable).")
@click.option("--hardware-version", "hardware_versions", multiple=True, metavar="HW",
              help="Hardware version with an artifact in the release (repeatable).")
@click.option("--build-id", "build_ids", multiple=True, metavar="ID",
              help="Build id of an artifact in the release (repeatable).")
@click.option("--sort", metavar="ORDER", help="-created_date (newest first, default) or created_date.")
@click.option("--page", metavar="N", help="Page number, from 1.")
@click.option("--per-page", metavar="N", help="Releases per page, 1 to 1000 (default 100).")
@click.option("--format", "output_format", type=click.Choice(["json", "table"]), default="json", show_default=True,
              help="json: the API's answer, byte for byte; table: for people.")
def query(query_string: str | None, site: str | None, folder: Path | None, versions: tuple[str, ...],
          revisions: tuple[str, ...], hardware_versions: tuple[str, ...], build_ids: tuple[str, ...],
          sort: str | None, page: str | None, per_page: str | None, output_format: str) -> None:
    """Query releases like the seed's GET /api/v1/releases, from a site's static files.

    \b
    A parameter given more than once matches any of its values; different
    parameters must all match. The answer is the list envelope the preview
    server (`relreg serve`) returns for the same query:
      relreg query --site https://firmware.example/ --hardware-version evt1 --version 1.2.3
      relreg query --dir public 'hardware_version=evt1&hardware_version=dvt1&sort=created_date'

    QUERY is a URL query string, combined with the options. Only static files
    are read: the smallest matching index first, the other parameters are
    checked on its releases. Exit status: 0 answered (also with no match),
    1 the site cannot be read, 2 usage error (unknown parameter, bad value).
    """
    from relreg.service.query import QueryError, parse_query
    from relreg.service.query_client import SiteError, answer_from_site, open_source
    from relreg.site.jobs import encode_json

    pairs: list[tuple[str, str]] = []
    try:
        if query_string:
            pairs += _raw_pairs(query_string)
        pairs += [("version", v) for v in versions] + [("revision", r) for r in revisions]
        pairs += [("hardware_version", h) for h in hardware_versions] + [("build_id", b) for b in build_ids]
        pairs += [(name, value) for name, value in (("sort", sort), ("page", page), ("per_page", per_page))
                  if value is not None]
        parsed = parse_query(pairs)
    except QueryError as error:
        raise click.UsageError(error.message) from None
    if site is not None and folder is not None:
        raise click.UsageError("give either --site or --dir, not both")
    if site is None and folder is None:
        if not Path("public", "api", "v1").is_dir():
            raise click.UsageError("give --site URL or --dir FOLDER (no built site in public/)")
        folder = Path("public")
    try:
        source = open_source(folder=folder, site=site)
        try:
            result = answer_from_site(source, parsed)
        finally:
            close = getattr(source, "close", None)
            if close:
                close()
    except SiteError as error:
        raise click.ClickException(str(error)) from None
    if output_format == "json":
        click.echo(encode_json(result).decode(), nl=False)
    else:
        click.echo(_table(result))


def _raw_pairs(query_string: str) -> list[tuple[str, str]]:
    """A query string's pairs, checked for readability (a QueryError otherwise)."""
    from urllib.parse import parse_qsl

    from relreg.service.query import parse_query_string

    parse_query_string(query_string)  # raises QueryError for anything the API would refuse
    return parse_qsl(query_string, keep_blank_values=True)


# ---------------------------------------------------------------------------------------------
# relreg serve
# ---------------------------------------------------------------------------------------------


@click.command("serve")
@click.option("--registry", "registry_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Registry folder (holding registry.yaml). Default: registry/ in the current folder or a parent.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free one.")
@click.option("--interval", default=0.5, show_default=True, type=click.FloatRange(0.05, 60),
              help="Seconds between checks of the registry files for changes.")
@click.option("--device-counts", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Fleet snapshot for count_devices, as for `relreg build`.")
@click.option("--log-requests", is_flag=True, help="Print every request.")
def serve(registry_dir: Path | None, host: str, port: int, interval: float, device_counts: Path | None,
          log_requests: bool) -> None:
    """Preview the site locally; rebuild when a registry file changes.

    \b
    Builds into a temporary folder and serves it at http://HOST:PORT/. When a
    file under the registry changes (or a commit is made), it rebuilds; pages
    reload by themselves. A registry with errors does not stop the server:
    the errors are printed here and shown over every page, while the last
    good build stays served.

    \b
    It also answers the seed's dynamic release query over the same data:
      GET /api/v1/releases?hardware_version=a&hardware_version=b&sort=created_date&page=1&per_page=10
    (400 with a JSON error for an unknown parameter or a bad value).
    """
    from relreg.service.serve import PreviewServer

    registry_path = resolve_registry(registry_dir)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host}: the preview is reachable from other machines", err=True)
    preview = PreviewServer(registry_path, host=host, port=port, interval=interval, device_counts=device_counts,
                            echo=lambda message: click.echo(message, err=True), log_requests=log_requests)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal) if threading.current_thread() is threading.main_thread() \
        else None
    preview.start()
    try:
        click.echo(f"serving {registry_path} at {preview.url} (Ctrl-C to stop)")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        preview.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    click.echo("stopped")


# ---------------------------------------------------------------------------------------------
# relreg publish
# ---------------------------------------------------------------------------------------------


@click.command("publish")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False), default="public", required=False)
@click.option("--to", "to", required=True, metavar="s3://BUCKET/PREFIX", help="Where to publish.")
@click.option("--endpoint-url", metavar="URL", envvar="AWS_ENDPOINT_URL",
              help="S3-compatible endpoint (MinIO, R2, ...). Credentials and region come the usual boto3 way.")
@click.option("--delete", is_flag=True, help="Delete objects under the prefix that are no longer in the site "
                                             "(after everything else is uploaded).")
@click.option("--dry-run", is_flag=True, help="List what would change; change nothing.")
@click.option("--force", is_flag=True, help="Upload every object, changed or not.")
@click.option("--jobs", default=8, show_default=True, type=click.IntRange(1, 64), help="Parallel uploads.")
def publish(folder: Path, to: str, endpoint_url: str | None, delete: bool, dry_run: bool, force: bool,
            jobs: int) -> None:
    """Upload a built site (default public/) to S3-compatible object storage.

    \b
    Only objects whose bytes changed are uploaded (compared by content hash),
    each with its Content-Type and Cache-Control from relreg's header policy.
    The order keeps readers consistent at every instant:
      1. artifacts, assets, schemas, release documents and pages
      2. indexes and lists (further pages before the pages linking them)
      3. device documents (api/v1/devices/, its index.json last)
      4. entry points: api/v1/index.json, index.html, then on a signed site
         tuf/root.json, the snapshot and tuf/timestamp.json
      5. with --delete only: objects no longer in the site, entry points and
         indexes before the documents they named
    A signature (<document>.sig) follows its document. A publish that is
    interrupted is finished by running it again; --dry-run shows what it
    would still do.
    """
    from relreg.service.publish import PublishError, make_client, parse_target, publish_site

    try:
        target = parse_target(to)
    except PublishError as error:
        raise click.UsageError(str(error)) from None
    if not folder.is_dir():
        raise click.UsageError(f"{folder} is not a folder; build the site first (relreg build --out {folder})")
    try:
        client = make_client(endpoint_url)
        report = publish_site(folder, target, client, delete=delete, dry_run=dry_run, force=force, workers=jobs)
    except PublishError as error:
        raise click.ClickException(str(error)) from None
    except Exception as error:  # boto3/botocore errors (network, credentials, permissions)
        raise click.ClickException(
            f"publish stopped: {error}. Readers still see a consistent site (the entry point is replaced "
            "last); run the same command again to finish.") from None
    for line in report.lines():
        click.echo(line)
    click.echo(report.summary())
