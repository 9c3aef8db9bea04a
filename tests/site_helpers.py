"""Helpers for the HTML site tests: real builds in throwaway git repositories, a loopback HTTP server,
headless Chromium, a link checker and auditors for pages and release notes."""

from __future__ import annotations

import contextlib
import functools
import re
import shutil
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Iterator
from urllib.parse import unquote, urljoin, urlsplit

from conftest import BASE_REGISTRY, EXAMPLE_REGISTRY, run_relreg
from git_helpers import commit_all, init_repo

from relreg.site.notes import ALLOWED_ATTRIBUTES, ALLOWED_TAGS

NOTES_CORPUS = Path(__file__).parent / "fixtures" / "notes"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "test-artifacts"
HOSTILE_SITE_URL = "https://fw.example.test/"


# ---------------------------------------------------------------------------------------------
# Builds


def build_example_site(root: Path, rollout_steps: bool = False, *extra_args: str) -> Path:
    """The example registry committed release by release at fixed dates (each release's `released_on`,
    else the day after the previous one), cohorts last, then built with the real CLI.

    With `rollout_steps`, every staged rollout of the cohorts is committed first at 1 %, then at 5 %,
    a day apart, before the final files: a deployment history with steps to draw. `extra_args` go to
    `relreg build`. Returns the output folder.
    """
    repo = init_repo(root / "repo")
    registry = repo / "registry"
    shutil.copytree(EXAMPLE_REGISTRY, registry, ignore=shutil.ignore_patterns("cohorts", "releases"))
    (registry / "releases").mkdir()
    commit_all(repo, "registry and hardware", "2023-01-02T09:00:00+00:00")
    day = datetime(2023, 1, 2, 10, tzinfo=timezone.utc)
    for source in sorted((EXAMPLE_REGISTRY / "releases").glob("*.yaml"), key=lambda p: _version_key(p.stem)):
        released_on = re.search(r'^  released_on: "(\d{4}-\d\d-\d\d)"', source.read_text(), re.M)
        day = datetime.fromisoformat(released_on.group(1) + "T10:00:00+00:00") if released_on \
            else day + timedelta(days=1)
        shutil.copy(source, registry / "releases")
        commit_all(repo, f"release {source.stem}", day.isoformat())
    if rollout_steps:
        (registry / "cohorts").mkdir()
        for percent in ("1", "5"):
            day += timedelta(days=1)
            for source in sorted((EXAMPLE_REGISTRY / "cohorts").glob("*.yaml")):
                text = re.sub(r"rollout_percent: (?!100\b)[0-9.]+", f"rollout_percent: {percent}", source.read_text())
                (registry / "cohorts" / source.name).write_text(text)
            commit_all(repo, f"staged rollouts at {percent} %", day.isoformat())
        shutil.rmtree(registry / "cohorts")
    shutil.copytree(EXAMPLE_REGISTRY / "cohorts", registry / "cohorts")
    commit_all(repo, "cohorts", (day + timedelta(days=1)).isoformat())
    out = root / "public"
    result = run_relreg("build", "--registry", registry, "--out", out, *extra_args)
    assert result.exit_code == 0, result.output
    return out


def _version_key(version: str) -> tuple:
    core, _, pre = version.partition("-")
    return tuple(int(n) for n in core.split(".")), pre == "", pre


def corpus_files() -> list[Path]:
    return sorted(p for p in NOTES_CORPUS.iterdir() if p.suffix in (".html", ".md") and p.name != "README.md")


def hostile_version(index: int) -> str:
    return f"9.{index}.0"


