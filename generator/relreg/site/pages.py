"""The HTML side of the site, rendered from Jinja2 templates in site/.

`site_pages` is part of the pure plan: it turns the model into the pages,
feeds, sitemap and hashed static assets, with no clock, disk or git access
(the templates and assets are read from the package, like code). Everything
that spans the whole registry (latest release per hardware version, which
cohorts run which release, the hardware filter rules, ...) is computed once
per build in `SiteData`; each page then renders from a small context, so ten
thousand release pages cost a few seconds.

Links between pages are relative (`../../releases/1.2.0/index.html`), so the
site works from any base path, from a local http.server and from file://.
Only the sitemap, the feeds and `<link rel=canonical>` use absolute URLs,
built from the registry's site URL, because their consumers need them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache, partial
from itertools import chain
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.filters import do_urlencode
from markupsafe import Markup, escape

from relreg import __version__
from relreg.devices.paths import channel_folder
from relreg.resources import code_digest, site_dir
from relreg.site import jobs
from relreg.site.charts import CHART_SERIES, bar_chart, rollout_chart, rollout_history
from relreg.site.jobs import Keyed, PlanJob, ReleaseView, SiteInputs, merge_jobs

if TYPE_CHECKING:
    from relreg.history.deployments import CohortChange
    from relreg.registry.model import Activation, Artifact, Cohort, HardwareVersion, Registry, RegistryConfig, Release

FEED_ENTRIES = 50  # newest releases in each Atom feed
HARDWARE_PAGE_RELEASES = 100  # newest releases listed on a hardware page; the releases list filters them all
NEWEST_ON_HOME = 10
# Releases per page of the releases list (rounded down to whole jobs.JOB_SIZE chunks). Pages are counted
# from the oldest release, so a new release changes the front page alone and an older page keeps its URL
# and its bytes: the list of a registry of 100,000 releases was one page of 137 MB, too large to open.
LIST_PAGE_RELEASES = 500
SITEMAP_LIMIT = 50_000  # URLs per sitemap file (the sitemaps.org limit)
STATIC_SOURCES = ("site.css", "site.js", "planner.js", "favicon.svg")  # in site/static, published with content hashes

# Everything a page may load comes from its own origin; note images may come over https.
# Inline script and style never run, so a sanitizer bug alone cannot inject behaviour.
# connect-src 'self': the update planner reads the site's own device documents.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'")


def url_segment(text: str) -> str:
    """`text` as one segment of a URL path: '+' (which versions may hold, e.g. 1.2.0+build.5) as %2B, since
    S3 and some CDNs read a '+' in a path as a space (docs/devices.md). A version's other characters
    need no escape."""
    if _UNRESERVED.fullmatch(text):
        return text  # what quote gives such text, without its cost (10,000 versions a build)
    return quote(text, safe="")


# Characters quote() never escapes (RFC 3986's unreserved), ASCII only.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


@lru_cache(maxsize=1)
def environment() -> Environment:
    """Templates compiled once per process and reused for every page."""
    env = Environment(loader=FileSystemLoader(site_dir() / "templates"), autoescape=select_autoescape(),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.filters.update(size=human_size, day=format_day, when=format_when, iso=format_iso,
                       percent=format_percent, short=short_id, extra=extra_value, xml_text=xml_text,
                       segment=url_segment)
    env.globals.update(csp=Markup(CSP), summary=feed_summary, content=feed_content, download_url=download_url,
                       hardware_page_releases=HARDWARE_PAGE_RELEASES, badges=badges, day=day)
    return env


def compile_templates() -> None:
    """Compile every template now (they are compiled on first use otherwise): called before the writer
    forks its workers, so that they inherit the templates instead of each compiling them again (a third
    of a second per process). A rebuild that runs its few jobs in one process compiles only the
    templates those jobs use."""
    env = environment()
    for name in env.list_templates():
        env.get_template(name)


# ---------------------------------------------------------------------------------------------
# Formatting helpers (also used as template filters)


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_size(size: int) -> str:
    """Bytes in binary units, as firmware engineers count flash: 415977 -> '406.2 KiB'."""
    if size < 1024:
        return f"{size} B"
    # The unit from the bit length: one division by a power of two, exact as the repeated ones by 1024.
    unit = min((size.bit_length() - 1) // 10, 4)
    return f"{size / (1 << 10 * unit):.1f} {_UNITS[unit]}"


# time.gmtime, not datetime.fromtimestamp(tz=utc): the same text at a twentieth of the cost,
# and the release list formats a date for every release.
def format_day(seconds: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def format_when(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def format_iso(seconds: int) -> str:
    """RFC 3339 in UTC, for <time datetime>, Atom and the sitemap."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def format_percent(value: float) -> str:
    return f"{value:g}\u00a0%"


def short_id(value: str, length: int = 12) -> str:
    return value[:length]


_URL = re.compile(r"https?://[^\s<>\"']+\Z")


def extra_value(value: Any) -> Markup:
    """One extra_info value for people: http(s) URLs as links, text as text, the rest as JSON."""
    if isinstance(value, str):
        if _URL.match(value):
            escaped = Markup.escape(value)
            return Markup(f'<a href="{escaped}" rel="nofollow noopener noreferrer">{escaped}</a>')
        return Markup.escape(value)
    if type(value) is int:  # what json.dumps gives, without building an encoder for each value
        return Markup(f"<code>{value:d}</code>")
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
    return Markup("<code>") + Markup.escape(text) + Markup("</code>")


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(value: Any) -> str:
    """Plain text without the characters XML 1.0 forbids (autoescaping does the rest)."""
    return _NOT_XML.sub("", str(value))


_PLAIN_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._~+%-]*(?:/[A-Za-z0-9_][A-Za-z0-9._~+%-]*)*\Z")


def download_url(artifact: "Artifact", artifact_base_url: str) -> str:
    """artifact.absolute_url, without urljoin's cost for the usual plain relative path (same result)."""
    url = artifact.url
    if artifact_base_url.endswith("/") and _PLAIN_PATH.match(url) and ".." not in url:
        return artifact_base_url + url
    return artifact.absolute_url(artifact_base_url)


# ---------------------------------------------------------------------------------------------
# Fragments repeated on many rows, made in Python: a Jinja2 macro call costs some 20 us, these a
# microsecond, and the releases list has a row per release.


def badges(release: "Release") -> Markup:
    """The badges after a version in lists: yanked, pre-release, required step (each with a space before)."""
    return Markup((' <span class="badge badge-danger">yanked</span>' if release.is_yanked else "")
                  + (' <span class="badge badge-warn">pre-release</span>' if release.parsed_version.is_prerelease
                     else "")
                  + (' <span class="badge badge-info">required step</span>' if release.must_pass_through else ""))


def day(seconds: int) -> Markup:
    """A date for people (2024-05-01) in a <time> that carries the exact instant."""
    return Markup(f'<time datetime="{format_iso(seconds)}">{format_day(seconds)}</time>')


def release_list_row(view: "ReleaseView", back: str = "") -> str:
    """One row of the releases list (releases.html): the version and its badges, date, hardware chips,
    revision and every build id, marked (class k) for the search and (data-hw) for the hardware filter.
    `back` leads from the page's folder to releases/ (an older page's is "../../")."""
    release = view.release
    # One search over the row's text (hardware versions are in the artifacts): most rows need no escaping.
    text = _text if _SPECIAL.search("".join([view.version, release.revision or "", *(
        f"{a.hardware_version}{a.software_type or ''}{a.delta_from or ''}{a.build_id}" for a in release.artifacts)
    ])) else str
    version = text(view.version)
    chips = "".join(f'<span class="chip">{text(name)}</span> ' for name in release.hardware_versions)
    revision = f'<code class="k id">{text(release.revision)}</code>' if release.revision else ""
    ids = "".join(f'<code class="k id" data-hw="{text(a.hardware_version)}"'
                  + (f' data-sw="{text(a.software_type)}"' if a.software_type else "")
                  + (f' data-from="{text(a.delta_from)}"' if a.is_delta else "")
                  + f'>{text(a.build_id)}</code> ' for a in release.artifacts)
    return (f'<tr data-hw="{text(" ".join(release.hardware_versions))}">\n'
            f'<th scope="row"><a class="k version" href="{back}{url_segment(view.version)}/index.html">{version}</a>'
            f'{badges(release)}</th>\n'
            f'<td class="nowrap">{day(view.dates.created)}</td>\n<td>{chips}</td>\n<td>{revision}</td>\n'
            f'<td>{ids}</td>\n</tr>\n')


