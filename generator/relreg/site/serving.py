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
from typing import Iterable, NamedTuple, Protocol

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


# Cloudflare Pages' documented limits for a _headers file.
HEADERS_MAX_RULES = 100
HEADERS_MAX_LINE = 2000


def headers_pattern_regex(pattern: str) -> re.Pattern[str]:
    """How Cloudflare Pages matches a _headers URL pattern against a request path.

    As its rules engine does (workers-shared, generateRulesMatcher): the one
    `*` splat matches any characters, `/` included; a `:name` placeholder
    matches one path segment or part of one (`[^/]+`); the whole path must
    match. Every rule that matches applies, and a header set by two rules is
    sent with both values joined by ", ".
    """
    source = "(?P<splat>.*)".join(re.escape(part) for part in pattern.split("*"))
    source = re.sub(r":(\w+)", lambda m: f"(?P<{m.group(1)}>[^/]+)", source.replace("\\:", ":"))
    return re.compile(f"^{source}$")


def _extension(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def _family(path: str) -> tuple[str, ...]:
    """The most general pattern segments for `path`: the top folder and extensions literal, the rest placeholders.

    Two paths with different families can never both match one family
    pattern: a placeholder does not cross '/', the extension is literal, and a
    name without an extension (or a file at the top) stays literal.
    """
    parts = path.split("/")
    if len(parts) == 1:
        return (path,)
    last = parts[-1]
    extension = _extension(last)
    tail = f"*{extension}" if extension else last
    return (parts[0], *("*" for _ in parts[1:-1]), tail)


def _pattern(segments: tuple[str, ...]) -> str:
    """`/api/:a/:b.json` for ('api', '*', '*.json'): placeholders named a, b, c... (none a prefix of another)."""
    names = iter("abcdefghijklmnopqrstuvwxyz")
    out = []
    for segment in segments:
        out.append(segment.replace("*", ":" + next(names), 1) if segment.startswith("*") else segment)
    return "/" + "/".join(out)


def _specialize(segments: tuple[str, ...], members: list[str], values: dict[str, Headers],
                rules: list[tuple[str, Headers]]) -> None:
    """Add rules covering `members` (the paths whose family is `segments`), splitting the family until each part
    has one policy: the leftmost placeholder becomes the members' literal segment there, grouped by value."""
    first = values[members[0]]
    if all(values[member] == first for member in members):
        rules.append((_pattern(segments), first))
        return
    position = next(index for index, segment in enumerate(segments) if segment.startswith("*"))
    last = position == len(segments) - 1
    groups: dict[tuple[str, ...], list[str]] = {}
    for member in members:
        literal = member.split("/")[position]
        # Versioned names (TUF's 3.root.json) keep their shape, not their number, so that they stay one rule.
        numbered = _NUMBERED.match(literal) if last else None
        segment = f"*.{numbered.group(1)}" if numbered else literal
        groups.setdefault(segments[:position] + (segment,) + segments[position + 1:], []).append(member)
    for specialized, group in sorted(groups.items()):
        shaped = specialized[position].startswith("*")
        if shaped and any(headers_pattern_regex(_pattern(specialized)).match("/" + other)
                          for other in members if other not in group):
            for member in group:  # the shape would also match a sibling: name each file instead
                literal = member.split("/")[position]
                _specialize(specialized[:position] + (literal,) + specialized[position + 1:], [member], values, rules)
            continue
        _specialize(specialized, group, values, rules)


_NUMBERED = re.compile(r"^[0-9]+\.(.+)$")


def family_of(path: str) -> str:
    """The family of `path` (see _family) as one string: segments joined by tabs, which sort as the tuples do."""
    return "\t".join(_family(path))


def path_families(paths: Iterable[str]) -> list[list[str]]:
    """The distinct (family, Content-Type, Cache-Control) of `paths`, sorted: what header rules need of them.

    The same as family_of and object_headers give path by path, with the steps written out and a folder's
    family made once: this runs over every file of a full build (190,000 at 10,000 releases)."""
    found = set()
    folder_families: dict[str, str] = {}  # folder -> its part of a family (top folder, then '*' per level)
    match = _FIRST_RULE.match
    rules = CACHE_RULES
    by_name = CONTENT_TYPES_BY_NAME
    by_extension = CONTENT_TYPES
    sig_type = CONTENT_TYPES[".json"]
    for path in paths:
        if path == "_headers" or path == MANIFEST:
            continue
        folder, slash, name = path.rpartition("/")
        dot = name.rfind(".")
        extension = name[dot:] if dot > 0 else ""
        if slash:
            start = folder_families.get(folder)
            if start is None:
                top, *levels = folder.split("/")
                start = folder_families[folder] = "\t".join((top, *("*" for _ in levels))) + "\t"
            family = start + ("*" + extension if extension else name)
        else:
            family = path
        if name.endswith(SIGNATURE_SUFFIX):
            content = sig_type
            rule = match(path[:-len(SIGNATURE_SUFFIX)])
        else:
            content = by_name.get(name) or (by_extension.get(extension.lower(), DEFAULT_CONTENT_TYPE)
                                            if extension else DEFAULT_CONTENT_TYPE)
            rule = match(path)
        found.add((family, content, rules[int(rule.lastgroup[4:])][2] if rule and rule.lastgroup else LIST))
    return [list(item) for item in sorted(found)]


class PathFamilies(Protocol):
    """The paths of a site by family: every (family, Content-Type, Cache-Control) there is, and the
    paths of one family when asked (only a family whose paths differ in policy is asked for)."""

    def families(self) -> Iterable[list[str]]: ...

    def members(self, family: str) -> list[str]: ...


class _Paths:
    def __init__(self, paths: Iterable[str]) -> None:
        self._paths = [path for path in paths if path not in ("_headers", MANIFEST)]

    def families(self) -> list[list[str]]:
        return path_families(self._paths)

    def members(self, family: str) -> list[str]:
        return [path for path in self._paths if family_of(path) == family]


def header_rules(paths: Iterable[str] | PathFamilies) -> list[tuple[str, Headers]]:
    """The policy of `object_headers` for the site holding `paths`, as _headers rules (pattern, headers).

    Each path of the site matches exactly one rule, so hosts that apply every
    matching rule (Cloudflare Pages, Netlify) send exactly the policy's
    headers. Rules follow the site's structure (one per kind of file), not its
    size: a registry of 10,000 releases needs as many rules as one of 10.
    Given PathFamilies (the writer's summaries of its jobs), only the paths of
    the families whose members differ in policy are looked at.
    """
    source = paths if hasattr(paths, "members") else _Paths(paths)  # type: ignore[arg-type]
    policies: dict[str, set[Headers]] = {}
    for family, content, cache in source.families():  # type: ignore[union-attr]
        policies.setdefault(family, set()).add(Headers(content, cache))
    rules: list[tuple[str, Headers]] = []
    for family in sorted(policies):
        segments = tuple(family.split("\t"))
        if len(policies[family]) == 1:  # what _specialize gives for members of one policy
            rules.append((_pattern(segments), next(iter(policies[family]))))
            continue
        members = sorted(source.members(family))  # type: ignore[union-attr]
        _specialize(segments, members, {path: object_headers(path) for path in members}, rules)
    return rules


def headers_file(paths: Iterable[str] | PathFamilies) -> bytes:
    """A `_headers` file (Cloudflare Pages, Netlify) giving every file of the site its `object_headers`.

    Path patterns (placeholders, see headers_pattern_regex) keep it within
    Cloudflare's limits (HEADERS_MAX_RULES rules, HEADERS_MAX_LINE characters
    a line) at any registry size; the patterns never overlap on the site's
    files, since those hosts apply every matching rule, not the first.
    """
    blocks = ["# relreg serving policy: one rule per kind of file (see relreg.site.serving)\n"]
    for pattern, headers in header_rules(paths):
        blocks.append(f"{pattern}\n  Content-Type: {headers.content_type}\n  Cache-Control: {headers.cache_control}\n")
    return "".join(blocks).encode()


_CORS = ('    add_header Access-Control-Allow-Origin "*" always;\n'
         '    add_header Access-Control-Allow-Methods "GET, HEAD, OPTIONS" always;\n')


def _nginx_headers(cache: str, indent: str) -> str:
    return (f'{indent}add_header Cache-Control "{cache}" always;\n' + _CORS.replace("    ", indent) +
            f'{indent}add_header X-Content-Type-Options "nosniff" always;\n')


def _nginx_location(match: str, cache: str, *, by_name: bool = True) -> str:
    # add_header in a location replaces the server's, so each location says all of its headers.
    # File names with a type of their own (feed.xml, _headers) are nested locations that keep the cache policy.
    nested = "".join(
        f'    location ~ "/{re.escape(name)}$" {{\n        types {{ }}\n        default_type {value.split(";")[0]};\n'
        + _nginx_headers(cache, "        ") + "    }\n"
        for name, value in CONTENT_TYPES_BY_NAME.items()) if by_name else ""
    return f"location {match} {{\n" + _nginx_headers(cache, "    ") + nested + "}\n"


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
        # A miss gets the 404 page uncached (the path may exist after the next publish); the file
        # /404.html itself, requested by name, follows the policy like every other file.
        "index index.html;\nerror_page 404 @not_found;\n",
        _CORS.replace("    ", "") + "if ($request_method = OPTIONS) { return 204; }\n",
        _nginx_location("@not_found", NO_CACHE, by_name=False).replace("\n}\n", "\n    try_files /404.html =404;\n}\n"),
    ]
    # Regex locations are tried in order, the first match wins: the policy's own semantics.
    for name, pattern, cache in CACHE_RULES:
        # A detached signature (.sig) is as fresh as the document it signs, as in cache_control().
        regex = pattern.lstrip("^")
        regex = regex[:-1] + f"(?:{re.escape(SIGNATURE_SUFFIX)})?$" if regex.endswith("$") else regex
        match = f'~ "^/{regex}"' if pattern else "/"
        parts.append(f"# {name}\n" + _nginx_location(match, cache))
    return "".join(parts).encode()


def serving_files(paths: Iterable[str] | PathFamilies) -> dict[str, bytes]:
    """The origin configuration files for a site holding `paths` (or the writer's PathFamilies of them)."""
    if not hasattr(paths, "members"):
        paths = [*paths, "nginx.conf"]  # type: ignore[misc]
    else:
        paths = _WithNginx(paths)  # type: ignore[arg-type]
    return {"_headers": headers_file(paths), "nginx.conf": nginx_snippet()}


class _WithNginx:
    """PathFamilies with nginx.conf, the file made beside _headers."""

    def __init__(self, source: PathFamilies) -> None:
        self._source = source

    def families(self) -> list[list[str]]:
        return [*self._source.families(), *path_families(["nginx.conf"])]

    def members(self, family: str) -> list[str]:
        return self._source.members(family) + (["nginx.conf"] if family_of("nginx.conf") == family else [])