def build_hostile_site(root: Path) -> tuple[Path, dict[str, Path]]:
    """The base registry plus one release per file of the notes corpus; returns (output, {version: file})."""
    repo = init_repo(root / "repo")
    registry = repo / "registry"
    shutil.copytree(BASE_REGISTRY, registry)
    by_version: dict[str, Path] = {}
    for index, path in enumerate(corpus_files(), start=1):
        version = hostile_version(index)
        by_version[version] = path
        notes = "\n".join("  " + line for line in path.read_text(encoding="utf-8").splitlines())
        hexdigit = f"{index:x}"[-1]
        (registry / "releases" / f"{version}.yaml").write_text(
            f'version: "{version}"\n'
            f'revision: "{hexdigit * 40}"\n'
            f"notes_format: {'markdown' if path.suffix == '.md' else 'html'}\n"
            f"notes: |\n{notes}\n"
            "artifacts:\n"
            "  - hardware_version: evt1\n"
            f'    build_id: "{hexdigit * 8}{index:032x}"\n'
            f"    url: {version}/evt1.bin\n"
            "    size: 1000\n"
            f'    sha256: "{hexdigit * 32}{index:032x}"\n',
            encoding="utf-8")
    commit_all(repo, "hostile notes", "2024-05-01T12:00:00+00:00")
    out = root / "public"
    result = run_relreg("build", "--registry", registry, "--out", out)
    assert result.exit_code == 0, result.output
    return out, by_version


def html_pages(out: Path) -> list[str]:
    """Every HTML page of a built site, as paths relative to the output folder."""
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html"))