_SPECIAL = re.compile(r"[&<>\"']")


def served_rows(page: bytes, chunk: Sequence["ReleaseView"], start: int = 0, back: str = "") -> tuple[bytes, int] | None:
    """The rows of `chunk` (newest first, next to each other) in a releases list page `page` (UTF-8), as
    release_list_row made them, and where they end; None when the page does not hold them all at or after
    `start`. The page is searched from `start` on: a list's chunks come in order."""
    if not chunk:
        return b"", start
    first = page.find(f'<a class="k version" href="{back}{url_segment(chunk[0].version)}/index.html">'.encode(), start)
    last = page.find(f'<a class="k version" href="{back}{url_segment(chunk[-1].version)}/index.html">'.encode(),
                     max(first, 0))
    begin = page.rfind(b'<tr data-hw="', start, first) if first >= 0 else -1
    end = page.find(b"</tr>\n", last) if last >= 0 else -1
    if begin < 0 or end < 0:
        return None
    end += len(b"</tr>\n")
    if page.count(b'<tr data-hw="', begin, end) != len(chunk):
        return None
    rows = page[begin:end]
    if not rows.isascii():  # the usual case is checked at once; else the rows must be UTF-8 as the page is
        try:
            rows.decode()
        except UnicodeDecodeError:
            return None
    return rows, end


def _text(value: object) -> str:
    """`value` escaped for HTML text and attributes: markupsafe's escape, skipped for the usual value that has
    nothing to escape (versions, hashes, build ids, sizes)."""
    text = str(value)
    return text if _SPECIAL.search(text) is None else str(escape(text))


def _artifact_texts(release: "Release", artifact_base_url: str) -> list[tuple["Artifact", str, str, str, str, str, str, str]]:
    """(artifact, hardware, build id, SHA-256, software type or "", delta base or "", download URL, file name) of
    each artifact of `release`, escaped for HTML text and attributes. One search over all of them decides: a
    registry's values rarely need escaping."""
    artifacts = release.artifacts
    urls = [download_url(artifact, artifact_base_url) for artifact in artifacts]
    every = "".join([*urls, *(f"{a.hardware_version}{a.build_id}{a.sha256}{a.software_type or ''}{a.delta_from or ''}"
                              f"{a.url}" for a in artifacts)])
    if _SPECIAL.search(every) is None:
        return [(a, a.hardware_version, a.build_id, a.sha256, a.software_type or "", a.delta_from or "", url,
                 a.filename) for a, url in zip(artifacts, urls)]
    return [(a, _text(a.hardware_version), _text(a.build_id), _text(a.sha256), _text(a.software_type or ""),
             _text(a.delta_from or ""), _text(url), _text(a.filename)) for a, url in zip(artifacts, urls)]


def artifact_table(release: "Release", has_software_type: bool, known: Mapping[str, object],
                   artifact_base_url: str,
                   texts: "list[tuple[Artifact, str, str, str, str, str, str, str]] | None" = None) -> Markup:
    """The rows of a release page's artifact table: hardware, software type (when any artifact has one), full
    or delta (linked to the base release's page when it is in `known`), build id, size, SHA-256 with its copy
    button, and the download link. `texts`: _artifact_texts of the release, when the caller has them."""
    rows = []
    for artifact, hardware, build_id, sha256, software, delta_from, url, filename in \
            texts if texts is not None else _artifact_texts(release, artifact_base_url):
        if artifact.type != "delta":
            kind = "full"
        elif artifact.delta_from in known:
            kind = f'delta from <a href="../{url_segment(artifact.delta_from)}/index.html">{delta_from}</a>'
        else:
            kind = f"delta from {delta_from}"
        rows.append(
            f'<tr>\n<th scope="row"><a href="../../hardware/{hardware}/index.html">{hardware}</a></th>\n'
            f'{f"<td>{software}</td>" if has_software_type else ""}'
            f'<td>{kind}</td>\n<td><code class="id">{build_id}</code></td>\n'
            f'<td class="num"><data value="{artifact.size:d}">{human_size(artifact.size)}</data></td>\n'
            f'<td class="sha"><code class="id">{sha256}</code> <button type="button" class="copy" data-copy="{sha256}"'
            f' aria-label="Copy SHA-256 of {filename}" hidden>Copy</button></td>\n'
            f'<td><a href="{url}">{filename}</a></td>\n</tr>\n')
    return Markup("".join(rows))


def download_list(release: "Release", artifact_base_url: str,
                  texts: "list[tuple[Artifact, str, str, str, str, str, str, str]] | None" = None) -> Markup:
    """The items of a release page's download list: its full images, by hardware version. `texts`: as for
    artifact_table."""
    items = []
    full = [item for item in (texts if texts is not None else _artifact_texts(release, artifact_base_url))
            if item[0].type != "delta"]
    for artifact, hardware, _, _, software, _, url, _ in sorted(full, key=lambda item: item[0].hardware_version):
        software = f" ({software})" if software else ""
        items.append(f'<li><a class="button" href="{url}">Download for {hardware}{software} <span class="muted">· '
                     f'{human_size(artifact.size)}</span></a></li>\n')
    return Markup("".join(items))


def release_facts(view: "ReleaseView", data: "SiteData", cohorts: Sequence["CohortRow"]) -> Markup:
    """A release page's list of facts (<dl class="facts">): dates, revision, minimum version, required step,
    hardware, cohorts (`cohorts`: the rows of those running it), devices, update path and JSON link. Made here,
    as release.html would make it: a page's most variable part, some forty template expressions."""
    release = view.release
    version = _text(view.version)
    created, updated = view.dates.created, view.dates.updated
    parts = [f'<dl class="facts">\n<dt>Released</dt><dd><time datetime="{format_iso(created)}">'
             f'{format_when(created)}</time></dd>\n']
    if updated != created:
        parts.append(f'<dt>Last updated</dt><dd><time datetime="{format_iso(updated)}">{format_when(updated)}'
                     f'</time></dd>\n')
    parts.append("<dt>Revision</dt><dd>")
    if release.revision:
        commit_url = data.config.commit_url(release.revision)
        revision = f"<code>{_text(release.revision)}</code>"
        parts.append(f'<a href="{_text(commit_url)}">{revision}</a>' if commit_url else revision)
    else:
        parts.append('<span class="muted">not given</span>')
    parts.append("</dd>\n<dt>Minimum version</dt><dd>")
    if release.min_version:
        minimum = _text(release.min_version)
        parts.append((f'<a href="../{url_segment(release.min_version)}/index.html">{minimum}</a>'
                      if release.min_version in data.by_version
                      else minimum) + ": devices on an older version install an earlier release first")
    else:
        parts.append('<span class="muted">none: any version can update to it</span>')
    parts.append("</dd>\n")
    if release.must_pass_through and release.is_yanked:
        parts.append("<dt>Required step</dt><dd>It was a required step (must pass through); being yanked, it no "
                     "longer holds devices back: devices on an older version install newer releases directly, "
                     "without it.</dd>\n")
    elif release.must_pass_through:
        parts.append("<dt>Required step</dt><dd>Devices on an older version must install this release before any "
                     "newer one.</dd>\n")
    parts.append("<dt>Hardware</dt><dd>")
    for name in release.hardware_versions:
        name = _text(name)
        parts.append(f'<a class="chip" href="../../hardware/{name}/index.html">{name}</a> ')
    parts.append("</dd>\n<dt>Cohorts</dt><dd>")
    if cohorts:
        parts.append(", ".join(
            f'<a href="../../cohorts/{_text(row.cohort.slug)}/index.html">{_text(row.cohort.name)}</a>&nbsp;'
            f'<span class="muted">({_text(format_percent(row.activation.rollout_percent))}'
            + (f"; held back on {_text(', '.join(row.held_back))} in {_text(row.cohort.slug)}" if row.held_back
               else "") + ")</span>" for row in cohorts))
    else:
        parts.append('<span class="muted">not active in any cohort</span>')
    parts.append("</dd>\n")
    if data.has_device_counts:
        snapshot = _text(data.device_counts_date) if data.device_counts_date else ""
        parts.append(f"<dt>Devices</dt><dd>{_text(f'{view.count_devices:,}')} running it"
                     + (f', in the snapshot of <time datetime="{snapshot}">{snapshot}</time>' if snapshot else "")
                     + "</dd>\n")
    parts.append(f'<dt>Update path</dt><dd><a href="../../update/index.html?current={_text(do_urlencode(view.version))}'
                 f'">Plan an update from {version}</a></dd>\n<dt>JSON</dt><dd><a href="../../api/v1/releases/'
                 f'{url_segment(view.version)}.json">api/v1/releases/{version}.json</a></dd>\n</dl>')
    return Markup("".join(parts))


