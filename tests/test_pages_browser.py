"""The pages that answer questions at a glance, in Debian's Chromium: the update planner, rollout charts on
cohort and release pages, the fleet snapshot, the build-id lookup and the release page's badges and downloads.
Light and dark, desktop and phone, with screenshots (build/test-artifacts/screenshots/) and axe-core.

The site is the example registry with a deployment history of several steps (staged rollouts at 1 %, 5 %,
then their final percent) and a device-count snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import axe_violations, screenshots, served_example_site
from site_helpers import ARTIFACTS

pytestmark = pytest.mark.slow

SCREENSHOTS = ARTIFACTS / "screenshots"
COUNTS = {"2.1.0": 1200, "2.0.1": 5400, "2.1.1": 310, "1.4.0": 95, "1.3.1": 240, "2.0.0": 20, "9.9.9-dev": 3}
PAGES = {  # screenshot name -> page
    "planner": "update/index.html?cohort=production&hardware=pvt&software=main&current=1.4.0&serial=AT100-000123",
    "planner-path": "update/index.html?cohort=production&hardware=pvt&current=1.4.0",
    "cohort-chart": "cohorts/production/index.html",
    "release-chart": "releases/2.1.0/index.html",
    "release-required-step": "releases/1.4.0/index.html",
    "home-fleet": "index.html",
    "hardware-counts": "hardware/pvt/index.html",
    "releases-build-id": "releases/index.html?q=BuildID%5Bsha1%5D%3D8A73574A",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("pages")
    counts = root / "counts.json"
    counts.write_text(json.dumps(COUNTS))
    with served_example_site(root, True, "--device-counts", str(counts)) as served:
        yield served


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a fresh browser context (its own storage), closed after the test."""
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def _settle(page: Any) -> None:
    """The planner has drawn its path (other pages are static)."""
    if "/update/" in page.url:
        page.wait_for_function("() => document.querySelector('#planner:not([data-busy])') !== null && "
                               "document.getElementById('plan-status').textContent.indexOf('Working') < 0 && "
                               "document.getElementById('plan-status').textContent !== ''")


def _settle_with_a_tooltip(page: Any) -> None:
    _settle(page)
    if page.locator(".badge[tabindex]").count():
        page.focus(".badge[tabindex]")  # a tooltip shown


def _watch(page: Any) -> list[str]:
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning")
            and "status of 404" not in m.text else None)  # a 404 for from/<version>.json: an unknown version
    page.on("request", lambda r: problems.append(f"elsewhere: {r.url}") if not r.url.startswith(
        ("http://127.0.0.1:", "data:")) else None)
    return problems


def test_screenshots_light_and_dark_desktop_and_phone(browser: Any, site: tuple[Path, str]) -> None:
    watched: list[list[str]] = []  # each page's own list, filled as its events come

    def settled_and_within_the_screen(page: Any, path: str, width: int) -> None:
        _settle(page)
        # Nothing wider than the screen: charts scale, tables scroll inside their own region.
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (path, width)

    screenshots(browser, site[1], PAGES, SCREENSHOTS, lambda page: watched.append(_watch(page)),
                settled_and_within_the_screen)
    assert [problem for problems in watched for problem in problems] == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_accessibility_problem(browser: Any, site: tuple[Path, str], scheme: str) -> None:
    context = browser.new_context(color_scheme=scheme, bypass_csp=True)  # bypass: to inject axe
    page = context.new_page()
    try:
        violations = axe_violations(page, site[1], [*PAGES.values(), "update/index.html"], _settle_with_a_tooltip)
    finally:
        context.close()
    assert violations == {}


def _series(page: Any) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        "figure.chart > svg g.series",
        "gs => gs.map(g => ({d: g.querySelector('path').getAttribute('d'),"
        " marks: Array.from(g.querySelectorAll('circle title')).map(t => t.textContent)}))")


def test_cohort_chart_steps_at_each_commit_with_the_history_table_under_it(page: Any,
                                                                            site: tuple[Path, str]) -> None:
    page.goto(site[1] + "cohorts/production/index.html")
    legend = page.eval_on_selector_all("figure.chart .legend li", "items => items.map(i => i.textContent)")
    assert legend == ["2.0.1", "2.1.0"]
    series = _series(page)
    assert [len(s["marks"]) for s in series] == [1, 3]  # 2.0.1 at 100 % throughout; 2.1.0 at 1, 5, 10.5 %
    assert [m.split(" on ")[0] for m in series[1]["marks"]] == ["2.1.0: 1\u00a0%", "2.1.0: 5\u00a0%",
                                                                 "2.1.0: 10.5\u00a0%"]
    assert series[1]["d"].count("V") == 2  # a step up at each later commit
    assert page.get_by_role("img", name="Rollout in Production over time").count() == 1
    # The text alternative: the history table, after the chart.
    assert page.evaluate("document.querySelector('figure.chart').compareDocumentPosition("
                         "document.querySelector('#history ~ .table-wrap table')) & 4") == 4
    assert page.locator("#history ~ .table-wrap tbody tr").count() == 3