# ---------------------------------------------------------------------------------------------
# Serving and the browser


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """A loopback HTTP server for `directory` on an ephemeral port; yields its base URL (ending in /)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def launch_chromium(playwright):  # type: ignore[no-untyped-def]
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


# ---------------------------------------------------------------------------------------------
# Parsing pages


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    in_notes: bool


@dataclass
class ParsedPage:
    doctype: str | None = None
    elements: list[Element] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # nesting errors
    text_by_tag: dict[str, list[str]] = field(default_factory=dict)


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# End tags the HTML parser may imply (we write them all, but notes from nh3 may omit none either).
OPTIONAL_END = {"li", "dt", "dd", "p", "tr", "td", "th", "thead", "tbody", "tfoot", "option"}


class _PageParser(HTMLParser):
    def __init__(self, page: ParsedPage) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.stack: list[tuple[str, bool]] = []  # (tag, opens the notes)
        self.notes_depth = 0
        self.text_target: str | None = None

    def handle_decl(self, decl: str) -> None:
        self.page.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if len(values) != len(attrs):
            self.page.problems.append(f"<{tag}> repeats an attribute")
        self.page.elements.append(Element(tag, values, self.notes_depth > 0))
        if "id" in values:
            self.page.ids.append(values["id"])
        if tag in VOID:
            return
        opens_notes = "notes" in values.get("class", "").split()
        self.stack.append((tag, opens_notes))
        if opens_notes:
            self.notes_depth += 1
        if tag == "title" and any(open_tag == "svg" for open_tag, _ in self.stack):
            return  # a chart's accessible name, not the page's title
        if tag in ("h1", "title", "label"):
            self.text_target = tag
            self.page.text_by_tag.setdefault(tag, []).append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        while self.stack and self.stack[-1][0] != tag and self.stack[-1][0] in OPTIONAL_END:
            self._pop()
        if not self.stack or self.stack[-1][0] != tag:
            self.page.problems.append(f"</{tag}> does not close the open <{self.stack[-1][0] if self.stack else '-'}>")
            return
        self._pop()
        if tag == self.text_target:
            self.text_target = None

    def _pop(self) -> None:
        _, opens_notes = self.stack.pop()
        if opens_notes:
            self.notes_depth -= 1

    def handle_data(self, data: str) -> None:
        if self.text_target:
            self.page.text_by_tag[self.text_target][-1] += data


@functools.lru_cache(maxsize=512)
def _parse_cached(text: str) -> ParsedPage:
    page = ParsedPage()
    parser = _PageParser(page)
    parser.feed(text)
    parser.close()
    if parser.stack:
        page.problems.append("unclosed: " + " ".join(tag for tag, _ in parser.stack))
    return page


def parse_page(path: Path) -> ParsedPage:
    return _parse_cached(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# Link checking


LINK_ATTRIBUTES = {("a", "href"), ("link", "href"), ("script", "src"), ("img", "src"), ("form", "action"),
                   ("iframe", "src"), ("source", "src"), ("area", "href")}


def target_file(out: Path, path: str) -> Path | None:
    """The file a URL path (relative to the output folder) is served from, or None."""
    candidate = out / unquote(path)
    if path.endswith("/") or path == "":
        candidate = candidate / "index.html"
    return candidate if candidate.is_file() else None


def check_links(out: Path, site_url: str) -> list[str]:
    """Every internal link of every page resolves to a file (and to an id, for #fragments).

    Internal links must be relative: a link to the site's own absolute URL or root-relative
    (/...) path is reported, except on 404.html, which is served at any depth.
    """
    broken: list[str] = []
    pages = html_pages(out)
    for page_path in pages:
        page = parse_page(out / page_path)
        base = "http://site.invalid/" + page_path
        for element in page.elements:
            for tag, attribute in LINK_ATTRIBUTES:
                if element.tag != tag or attribute not in element.attrs:
                    continue
                url = element.attrs[attribute]
                where = f"{page_path}: <{tag} {attribute}={url!r}>"
                if page_path == "404.html":
                    if url.startswith(site_url):
                        url = "/" + url[len(site_url):]  # checked against the output below
                    elif url.startswith("data:") and tag == "link":
                        continue
                elif url.startswith(site_url) and element.attrs.get("rel") != "canonical":
                    broken.append(f"{where}: an internal link must be relative")
                    continue
                elif url.startswith("/"):
                    broken.append(f"{where}: root-relative links break under a base path")
                    continue
                if element.attrs.get("rel") == "canonical":
                    continue
                if urlsplit(url).scheme in ("http", "https", "mailto"):
                    continue  # another origin (artifact downloads, commits, note links): not checked here
                resolved = urlsplit(urljoin(base, url))
                if resolved.netloc != "site.invalid":
                    broken.append(f"{where}: leaves the site")
                    continue
                file = target_file(out, resolved.path.lstrip("/"))
                if file is None:
                    broken.append(f"{where}: no such file")
                    continue
                if resolved.fragment and file.suffix == ".html":
                    if unquote(resolved.fragment) not in parse_page(file).ids:
                        broken.append(f"{where}: no element with id {resolved.fragment!r}")
    return broken


def site_url_to_file(out: Path, site_url: str, url: str) -> Path | None:
    if not url.startswith(site_url):
        return None
    return target_file(out, url[len(site_url):])


# ---------------------------------------------------------------------------------------------
# Auditing pages and notes for anything executable


BAD_SCHEMES = re.compile(r"^\s*(javascript|vbscript|data|file)\s*:", re.IGNORECASE)
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "srcset", "background", "poster", "data"}
NOTES_TAGS = set(ALLOWED_TAGS)
NOTES_ATTRIBUTES = {tag: set(names) | ({"rel"} if tag == "a" else set()) for tag, names in ALLOWED_ATTRIBUTES.items()}


def _clean_url(value: str) -> str:
    return re.sub(r"[\x00-\x20]", "", value)


def audit_notes_html(html: str) -> list[str]:
    """Anything in sanitized notes that could run, load from elsewhere or restyle the page."""
    page = _parse_cached(f'<div class="notes">{html}</div>')
    return _audit_elements([e for e in page.elements[1:]], "notes")


def _audit_elements(elements: list[Element], where: str) -> list[str]:
    found: list[str] = []
    for element in elements:
        if element.tag not in NOTES_TAGS:
            found.append(f"{where}: <{element.tag}> is not allowed in notes")
        allowed = NOTES_ATTRIBUTES.get(element.tag, set())
        for name, value in element.attrs.items():
            if name.startswith("on"):
                found.append(f"{where}: event handler {name} on <{element.tag}>")
            elif name not in allowed:
                found.append(f"{where}: attribute {name} on <{element.tag}>")
            if name in URL_ATTRIBUTES and BAD_SCHEMES.match(_clean_url(value)):
                found.append(f"{where}: {name}={value!r} on <{element.tag}>")
        if element.tag == "img" and "src" in element.attrs and not element.attrs["src"].startswith("https://"):
            found.append(f"{where}: image not over https: {element.attrs['src']!r}")
    return found


def audit_page(out: Path, page_path: str) -> list[str]:
    """Nothing executable on a page but the site's own script; notes stay inside their allowlist."""
    page = parse_page(out / page_path)
    found: list[str] = []
    for element in page.elements:
        if element.in_notes:
            continue
        for name, value in element.attrs.items():
            if name.startswith("on"):
                found.append(f"{page_path}: event handler {name} on <{element.tag}>")
            if name == "style":
                found.append(f"{page_path}: style attribute on <{element.tag}>")
            if name in URL_ATTRIBUTES and BAD_SCHEMES.match(_clean_url(value)) and not (
                    page_path == "404.html" and element.tag == "link" and value.startswith("data:image/svg+xml,")):
                found.append(f"{page_path}: {name}={value!r} on <{element.tag}>")
        if element.tag == "script" and not re.fullmatch(r"(\.\./)*static/(site|planner)\.[0-9a-f]{10}\.js",
                                                        element.attrs.get("src", "")):
            found.append(f"{page_path}: script that is not the site's own: {element.attrs}")
        if element.tag == "svg" and (element.attrs.get("role") == "img" or element.attrs.get("class") == "key"):
            continue  # the site's own charts (relreg/site/charts.py): no script, no link, no foreign content
        if element.tag in {"iframe", "object", "embed", "frame", "base", "svg", "math", "template"}:
            found.append(f"{page_path}: <{element.tag}> outside the notes")
        if element.tag == "style" and page_path != "404.html":
            found.append(f"{page_path}: <style> element")
        if element.tag == "meta" and element.attrs.get("http-equiv", "").lower() == "refresh":
            found.append(f"{page_path}: meta refresh")
    found += _audit_elements([e for e in page.elements if e.in_notes], page_path)
    return found


# In the browser: the same audit on the DOM as Chromium parsed it, with URLs resolved by its own URL parser.
BROWSER_AUDIT = """
([allowedTags, allowedAttributes]) => {
  const found = [];
  const tags = new Set(allowedTags);
  for (const element of document.querySelectorAll('.notes *')) {
    const tag = element.localName;
    if (!tags.has(tag) || element.namespaceURI !== 'http://www.w3.org/1999/xhtml') found.push('tag ' + tag);
    const allowed = allowedAttributes[tag] || [];
    for (const attribute of element.attributes) {
      if (!allowed.includes(attribute.name)) found.push(tag + ' has ' + attribute.name);
    }
    for (const name of ['href', 'src']) {
      if (!element.hasAttribute(name)) continue;
      const url = new URL(element.getAttribute(name), document.baseURI);
      const ok = tag === 'img' ? url.protocol === 'https:' : ['http:', 'https:', 'mailto:'].includes(url.protocol);
      if (!ok) found.push(tag + ' ' + name + ' -> ' + url.protocol);
    }
  }
  for (const element of document.querySelectorAll('*')) {
    for (const attribute of element.attributes) {
      if (attribute.name.startsWith('on')) found.push('handler ' + attribute.name + ' on ' + element.localName);
    }
  }
  for (const script of document.scripts) {
    if (!/\\/static\\/(site|planner)\\.[0-9a-f]{10}\\.js$/.test(script.src)) found.push('script ' + script.outerHTML.slice(0, 80));
  }
  for (const selector of ['iframe', 'object', 'embed', 'frame', 'svg:not(figure.chart svg)', 'math', 'base', 'meta[http-equiv=refresh]',
                          '[style]', 'link:not([rel=stylesheet]):not([rel=icon]):not([rel=canonical]):not([rel=alternate])']) {
    const hits = document.querySelectorAll(selector);
    if (hits.length) found.push(hits.length + ' x ' + selector);
  }
  if (document.styleSheets.length > 2) found.push(document.styleSheets.length + ' style sheets');
  return found;
}
"""

# Before any page script: count every way a payload could announce itself.
TRAP_SCRIPT = """
window.__pwned = 0;
for (const name of ['alert', 'confirm', 'prompt', 'print']) {
  window[name] = function () { window.__pwned += 1; };
}
"""


def browser_audit_arguments() -> list[object]:
    return [sorted(NOTES_TAGS), {tag: sorted(names) for tag, names in NOTES_ATTRIBUTES.items()}]


def relative_to_root(page_path: str) -> str:
    return "../" * len(PurePosixPath(page_path).parent.parts)
