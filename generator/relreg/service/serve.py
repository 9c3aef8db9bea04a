"""`relreg serve`: a local preview of the site that rebuilds as registry files change.

- Builds the registry into a temporary folder (with the preview's own URL as
  the base URL, so every link stays on the preview) and serves it on
  localhost with the standard library's threading HTTP server.
- Watches the registry's files by polling their modification times and sizes
  (and git's HEAD log, so a commit re-dates the releases) and rebuilds when
  one changes. The build is the real one (`build_site`), incremental.
- A build that fails does not stop the server: the diagnostics go to the
  terminal, every HTML page shows them in an overlay above the last good
  build (or an error page when there never was one), and JSON keeps serving
  the last good build with an `X-Relreg-Build: failed` header. Pages reload
  themselves after each rebuild: the preview adds a same-origin script and
  stylesheet (the site's CSP forbids inline ones) that polls
  /__relreg/unchanged.gif; /__relreg/status gives the build state as JSON.
- `GET /api/v1/releases?...` answers the seed's dynamic query with
  query.py over the built release documents: 200 with the list envelope, or
  400 with {"error": {...}} for an unknown parameter or a bad value.

Content-Types come from the publish header policy, so the preview serves
what the object store will; Cache-Control is `no-store` (it is a preview).
"""

from __future__ import annotations

import html
import http.server
import os
import shutil
import socket
import tempfile
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import click

from relreg.service.query import QueryError, answer, parse_query_string
from relreg.service.query_client import FolderSource, all_releases
from relreg.site.jobs import encode_json
from relreg.site.serving import content_type

STATUS_PATH = "/__relreg/status"
QUERY_PATH = "/api/v1/releases"

PREVIEW_PREFIX = "/__relreg/"
# The site's pages forbid inline script and style (their CSP: script-src 'self', style-src 'self';
# connect-src 'self' only for the update planner's documents), so the preview's additions are
# same-origin files, and the script learns of a rebuild by loading an image (img-src 'self').
_PREVIEW_JS = b"""/* relreg serve: reload the page after each rebuild. */
(function () {
  var generation = new URL(document.currentScript.src).searchParams.get("generation");
  function poll() {
    var probe = new Image();
    probe.onload = function () { setTimeout(poll, 1000); };
    probe.onerror = function () { location.reload(); };
    probe.src = "/__relreg/unchanged.gif?generation=" + generation + "&t=" + Date.now();
  }
  setTimeout(poll, 1000);
})();
"""
_PREVIEW_CSS = b"""/* relreg serve: the build-error overlay. */
#relreg-build-errors { position: fixed; inset: 0; z-index: 2147483647; overflow: auto; padding: 2em;
  background: rgba(20, 20, 20, .94); color: #fff; font: 14px/1.5 ui-monospace, SFMono-Regular, Menlo, monospace; }
#relreg-build-errors h1 { color: #ff6b6b; font-size: 1.4em; margin: 0 0 .5em; }
#relreg-build-errors pre { white-space: pre-wrap; color: #ffd7d7; }
#relreg-build-errors .hint { color: #aaa; }
"""
_PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
_ASSETS = f"""<link rel="stylesheet" href="{PREVIEW_PREFIX}preview.css">
<script src="{PREVIEW_PREFIX}preview.js?generation=%d" defer></script>"""
_OVERLAY = """<div id="relreg-build-errors" role="alert"><h1>%s</h1><p>%s</p><pre>%s</pre>
<p class="hint">Fix the files and save: the preview rebuilds and reloads by itself.</p></div>"""


@dataclass(frozen=True)
class BuildState:
    generation: int  # 0 before the first build, then one more per build
    ok: bool
    summary: str
    errors: tuple[str, ...] = ()  # lines for people (diagnostics as path:line:col: ...)
    warnings: tuple[str, ...] = ()
    has_site: bool = False  # a good build exists (the last one, or an earlier one when this one failed)

    def to_document(self) -> dict[str, Any]:
        return {"generation": self.generation, "ok": self.ok, "summary": self.summary,
                "errors": list(self.errors), "warnings": list(self.warnings), "has_site": self.has_site}


