"""The built site in a real browser: Debian's Chromium, headless, driven by Playwright, against a loopback
HTTP server that serves the site under a sub-path (so relative links are proven to work from any base).

One browser and one pair of builds per module; each test opens its own context.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

import pytest
from browser_helpers import axe_violations, screenshots
from site_helpers import (
    ARTIFACTS,
    BROWSER_AUDIT,
    TRAP_SCRIPT,
    browser_audit_arguments,
    build_example_site,
    build_hostile_site,
    html_pages,
    serve,
)

pytestmark = pytest.mark.slow

RELEASE_WITH_EVERYTHING = "2.0.1"  # deltas, cohorts, min_version, extra_info
SCREENSHOTS = ARTIFACTS / "screenshots"


class Site:
    def __init__(self, root: Path, out: Path, url: str) -> None:
        self.root = root
        self.out = out
        self.url = url  # ends in /

    def pages(self) -> list[str]:
        return html_pages(self.out)


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Site, dict[str, Path]]]:
    root = tmp_path_factory.mktemp("served")
    example = build_example_site(root / "deploy" / "example")
    hostile, by_version = build_hostile_site(root / "deploy" / "hostile")
    with serve(root) as base:
        yield (Site(root, example, f"{base}deploy/example/public/"),
               Site(root, hostile, f"{base}deploy/hostile/public/"), by_version)


@pytest.fixture(scope="module")
def example(sites: tuple[Site, Site, dict[str, Path]]) -> Site:
    return sites[0]


PNG_1X1 = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000" "1f15c4890000000d49444154789c63"
                        "f8ffff3f0005fe02fea7d6a4830000000049454e44ae426082")


class Watch:
    """Console errors, page errors, failed requests, HTTP errors and requests that leave loopback.

    With `note_images`, images over https (which notes may show) are answered here with a blank image
    and listed in `images`; nothing ever leaves the machine.
    """

    def __init__(self, context: object, page: object, note_images: bool = False) -> None:
        self.problems: list[str] = []
        self.images: list[str] = []
        self.note_images = note_images
        context.route("**/*", self._route)
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", self._failed)
        page.on("response", lambda r: self.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)

    def _failed(self, request: object) -> None:
        if request.failure == "net::ERR_ABORTED" and "/static/favicon." in request.url:
            return  # the icon loads at low priority; moving on to the next page cancels it
        self.problems.append(f"failed: {request.url} {request.failure}")

    def _route(self, route: object) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1:", "file://", "data:")):
            route.continue_()
        elif self.note_images and url.startswith("https://") and route.request.resource_type == "image":
            self.images.append(url)
            route.fulfill(status=200, content_type="image/png", body=PNG_1X1)
        else:  # nothing may leave the machine, and nothing should even try
            self.problems.append(f"request to another origin: {url}")
            route.abort()


def _follow(page: object, link: object) -> None:
    """Click a link and wait until the next page has loaded: moving on sooner would cancel the loads of the page
    being left (its script), which the watch would rightly report."""
    with page.expect_navigation(wait_until="load"):
        link.click()


def _open(browser: object, note_images: bool = False, **options: object) -> tuple[object, object, Watch]:
    context = browser.new_context(**options)
    page = context.new_page()
    return context, page, Watch(context, page, note_images)


def test_every_page_loads_cleanly_and_every_link_answers(browser: object, example: Site) -> None:
    """No console error, failed request or request elsewhere on any page; every same-origin link target the
    browser resolves (not what a parser guesses) answers 200."""
    context, page, watch = _open(browser)
    targets: set[str] = set()
    try:
        for path in example.pages():
            page.goto(example.url + path, wait_until="load")
            assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith("system-ui"), path
            assert page.locator("h1").count() == 1, path
            if path != "404.html":
                targets |= set(page.eval_on_selector_all("a[href]", "els => els.map(a => a.href.split('#')[0])"))
        page.goto(example.url + f"releases/{RELEASE_WITH_EVERYTHING}/index.html")
        assert page.locator("button.copy").first.is_visible()  # the script ran and showed the copy buttons
        internal = sorted(t for t in targets if t.startswith(example.url))
        assert len(internal) > 50
        for url in internal:
            assert context.request.get(url).status == 200, url
    finally:
        context.close()
    assert watch.problems == []


def _visible_versions(page: object) -> list[str]:
    return page.eval_on_selector_all(
        "#release-table tbody tr", "rows => rows.filter(r => r.offsetParent !== null)"
                                   ".map(r => r.querySelector('a.version').textContent)")


def test_hardware_filter_and_search_work_with_javascript(browser: object, example: Site) -> None:
    releases = json.loads((example.out / "api/v1/releases.json").read_bytes())["data"]
    everything = [r["version"] for r in releases]
    context, page, watch = _open(browser)
    try:
        page.goto(example.url + "releases/index.html")
        assert _visible_versions(page) == everything
        page.select_option("#hardware", "evt2")
        assert _visible_versions(page) == ["1.2.0", "1.1.1", "1.1.0", "1.0.1", "1.0.0"]
        assert page.text_content("#count") == f"Showing 5 of {len(everything)} releases."
        assert page.url.endswith("?hardware=evt2")

        page.select_option("#hardware", "")
        search = page.get_by_label("Version, revision or build id")
        search.fill("2.0.0")
        assert _visible_versions(page) == ["2.0.0-rc.2", "2.0.0-rc.1", "2.0.0"] or \
            sorted(_visible_versions(page)) == ["2.0.0", "2.0.0-rc.1", "2.0.0-rc.2"]
        by_version = {r["version"]: r for r in releases}
        search.fill(by_version["1.3.1"]["revision"][:8].upper())  # revision prefix, any case
        assert _visible_versions(page) == ["1.3.1"]
        delta = next(a for a in by_version["2.0.1"]["artifacts"] if a["type"] == "delta")
        search.fill(delta["build_id"])  # a full build id
        assert _visible_versions(page) == ["2.0.1"]
        search.fill(delta["build_id"][10:20])  # any part of it
        assert _visible_versions(page) == ["2.0.1"]
        search.fill("no-such-release")
        assert _visible_versions(page) == [] and page.is_visible("#empty")
        search.fill("")
        assert _visible_versions(page) == everything and not page.is_visible("#empty")

        page.goto(example.url + "releases/index.html?hardware=pvt-b&q=2.1")  # shareable filter links
        assert _visible_versions(page) == ["2.1.1", "2.1.0"]
        assert page.input_value("#hardware") == "pvt-b" and page.input_value("#q") == "2.1"
    finally:
        context.close()
    assert watch.problems == []


def test_hardware_filter_works_without_javascript(browser: object, example: Site) -> None:
    context, page, watch = _open(browser, java_script_enabled=False)
    try:
        page.goto(example.url + "releases/index.html")
        rows = page.locator("#release-table tbody tr")
        total = rows.count()
        page.select_option("#hardware", "evt2")
        visible = [rows.nth(i).locator("a.version").text_content() for i in range(total) if rows.nth(i).is_visible()]
        assert visible == ["1.2.0", "1.1.1", "1.1.0", "1.0.1", "1.0.0"]
        page.select_option("#hardware", "")
        assert sum(rows.nth(i).is_visible() for i in range(total)) == total
        assert not page.is_visible("#q")  # the text search needs the script; find in page does the job
        assert "find in page" in page.inner_html("#releases noscript")
    finally:
        context.close()
    assert watch.problems == []


def test_copy_button_copies_the_sha256(browser: object, example: Site) -> None:
    context, page, watch = _open(browser, permissions=["clipboard-read", "clipboard-write"])
    try:
        page.goto(example.url + f"releases/{RELEASE_WITH_EVERYTHING}/index.html")
        document = json.loads((example.out / f"api/v1/releases/{RELEASE_WITH_EVERYTHING}.json").read_bytes())
        artifact = document["data"]["artifacts"][1]
        button = page.get_by_role("button", name=f"Copy SHA-256 of {artifact['filename']}")
        button.click()
        assert page.evaluate("navigator.clipboard.readText()") == artifact["sha256"]
        assert button.text_content() == "Copied"
        assert page.text_content("#copy-status") == "SHA-256 copied to the clipboard."
    finally:
        context.close()
    assert watch.problems == []


def test_keyboard_focus_is_visible_and_the_skip_link_leads_to_the_content(browser: object, example: Site) -> None:
    context, page, watch = _open(browser)
    try:
        page.goto(example.url + f"releases/{RELEASE_WITH_EVERYTHING}/index.html")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        box = page.locator("a.skip").bounding_box()
        assert box and box["y"] >= 0  # on screen once focused
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        for _ in range(6):
            page.keyboard.press("Tab")
            style = page.evaluate("(() => { const s = getComputedStyle(document.activeElement);"
                                  " return [s.outlineStyle, parseFloat(s.outlineWidth)]; })()")
            assert style[0] != "none" and style[1] >= 2, style
    finally:
        context.close()
    assert watch.problems == []


@pytest.mark.parametrize("width", [360, 1280])
def test_pages_fit_the_screen_without_sideways_scrolling(browser: object, example: Site, width: int) -> None:
    context, page, watch = _open(browser, viewport={"width": width, "height": 800})
    try:
        for path in ["index.html", "releases/index.html", f"releases/{RELEASE_WITH_EVERYTHING}/index.html",
                     "releases/1.3.0/index.html", "hardware/pvt/index.html", "cohorts/beta/index.html", "404.html"]:
            page.goto(example.url + path)
            assert page.evaluate("document.documentElement.scrollWidth") <= width, (path, width)
    finally:
        context.close()
    assert watch.problems == []


AXE_PAGES = ["index.html", "releases/index.html", f"releases/{RELEASE_WITH_EVERYTHING}/index.html",
             "releases/1.3.0/index.html", "releases/2.0.0/index.html", "hardware/pvt/index.html",
             "cohorts/beta/index.html", "404.html"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_accessibility_problem_in_light_and_dark_mode(browser: object, example: Site,
                                                                   scheme: str) -> None:
    """axe-core (WCAG 2.1 A/AA and best practices, including colour contrast) on representative pages."""
    context, page, watch = _open(browser, color_scheme=scheme, bypass_csp=True)  # bypass: to inject axe
    try:
        violations = axe_violations(page, example.url, AXE_PAGES)
    finally:
        context.close()
    assert violations == {}
    assert watch.problems == []


def test_site_also_works_from_file_urls(browser: object, example: Site) -> None:
    context, page, watch = _open(browser)
    try:
        page.goto((example.out / "index.html").as_uri())
        assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith("system-ui")
        _follow(page, page.get_by_role("navigation", name="Site").get_by_role("link", name="Releases"))
        assert page.url == (example.out / "releases" / "index.html").as_uri()
        page.select_option("#hardware", "evt2")
        assert len(_visible_versions(page)) == 5
        _follow(page, page.get_by_role("link", name="1.2.0", exact=True))
        assert page.url == (example.out / "releases" / "1.2.0" / "index.html").as_uri()
        assert page.locator("h1").text_content() == "1.2.0"
    finally:
        context.close()
    assert watch.problems == []


FIRE_EVENTS = """() => {
  for (const element of document.querySelectorAll('.notes *')) {
    for (const type of ['mouseover', 'mouseenter', 'pointerover', 'pointerenter', 'focus', 'focusin', 'toggle',
                        'animationstart', 'load', 'error', 'begin']) {
      element.dispatchEvent(new Event(type));
    }
    if (!['a', 'summary'].includes(element.localName)) element.dispatchEvent(new MouseEvent('click', {bubbles: true}));
  }
}"""


def test_hostile_notes_run_nothing_in_the_browser(browser: object,
                                                   sites: tuple[Site, Site, dict[str, Path]]) -> None:
    """The sanitizer alone must hold: the page's Content-Security-Policy is bypassed for this test."""
    _, hostile, by_version = sites
    context, page, watch = _open(browser, note_images=True, bypass_csp=True)
    context.add_init_script(TRAP_SCRIPT)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        for version, source in by_version.items():
            page.goto(hostile.url + f"releases/{version}/index.html")
            page.evaluate(FIRE_EVENTS)  # any handler that survived would run now
            page.wait_for_timeout(50)
            assert page.evaluate(BROWSER_AUDIT, browser_audit_arguments()) == [], source.name
            assert page.evaluate("window.__pwned") == 0, source.name
            assert page.title().startswith(f"{version} "), source.name

        # The JSON notes, put into a page as an API client would (innerHTML), run nothing either.
        page.goto(hostile.url + "404.html")
        for version, source in by_version.items():
            notes = json.loads((hostile.out / f"api/v1/releases/{version}.json").read_bytes())["data"]["notes"]
            page.evaluate("html => { document.querySelector('main').innerHTML = '<div class=notes></div>';"
                          " document.querySelector('.notes').innerHTML = html; }", notes)
            page.wait_for_timeout(50)
            assert page.evaluate(BROWSER_AUDIT, browser_audit_arguments()) == [], source.name
            assert page.evaluate("window.__pwned") == 0, source.name
    finally:
        context.close()
    assert dialogs == []
    assert watch.problems == []
    # Only images over https load from elsewhere (notes may show them, by design); nothing else even tries.
    assert watch.images and all(re.match(r"https://images\.example/", url) for url in watch.images), watch.images


