"""How the site must be served: one policy for headers, rendered for each kind of origin.

`headers_for(path)` is the single source of Content-Type, Cache-Control and
CORS. The build renders it as `_headers` (Netlify, Cloudflare Pages) and as an
nginx server snippet (`nginx.conf`, to include in a server block whose root is
the site); `relreg publish` sets the same headers on every object it uploads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Documents that can change between builds: short cache, revalidate with the ETag.
SHORT = "public, max-age=60, must-revalidate"
# Pages: a little longer, they change less often than device documents matter.
PAGES = "public, max-age=300, must-revalidate"
# Assets whose names carry a hash of their bytes never change under a name.
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"

_HASHED_ASSET = re.compile(r"^static/.+\.[0-9a-f]{8,}\.[a-z0-9]+$")
_TYPES = {
    "json": "application/json; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "svg": "image/svg+xml",
    "xml": "application/xml; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "sig": "application/json; charset=utf-8",
}
CORS_PREFIXES = ("api/", "schemas/", "tuf/")


@dataclass(frozen=True)
class Headers:
    content_type: str
    cache_control: str
    cors: bool

    def as_dict(self) -> dict[str, str]:
        headers = {"Content-Type": self.content_type, "Cache-Control": self.cache_control}
        if self.cors:
            headers["Access-Control-Allow-Origin"] = "*"
        return headers


def content_type(path: str) -> str:
    if path.endswith("feed.xml"):
        return "application/atom+xml; charset=utf-8"
    return _TYPES.get(path.rsplit(".", 1)[-1].lower(), "application/octet-stream")


def headers_for(path: str) -> Headers:
    """The headers of the file at `path` (relative to the site root, forward slashes)."""
    if _HASHED_ASSET.match(path):
        cache = IMMUTABLE
    elif path == "404.html":
        cache = NO_CACHE
    elif path.endswith(".html") or path.endswith(".xml"):
        cache = PAGES
    else:
        cache = SHORT
    return Headers(content_type(path), cache, path.startswith(CORS_PREFIXES))


def headers_file() -> bytes:
    """`_headers` for Netlify and Cloudflare Pages (rules by path pattern, later rules add to earlier)."""
    cors = "  Access-Control-Allow-Origin: *\n  Access-Control-Allow-Methods: GET, HEAD, OPTIONS\n"
    rules = [
        ("/*", f"  Cache-Control: {PAGES}\n  X-Content-Type-Options: nosniff\n"),
        ("/api/*", f"  Content-Type: {_TYPES['json']}\n  Cache-Control: {SHORT}\n{cors}"),
        ("/schemas/*", f"  Content-Type: {_TYPES['json']}\n  Cache-Control: {SHORT}\n{cors}"),
        ("/tuf/*", f"  Cache-Control: {SHORT}\n{cors}"),
        ("/static/*", f"  Cache-Control: {IMMUTABLE}\n"),
        ("/404.html", f"  Cache-Control: {NO_CACHE}\n"),
    ]
    return "".join(f"{pattern}\n{lines}" for pattern, lines in rules).encode()


def nginx_snippet() -> bytes:
    """Directives for an nginx `server` block whose `root` is the built site."""
    cors = ('    add_header Access-Control-Allow-Origin "*" always;\n'
            '    add_header Access-Control-Allow-Methods "GET, HEAD, OPTIONS" always;\n'
            '    if ($request_method = OPTIONS) { return 204; }\n')
    json_location = ("    types { application/json json sig; }\n"
                     "    default_type application/json;\n"
                     f'    add_header Cache-Control "{SHORT}" always;\n' + cors +
                     "    try_files $uri =404;\n")
    return (
        "# relreg serving configuration: include it in a server block whose root is this folder.\n"
        "#   server { listen 80; root /srv/firmware/public; include /srv/firmware/public/nginx.conf; }\n"
        "etag on;\n"
        "charset utf-8;\n"
        "charset_types application/json application/xml application/atom+xml text/css text/javascript;\n"
        "index index.html;\n"
        "error_page 404 /404.html;\n"
        "location = /404.html {\n"
        f'    add_header Cache-Control "{NO_CACHE}" always;\n'
        "}\n"
        "location ^~ /api/ {\n" + json_location + "}\n"
        "location ^~ /schemas/ {\n" + json_location + "}\n"
        "location ^~ /tuf/ {\n" + json_location + "}\n"
        "location ^~ /static/ {\n"
        f'    add_header Cache-Control "{IMMUTABLE}" always;\n'
        "}\n"
        "location = /feed.xml {\n"
        "    types { application/atom+xml xml; }\n"
        f'    add_header Cache-Control "{PAGES}" always;\n'
        "}\n"
        "location / {\n"
        f'    add_header Cache-Control "{PAGES}" always;\n'
        '    add_header X-Content-Type-Options "nosniff" always;\n'
        "    try_files $uri $uri/ =404;\n"
        "}\n"
    ).encode()


def serving_files() -> dict[str, bytes]:
    return {"_headers": headers_file(), "nginx.conf": nginx_snippet()}