def _git_head_log(start: Path) -> Path | None:
    """git's HEAD log of the repository holding `start`: it changes with every commit and checkout."""
    for folder in (start, *start.parents):
        if (folder / ".git").is_dir():
            return folder / ".git" / "logs" / "HEAD"
    return None


def snapshot(paths: list[Path]) -> dict[str, tuple[int, int]]:
    """{file: (mtime_ns, size)} for every file under the given folders (hidden ones skipped) and files."""
    seen: dict[str, tuple[int, int]] = {}
    for root in paths:
        if root.is_file():
            try:
                stat = root.stat()
            except OSError:  # removed since
                continue
            seen[str(root)] = (stat.st_mtime_ns, stat.st_size)
            continue
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in names:
                path = os.path.join(folder, name)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue
                seen[path] = (stat.st_mtime_ns, stat.st_size)
    return seen


class PreviewServer:
    """Build, serve, watch. `start()` returns once the first build is done and the server listens."""

    def __init__(self, registry_dir: Path, *, host: str = "127.0.0.1", port: int = 0, interval: float = 0.5,
                 device_counts: Path | None = None, echo: Callable[[str], None] | None = None,
                 log_requests: bool = False) -> None:
        self.registry_dir = Path(registry_dir)
        self.host = host
        self.port = port
        self.interval = interval
        self.device_counts = device_counts
        self.echo = echo or (lambda message: None)
        self.log_requests = log_requests
        self._workdir: Path | None = None
        self.site_dir = Path()  # set by start(): a new temporary folder, removed by stop()
        self._state = BuildState(generation=0, ok=False, summary="not built yet")
        self._state_changed = threading.Condition()
        self._build_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._releases: tuple[int, list[dict[str, Any]]] | None = None
        self._releases_lock = threading.Lock()
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "PreviewServer":
        try:
            self._httpd = _HTTPServer((self.host, self.port), _handler_for(self))
        except OSError as error:
            raise click.ClickException(
                f"cannot listen on {self.host}:{self.port}: {error.strerror}"
                + ("; pass --port 0 for any free port" if self.port else "")) from None
        host, port = self._httpd.server_address[:2]
        self.port = int(port)
        shown = f"[{host}]" if ":" in str(host) else host
        self.url = f"http://{shown}:{self.port}/"
        self._workdir = Path(tempfile.mkdtemp(prefix="relreg-serve-"))
        self.site_dir = self._workdir / "site"
        self._watched = [self.registry_dir] + ([self.device_counts] if self.device_counts else [])
        log = _git_head_log(self.registry_dir.resolve())
        if log is not None:
            self._watched.append(log)
        self._last_snapshot = self._snapshot()
        self.build()
        serving = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                   name="relreg-serve-http", daemon=True)
        watching = threading.Thread(target=self._watch, name="relreg-serve-watch", daemon=True)
        self._threads = [serving, watching]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> "PreviewServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- building ----------------------------------------------------------------------------

    @property
    def state(self) -> BuildState:
        return self._state

    def wait_for_generation(self, generation: int, timeout: float) -> BuildState:
        """Block until a build numbered `generation` or later has finished (or the timeout passes)."""
        with self._state_changed:
            self._state_changed.wait_for(lambda: self._state.generation >= generation, timeout=timeout)
            return self._state

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        return snapshot([p for p in self._watched if p.exists()])

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                current = self._snapshot()
            except OSError:
                continue
            if current != self._last_snapshot:
                # Let the change settle (an editor's save or a checkout writes files in several
                # steps, and a file caught half-written would fail validation): build once the files
                # look the same for a whole interval.
                for _ in range(20):
                    if self._stop.wait(self.interval):
                        return
                    settled = self._snapshot()
                    if settled == current:
                        break
                    current = settled
                self._last_snapshot = current
                self.echo("change detected: rebuilding")
                self.build()

    def build(self) -> BuildState:
        from relreg.build import BuildOptions, InvalidRegistry, build_site
        from relreg.registry.report import text_report
        from relreg.registry.validate import summary as validation_summary

        with self._build_lock:
            previous = self._state
            generation = previous.generation + 1
            try:
                report = build_site(BuildOptions(registry_dir=self.registry_dir, out=self.site_dir,
                                                 device_counts=self.device_counts, base_url=self.url))
            except InvalidRegistry as error:
                text = text_report(error.result.diagnostics, validation_summary(error.result))
                state = BuildState(generation, False, validation_summary(error.result),
                                   tuple(text.splitlines()), has_site=previous.has_site)
            except click.ClickException as error:
                state = BuildState(generation, False, error.format_message(), (error.format_message(),),
                                   has_site=previous.has_site)
            except Exception as error:  # a bug or an unexpected input: show it, keep serving
                state = BuildState(generation, False, f"the build failed: {error!r}",
                                   tuple(traceback.format_exc().splitlines()), has_site=previous.has_site)
            else:
                state = BuildState(generation, True, report.summary(), (), tuple(report.warnings), has_site=True)
            self._report(state)
            with self._state_changed:
                self._state = state
                self._state_changed.notify_all()
            return state

    def _report(self, state: BuildState) -> None:
        if state.ok:
            for warning in state.warnings:
                self.echo(f"warning: {warning}")
            self.echo(state.summary)
            return
        for line in state.errors:
            self.echo(line)
        self.echo("build failed: " + ("serving the last good build; pages show the errors" if state.has_site
                                      else "nothing to serve until the registry is fixed"))

    def releases(self) -> list[dict[str, Any]]:
        """Every release document of the last good build (read once per build)."""
        generation = self._state.generation
        with self._releases_lock:
            if self._releases is None or self._releases[0] != generation:
                self._releases = (generation, all_releases(FolderSource(self.site_dir)))
            return self._releases[1]


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind's reverse DNS lookup (socket.getfqdn), which can take seconds.
        socket.socket.bind(self.socket, self.server_address)
        self.server_address = self.socket.getsockname()
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