def test_hostile_site_raises_no_content_security_policy_violation(browser: object,
                                                                   sites: tuple[Site, Site, dict[str, Path]]) -> None:
    """With the policy on, nothing even tries to run: a violation would mean something slipped through."""
    _, hostile, by_version = sites
    context, page, watch = _open(browser, note_images=True)
    try:
        for version in by_version:
            page.goto(hostile.url + f"releases/{version}/index.html")
    finally:
        context.close()
    assert watch.problems == []


def test_screenshots_of_home_and_release_pages_in_light_and_dark_mode(browser: object, example: Site) -> None:
    pages = {"home": "index.html", "release": f"releases/{RELEASE_WITH_EVERYTHING}/index.html"}
    screenshots(browser, example.url, pages, SCREENSHOTS)


@pytest.fixture(scope="module")
def paged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The example registry with two releases a page of the releases list: a front page and five older ones."""
    import relreg.site.jobs
    import relreg.site.pages

    root = tmp_path_factory.mktemp("paged")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(relreg.site.jobs, "JOB_SIZE", 1)
        patch.setattr(relreg.site.pages, "LIST_PAGE_RELEASES", 2)
        out = build_example_site(root / "example")
    with serve(root) as base:
        yield Site(root, out, f"{base}example/public/")


def test_a_paged_list_leads_to_every_release_and_finds_one_on_another_page(browser: object, paged: Site) -> None:
    releases = json.loads((paged.out / "api/v1/releases.json").read_bytes())["data"]
    newest_first = [r["version"] for r in releases]  # by created date, as the list pages go
    oldest = releases[-1]
    context, page, watch = _open(browser)
    try:
        page.goto(paged.url + "releases/index.html")
        assert _visible_versions(page) == newest_first[:4]
        _follow(page, page.get_by_role("link", name="Releases 1–2"))
        assert page.locator("h1").text_content() == "Releases 1–2"
        assert _visible_versions(page) == newest_first[-2:]
        seen = []
        while page.get_by_role("link", name="Newer releases").count():  # walk up to the front page
            seen = _visible_versions(page) + seen
            _follow(page, page.get_by_role("link", name="Newer releases").first)  # the pager is above and below the rows
        assert page.url == paged.url + "releases/index.html"
        assert _visible_versions(page) + seen == newest_first

        search = page.get_by_label("Version, revision or build id")
        build_id = oldest["artifacts"][0]["build_id"]
        search.fill(f"BuildID[sha1]={build_id.upper()}")  # as a crash log prints it: not on the front page
        found = page.locator("#elsewhere a")
        found.wait_for()
        assert found.text_content() == oldest["version"]
        assert f"has the build id {build_id}." in page.text_content("#elsewhere")
        assert page.text_content("#count") == "Showing 0 of 4 releases on this page."
        search.fill(oldest["version"])
        page.locator("#elsewhere", has_text="has the version").wait_for()
        search.fill("9.9.9")
        page.locator("#elsewhere", has_text="Nor has a release on another page the whole version, revision or build "
                                            "id 9.9.9").wait_for()
        assert page.text_content("#build-match") == "" and page.text_content("#empty").startswith("No release on this page")
        search.fill(f"Build ID: 0x{build_id}")  # a crash log's line with spaces: its build id is looked up
        page.locator("#elsewhere", has_text=f"has the build id {build_id}.").wait_for()
        assert page.text_content("#build-match") == f"No artifact on this page has a build id containing {build_id}."
        revision = oldest["revision"]
        search.fill(revision.upper())  # the rows match in any case: so does the lookup (git's revisions are lower case)
        page.locator("#elsewhere", has_text=f"has the revision {revision}.").wait_for()
        page.select_option("#hardware", "evt2")  # no release of this page has an image for it
        search.fill(newest_first[0])
        page.locator("#elsewhere", has_text="on this page but not for the hardware chosen").wait_for()
        page.select_option("#hardware", "")
        search.fill(newest_first[0])  # on this page: nothing is looked up
        assert page.is_hidden("#elsewhere") and _visible_versions(page) == [newest_first[0]]
        search.fill("")
        assert page.text_content("#count").startswith(f"{len(releases)} releases, newest first")
        assert page.get_by_role("link", name="older pages").count() == 1  # the count's own link is back

        search.fill(build_id)
        _follow(page, page.locator("#elsewhere a"))
        page.wait_for_url(paged.url + f"releases/{oldest['version']}/index.html")
        assert page.locator("h1").text_content() == oldest["version"]
    finally:
        context.close()
    # A whole term that no row here has is asked of each query dimension whose schema allows it (the crash
    # log's line, of its build id alone): those that do not have it answer 404, as the API's static lists do
    # for an unknown key. Nothing else may go wrong.
    missed = sorted(re.sub(r".*/api/v1/releases/", "", problem) for problem in watch.problems
                    if problem.startswith("HTTP 404: "))
    as_version = [f"version/{build_id}.json"] if re.fullmatch(r"[0-9][0-9A-Za-z.+-]{0,63}", build_id) else []
    assert missed == sorted([f"revision/{oldest['version']}.json", "version/9.9.9.json", "revision/9.9.9.json",
                             *as_version, f"revision/{build_id}.json", f"revision/{revision.upper()}.json",
                             f"build_id/{revision}.json",  # a revision of hex digits may be a build id too
                             f"revision/{newest_first[0]}.json"])
    assert [problem for problem in watch.problems
            if not problem.startswith("HTTP 404: ") and not problem.startswith(
                "console error: Failed to load resource: the server responded with a status of 404")] == []


def test_older_pages_of_the_list_filter_by_hardware_without_javascript(browser: object, paged: Site) -> None:
    context, page, watch = _open(browser, java_script_enabled=False)
    try:
        page.goto(paged.url + "releases/page/3/index.html")
        rows = page.locator("#release-table tbody tr")
        assert rows.count() == 2
        names = page.eval_on_selector_all("#hardware option", "options => options.map(o => o.value)")
        emptied = []  # the hardware versions no release of this page has
        for name in names[1:]:
            page.select_option("#hardware", name)
            shown = [rows.nth(i) for i in range(2) if rows.nth(i).is_visible()]
            assert all(name in row.get_attribute("data-hw").split() for row in shown)
            assert page.is_visible("#empty") == (shown == []), name  # a filter that leaves no row says so
            emptied += [name] if not shown else []
        assert emptied and len(emptied) < len(names) - 1  # both cases were seen
        page.select_option("#hardware", "")
        assert page.is_hidden("#empty")
        assert "on the page that lists its release" in page.inner_html("#releases noscript")
    finally:
        context.close()
    assert watch.problems == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_accessibility_problem_on_the_pages_of_a_paged_list(browser: object, paged: Site,
                                                                        scheme: str) -> None:
    context, page, watch = _open(browser, color_scheme=scheme, bypass_csp=True)
    try:
        violations = axe_violations(page, paged.url, ["releases/index.html", "releases/page/3/index.html"])
    finally:
        context.close()
    assert violations == {}
    assert watch.problems == []


def test_a_paged_list_opened_from_a_file_says_it_searched_its_own_rows_only(browser: object, paged: Site) -> None:
    oldest = json.loads((paged.out / "api/v1/releases.json").read_bytes())["data"][-1]
    context, page, watch = _open(browser)
    try:
        page.goto((paged.out / "releases" / "index.html").as_uri())
        page.get_by_label("Version, revision or build id").fill(oldest["artifacts"][0]["build_id"])
        page.locator("#elsewhere", has_text="Only the releases on this page were searched").wait_for()
        _follow(page, page.get_by_role("link", name="Releases 1–2"))
        assert page.url == (paged.out / "releases" / "page" / "1" / "index.html").as_uri()
        assert oldest["version"] in _visible_versions(page)
    finally:
        context.close()
    assert watch.problems == []  # a page opened from a file does not try to fetch: it says what it searched
