"""The HTML side of `relreg build` on the example registry, checked without a browser:
every page, relative links, hashed assets, structure, feeds, sitemap, 404, determinism and speed."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import pytest
from conftest import EXAMPLE_REGISTRY, run_relreg
from git_helpers import commit_all, git, init_repo
from site_helpers import build_example_site, check_links, html_pages, parse_page, site_url_to_file

from relreg.history.deployments import CohortChange, read_cohort_history
from relreg.registry.model import Activation
from relreg.registry.source import read_worktree
from relreg.registry.validate import validate_files
from relreg.site import pages as site
from relreg.site.jobs import ReleaseDates, SiteInputs, release_views

SITE_URL = "https://firmware.aurora.example/"
ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
VERSIONS = sorted(p.stem for p in (EXAMPLE_REGISTRY / "releases").glob("*.yaml"))
HARDWARE = sorted(p.stem for p in (EXAMPLE_REGISTRY / "hardware").glob("*.yaml"))
COHORTS = sorted(p.stem for p in (EXAMPLE_REGISTRY / "cohorts").glob("*.yaml"))


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_example_site(tmp_path_factory.mktemp("example"))


def _text(out: Path, path: str) -> str:
    return (out / path).read_text(encoding="utf-8")


def _json(out: Path, path: str) -> dict:
    return json.loads((out / path).read_bytes())


def test_every_page_feed_and_asset_is_written(out: Path) -> None:
    expected = {"index.html", "releases/index.html", "update/index.html", "update/releases.json", "404.html",
                "feed.xml", "sitemap.xml", "robots.txt"}
    expected |= {f"releases/{v}/index.html" for v in VERSIONS}
    expected |= {f"hardware/{h}/index.html" for h in HARDWARE} | {f"hardware/{h}/feed.xml" for h in HARDWARE}
    expected |= {f"cohorts/{c}/index.html" for c in COHORTS}
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert expected <= written, sorted(expected - written)
    assert set(html_pages(out)) == {p for p in expected if p.endswith(".html")}
    static = sorted(p for p in written if p.startswith("static/"))
    assert sorted(re.sub(r"\.[0-9a-f]{10}\.", ".#.", p) for p in static) == [  # not in the order of the hashes
        "static/favicon.#.svg", "static/filters.#.css", "static/planner.#.js", "static/site.#.css", "static/site.#.js"]


def test_static_assets_are_named_by_the_hash_of_their_bytes(out: Path) -> None:
    for path in (out / "static").iterdir():
        digest = path.name.split(".")[-2]
        assert digest == hashlib.sha256(path.read_bytes()).hexdigest()[:10], path.name
    source = (Path(site.__file__).resolve().parent / "theme" / "static" / "site.css").read_bytes()
    assert (out / site.hashed_path("site.css", source)).read_bytes() == source


def test_no_broken_internal_link_and_every_internal_link_is_relative(out: Path) -> None:
    assert check_links(out, SITE_URL) == []


def test_links_are_relative_so_the_site_works_under_any_base_path(out: Path) -> None:
    release = _text(out, "releases/2.0.1/index.html")
    assert 'href="../../static/site.' in release and 'href="../../index.html"' in release
    assert 'href="../2.0.0/index.html"' in release  # delta source
    assert 'href="../../api/v1/releases/2.0.1.json"' in release
    for page in html_pages(out):
        if page != "404.html":
            assert not re.search(r'(?:href|src|action)="/', _text(out, page)), page


@pytest.mark.parametrize("page_path", ["index.html", "releases/index.html", "releases/2.0.1/index.html",
                                       "releases/1.3.0/index.html", "hardware/pvt/index.html",
                                       "cohorts/production/index.html", "404.html"])
def test_page_structure_lang_one_h1_landmarks_labels(out: Path, page_path: str) -> None:
    _assert_structure(out, page_path)


def test_every_page_has_a_sound_structure(out: Path) -> None:
    for page_path in html_pages(out):
        _assert_structure(out, page_path)


def _assert_structure(out: Path, page_path: str) -> None:
    page = parse_page(out / page_path)
    tags = [e.tag for e in page.elements]
    assert page.doctype and page.doctype.lower() == "doctype html", page_path
    assert page.problems == [], (page_path, page.problems)
    html = page.elements[0]
    assert html.tag == "html" and html.attrs.get("lang") == "en", page_path
    assert tags.count("h1") == 1, (page_path, tags.count("h1"))
    assert page.text_by_tag["h1"][0].strip(), page_path
    assert len(page.text_by_tag["title"]) == 1 and page.text_by_tag["title"][0].strip(), page_path
    for landmark in ("header", "nav", "main", "footer"):
        assert landmark in tags, (page_path, landmark)
    assert tags.count("main") == 1, page_path
    navs = [e for e in page.elements if e.tag == "nav"]
    labels = [n.attrs.get("aria-label") for n in navs]
    assert all(labels) and len(set(labels)) == len(labels), (page_path, labels)  # distinct, named navigation
    assert len(set(page.ids)) == len(page.ids), (page_path, sorted(i for i in page.ids if page.ids.count(i) > 1))
    label_for = {e.attrs.get("for") for e in page.elements if e.tag == "label"}
    for control in (e for e in page.elements if e.tag in ("input", "select", "textarea")):
        assert control.attrs.get("id") in label_for or control.attrs.get("aria-label"), (page_path, control)
    for image in (e for e in page.elements if e.tag == "img"):
        assert "alt" in image.attrs, (page_path, image)
    for button in (e for e in page.elements if e.tag == "button"):
        # copy buttons name their target; the planner's submit button is named by its text
        assert (button.attrs.get("type") == "button" and button.attrs.get("aria-label")) or \
            (page_path == "update/index.html" and button.attrs.get("type") == "submit"), (page_path, button)
    metas = {e.attrs.get("name") or e.attrs.get("http-equiv"): e.attrs.get("content") for e in page.elements
             if e.tag == "meta"}
    assert metas["viewport"] == "width=device-width, initial-scale=1", page_path
    assert "default-src 'none'" in metas["Content-Security-Policy"], page_path
    assert metas["color-scheme"] == "light dark", page_path
    for element in page.elements:  # nothing loads from another origin
        if element.tag in ("script", "img") or (element.tag == "link" and element.attrs.get("rel") in
                                                ("stylesheet", "icon")):
            url = element.attrs.get("src") or element.attrs.get("href") or ""
            assert not re.match(r"[a-z]+://|//", url), (page_path, url)


def test_pages_parse_as_html5_without_errors(out: Path) -> None:
    import html5lib
    for page_path in html_pages(out):
        parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
        parser.parse(_text(out, page_path))  # raises on the first parse error
        assert not parser.errors, page_path


def test_release_page_shows_dates_revision_notes_and_artifacts(out: Path) -> None:
    html = _text(out, "releases/2.0.1/index.html")
    document = _json(out, "api/v1/releases/2.0.1.json")["data"]
    created = document["created_date"][:10]
    assert f">{created} " in html and f'datetime="{created}T' in html
    revision = document["revision"]
    assert f'<a href="https://github.com/aurora-iot/thermostat-fw/commit/{revision}"><code>{revision}</code></a>' in html
    assert '<a href="../1.4.0/index.html">1.4.0</a>' in html  # min_version
    assert 'href="../../cohorts/production/index.html">Production</a>&nbsp;<span class="muted">(100\u00a0%)' in html
    assert "<dt>Devices</dt>" not in html  # no fleet snapshot given: counts are not shown as zeros
    for artifact in document["artifacts"]:
        assert f'data-copy="{artifact["sha256"]}"' in html
        assert f'<code class="id">{artifact["sha256"]}</code>' in html
        assert f'<a href="{artifact["url"]}">{artifact["filename"]}</a>' in html
        assert f'<data value="{artifact["size"]}">{site.human_size(artifact["size"])}</data>' in html
    assert html.count("delta from <a href=\"../2.0.0/index.html\">2.0.0</a>") == 2
    assert "113.4 KiB" in html  # 116091 bytes
    assert '<a href="https://github.com/aurora-iot/thermostat-fw/actions/runs/9012774451"' in html  # extra_info URL
    assert "Maintenance release. Devices on 2.0.0 download a delta image" in html
    assert 'rel="prev" href="../2.1.0/index.html"' in html and 'rel="next" href="../2.0.0/index.html"' in html


def test_yanked_release_has_a_banner_and_is_marked_everywhere(out: Path) -> None:
    html = _text(out, "releases/1.3.0/index.html")
    assert '<section class="notice notice-danger" aria-labelledby="yanked">' in html
    assert "Bootloader handoff bug" in html
    assert "<title>1.3.0 (yanked)" in html
    listing = _text(out, "releases/index.html")
    row = re.search(r'<tr data-hw="dvt1 pvt">\s*<th scope="row"><a class="k version" href="1.3.0/index.html">'
                    r'1.3.0</a>(.*?)</th>', listing, re.S)
    assert row and "yanked" in row.group(1)
    feed = ET.parse(out / "feed.xml").getroot()
    titles = [e.findtext(f"{ATOM}title") for e in feed.iter(f"{ATOM}entry")]
    assert "1.3.0 (yanked)" in titles


def test_notes_headings_sit_below_the_page_heading_but_the_json_keeps_them(out: Path) -> None:
    page = parse_page(out / "releases/2.0.0/index.html")
    assert [e.tag for e in page.elements].count("h1") == 1
    html = _text(out, "releases/2.0.0/index.html")
    assert "<h3>Aurora 2.0</h3>" in html and "<h4>What's new</h4>" in html
    assert _json(out, "api/v1/releases/2.0.0.json")["data"]["notes"].startswith("<h1>Aurora 2.0</h1>")


def test_nest_headings_caps_at_h6_and_leaves_other_text_alone() -> None:
    assert site.nest_headings("<h1>a</h1><h4>b</h4><h5>c</h5><p>h1 &lt;h1&gt;</p>") == \
        "<h3>a</h3><h6>b</h6><h6>c</h6><p>h1 &lt;h1&gt;</p>"


def test_releases_list_carries_every_version_revision_and_build_id(out: Path) -> None:
    html = _text(out, "releases/index.html")
    rows = re.findall(r'<tr data-hw="([^"]*)">', html)
    assert len(rows) == len(VERSIONS)
    newest_first = [_json(out, "api/v1/releases.json")["data"][i]["version"] for i in range(len(VERSIONS))]
    assert re.findall(r'class="k version" href="([^"/]+)/index.html"', html) == newest_first
    for release in _json(out, "api/v1/releases.json")["data"]:
        assert f'<code class="k id">{release["revision"]}</code>' in html  # found by find-in-page without JS
        for artifact in release["artifacts"]:
            assert re.search(f'<code class="k id" data-hw="{artifact["hardware_version"]}"[^>]*>'
                             f'{artifact["build_id"]}</code>', html)
    assert '<select id="hardware" name="hardware">' in html and '<label for="hardware">' in html
    assert '<div class="field" id="search-field" hidden>' in html  # shown by the script that runs it


def test_hardware_filter_css_has_one_rule_per_hardware_version(out: Path) -> None:
    css_name = re.search(r'href="\.\./(static/filters\.[0-9a-f]{10}\.css)"', _text(out, "releases/index.html"))
    assert css_name
    css = _text(out, css_name.group(1))
    for name in HARDWARE:
        assert (f'#releases:has(#hardware option[value="{name}"]:checked) '
                f'tbody tr:not([data-hw~="{name}"]){{display:none}}') in css
    assert site.filter_css(["pvt"]) == site.filter_css(["pvt"])


def test_home_shows_latest_per_hardware_cohorts_and_newest_releases(out: Path) -> None:
    html = _text(out, "index.html")
    latest = {m[0]: m[1] for m in re.findall(
        r'<th scope="row"><a href="hardware/([^/]+)/index.html">[^<]+</a></th>\s*<td><a href="releases/([^/]+)/', html)}
    assert latest == {"dvt1": "2.1.1", "evt2": "1.2.0", "pvt": "2.1.1", "pvt-b": "2.1.1"}
    assert '<a href="cohorts/beta/index.html">Public beta</a>' in html
    assert '<a href="releases/2.1.1/index.html">2.1.1</a>&nbsp;<span class="muted">(25\u00a0%)</span>' in html
    assert '<a href="releases/2.1.0/index.html">2.1.0</a>&nbsp;<span class="muted">(10.5\u00a0%)</span>' in html
    assert html.count('class="version" href="releases/') == site.NEWEST_ON_HOME
    for name in ("cohort", "hardware", "registry", "release"):
        assert f'href="schemas/{name}.schema.json"' in html


def test_hardware_and_cohort_pages(out: Path) -> None:
    evt2 = _text(out, "hardware/evt2/index.html")
    assert "<h1>Hardware version evt2</h1>" in evt2 and "retired after firmware 1.2.0" in evt2
    assert re.findall(r'<a href="\.\./\.\./releases/([^/]+)/index.html">', evt2)[1:] == \
        ["1.2.0", "1.1.1", "1.1.0", "1.0.1", "1.0.0"]  # first link: latest release
    assert 'href="../../api/v1/releases/hardware_version/evt2.json"' in evt2 and 'href="feed.xml"' in evt2
    production = _text(out, "cohorts/production/index.html")
    assert "<h1>Cohort: Production</h1>" in production
    assert '<meter min="0" max="100" value="10.5" aria-hidden="true"></meter> 10.5\u00a0% of devices' in production
    assert 'href="../../hardware/pvt-b/index.html"' in production


def test_feeds_are_atom_with_absolute_links_newest_first(out: Path) -> None:
    releases = _json(out, "api/v1/releases.json")["data"]
    for feed_path, members in [("feed.xml", releases)] + [
            (f"hardware/{h}/feed.xml", [r for r in releases if h in {a["hardware_version"] for a in r["artifacts"]}])
            for h in HARDWARE]:
        feed = ET.parse(out / feed_path).getroot()
        assert feed.tag == f"{ATOM}feed"
        assert feed.findtext(f"{ATOM}id") == SITE_URL + feed_path
        entries = list(feed.iter(f"{ATOM}entry"))
        assert [e.findtext(f"{ATOM}id") for e in entries] == \
            [f"{SITE_URL}releases/{r['version']}/" for r in members[:site.FEED_ENTRIES]]
        updated = [e.findtext(f"{ATOM}updated") for e in entries]
        assert feed.findtext(f"{ATOM}updated") == max(updated)
        for entry in entries:
            link = entry.find(f"{ATOM}link").get("href")
            assert site_url_to_file(out, SITE_URL, link) is not None, link
            assert entry.find(f"{ATOM}content").get("type") == "html"
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry.findtext(f"{ATOM}published"))
    first = ET.parse(out / "feed.xml").getroot().find(f"{ATOM}entry")
    assert first.findtext(f"{ATOM}content") == releases[0]["notes"]  # the same sanitized HTML, escaped once


def test_sitemap_lists_every_page_by_absolute_url(out: Path) -> None:
    root = ET.parse(out / "sitemap.xml").getroot()
    locations = [u.findtext(f"{SITEMAP}loc") for u in root.iter(f"{SITEMAP}url")]
    files = {site_url_to_file(out, SITE_URL, loc) for loc in locations}
    assert None not in files
    pages = {out / p for p in html_pages(out) if p != "404.html"}
    assert files == pages
    assert f"{SITE_URL}releases/2.0.1/" in locations
    for url in root.iter(f"{SITEMAP}url"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", url.findtext(f"{SITEMAP}lastmod"))
    assert _text(out, "robots.txt").endswith(f"Sitemap: {SITE_URL}sitemap.xml\n")


def test_404_page_works_at_any_depth(out: Path) -> None:
    html = _text(out, "404.html")
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in html  # the inline CSS is allowed by its hash, nothing else
    assert "<script" not in html
    hrefs = re.findall(r'<a [^>]*href="([^"]+)"', html)
    assert hrefs and all(h.startswith(SITE_URL) for h in hrefs)


def test_base_url_changes_absolute_urls_only(tmp_path: Path, out: Path) -> None:
    other = tmp_path / "other"
    result = run_relreg("build", "--registry", out.parent / "repo" / "registry", "--out", other,
                        "--base-url", "https://mirror.example.test/fw/")
    assert result.exit_code == 0, result.output
    assert "https://mirror.example.test/fw/releases/2.0.1/" in _text(other, "sitemap.xml")
    assert _text(other, "releases/2.0.1/index.html") == _text(out, "releases/2.0.1/index.html").replace(
        SITE_URL + "releases/2.0.1/", "https://mirror.example.test/fw/releases/2.0.1/")


def test_two_builds_give_byte_identical_pages(tmp_path: Path, out: Path) -> None:
    again = tmp_path / "again"
    result = run_relreg("build", "--registry", out.parent / "repo" / "registry", "--out", again, "--force")
    assert result.exit_code == 0, result.output
    for path in out.rglob("*"):
        if path.is_file() and path.name != ".relreg-manifest.json":
            assert (again / path.relative_to(out)).read_bytes() == path.read_bytes(), path


# ---------------------------------------------------------------------------------------------
# Units


@pytest.mark.parametrize(("size", "text"), [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (415977, "406.2 KiB"),
                                            (3 * 1024 ** 2, "3.0 MiB"), (5 * 1024 ** 3 + 1, "5.0 GiB")])
def test_human_size(size: int, text: str) -> None:
    assert site.human_size(size) == text


def test_extra_info_values_are_escaped_and_only_http_urls_become_links() -> None:
    assert site.extra_value("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
    assert site.extra_value("javascript:alert(1)") == "javascript:alert(1)"
    assert site.extra_value('https://ci.example/"onmouseover=x') == 'https://ci.example/&#34;onmouseover=x'
    assert site.extra_value("https://ci.example/1") == \
        '<a href="https://ci.example/1" rel="nofollow noopener noreferrer">https://ci.example/1</a>'
    assert site.extra_value({"b": 1, "a": ["<x>"]}) == \
        "<code>{&#34;a&#34;: [&#34;&lt;x&gt;&#34;], &#34;b&#34;: 1}</code>"


@pytest.mark.parametrize("url", ["1.2.0/app.bin", "a/b+c%20d.bin", "https://cdn.example/x.bin", "../up.bin",
                                 "/root.bin", "./here.bin", "x?y=1", "x#frag", "//other.example/x", "a/./b.bin",
                                 "http://plain.example/y", "a b.bin", "_x.bin"])
@pytest.mark.parametrize("base", ["https://dl.example/fw/", "https://dl.example/"])
def test_download_url_is_urljoin(url: str, base: str) -> None:
    from relreg.registry.model import Artifact
    artifact = Artifact(hardware_version="pvt", build_id="b" * 40, url=url, size=1, sha256="c" * 64)
    assert site.download_url(artifact, base) == artifact.absolute_url(base)


def test_feed_text_drops_characters_xml_forbids() -> None:
    assert site.xml_text("a\x00b\x1bc\td\n") == "abc\td\n"


# ---------------------------------------------------------------------------------------------
# Deployment history of cohorts


COHORT_V1 = 'slug: beta\nname: Beta\nreleases:\n  - version: "1.0.0"\n'
COHORT_V2 = 'slug: beta\nname: Beta\nreleases:\n  - version: "1.0.0"\n  - version: "1.1.0"\n    rollout_percent: 25\n'
COHORT_V3 = 'slug: beta\nname: Beta\nreleases:\n  - version: "1.1.0"\n    rollout_percent: 100\n'


@dataclass(frozen=True)
class _InputsWithHistory(SiteInputs):
    """SiteInputs as it will be once build.py passes the cohort history (see the site issue)."""

    cohort_history: Mapping[str, Sequence[CohortChange]] = field(default_factory=dict)


def test_cohort_history_is_read_from_first_parent_git_history(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    cohorts = repo / "registry" / "cohorts"
    cohorts.mkdir(parents=True)
    (repo / "registry" / "registry.yaml").write_text("name: x\n")
    commit_all(repo, "start", "2024-01-01T00:00:00+00:00")
    (cohorts / "beta.yaml").write_text(COHORT_V1)
    first = commit_all(repo, "beta gets 1.0.0", "2024-01-02T00:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "rollout")
    (cohorts / "beta.yaml").write_text(COHORT_V2)
    commit_all(repo, "start 1.1.0 at 25%", "2024-01-03T00:00:00+00:00")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge rollout", "rollout", date="2024-01-04T00:00:00+00:00")
    merge = git(repo, "rev-parse", "HEAD")
    (cohorts / "beta.yaml").write_text(COHORT_V3)
    last = commit_all(repo, "1.1.0 everywhere", "2024-01-05T00:00:00+00:00")
    (cohorts / "broken.yaml").write_text("releases: [\n")
    commit_all(repo, "broken file", "2024-01-06T00:00:00+00:00")

    import git as gitpython
    history = read_cohort_history(gitpython.Repo(repo), last, "registry")
    assert list(history) == ["beta"]  # as of `last`, broken.yaml did not exist
    changes = history["beta"]
    assert [c.commit for c in changes] == [first, merge, last]  # the merge, not the branch commit
    assert [c.subject for c in changes] == ["beta gets 1.0.0", "Merge rollout", "1.1.0 everywhere"]
    assert changes[0].author == "Release Bot" and changes[0].date == 1704153600
    assert changes[1].releases == (Activation("1.0.0", 100.0), Activation("1.1.0", 25.0))
    head = git(repo, "rev-parse", "HEAD")
    assert read_cohort_history(gitpython.Repo(repo), head, "registry")["broken"][0].releases is None


def test_cohort_page_shows_the_deployment_history_newest_first() -> None:
    registry = validate_files(read_worktree(EXAMPLE_REGISTRY)).registry
    dates = {r.version: ReleaseDates(1_700_000_000 + i, 1_700_000_000 + i) for i, r in enumerate(registry.releases)}
    changes = [
        CohortChange("a" * 40, 1_710_000_000, "Ana", "production: 2.0.1", (Activation("2.0.1", 100.0),)),
        CohortChange("b" * 40, 1_720_000_000, "Bo <script>", "stage 2.1.0",
                     (Activation("2.0.1", 100.0), Activation("2.1.0", 5.0))),
        CohortChange("c" * 40, 1_724_000_000, "Ana", "more 2.1.0",
                     (Activation("2.0.1", 100.0), Activation("2.1.0", 10.5))),
        CohortChange("d" * 40, 1_725_000_000, "Ana", "", None),
    ]
    inputs = _InputsWithHistory(registry=registry, release_dates=dates, cohort_history={"production": changes})
    html = site.site_pages(inputs, release_views(inputs))["cohorts/production/index.html"].decode()
    rows = re.findall(r"<tr>\s*<td class=\"nowrap\"><time datetime=\"([^\"]+)\">.*?</tr>", html, re.S)
    assert rows == [site.format_iso(c.date) for c in reversed(changes)]
    assert "<li>2.1.0: 5\u00a0% \u2192 10.5\u00a0%</li>" in html
    assert "<li>added 2.1.0 at 5\u00a0%</li>" in html and "<li>added 2.0.1 at 100\u00a0%</li>" in html
    assert "<li>file could not be read at this commit</li>" in html
    assert f'<code title="{"b" * 40}">{"b" * 12}</code>' in html
    assert "Bo &lt;script&gt;" in html and "<script>" not in html.split("</head>")[1]
    without = SiteInputs(registry=registry, release_dates=dates)
    assert "not part of this build" in site.site_pages(without, release_views(without))[
        "cohorts/production/index.html"].decode()


# ---------------------------------------------------------------------------------------------
# Speed


def _synthetic_inputs(count: int) -> SiteInputs:
    registry = validate_files(read_worktree(EXAMPLE_REGISTRY)).registry
    templates = registry.releases
    releases = []
    for index in range(count):
        template = templates[index % len(templates)]
        version = f"{index // 100}.{index % 100}.0"
        artifacts = tuple(replace(a, build_id=f"{index:08x}{n:032x}", type="full", delta_from=None)
                          for n, a in enumerate(template.artifacts) if not a.is_delta)
        releases.append(replace(template, version=version, parsed_version=registry.scheme.parse(version),
                                artifacts=artifacts, min_version=None))
    registry = replace(registry, releases=tuple(releases), cohorts=())
    dates = {r.version: ReleaseDates(1_600_000_000 + i * 3600, 1_600_000_000 + i * 3600) for i, r in
             enumerate(releases)}
    return SiteInputs(registry=registry, release_dates=dates, notes_html={r.version: "<p>n</p>" for r in releases})


def test_rendering_many_release_pages_reuses_compiled_templates() -> None:
    # How fast is measured by `make bench`, not asserted here.
    inputs = _synthetic_inputs(2000)
    views = release_views(inputs)
    files = site.site_pages(inputs, views)
    assert sum(1 for p in files if re.fullmatch(r"releases/[^/]+/index\.html", p)) == 2000
    assert site.environment() is site.environment()
    pvt = files["hardware/pvt/index.html"].decode()
    listed = re.findall(r'<th scope="row"><a href="\.\./\.\./releases/([^/]+)/', pvt)
    assert len(set(listed)) == site.HARDWARE_PAGE_RELEASES and listed[0] == views[0].version
    assert f"The newest {site.HARDWARE_PAGE_RELEASES} of 2000." in pvt
    assert 'href="../../releases/index.html?hardware=pvt"' in pvt


def test_an_empty_registry_still_gives_a_complete_site() -> None:
    registry = validate_files(read_worktree(EXAMPLE_REGISTRY)).registry
    empty = replace(registry, releases=(), cohorts=(), hardware=())
    inputs = SiteInputs(registry=empty, release_dates={})
    files = site.site_pages(inputs, release_views(inputs))
    assert {"index.html", "releases/index.html", "feed.xml", "sitemap.xml", "404.html"} <= set(files)
    assert b"No releases yet." in files["index.html"]
    assert ET.fromstring(files["feed.xml"]).findtext(f"{ATOM}updated") == "1970-01-01T00:00:00Z"


def test_build_metadata_versions_work_in_paths_and_links(base_registry: Path, tmp_path: Path) -> None:
    release = (base_registry / "releases" / "1.1.0.yaml").read_text()
    (base_registry / "releases" / "1.2.0+build.7.yaml").write_text(
        release.replace('version: "1.1.0"', 'version: "1.2.0+build.7"').replace("c333", "e333").replace("d444", "f444")
        .replace("url: 1.1.0/", "url: 1.2.0+build.7/"))
    cohort = base_registry / "cohorts" / "stable.yaml"
    cohort.write_text(cohort.read_text() + '  - version: "1.2.0+build.7"\n')  # in device documents too
    repo = init_repo(tmp_path / "repo")
    registry = repo / "registry"
    base_registry.rename(registry)
    commit_all(repo, "all", "2024-01-01T00:00:00+00:00")
    out = tmp_path / "public"
    result = run_relreg("build", "--registry", registry, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "releases" / "1.2.0+build.7" / "index.html").is_file()
    assert check_links(out, "https://fw.example.test/") == []
    # '+' as %2B in every URL: S3 and some CDNs read a '+' in a path as a space (found by a new-user trial)
    assert 'href="1.2.0%2Bbuild.7/index.html"' in _text(out, "releases/index.html")
    pages = [path for path in out.rglob("*") if path.suffix in (".html", ".xml") and path.is_file()]
    # (artifact urls are the registry's own, published as written)
    assert not [path for path in pages
                if re.search(r'(href="|<loc>|<id>)(?!https://dl\.)[^"<]*1\.2\.0\+build', path.read_text())]
    assert "https://fw.example.test/releases/1.2.0%2Bbuild.7/" in "".join(p.read_text() for p in out.rglob("sitemap*.xml"))
    documents = [json.loads(p.read_text()) for p in (out / "api" / "v1" / "devices").rglob("candidates.json")]
    urls = [c["release_url"] for d in documents for c in d["data"]["candidates"] if c["version"] == "1.2.0+build.7"]
    assert urls and all(url.endswith("/api/v1/releases/1.2.0%2Bbuild.7.json") for url in urls)