def _inject(page: bytes, addition: str) -> bytes:
    text = page.decode("utf-8", errors="replace")
    index = text.lower().rfind("</body>")
    if index < 0:
        return (text + addition).encode()
    return (text[:index] + addition + text[index:]).encode()


def _handler_for(preview: PreviewServer) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        server_version = "relreg-serve"
        protocol_version = "HTTP/1.1"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(preview.site_dir), **kwargs)

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes: without this, Nagle's algorithm and delayed
            # ACKs hold each keep-alive response back by ~40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            if preview.log_requests:
                super().log_message(format, *args)

        def do_GET(self) -> None:  # noqa: N802
            self._respond(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._respond(body=False)

        # -- responses -------------------------------------------------------------------

        def _send(self, status: int, content: bytes, content_type_value: str, body: bool,
                  extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type_value)
            self.send_header("Content-Length", str(len(content)))
            self.send_header("Cache-Control", "no-store")
            state = preview.state
            self.send_header("X-Relreg-Build", "ok" if state.ok else "failed")
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if body:
                self.wfile.write(content)

        def _json(self, status: int, document: Any, body: bool) -> None:
            self._send(status, encode_json(document), "application/json", body)

        def _error_json(self, status: int, message: str, code: str, body: bool) -> None:
            self._json(status, {"error": {"message": message, "type": "error", "code": code,
                                          "http_code": status}}, body)

        def _html(self, status: int, page: bytes, body: bool) -> None:
            state = preview.state
            addition = ""
            if not state.ok and state.has_site:
                addition += _OVERLAY % ("The registry has errors", html.escape(state.summary) +
                                        "; this page is the last good build.",
                                        html.escape("\n".join(state.errors)))
            addition += _ASSETS % state.generation
            self._send(status, _inject(page, addition), "text/html; charset=utf-8", body)

        def _error_page(self, body: bool) -> None:
            state = preview.state
            page = (f"<!doctype html><html><head><meta charset=utf-8><title>relreg: build failed</title></head>"
                    f"<body><h1>The registry has errors</h1><p>{html.escape(state.summary)}</p>"
                    f"<pre>{html.escape(chr(10).join(state.errors))}</pre></body></html>").encode()
            self._html(503, page, body)

        def _respond(self, body: bool) -> None:
            try:
                self._dispatch(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception as error:  # never take the server down for one request
                preview.echo(f"error serving {self.path}: {error!r}")
                try:
                    self._error_json(500, f"internal error: {error!r}", "internal_error", body)
                except OSError:
                    pass

        def _dispatch(self, body: bool) -> None:
            parts = urlsplit(self.path)
            path = parts.path
            state = preview.state
            if path.startswith(PREVIEW_PREFIX):
                self._preview_file(path, parts.query, body)
                return
            if not state.has_site:
                if path.startswith("/api/"):
                    self._error_json(503, f"the registry has errors: {state.summary}", "build_failed", body)
                else:
                    self._error_page(body)
                return
            if path == QUERY_PATH:
                self._query(parts.query, body)
                return
            self._static(parts, body)

        def _preview_file(self, path: str, query_string: str, body: bool) -> None:
            state = preview.state
            if path == STATUS_PATH:
                self._json(200, state.to_document(), body)
            elif path == PREVIEW_PREFIX + "preview.js":
                self._send(200, _PREVIEW_JS, "text/javascript; charset=utf-8", body)
            elif path == PREVIEW_PREFIX + "preview.css":
                self._send(200, _PREVIEW_CSS, "text/css; charset=utf-8", body)
            elif path == PREVIEW_PREFIX + "unchanged.gif":
                # 200 while the page's generation is the current one; a 404 makes the page reload.
                unchanged = f"generation={state.generation}" in query_string.split("&")
                self._send(200 if unchanged else 404, _PIXEL if unchanged else b"", "image/gif", body)
            else:
                self._error_json(404, f"{path} does not exist", "not_found", body)

        def _query(self, query_string: str, body: bool) -> None:
            try:
                query = parse_query_string(query_string)
            except QueryError as error:
                self._json(400, error.to_document(), body)
                return
            self._json(200, answer(query, preview.releases()), body)

        def _static(self, parts: Any, body: bool) -> None:
            local = self.translate_path(parts.path)
            if os.path.isdir(local):
                if not parts.path.endswith("/"):
                    location = parts.path + "/" + (f"?{parts.query}" if parts.query else "")
                    self._send(301, b"", "text/plain; charset=utf-8", body, {"Location": location})
                    return
                local = os.path.join(local, "index.html")
            relative = os.path.relpath(local, preview.site_dir).replace(os.sep, "/")
            try:
                with open(local, "rb") as stream:
                    content = stream.read()
            except OSError:
                if parts.path.startswith("/api/"):
                    self._error_json(404, f"{parts.path} does not exist", "not_found", body)
                    return
                try:  # the site's own 404 page, as a CDN configured for the site would serve it
                    with open(os.path.join(preview.site_dir, "404.html"), "rb") as stream:
                        page = stream.read()
                except OSError:
                    page = (b"<!doctype html><html><head><meta charset=utf-8><title>Not found</title>"
                            b"</head><body><h1>Not found</h1></body></html>")
                self._html(404, page, body)
                return
            kind = content_type(relative)
            if kind.startswith("text/html"):
                self._html(200, content, body)
            else:
                self._send(200, content, kind, body)

    return Handler

