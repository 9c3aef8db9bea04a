"""How the site must be served: one header policy, rendered for each kind of origin.

`object_headers(path)` is the single source of Content-Type and Cache-Control
(first matching rule wins). `relreg publish` sets them on every object it
uploads and `relreg serve` sends them; the build renders the same rules as
`_headers` (Netlify, Cloudflare Pages) and as an nginx snippet (`nginx.conf`,
to include in a server block whose root is the site). Everything is public and
read-only, so CORS allows GET from any origin on every file.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Iterable, NamedTuple

from relreg.site.paths import MANIFEST

NO_CACHE = "no-cache"

IMMUTABLE = "public, max-age=31536000, immutable"
DOCUMENT = "public, max-age=300"
LIST = "public, max-age=60"
ENTRY = "public, no-cache"
SCHEMA = "public, max-age=3600"

# First match wins. Patterns match the path relative to the site root.
CACHE_RULES: tuple[tuple[str, str, str], ...] = (
    ("hashed asset", r"^static/.+\.[0-9a-f]{10}\.[A-Za-z0-9]+$", IMMUTABLE),
    ("TUF versioned metadata and targets", r"^tuf/(?:\d+\.(?:root|targets|snapshot)\.json$|targets/)", IMMUTABLE),
    ("entry point", r"^(?:api/v1/index\.json|index\.html|tuf/root\.json|tuf/timestamp\.json)$", ENTRY),
    ("input schema", r"^schemas/", SCHEMA),
    ("release document", r"^api/v1/releases/[^/]+\.json$", DOCUMENT),
    ("release page", r"^releases/[^/]+/index\.html$", DOCUMENT),
    ("device document", r"^api/v1/devices/", LIST),
    ("anything else", r"", LIST),
)

CONTENT_TYPES: dict[str, str] = {
    ".json": "application/json; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/vnd.microsoft.icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".pdf": "application/pdf",
    ".gz": "application/gzip",
    ".zip": "application/zip",
    ".bin": "application/octet-stream",
}
# Exact file names first: Atom feeds are XML of their own type.
CONTENT_TYPES_BY_NAME: dict[str, str] = {
    "feed.xml": "application/atom+xml; charset=utf-8",
    "_headers": "text/plain; charset=utf-8",
    "_redirects": "text/plain; charset=utf-8",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"

POLICY_VERSION = 1  # raise when content_type() or cache_control() change in a way the tables do not show
# Stored with every object; a published site whose entry point carries another id gets every object re-uploaded.
POLICY_ID = hashlib.sha256(json.dumps([POLICY_VERSION, CACHE_RULES, CONTENT_TYPES, CONTENT_TYPES_BY_NAME,
                                       DEFAULT_CONTENT_TYPE]).encode()).hexdigest()[:16]


class Headers(NamedTuple):
    content_type: str
    cache_control: str

    @property
    def cors(self) -> bool:  # not part of the tuple: publish sets only the two headers above
        return False


SIGNATURE_SUFFIX = ".sig"  # a detached signature beside its document (signing.py): one line of JSON


def content_type(path: str) -> str:
    name = path.rpartition("/")[2]
    if name.endswith(SIGNATURE_SUFFIX):
        return CONTENT_TYPES[".json"]
    if name in CONTENT_TYPES_BY_NAME:
        return CONTENT_TYPES_BY_NAME[name]
    dot = name.rfind(".")
    return CONTENT_TYPES.get(name[dot:].lower(), DEFAULT_CONTENT_TYPE) if dot > 0 else DEFAULT_CONTENT_TYPE


# Every rule is anchored at the start, so one alternation tried at the start finds the
# first rule that matches: the policy's semantics in one regex search per path.
_FIRST_RULE = re.compile("|".join(f"(?P<rule{index}>{pattern.lstrip('^')})"
                                  for index, (_, pattern, _) in enumerate(CACHE_RULES)))
assert all(pattern.startswith("^") or not pattern for _, pattern, _ in CACHE_RULES)


def cache_control(path: str) -> str:
    if path.endswith(SIGNATURE_SUFFIX):
        path = path[:-len(SIGNATURE_SUFFIX)]  # as fresh as the document it signs
    match = _FIRST_RULE.match(path)
    return CACHE_RULES[int(match.lastgroup[4:])][2] if match and match.lastgroup else LIST


def object_headers(path: str) -> Headers:
    """Content-Type and Cache-Control of the site file at `path` (relative to the site root, '/'-separated).

    Hashed assets never change under their name: cached for a year. Entry
    points are revalidated on every use (cheap with ETags) so a new publish
    shows at once. Release documents change rarely (notes corrected, a yank):
    5 minutes. Indexes and lists: 1 minute, shorter than the documents they
    name, so a CDN holding an older index still finds its documents cached
    or at the origin. (A CDN may serve an index up to a minute old: with
    `--delete`, objects the new site dropped go at once, so run the deleting
    publish a minute after the one that replaced the indexes, or purge.)
    """
    return Headers(content_type(path), cache_control(path))


def headers_file(paths: Iterable[str]) -> bytes:
    """A `_headers` file (Netlify, Cloudflare Pages) giving each path its headers from `object_headers`.

    One block per path, since those hosts apply every matching pattern (not
    the first), which cannot express a first-match policy with wildcards.
    """
    blocks = []
    for path in sorted(paths):
        if path in ("_headers", MANIFEST):
            continue
        headers = object_headers(path)
        blocks.append(f"/{path}\n  Content-Type: {headers.content_type}\n  Cache-Control: {headers.cache_control}\n")
    return "".join(blocks).encode()


_CORS = ('    add_header Access-Control-Allow-Origin "*" always;\n'
         '    add_header Access-Control-Allow-Methods "GET, HEAD, OPTIONS" always;\n')


def _nginx_location(match: str, cache: str) -> str:
    # add_header in a location replaces the server's, so each location says all of its headers.
    return (f"location {match} {{\n" f'    add_header Cache-Control "{cache}" always;\n' + _CORS +
            '    add_header X-Content-Type-Options "nosniff" always;\n}\n')


def nginx_snippet() -> bytes:
    """Directives for an nginx `server` block whose `root` is the built site: the policy as regex locations."""
    types = "".join(f"    {value.split(';')[0]} {ext.lstrip('.')};\n" for ext, value in CONTENT_TYPES.items())
    parts = [
        "# relreg serving configuration: include it in a server block whose root is this folder.\n",
        "#   server { listen 80; root /srv/firmware/public; include /srv/firmware/public/nginx.conf; }\n",
        "types {\n" + types + "    application/json sig;\n}\n",
        "default_type application/octet-stream;\n",
        "etag on;\ncharset utf-8;\n",
        "charset_types application/json application/xml application/atom+xml text/css text/javascript text/plain;\n",
        "index index.html;\nerror_page 404 /404.html;\n",
        _CORS.replace("    ", "") + "if ($request_method = OPTIONS) { return 204; }\n",
        _nginx_location("= /404.html", NO_CACHE),
    ]
    # Regex locations are tried in order, the first match wins: the policy's own semantics.
    for name, pattern, cache in CACHE_RULES:
        match = f'~ "^/{pattern.lstrip("^")}"' if pattern else "/"
        parts.append(f"# {name}\n" + _nginx_location(match, cache))
    return "".join(parts).encode()


def serving_files(paths: Iterable[str]) -> dict[str, bytes]:
    """The origin configuration files for a site holding `paths`."""
    return {"_headers": headers_file(paths), "nginx.conf": nginx_snippet()}