_HEADING = re.compile(r"<(/?)h([1-6])>")


def nest_headings(notes_html: str, top: int = 3) -> str:
    """Notes headings pushed below the page's own (h1 version, h2 'Release notes'), capped at h6: the
    notes' highest heading becomes h`top`, so the outline never skips a level (axe: heading-order).

    The sanitized notes carry no attributes on headings, so the tags are exactly
    <hN> and </hN>; the JSON keeps the author's levels.
    """
    if "<h" not in notes_html:
        return notes_html
    levels = [int(m[2]) for m in _HEADING.finditer(notes_html)]
    if not levels:
        return notes_html
    shift = max(top - min(levels), 0)
    return _HEADING.sub(lambda m: f"<{m[1]}h{min(int(m[2]) + shift, 6)}>", notes_html)


# ---------------------------------------------------------------------------------------------
# Static assets


@dataclass(frozen=True)
class Assets:
    files: dict[str, bytes]  # output path -> bytes
    css: str  # output paths, relative to the site root
    js: str
    planner: str  # the update planner's script, loaded by /update/ only
    icon: str
    filters_css: str  # the releases list's hardware filter (generated from the registry)


def hashed_path(name: str, content: bytes) -> str:
    """static/site.3f2a9c1b07.css: the name carries the content's hash, so it can be cached forever."""
    stem, _, extension = name.rpartition(".")
    return f"static/{stem}.{hashlib.sha256(content).hexdigest()[:10]}.{extension}"


def filter_css(hardware_names: Iterable[str]) -> bytes:
    """The releases list's hardware filter without JavaScript: the selected <option> hides the other rows,
    and when no row is left, shows the line that says so (#empty; the script shows it for the same rows).

    Hardware names are limited by the schema to [A-Za-z0-9._-], so they are safe inside quotes.
    """
    rules = ["/* relreg: hardware filter of the releases list, generated from the registry */"]
    for name in hardware_names:
        chosen = f'#releases:has(#hardware option[value="{name}"]:checked)'
        rules.append(f'{chosen} tbody tr:not([data-hw~="{name}"]){{display:none}}')
        rules.append(f'{chosen}:not(:has(tbody tr[data-hw~="{name}"])) #empty{{display:block !important}}')
    return ("\n".join(rules) + "\n").encode()


def build_assets(hardware_names: Sequence[str]) -> Assets:
    static = site_dir() / "static"
    files: dict[str, bytes] = {}
    paths: dict[str, str] = {}
    for name in STATIC_SOURCES:
        content = (static / name).read_bytes()
        paths[name] = hashed_path(name, content)
        files[paths[name]] = content
    filters = filter_css(hardware_names)
    paths["filters.css"] = hashed_path("filters.css", filters)
    files[paths["filters.css"]] = filters
    return Assets(files=files, css=paths["site.css"], js=paths["site.js"], planner=paths["planner.js"],
                  icon=paths["favicon.svg"],
                  filters_css=paths["filters.css"])


# ---------------------------------------------------------------------------------------------
# Whole-registry data, computed once per build


@dataclass(frozen=True)
class CohortRow:
    """An active release of a cohort, for the home, cohort and release pages."""

    cohort: "Cohort"
    activation: "Activation"
    view: "ReleaseView | None"
    held_back: tuple[str, ...] = ()  # hardware of the cohort (with an image in the release) it is not deployed to
    # The hardware versions that get the release in this cohort (None: the release is not in the registry), and
    # those the cohort or the activation names that the release has no image for (they get nothing from it).
    boards: tuple[str, ...] | None = None
    without_image: tuple[str, ...] = ()


@dataclass(frozen=True)
class HistoryRow:
    """One commit of a cohort file, with what it changed in words."""

    change: "CohortChange"
    changes: tuple[str, ...]