def test_release_chart_has_one_line_per_cohort(page: Any, site: tuple[Path, str]) -> None:
    page.goto(site[1] + "releases/2.1.0/index.html")
    legend = page.eval_on_selector_all("figure.chart .legend li", "items => items.map(i => i.textContent)")
    assert legend == ["Public beta", "Production"]  # by cohort slug
    rows = page.eval_on_selector_all("#rollout-heading ~ .table-wrap tbody tr",
                                     "rows => rows.map(r => [r.cells[1].textContent, r.cells[2].textContent])")
    assert ["Production", "10.5\u00a0% of devices"] in rows and len(rows) == 4
    page.goto(site[1] + "releases/1.0.0/index.html")  # never deployed: no chart
    assert page.locator("figure.chart").count() == 0


def test_fleet_snapshot_on_home_release_and_hardware_pages(page: Any, site: tuple[Path, str]) -> None:
    page.goto(site[1] + "index.html")
    bars = page.eval_on_selector_all("#fleet ~ .table-wrap tbody th, section:has(#fleet) tbody th",
                                     "cells => cells.map(c => c.textContent)")
    assert bars[:3] == ["2.0.1", "2.1.0", "2.1.1"]  # most devices first
    assert "9.9.9-dev" in bars  # a version the registry does not know is counted, not linked
    assert page.locator("section:has(#fleet) rect.bar").count() == len(COUNTS)
    total = f"{sum(COUNTS.values()):,}"
    assert total in page.inner_text("section:has(#fleet)")
    page.goto(site[1] + "releases/2.1.0/index.html")
    assert "1,200 running it" in page.inner_text("dl.facts")
    page.goto(site[1] + "hardware/pvt/index.html")
    assert page.get_by_role("columnheader", name="Devices").count() == 1


def test_build_id_lookup_with_prefix_any_case_and_partial(page: Any, site: tuple[Path, str]) -> None:
    out, url = site
    releases = json.loads((out / "api/v1/releases.json").read_bytes())["data"]
    delta = next(a for r in releases if r["version"] == "2.0.1" for a in r["artifacts"] if a["type"] == "delta")
    page.goto(url + "releases/index.html")
    search = page.get_by_label("Version, revision or build id")
    for written in (delta["build_id"], delta["build_id"].upper(), "BuildID[sha1]=" + delta["build_id"][:12],
                    "build id: 0x" + delta["build_id"][:10].upper(), delta["build_id"][:8]):
        search.fill(written)
        text = page.inner_text("#build-match")
        assert f"hardware {delta['hardware_version']}, delta from 2.0.0 in release 2.0.1" in text, written
        assert page.eval_on_selector_all("#release-table tbody tr:not([hidden]) a.version",
                                         "a => a.map(x => x.textContent)") == ["2.0.1"]
    search.fill("BuildID[sha1]=ffffffffff")
    assert "No artifact has a build id containing ffffffffff" in page.inner_text("#build-match")
    search.fill("2.1")  # a version search shows no build-id box
    assert not page.is_visible("#build-match")
    page.goto(url + "releases/index.html?q=" + delta["build_id"][:9])  # from a shared link
    page.get_by_role("link", name="2.0.1").first.click()
    assert page.url.endswith("releases/2.0.1/index.html#artifacts")


def test_release_page_badges_explain_themselves_and_offer_downloads(page: Any, site: tuple[Path, str]) -> None:
    out, url = site
    page.goto(url + "releases/1.4.0/index.html")
    badge = page.locator(".badge[tabindex]", has_text="required step")
    assert not page.is_visible("#tip-required")
    badge.focus()
    assert page.is_visible("#tip-required")
    assert page.get_by_role("tooltip").first.text_content().startswith("Devices on an older version install")
    document = json.loads((out / "api/v1/releases/1.4.0.json").read_bytes())["data"]
    fulls = sorted((a["hardware_version"], a["url"]) for a in document["artifacts"] if a["type"] == "full")
    buttons = page.eval_on_selector_all(".downloads a", "links => links.map(a => [a.textContent, a.href])")
    assert [(text.split(" ")[2], href) for text, href in buttons] == fulls
    assert page.locator("nav.pager a[rel=prev]").count() == 1 and page.locator("nav.pager a[rel=next]").count() == 1