class HardwareReleases(Sequence[tuple["ReleaseView", tuple["Artifact", ...]]]):
    """A hardware version's releases, newest first, each as (view, its artifacts for that hardware version).

    The artifacts are picked out when an item is read: a hardware page reads its newest hundred, and a
    build that links the page from the previous one reads none (ten thousand releases for five hardware
    versions are fifty thousand filters of their artifacts)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.views: list["ReleaseView"] = []

    def _item(self, view: "ReleaseView") -> tuple["ReleaseView", tuple["Artifact", ...]]:
        release = view.release
        artifacts = release.artifacts
        if len(release.hardware_versions) == 1:
            return view, artifacts
        return view, tuple([a for a in artifacts if a.hardware_version == self.name])

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, index):  # type: ignore[no-untyped-def, override]
        if isinstance(index, slice):
            return [self._item(view) for view in self.views[index]]
        return self._item(self.views[index])


@dataclass
class HardwareData:
    hardware: "HardwareVersion"
    releases: HardwareReleases = field(init=False)  # newest first
    latest: "ReleaseView | None" = None  # newest stable version, not yanked
    latest_prerelease: "ReleaseView | None" = None  # only when above `latest`
    cohorts: list["Cohort"] = field(default_factory=list)
    # the newest updated date of its releases, when site_data has it (see `updated`)
    newest_update: int | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.releases = HardwareReleases(self.hardware.name)

    @property
    def updated(self) -> int:
        if self.newest_update is not None:
            return self.newest_update
        return max((view.dates.updated for view in self.releases.views), default=0)


@dataclass(frozen=True)
class SiteData:
    """What every page may need, computed in one pass over the registry."""

    config: "RegistryConfig"
    site_url: str  # ends in /
    commit: str | None
    dirty: bool
    generator: str
    assets: Assets
    views: list["ReleaseView"]  # newest first
    by_version: dict[str, "ReleaseView"]
    hardware: list[HardwareData]  # by name
    cohorts: list["Cohort"]  # by slug
    cohorts_of_release: dict[str, list[CohortRow]]  # version -> cohorts running it
    cohort_rows: dict[str, list[CohortRow]]  # slug -> active releases
    schema_files: list[str]
    updated: int  # the newest change to any release
    has_device_counts: bool  # a fleet snapshot was given (else every count is 0 and not shown)
    device_counts_date: str | None  # the snapshot's date (YYYY-MM-DD), when the snapshot names it

    def release_url(self, version: str) -> str:
        return f"{self.site_url}releases/{url_segment(version)}/"


@dataclass(frozen=True)
class ListPage:
    """One page of the releases list, its rows newest first.

    `number` is None for the front page (releases/index.html), which lists the newest releases: those of
    the newest page but one, plus the newest page itself until it holds LIST_PAGE_RELEASES (so between one
    and two pages' worth). An older page is releases/page/<number>/index.html, numbered from 1, the oldest
    releases. `first_id` and `last_id` are the creation numbers (ReleaseView.id) of its oldest and newest
    rows. `newer` and `older` are the paths of the pages next to it (an older page's `newer` is the front
    page for the newest of them); `others` (front page only) is (path, first id, last id) of every older
    page, newest first.
    """

    path: str
    number: int | None
    chunks: tuple[int, ...]  # indexes of its chunks of releases (jobs.by_id_chunks, newest first)
    first_id: int
    last_id: int
    rows: int
    newer: str | None = None
    older: str | None = None
    others: tuple[tuple[str, int, int], ...] = ()


def older_list_pages(views: Sequence["ReleaseView"]) -> list[tuple[str, int]]:
    """The older pages of the releases list (list_pages) as the sitemap names them: (their folder's path,
    when they last changed, in seconds), newest page first; none for a list of one page.

    A page changes with its releases (their updated dates) and, for the two newest, when the front page
    last handed a page over: the newest became a page then and the next one got a new "newer" link (the
    creation date of the oldest release of the front page's newest group). A new hardware version, which
    every page's filter lists, is not dated here.
    """
    per_page = max(1, LIST_PAGE_RELEASES // jobs.JOB_SIZE)
    chunks = jobs.by_id_chunks(views)
    pages = list_pages(chunks, per_page)[1:]
    if not pages:
        return []
    handed_over = chunks[(len(chunks) % per_page or per_page) - 1][-1].dates.created
    return [(page.path.removesuffix("index.html"),
             max(max(view.dates.updated for index in page.chunks for view in chunks[index]),
                 handed_over if place < 2 else 0)) for place, page in enumerate(pages)]


def list_page_path(number: int | None) -> str:
    """releases/index.html for the front page (None), releases/page/<number>/index.html for an older one."""
    return "releases/index.html" if number is None else f"releases/page/{number}/index.html"


def list_pages(chunks: Sequence[Sequence["ReleaseView"]], per_page: int) -> list[ListPage]:
    """The pages of the releases list over `chunks` (jobs.by_id_chunks: newest first, counted from the oldest),
    `per_page` chunks to a page, counted from the oldest: the front page first, then the older pages newest
    first. A registry of up to two pages' worth of releases has the front page alone; no release gives one
    empty page."""
    per_page = max(1, per_page)
    groups = [list(range(max(0, end - per_page), end)) for end in range(len(chunks), 0, -per_page)][::-1]
    # groups: chunk indexes per page, newest page first; groups[-1] holds the oldest chunk
    front = [index for group in groups[:2] for index in group]
    older = groups[2:]

    def ids(indexes: Sequence[int]) -> tuple[int, int, int]:
        shown = [view for index in indexes for view in chunks[index]]
        return (shown[-1].id, shown[0].id, len(shown)) if shown else (0, 0, 0)

    numbers = list(range(len(older), 0, -1))  # newest of them first
    pages = [ListPage(list_page_path(number), number, tuple(group), *ids(group),
                      newer=list_page_path(number + 1 if number < len(older) else None),
                      older=list_page_path(number - 1) if number > 1 else None)
             for number, group in zip(numbers, older)]
    first, last, rows = ids(front)
    return [ListPage(list_page_path(None), None, tuple(front), first, last, rows,
                     older=pages[0].path if pages else None,
                     others=tuple((page.path, page.first_id, page.last_id) for page in pages)), *pages]


def held_back_on(cohort: "Cohort", activation: "Activation", release: "Release | None") -> tuple[str, ...]:
    """The hardware versions of the cohort (all with an image, when it lists none) that the activation holds back.

    Hardware the release has no image for is not held back: there is nothing to deploy to it.
    """
    if release is None:
        return activation.held_back(cohort.hardware_versions)
    imaged = release.hardware_versions
    return activation.held_back([name for name in cohort.hardware_versions or imaged if name in imaged])


def deployed_on(cohort: "Cohort", activation: "Activation", release: "Release") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the hardware versions that get `release` in `cohort` under `activation`, those named for it that the
    release has no image for). Named: the activation's hardware versions, else the cohort's, else (a cohort
    naming none) every hardware version the release has an image for."""
    imaged = release.hardware_versions
    named = activation.hardware_versions if activation.hardware_versions is not None else cohort.hardware_versions
    if not named:
        return tuple(imaged), ()
    return tuple(name for name in named if name in imaged), tuple(name for name in named if name not in imaged)


def _cohort_row(cohort: "Cohort", activation: "Activation", view: "ReleaseView | None",
                release: "Release | None") -> CohortRow:
    if release is None:
        return CohortRow(cohort, activation, view, held_back_on(cohort, activation, None))
    boards, without_image = deployed_on(cohort, activation, release)
    return CohortRow(cohort, activation, view, held_back_on(cohort, activation, release), boards, without_image)


def _hold_words(version: str, before: "frozenset[str] | None", after: "frozenset[str] | None") -> list[str]:
    """A change of the hardware a release is deployed to, in words (None: all hardware)."""
    if before == after:
        return []
    if before is None or after is None:
        return [f"{version} only on {', '.join(sorted(after))}" if after is not None
                else f"{version} released to all hardware"]
    words = []
    if before - after:
        words.append(f"{version} held back on {', '.join(sorted(before - after))}")
    if after - before:
        words.append(f"{version} released to {', '.join(sorted(after - before))}")
    return words


def _history_rows(changes: Sequence["CohortChange"],
                  imaged: Callable[[str], "tuple[str, ...] | None"] = lambda version: None) -> list[HistoryRow]:
    """Newest first, each with the difference to the state before it (rollouts, releases, holds per hardware).

    `imaged(version)`: the hardware versions the release has an image for (None: unknown, every one named
    counts): a hardware version without an image is neither released to nor held back."""
    rows: list[HistoryRow] = []
    before: dict[str, tuple[float, frozenset[str] | None]] = {}
    for change in changes:  # oldest first
        if change.releases is None:
            rows.append(HistoryRow(change, ("file could not be read at this commit",)))
            continue
        cohort_hardware = getattr(change, "hardware_versions", ())
        after = {a.version: (a.rollout_percent, _with_images(
                             frozenset(a.hardware_versions) if a.hardware_versions is not None
                             else frozenset(cohort_hardware) if cohort_hardware else None, imaged(a.version)))
                 for a in change.releases}
        words = []
        for version in sorted(set(before) | set(after)):
            if version not in after:
                words.append(f"removed {version}")
                continue
            percent, hardware = after[version]
            if version not in before:
                words.append(f"added {version} at {format_percent(percent)}")
                if hardware is not None and cohort_hardware:
                    words += _hold_words(version, _with_images(frozenset(cohort_hardware), imaged(version)), hardware)
                elif hardware is not None:
                    words += _hold_words(version, None, hardware)
                continue
            if before[version][0] != percent:
                words.append(f"{version}: {format_percent(before[version][0])} \u2192 {format_percent(percent)}")
            words += _hold_words(version, before[version][1], hardware)
        rows.append(HistoryRow(change, tuple(words) or ("no change to the active releases",)))
        before = after
    rows.reverse()
    return rows


def _with_images(hardware: "frozenset[str] | None", imaged: "tuple[str, ...] | None") -> "frozenset[str] | None":
    """`hardware` (None: all) without the hardware versions a release has no image for, when those are known."""
    return hardware if hardware is None or imaged is None else hardware.intersection(imaged)


def _gather_hardware(views: Sequence["ReleaseView"], hardware: Mapping[str, HardwareData]) -> None:
    """Give each hardware version its releases (newest first), its latest stable release and its latest
    pre-release (neither yanked; the newest of equal version keys).

    Releases are gathered by their set of hardware versions (a registry has few), the latest found once
    per set, then each hardware version takes its sets': a step per release, not one per release and
    hardware version."""
    combos: dict[tuple[str, ...], list[int]] = {}  # hardware versions -> the positions of their releases
    for position, view in enumerate(views):
        hardware_versions = view.facts.hardware_versions  # the release's, kept with its file
        found = combos.get(hardware_versions)
        if found is None:
            combos[hardware_versions] = [position]
        else:
            found.append(position)
    # hardware -> (positions, (position, key) of the latest stable release, of the latest pre-release, newest
    # updated date) of each set
    sets: dict[str, list[tuple[list[int], tuple | None, tuple | None, int]]] = {}
    for combo, positions in combos.items():
        stable: tuple | None = None
        pre: tuple | None = None
        updated = max([views[position].dates.updated for position in positions])
        for position in positions:  # newest first: a later release of an equal key does not replace one
            release = views[position].release
            if release.yanked is not None:
                continue
            parsed = release.parsed_version
            if parsed.is_prerelease:
                if pre is None or parsed.key > pre[1]:
                    pre = (position, parsed.key)
            elif stable is None or parsed.key > stable[1]:
                stable = (position, parsed.key)
        for name in combo:
            if name in hardware:
                sets.setdefault(name, []).append((positions, stable, pre, updated))
    newest_of_best = lambda found: (found[1], -found[0])  # noqa: E731 - the highest key, then the newest
    for name, found in sets.items():
        data = hardware[name]
        positions = found[0][0] if len(found) == 1 else sorted(chain.from_iterable(item[0] for item in found))
        data.releases.views.extend([views[position] for position in positions])
        stable = max((item[1] for item in found if item[1] is not None), key=newest_of_best, default=None)
        pre = max((item[2] for item in found if item[2] is not None), key=newest_of_best, default=None)
        data.latest = views[stable[0]] if stable is not None else None
        data.latest_prerelease = views[pre[0]] if pre is not None else None
        data.newest_update = max(item[3] for item in found)


def site_data(inputs: "SiteInputs", views: list["ReleaseView"]) -> SiteData:
    registry = inputs.registry
    site_url = inputs.site_url if inputs.site_url.endswith("/") else inputs.site_url + "/"
    by_version = {view.version: view for view in views}

    hardware = {h.name: HardwareData(h) for h in registry.hardware}
    _gather_hardware(views, hardware)
    for data in hardware.values():
        if data.latest and data.latest_prerelease and \
                data.latest_prerelease.release.parsed_version.key < data.latest.release.parsed_version.key:
            data.latest_prerelease = None

    cohorts_of_release: dict[str, list[CohortRow]] = {}
    cohort_rows: dict[str, list[CohortRow]] = {}
    for cohort in registry.cohorts:  # by slug
        rows = [_cohort_row(cohort, a, by_version.get(a.version), registry.release(a.version)) for a in cohort.releases]
        cohort_rows[cohort.slug] = rows
        for row in rows:
            cohorts_of_release.setdefault(row.activation.version, []).append(row)
        for name in cohort.hardware_versions or hardware:  # no hardware versions named: any of them
            if name in hardware:
                hardware[name].cohorts.append(cohort)

    return SiteData(
        config=registry.config,
        site_url=site_url,
        commit=inputs.commit,
        dirty=inputs.dirty,
        generator=f"relreg {__version__}",
        assets=build_assets([h.name for h in registry.hardware]),
        views=views,
        by_version=by_version,
        hardware=list(hardware.values()),
        cohorts=list(registry.cohorts),
        cohorts_of_release=cohorts_of_release,
        cohort_rows=cohort_rows,
        schema_files=sorted(inputs.input_schemas),
        updated=max((view.dates.updated for view in views), default=0),
        has_device_counts=bool(inputs.device_counts) or inputs.device_counts_date is not None,
        device_counts_date=inputs.device_counts_date,
    )


# ---------------------------------------------------------------------------------------------
# Pages


@dataclass(frozen=True)
class PlannerChannel:
    """An update channel as the planner page lists it (the channels of device_documents, same order)."""

    cohort: str
    hardware: str
    software: str | None
    folder: str  # relative to the site root


def planner_channels(registry: "Registry", image_slots: "Iterable[frozenset[tuple[str, str | None]]] | None" = None
                     ) -> tuple[list[PlannerChannel], list[str]]:
    """(every update channel, every software type in use), from one pass over the artifacts. `image_slots`: the
    Release.image_slots of every release, when the caller has them (ReleaseFacts)."""
    types: dict[str, set[str | None]] = {}
    # One set of the (hardware, software type) pairs in use, from each release's (made once per release, as
    # Release.has_image and the device documents read them), then a loop over the few pairs.
    if image_slots is None:
        image_slots = [release.image_slots for release in registry.releases]
    for hardware, software in set().union(*image_slots):
        types.setdefault(hardware, set()).add(software)
    all_hardware = [hardware.name for hardware in registry.hardware]
    channels = []
    for cohort in registry.cohorts:
        for hardware in cohort.hardware_versions or all_hardware:
            for software in sorted(types.get(hardware) or {None}, key=lambda t: (t is not None, t or "")):
                channels.append(PlannerChannel(cohort.slug, hardware, software,
                                               channel_folder(cohort.slug, hardware, software)))
    used = sorted({t for names in types.values() for t in names if t is not None})
    return channels, used


def planner_releases(registry: "Registry") -> bytes:
    """update/releases.json: the releases that are not yanked, in version order, with their hardware versions
    (the planner's combined release notes span the releases between two versions)."""
    return jobs.encode_json({
        "version_scheme": registry.config.version_scheme,
        "releases": [{"version": r.version, "hardware_versions": list(r.hardware_versions)}
                     for r in registry.releases if not r.is_yanked],
    })


def held_back(rows: Sequence[CohortRow]) -> list[str]:
    """Where a deployed release is held back, in words: paused at 0 %, or not deployed to some of the
    cohort's hardware that it has images for (activations naming `hardware_versions`)."""
    held = []
    for row in rows:
        if row.activation.rollout_percent == 0:
            held.append(f"paused at 0 % in {row.cohort.name}")
        elif row.held_back:
            held.append(f"held back on {', '.join(row.held_back)} in {row.cohort.name}")
    return held


FLEET_BARS = 12  # releases on the home page's fleet chart; the rest are summed as "other versions"


@dataclass(frozen=True)
class FleetRow:
    label: str
    count: int
    version: str | None  # None: the sum of the other versions


def fleet_bars(counts: Mapping[str, int], limit: int = FLEET_BARS) -> list[FleetRow]:
    """The versions running on most devices, most first (ties by version text), then the rest summed."""
    ranked = sorted(((count, version) for version, count in counts.items() if count > 0),
                    key=lambda item: (-item[0], item[1]))
    rows = [FleetRow(version, count, version) for count, version in ranked[:limit]]
    rest = ranked[limit:]
    if rest:
        rows.append(FleetRow(f"{len(rest)} other versions", sum(count for count, _ in rest), None))
    return rows


_HOLE = "\x00relreg-hole:{}\x00"  # NUL: never in a page's text (XML and HTML text have none)
_HOLES = re.compile("\x00relreg-hole:([a-z_]+)\x00")


@dataclass(frozen=True)
class PageFrame:
    """A page template rendered once with what varies from page to page left as holes, for a family of
    pages (the release pages) that share everything else: the template's own blocks, `canonical` and the
    one segment of `path` that names the page (`path` is given as prefix + segment + suffix).

    Rendering a page renders only the template's blocks with the page's context and fills the holes: the
    same text as `template.render(**context)`, without running the base template again for each of ten
    thousand pages. What the base template reads besides the holes comes from `shared`, the same for
    every page; a page variable it would read is undefined there (StrictUndefined: the build fails, it
    never prints one page's value on all of them), and a hole it would transform instead of print
    (`path|upper`) is found left in the text, which fails too.
    """

    template: Any  # jinja2.Template
    pieces: tuple[str, ...]  # literal text and hole names, alternating, literal first
    prefix: str  # of `path`, before the page's segment
    suffix: str
    blocks: Mapping[str, list[Any]]  # each block of the template and the blocks it overrides (for super())
    globals: dict[str, Any] = field(default_factory=dict)  # the template's globals, as one plain dict

    @classmethod
    def of(cls, template: Any, shared: Mapping[str, Any], prefix: str, suffix: str) -> "PageFrame":
        """The frame of `template` for pages whose path is prefix + segment + suffix."""
        context = template.new_context({**shared, "path": prefix + _HOLE.format("segment") + suffix,
                                        "canonical": Markup(_HOLE.format("canonical"))})
        for name in template.blocks:
            context.blocks[name] = [partial(_hole_block, name)]
        pieces = tuple(_HOLES.split("".join(template.root_render_func(context))))
        if any("\x00" in piece for piece in pieces[::2]):
            raise ValueError(f"{template.name}: its base template uses `path` or `canonical` other than as text")
        # Rendering the base template put the blocks they override behind the holes.
        blocks = {name: [block, *context.blocks[name][1:]] for name, block in template.blocks.items()}
        return cls(template, pieces, prefix, suffix, blocks, dict(template.globals))

    def render(self, context: Mapping[str, Any]) -> str:
        """The page of `context` (the template's whole context: `shared`'s values and the page's)."""
        path, canonical = context["path"], context["canonical"]
        if not (path.startswith(self.prefix) and path.endswith(self.suffix)):
            raise ValueError(f"{path} is not a page of this frame ({self.prefix}...{self.suffix})")
        segment = path[len(self.prefix):len(path) - len(self.suffix)]
        # The context template.new_context would make (the page's values over the globals), without copying
        # the globals out of their ChainMap for each page, and with the frame's blocks rather than the template's.
        environment = self.template.environment
        page = environment.context_class(environment, {**self.globals, **context}, self.template.name, {},
                                         globals=self.globals)
        page.blocks.update(self.blocks)
        parts = [self.pieces[0]]
        for index in range(1, len(self.pieces), 2):
            hole = self.pieces[index]
            if hole == "segment":
                parts.append(_text(segment))
            elif hole == "canonical":
                parts.append(str(escape(canonical)))
            else:
                parts.extend(self.blocks[hole][0](page))
            parts.append(self.pieces[index + 1])
        return "".join(parts)


def _hole_block(name: str, context: Any) -> Iterator[str]:
    yield _HOLE.format(name)


class ReleasePages:
    """Renders release pages (release.html) for one build's SiteData: the page around the blocks is
    rendered once per process (PageFrame), on first use, so forked workers each make their own."""

    def __init__(self, data: SiteData) -> None:
        self.data = data
        self._frame: PageFrame | None = None

    def frame(self) -> PageFrame:
        if self._frame is None:
            self._frame = PageFrame.of(environment().get_template("release.html"),
                                       {"site": self.data, "root": "../../"}, "releases/", "/index.html")
        return self._frame

    def render(self, view: "ReleaseView", newer: "ReleaseView | None", older: "ReleaseView | None",
               series: Sequence[Any]) -> bytes:
        """The release page of `view` between its `newer` and `older` neighbours; `series`: its rollout
        history by cohort (charts.rollout_history), drawn when there is any."""
        return self.frame().render(self.context(view, newer, older, series)).encode()

    def context(self, view: "ReleaseView", newer: "ReleaseView | None", older: "ReleaseView | None",
                series: Sequence[Any]) -> dict[str, Any]:
        """What release.html is rendered with for that page."""
        data = self.data
        release = view.release
        base_url = data.config.artifact_base_url
        has_software_type = any(a.software_type for a in release.artifacts)
        cohorts = data.cohorts_of_release.get(view.version, ())
        texts = _artifact_texts(release, base_url)
        return {
            "site": data, "root": "../../", "path": f"releases/{view.version}/index.html", "view": view,
            "release": release, "canonical": data.release_url(view.version), "newer": newer, "older": older,
            "cohorts": cohorts, "notes": Markup(nest_headings(view.notes_html)),
            "has_software_type": has_software_type, "held": held_back(cohorts),
            "downloads": download_list(release, base_url, texts),
            "artifacts": artifact_table(release, has_software_type, data.by_version, base_url, texts),
            "facts": release_facts(view, data, cohorts),
            "chart": rollout_chart("rollout", f"Rollout of {view.version} by cohort", series) if series else "",
            "rollout": series,
        }


def _root(path: str) -> str:
    """The relative way back to the site root from the folder of `path`."""
    return "../" * path.count("/")


class _Renderer:
    def __init__(self, data: SiteData) -> None:
        self.env = environment()
        self.data = data
        self.files: dict[str, bytes] = {}

    def page(self, path: str, template: str, **context: Any) -> None:
        self.files[path] = self.env.get_template(template).render(
            site=self.data, root=_root(path), path=path, **context).encode()


def site_pages(inputs: "SiteInputs", views: list["ReleaseView"]) -> dict[str, bytes]:
    """Every HTML page, feed, sitemap and static asset of the site, by output path."""
    return merge_jobs(site_jobs(inputs, views))


def site_jobs(inputs: "SiteInputs", views: list["ReleaseView"]) -> list["PlanJob"]:
    """The HTML side as independent jobs (see jobs.PlanJob): what spans the registry is computed once, here."""
    data = site_data(inputs, views)
    positions = {view.version: index for index, view in enumerate(views)}
    deployments = inputs.cohort_history
    rollouts = rollout_history(deployments, inputs.registry.cohorts)  # one pass; pages pick their series

    # What every release page shows of the whole site, hashed once: a release page is
    # re-rendered only when this or its own inputs (release_page_key) change.
    site_key = hashlib.sha256(code_digest() + repr((
        data.config, data.site_url, data.dirty, data.generator, data.assets.css, data.assets.js, data.assets.icon,
        data.has_device_counts, jobs.other_inputs(inputs))).encode()).digest()

    release_pages_renderer = ReleasePages(data)
    # The view key of every release (its file, id, dates, device count), or None when one is unknown:
    # then the whole-site files below are rendered on every build, as they were before they had keys.
    view_keys: dict[str, str] | None = {view.version: view.key if view.key is not None else jobs.view_key(inputs, view)
                                        for view in views}  # type: ignore[misc]
    if any(key is None for key in view_keys.values()):  # type: ignore[union-attr]
        view_keys = None

    def keyed(parts: Any, render: Any, stream: Any = None) -> "bytes | Keyed":
        """A whole-site file known by `parts` (with site_key: what its bytes depend on) and rendered only
        when the previous build has no file of that key; rendered now when release keys are unknown.
        `stream`: its Keyed.render_stream."""
        if view_keys is None:
            return render()
        return Keyed(hashlib.sha256(site_key + repr(parts).encode()).hexdigest(), render, render_stream=stream)

    def keys_of(shown: Iterable["ReleaseView"]) -> str:
        """The view keys of `shown`, hashed (a list of ten thousand keys stands in the parts as one digest)."""
        assert view_keys is not None
        return hashlib.sha256("\0".join([view_keys[view.version] for view in shown]).encode()).hexdigest()

    def shapes_of(versions: Iterable[str]) -> str:
        """What the files of `versions` say but their notes and extra info (ReleaseFacts.shape), hashed."""
        return hashlib.sha256("\0".join([by_version[version].facts.shape for version in versions]).encode()).hexdigest()

    def view_part(view: "ReleaseView | None") -> str | None:
        return view_keys[view.version] if view is not None and view_keys is not None else None

    def release_page(view: "ReleaseView", newer: "ReleaseView | None", older: "ReleaseView | None") -> bytes:
        return release_pages_renderer.render(view, newer, older, rollouts.by_release.get(view.version, ()))

    def page_inputs(view: "ReleaseView", newer: "ReleaseView | None", older: "ReleaseView | None") -> tuple:
        """What a release page shows besides the whole site's (site_key): its release, neighbours, cohorts, links."""
        release = view.release
        links = view.facts.links  # the minimum version and the delta bases, kept with the release's file
        linked = [link in by_version for link in links] if len(links) > 1 else links[0] in by_version
        rows = cohorts_of_release.get(view.version)
        if rows:
            rows = tuple((row.cohort.slug, row.cohort.name, row.activation.rollout_percent, row.held_back)
                         for row in rows)
        # The release's file (by its blob id) stands for its content: cheaper than the repr of the model.
        own = view.key if view.key is not None else jobs.view_key(inputs, view)
        own_inputs = (own, release.source_path) if own is not None else \
            (view.id, view.dates, view.notes_html, view.count_devices, release)
        return (*own_inputs, newer.version if newer else None, older.version if older else None, rows, linked,
                by_release.get(view.version))

    def release_page_key(page: tuple) -> str:
        return hashlib.sha256(site_key + repr(page).encode()).hexdigest()

    def neighbours(view: "ReleaseView") -> tuple["ReleaseView | None", "ReleaseView | None"]:
        index = positions[view.version]
        return (views[index - 1] if index > 0 else None), (views[index + 1] if index + 1 < len(views) else None)

    by_version, cohorts_of_release, by_release = data.by_version, data.cohorts_of_release, rollouts.by_release

    def release_pages(chunk: Sequence["ReleaseView"]) -> Iterator[tuple[str, Keyed]]:
        for view in chunk:
            newer, older = neighbours(view)
            yield f"releases/{view.version}/index.html", Keyed(release_page_key(page_inputs(view, newer, older)),
                                                               partial(release_page, view, newer, older))

    def chunk_inputs(chunk: Sequence["ReleaseView"]) -> object:
        """What the pages of `chunk` show besides the whole site's: the page_inputs of each, told in columns when
        every view key is known (no tuple per release on every plan): the chunk's versions, view keys (each
        stands for its release's file) and paths in order (so the neighbours within it), the neighbours at its
        ends, whether each link of each release leads to a release, and the cohort rows and rollout series of
        the few releases that have them."""
        if view_keys is None:
            return [page_inputs(view, *neighbours(view)) for view in chunk]
        first = positions[chunk[0].version]
        last = first + len(chunk) - 1
        return ([view.version for view in chunk], [view_keys[view.version] for view in chunk],
                [view.release.source_path for view in chunk],
                views[first - 1].version if first > 0 else None, views[last + 1].version if last + 1 < len(views) else None,
                [[link in by_version for link in view.facts.links] for view in chunk],
                [(view.version, *page_inputs(view, *neighbours(view))[4:]) for view in chunk
                 if view.version in cohorts_of_release or view.version in by_release])

    def release_page_job(chunk: Sequence["ReleaseView"]) -> "jobs.KeyedJob":
        # One key over the inputs of the chunk's pages; each page's own key is made when the job runs.
        return jobs.KeyedJob(jobs.job_key(inputs, "release pages", site_key, chunk_inputs(chunk)),
                             partial(release_pages, chunk))

    chunks = jobs.by_id_chunks(views)
    page_jobs = [release_page_job(chunk) for chunk in chunks]

    def reused_parts(served_path: str, find: Callable[[bytes, list["ReleaseView"], int], tuple[bytes, int] | None],
                     make: Callable[[list["ReleaseView"]], bytes], indexes: Iterable[int] | None = None) -> Iterator[bytes]:
        """One part of the whole-site file `served_path` per chunk of releases (those of `indexes`, in order;
        all by default), made as they are asked for: a chunk whose release pages the previous build made with
        the same key (so the same releases, dates and code) has the same part, which `find` takes from the
        served file (from `position` on: (part, where it ends), or None); the others are made."""
        served = inputs.served_files
        content: bytes | None = None
        position = 0
        for index in (range(len(chunks)) if indexes is None else indexes):
            chunk, job = chunks[index], page_jobs[index]
            found = None
            read = served(job.key) if served is not None else None
            if read is not None:
                if content is None:
                    try:
                        content = read(served_path)
                    except OSError:
                        content = b""
                found = find(content, chunk, position)
            if found is None:
                yield make(chunk)
            else:
                yield found[0]
                position = found[1]

    def list_rows(page: ListPage) -> Iterator[bytes]:
        """The rows of a page of the releases list (UTF-8), taken from the page as served where they are the
        same (an older page made from the front page's rows makes them: its links differ)."""
        back = "" if page.number is None else "../../"
        return reused_parts(page.path, partial(served_rows, back=back),
                            lambda chunk: "".join([release_list_row(view, back) for view in chunk]).encode(),
                            page.chunks)

    def sitemap_release_lines() -> Iterator[bytes]:
        """The sitemap's lines of the release pages, taken from the served sitemap where they are the same."""
        def find(sitemap: bytes, chunk: list["ReleaseView"], position: int) -> tuple[bytes, int] | None:
            return served_sitemap_lines(sitemap, [data.release_url(view.version) for view in chunk], position)

        def make(chunk: list["ReleaseView"]) -> bytes:
            made = sitemap_xml([(data.release_url(view.version), view.dates.updated) for view in chunk])
            return made[len(_SITEMAP_HEAD):-len(_SITEMAP_FOOT)]

        return reused_parts("sitemap.xml", find, make)

    def hardware_page(hw: HardwareData, hw_devices: int) -> bytes:
        name = hw.hardware.name
        path = f"hardware/{name}/index.html"
        return environment().get_template("hardware.html").render(
            site=data, root=_root(path), path=path, hw=hw, hw_devices=hw_devices,
            canonical=f"{data.site_url}hardware/{name}/",
            has_software_type=any(a.software_type for _, artifacts in hw.releases[:HARDWARE_PAGE_RELEASES]
                                  for a in artifacts)).encode()

    def feed(path: str, title: str, alternate: str, shown: Sequence["ReleaseView"]) -> "bytes | Keyed":
        """An Atom feed of the newest of `shown`: keyed by them (their notes and dates are in their view keys)."""
        newest = shown[:FEED_ENTRIES]
        return keyed(("feed", path, title, alternate, view_keys and keys_of(newest)),
                     partial(_feed, data, path, title, alternate, newest))

    def hardware_pages() -> dict[str, "bytes | Keyed"]:
        files: dict[str, bytes | Keyed] = {}
        for hw in data.hardware:
            name = hw.hardware.name
            shown = hw.releases.views
            hw_devices = sum([view.count_devices for view in shown]) if inputs.device_counts else 0
            # The page shows the hardware version, its newest and latest releases (their artifacts for it
            # come from their files), its cohorts, its device count and how many releases it has.
            files[f"hardware/{name}/index.html"] = keyed(
                ("hardware page", repr(hw.hardware), data.device_counts_date, view_part(hw.latest),
                 view_part(hw.latest_prerelease), [(cohort.slug, cohort.name) for cohort in hw.cohorts], hw_devices,
                 len(shown), view_keys and keys_of(shown[:HARDWARE_PAGE_RELEASES])),
                partial(hardware_page, hw, hw_devices))
            files[f"hardware/{name}/feed.xml"] = feed(f"hardware/{name}/feed.xml", f"{data.config.name}: {name}",
                                                      f"{data.site_url}hardware/{name}/", shown)
        return files

    def images_of(version: str) -> tuple[str, ...] | None:
        release = inputs.registry.release(version)
        return release.hardware_versions if release is not None else None

    def cohort_pages() -> dict[str, bytes]:
        render = _Renderer(data)
        for cohort in inputs.registry.cohorts:
            dates = inputs.cohort_dates.get(cohort.slug)
            series = rollouts.by_cohort.get(cohort.slug, ())
            shown = series[-CHART_SERIES:]  # the newest releases (series come in order of first deployment)
            render.page(f"cohorts/{cohort.slug}/index.html", "cohort.html", cohort=cohort,
                        rows=data.cohort_rows[cohort.slug], dates=dates,
                        history=_history_rows(deployments.get(cohort.slug, ()), images_of),
                        history_known=cohort.slug in deployments,
                        chart=rollout_chart("rollout", f"Rollout in {cohort.name} over time", shown),
                        chart_total=len(series), chart_limit=CHART_SERIES,
                        canonical=f"{data.site_url}cohorts/{cohort.slug}/")
        return render.files

    def releases_page_parts(page: ListPage) -> Iterator[bytes]:
        """A page of the releases list in parts, made as they are asked for: the page around a hole where the
        rows go, then the rows as bytes, a chunk of releases at a time. Megabytes of rows are not joined into
        the template's text and encoded again, nor held whole when written (Keyed.render_stream)."""
        template = environment().get_template("releases.html")
        context = dict(site=data, root=_root(page.path), path=page.path, page=page, total=len(views),
                       canonical=data.site_url + page.path.removesuffix("index.html"))
        hole = _HOLE.format("rows")
        head, *tail = template.render(rows=Markup(hole), **context).split(hole)
        if len(tail) == 1:
            yield head.encode()
            yield from list_rows(page)
            yield tail[0].encode()
            return
        # The hole's text is elsewhere on the page too (a NUL in the registry's name): rendered in one piece.
        yield template.render(rows=Markup(b"".join(list_rows(page)).decode()), **context).encode()

    def releases_page(page: ListPage) -> bytes:
        return b"".join(releases_page_parts(page))

    def releases_list() -> dict[str, "bytes | Keyed"]:
        """The pages of the releases list (list_pages): the front page by its releases, the hardware filter's
        counts and the older pages it links; an older page by its releases, number and neighbours (a new
        release does not change it)."""
        hardware = [hw.hardware.name for hw in data.hardware]
        files: dict[str, bytes | Keyed] = {}
        for page in list_pages(chunks, LIST_PAGE_RELEASES // jobs.JOB_SIZE):
            shown = [view for index in page.chunks for view in chunks[index]]
            if page.number is None:
                parts: tuple[object, ...] = ("releases list", len(views), page.others,
                                             [(hw.hardware.name, len(hw.releases)) for hw in data.hardware])
            else:
                parts = ("releases list page", hardware, page.number, page.newer, page.older)
            files[page.path] = keyed((*parts, data.assets.filters_css, jobs.views_digest(shown, "created")),
                                     partial(releases_page, page), stream=partial(releases_page_parts, page))
        return files

    def sitemaps() -> dict[str, "bytes | Keyed"]:
        """_sitemaps' files, keyed by what they list: every release's URL and date (in their view keys, in
        the order of the views), the older pages of the releases list and their dates, the hardware versions
        (their dates are their releases'), the cohorts' dates."""
        if view_keys is None:
            return _sitemaps(data, inputs)  # type: ignore[return-value]
        older = older_list_pages(views)
        count = 3 + len(older) + len(views) + len(data.hardware) + len(inputs.registry.cohorts)  # as _sitemaps lists them
        paths = ["sitemap.xml"] if count <= SITEMAP_LIMIT else \
            [*[f"sitemaps/{number}.xml" for number in range(1, -(-count // SITEMAP_LIMIT) + 1)], "sitemap.xml"]
        made: dict[str, bytes] = {}

        def render(path: str) -> bytes:
            if not made:
                made.update(_sitemaps(data, inputs, sitemap_release_lines, older))
            return made[path]

        # A release's line has its updated date; a hardware version's, the newest of its releases'.
        parts = ("sitemaps", jobs.views_digest(views, "updated"), older, [hw.hardware.name for hw in data.hardware],
                 [(cohort.slug, inputs.cohort_dates.get(cohort.slug)) for cohort in inputs.registry.cohorts])
        return {path: keyed((*parts, path), partial(render, path)) for path in paths}

    def home_lists_and_feeds() -> dict[str, "bytes | Keyed"]:
        render = _Renderer(data)
        files: dict[str, bytes | Keyed] = {}
        files.update(data.assets.files)
        fleet = fleet_bars(inputs.device_counts) if data.has_device_counts else []
        render.page("index.html", "home.html", canonical=data.site_url, newest=views[:NEWEST_ON_HOME], fleet=fleet,
                    fleet_total=sum(inputs.device_counts.values()),
                    fleet_chart=bar_chart("fleet", "Devices per release", [(row.label, row.count) for row in fleet]))
        # The list shows every release's row (from its file and dates) and the hardware filter.
        files.update(releases_list())
        channels, software_types = planner_channels(inputs.registry, [view.facts.image_slots for view in views])
        render.page("update/index.html", "update.html", canonical=data.site_url + "update/", channels=channels,
                    software_types=software_types, example_version=views[0].version if views else "1.0.0")
        # Every release's version and hardware versions (from its file), in version order.
        files["update/releases.json"] = keyed(
            ("planner releases", shapes_of(release.version for release in inputs.registry.releases)),
            partial(planner_releases, inputs.registry))
        files["feed.xml"] = feed("feed.xml", data.config.name, data.site_url, views)
        files["404.html"] = _not_found_page(data)
        files.update(sitemaps())
        files["robots.txt"] = f"User-agent: *\nAllow: /\nSitemap: {data.site_url}sitemap.xml\n".encode()
        files.update(render.files)
        return files

    return [home_lists_and_feeds, hardware_pages, cohort_pages, *page_jobs]


def _not_found_page(data: SiteData) -> bytes:
    """The 404 page is served at any depth, where relative links break: it carries its CSS and icon
    inline (allowed by the hash in its own policy) and links to the site by absolute URL."""
    css = data.assets.files[data.assets.css].decode()
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    icon = (site_dir() / "static" / "favicon.svg").read_bytes().decode()
    return environment().get_template("404.html").render(
        site=data, inline_css=Markup(css), icon_data_url="data:image/svg+xml," + quote(icon.strip()),
        csp_404=Markup(f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:; base-uri 'none'"),
    ).encode()


def feed_summary(view: "ReleaseView") -> str:
    release = view.release
    text = f"{release.version} for {', '.join(release.hardware_versions)}."
    if release.is_yanked:
        text += f" Yanked: {release.yanked}"
    return text


def feed_content(view: "ReleaseView") -> str:
    """The entry's HTML (escaped once more by the XML template)."""
    parts = []
    if view.release.is_yanked:
        parts.append(f"<p><strong>Yanked:</strong> {Markup.escape(view.release.yanked)}</p>")
    parts.append(view.notes_html)
    return "\n".join(parts)


def _feed(data: SiteData, path: str, title: str, alternate: str, views: Sequence["ReleaseView"]) -> bytes:
    entries = list(views[:FEED_ENTRIES])
    return environment().get_template("feed.xml").render(
        site=data, title=title, self_url=data.site_url + path, alternate=alternate, entries=entries,
        updated=max((view.dates.updated for view in entries), default=0),
    ).encode()


_SITEMAP_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'


def sitemap_xml(urls: Sequence[tuple[str, int]]) -> bytes:
    """A sitemap of (absolute URL, last change in unix seconds, 0 for unknown): the bytes of the template
    sitemap.xml, made without it (the site's sitemap changes with any release's date and lists every page,
    a hundred times faster this way; a test holds the two to the same bytes)."""
    return "".join([_SITEMAP_HEAD, *[f"<url><loc>{_text(url)}</loc><lastmod>{format_iso(seconds)}</lastmod></url>\n"
                                     if seconds else f"<url><loc>{_text(url)}</loc></url>\n" for url, seconds in urls],
                    _SITEMAP_FOOT]).encode()


_SITEMAP_FOOT = "</urlset>"


def served_sitemap_lines(sitemap: bytes, urls: Sequence[str], start: int = 0) -> tuple[bytes, int] | None:
    """The lines of the pages `urls` (absolute, next to each other in this order) in a sitemap made by
    sitemap_xml, and where they end; None when it does not hold them all at or after `start`."""
    if not urls:
        return b"", start
    first = sitemap.find(f"<url><loc>{_text(urls[0])}</loc>".encode(), start)
    if first < 0:
        return None
    last = sitemap.find(f"<url><loc>{_text(urls[-1])}</loc>".encode(), first)
    end = sitemap.find(b"</url>\n", last) if last >= 0 else -1
    if end < 0:
        return None
    end += len(b"</url>\n")
    if sitemap.count(b"<url>", first, end) != len(urls) or not sitemap[first:end].isascii() and \
            not _is_utf8(sitemap[first:end]):
        return None
    return sitemap[first:end], end


def _is_utf8(text: bytes) -> bool:
    try:
        text.decode()
    except UnicodeDecodeError:
        return False
    return True


def _sitemaps(data: SiteData, inputs: "SiteInputs",
              release_lines: "Callable[[], Iterable[bytes]] | None" = None,
              older: "list[tuple[str, int]] | None" = None) -> dict[str, bytes]:
    """sitemap.xml with every page's absolute URL; a sitemap index above SITEMAP_LIMIT URLs.

    `release_lines`: the lines sitemap_xml gives for the release pages (in the order of the views), from
    the served sitemap where their releases did not change (see served_sitemap_lines); for one file only.
    `older`: older_list_pages of the views, when the caller has it."""
    older = older if older is not None else older_list_pages(data.views)
    head: list[tuple[str, int]] = [(data.site_url, data.updated), (data.site_url + "releases/", data.updated),
                                   *[(data.site_url + path, updated) for path, updated in older],
                                   (data.site_url + "update/", data.updated)]
    tail = [(f"{data.site_url}hardware/{hw.hardware.name}/", hw.updated) for hw in data.hardware]
    for cohort in inputs.registry.cohorts:
        dates = inputs.cohort_dates.get(cohort.slug)
        tail.append((f"{data.site_url}cohorts/{cohort.slug}/", dates.updated if dates else 0))
    if release_lines is not None and len(head) + len(data.views) + len(tail) <= SITEMAP_LIMIT:
        return {"sitemap.xml": b"".join([sitemap_xml(head)[:-len(_SITEMAP_FOOT)], *release_lines(),
                                         sitemap_xml(tail)[len(_SITEMAP_HEAD):]])}
    urls = [*head, *[(data.release_url(view.version), view.dates.updated) for view in data.views], *tail]
    if len(urls) <= SITEMAP_LIMIT:
        return {"sitemap.xml": sitemap_xml(urls)}
    files: dict[str, bytes] = {}
    parts = []
    for number, start in enumerate(range(0, len(urls), SITEMAP_LIMIT), start=1):
        chunk = urls[start:start + SITEMAP_LIMIT]
        files[f"sitemaps/{number}.xml"] = sitemap_xml(chunk)
        parts.append((f"{data.site_url}sitemaps/{number}.xml", max(seconds for _, seconds in chunk)))
    files["sitemap.xml"] = environment().get_template("sitemap-index.xml").render(parts=parts).encode()
    return files
