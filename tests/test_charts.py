"""Rollout charts, the fleet snapshot and the small things of the release pages and feeds, without a browser:
the series read from the deployment history, the SVG drawn from them, what a snapshot shows and what its
absence hides. (tests/test_pages_browser.py shows the same pages in Chromium.)"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from conftest import EXAMPLE_REGISTRY
from hypothesis import given, settings
from hypothesis import strategies as st

from relreg.history.deployments import CohortChange
from relreg.registry.model import Activation
from relreg.registry.source import read_worktree
from relreg.registry.validate import validate_files
from relreg.site import pages as site
from relreg.site.charts import (
    BOTTOM,
    HEIGHT,
    TOP,
    WIDTH,
    Series,
    Step,
    bar_chart,
    rollout_chart,
    rollout_history,
)
from relreg.site.jobs import ReleaseDates, SiteInputs, release_views

DAY = 86_400
T0 = 1_720_000_000


def _change(day: int, *activations: Activation, commit: str = "c") -> CohortChange:
    return CohortChange(commit * 40, T0 + day * DAY, "Ana", f"day {day}", tuple(activations))


@pytest.fixture(scope="module")
def registry():  # type: ignore[no-untyped-def]
    return validate_files(read_worktree(EXAMPLE_REGISTRY)).registry


def _inputs(registry, **changes) -> SiteInputs:  # type: ignore[no-untyped-def]
    dates = {r.version: ReleaseDates(T0 + i, T0 + i) for i, r in enumerate(registry.releases)}
    return replace(SiteInputs(registry=registry, release_dates=dates), **changes)


# ---------------------------------------------------------------------------------------------
# Series from the deployment history

HISTORY = {
    "production": [
        _change(0, Activation("2.0.1", 100)),
        _change(1, Activation("2.0.1", 100), Activation("2.1.0", 1)),
        CohortChange("e" * 40, T0 + 2 * DAY, "Ana", "broken file", None),  # unreadable: no step
        _change(3, Activation("2.0.1", 100), Activation("2.1.0", 10.5)),
        _change(5, Activation("2.1.0", 100)),  # 2.0.1 removed
        _change(6, Activation("2.1.0", 100)),  # no change to the rollouts
    ],
    "beta": [
        _change(2, Activation("2.1.0", 50)),
        _change(4, Activation("2.1.0", 100), Activation("2.1.1", 25)),
    ],
}


def test_series_step_at_each_commit_and_stop_where_a_release_leaves(registry) -> None:  # type: ignore[no-untyped-def]
    history = rollout_history(HISTORY, registry.cohorts)
    production = {s.label: s for s in history.by_cohort["production"]}
    assert list(production) == ["2.0.1", "2.1.0"]  # by first deployment
    assert production["2.0.1"].steps == (Step(T0, 100.0), Step(T0 + 5 * DAY, None))
    assert production["2.0.1"].end == T0 + 5 * DAY  # removed: the line stops there
    assert production["2.1.0"].steps == (Step(T0 + DAY, 1.0), Step(T0 + 3 * DAY, 10.5), Step(T0 + 5 * DAY, 100.0))
    assert production["2.1.0"].end == T0 + 6 * DAY  # still deployed: to the cohort's last change

    by_release = history.by_release["2.1.0"]
    assert [s.label for s in by_release] == ["Public beta", "Production"]  # cohort names, by slug
    assert by_release[0].steps == (Step(T0 + 2 * DAY, 50.0), Step(T0 + 4 * DAY, 100.0))
    assert "1.0.0" not in history.by_release and history.by_cohort.keys() == {"beta", "production"}


def test_an_activation_limited_to_some_hardware_is_a_line_of_its_own(registry) -> None:  # type: ignore[no-untyped-def]
    changes = {"production": [
        CohortChange("a" * 40, T0, "Ana", "", (Activation("2.0.1"), Activation("2.1.0", 100, ("pvt",)))),
        CohortChange("b" * 40, T0 + DAY, "Ana", "", (Activation("2.0.1"), Activation("2.1.0"))),
    ]}
    history = rollout_history(changes, registry.cohorts)
    assert [(s.label, [st.percent for st in s.steps]) for s in history.by_cohort["production"]] == [
        ("2.0.1", [100.0]), ("2.1.0 on pvt", [100.0, None]), ("2.1.0", [100.0])]
    rows = [site.CohortRow(c, Activation("2.1.0", 100, ("pvt",)), None, ("pvt-b",))
            for c in registry.cohorts if c.slug == "production"]
    rows += [site.CohortRow(c, Activation("2.1.0", 0), None) for c in registry.cohorts if c.slug == "beta"]
    assert site.held_back(rows) == ["held back on pvt-b in Production",
                                                               "paused at 0 % in Public beta"]
    assert site.held_back(rows[:0]) == []


def test_the_history_pass_is_linear_in_the_history() -> None:
    """Every release page takes its series from one pass: the steps held are at most two per activation
    change (its arrival or new percent, and its removal), however many releases and commits there are."""
    for count in (200, 800):
        changes = [CohortChange(f"{i:040x}", T0 + i * DAY, "Ana", "", tuple(
            Activation(f"1.{j}.0", 100 if j < i else 50) for j in range(max(0, i - 3), i + 1)))
            for i in range(count)]
        history = rollout_history({"stable": changes}, ())
        steps = sum(len(s.steps) for s in history.by_cohort["stable"])
        assert len(history.by_release) == count
        assert steps == sum(len(s.steps) for series in history.by_release.values() for s in series)
        assert steps <= 3 * count  # arrival at 50 %, then 100 %, then removal


# ---------------------------------------------------------------------------------------------
# Drawing


def _svg(markup: str) -> ET.Element:
    svg = re.search(r"<svg viewBox=.*?</svg>", markup, re.S)
    assert svg
    return ET.fromstring(svg.group(0))


def test_rollout_chart_is_deterministic_svg_inside_its_box_with_a_name(registry) -> None:  # type: ignore[no-untyped-def]
    series = rollout_history(HISTORY, registry.cohorts).by_cohort["production"]
    chart = rollout_chart("rollout", "Rollout in Production <over time>", series)
    assert chart == rollout_chart("rollout", "Rollout in Production <over time>", series)
    assert "<over time>" not in chart and "&lt;over time&gt;" in chart
    svg = _svg(chart)
    ns = "{http://www.w3.org/2000/svg}"
    assert svg.get("role") == "img" and svg.find(f"{ns}title").text == "Rollout in Production <over time>"
    numbers = [float(n) for element in svg.iter() for name in ("x", "y", "cx", "cy", "x1", "x2", "y1", "y2")
               if (n := element.get(name)) is not None]
    numbers += [float(n) for path in svg.iter(f"{ns}path") for n in re.findall(r"[0-9.]+", path.get("d"))]
    assert numbers and all(0 <= n <= WIDTH for n in numbers)
    paths = [g.find(f"{ns}path").get("d") for g in svg.iter(f"{ns}g")]
    assert paths[0].startswith("M") and paths[0].count("V") == 0  # 2.0.1 flat at 100 %, then gone
    assert paths[1].count("V") == 2  # 2.1.0: two steps up after it arrived
    assert "style=" not in chart and "<script" not in chart and "href" not in chart
    assert rollout_chart("rollout", "nothing", ()) == ""


def test_a_single_commit_is_drawn_over_one_day_and_percent_maps_to_height() -> None:
    chart = rollout_chart("c", "t", [Series("1.0.0", (Step(T0, 25.0),), T0)])
    svg = _svg(chart)
    circle = next(svg.iter("{http://www.w3.org/2000/svg}circle"))
    top, bottom = TOP, HEIGHT - BOTTOM
    assert float(circle.get("cy")) == pytest.approx(top + 0.75 * (bottom - top), abs=0.1)


def test_bar_chart_lengths_follow_the_counts() -> None:
    svg = _svg(bar_chart("fleet", "Devices", [("2.0.1", 400), ("2.1.0", 100), ("1.0.0", 0)]))
    widths = [float(r.get("width")) for r in svg.iter("{http://www.w3.org/2000/svg}rect")]
    assert widths[0] == pytest.approx(4 * widths[1], rel=0.01) and widths[2] == 1  # a zero stays visible
    assert bar_chart("fleet", "Devices", []) == ""


def test_fleet_bars_most_devices_first_then_the_rest_summed() -> None:
    counts = {f"1.{i}.0": i for i in range(20)} | {"dev": 19}
    rows = site.fleet_bars(counts, limit=3)
    assert [(r.label, r.count, r.version) for r in rows] == [
        ("1.19.0", 19, "1.19.0"), ("dev", 19, "dev"), ("1.18.0", 18, "1.18.0"), ("17 other versions", 153, None)]
    assert site.fleet_bars({"1.0.0": 0}) == []


# ---------------------------------------------------------------------------------------------
# The fleet snapshot on the pages, and its absence


def _pages(inputs: SiteInputs) -> dict[str, str]:
    return {p: b.decode() for p, b in site.site_pages(inputs, release_views(inputs)).items() if p.endswith(".html")}


def test_without_a_snapshot_no_count_is_shown_anywhere(registry) -> None:  # type: ignore[no-untyped-def]
    for path, html in _pages(_inputs(registry)).items():
        assert "devices in the snapshot" not in html and "running it" not in html, path
        assert 'id="fleet"' not in html and ">Devices</th>" not in html, path


def test_a_snapshot_shows_counts_and_its_date(registry) -> None:  # type: ignore[no-untyped-def]
    counts = {"2.1.0": 1200, "2.0.1": 5400, "0.9.0-dev": 7}
    pages = _pages(_inputs(registry, device_counts=counts, device_counts_date="2026-11-01"))
    home = pages["index.html"]
    assert '6,607 devices in the snapshot of <time datetime="2026-11-01">2026-11-01</time>' in home
    assert home.count('class="bar"') == 3 and "0.9.0-dev" in home
    assert re.search(r'<th scope="row"><a href="releases/2.0.1/index.html">2.0.1</a></th><td class="num">5,400</td>'
                     r'<td class="num">81.7&nbsp;%</td>', home)
    assert "1,200 running it, in the snapshot of" in pages["releases/2.1.0/index.html"]
    assert "0 running it" in pages["releases/1.0.0/index.html"]  # in the snapshot, on no device
    assert ">Devices</th>" in pages["hardware/pvt/index.html"]
    undated = _pages(_inputs(registry, device_counts=counts))["index.html"]
    assert "(its date was not given)" in undated


# ---------------------------------------------------------------------------------------------
# Release pages and feeds


def test_release_page_badges_downloads_and_planner_link(registry) -> None:  # type: ignore[no-untyped-def]
    pages = _pages(_inputs(registry))
    required = pages["releases/1.4.0/index.html"]
    assert 'aria-describedby="tip-required">required step</span>' in required and 'role="tooltip"' in required
    assert 'href="../../update/index.html?current=1.4.0">Plan an update from 1.4.0</a>' in required
    downloads = re.findall(r'<a class="button" href="([^"]+)">Download for ([^ <]+)', pages["releases/2.0.1/index.html"])
    fulls = sorted((a.hardware_version, a) for a in registry.release("2.0.1").artifacts if not a.is_delta)
    assert downloads == [(site.download_url(a, registry.config.artifact_base_url), h) for h, a in fulls]
    assert "held back" not in pages["releases/2.0.1/index.html"]
    paused = replace(registry, cohorts=tuple(replace(c, releases=(Activation("2.0.1", 0),)) if c.slug == "production"
                                             else c for c in registry.cohorts))
    page = _pages(_inputs(paused))["releases/2.0.1/index.html"]
    assert 'aria-describedby="tip-held">held back</span>' in page and "paused at 0 % in Production" in page


def test_feed_entries_name_their_hardware_as_categories(registry) -> None:  # type: ignore[no-untyped-def]
    inputs = _inputs(registry)
    feed = ET.fromstring(site.site_pages(inputs, release_views(inputs))["feed.xml"])
    ns = "{http://www.w3.org/2005/Atom}"
    for entry in feed.iter(f"{ns}entry"):
        version = entry.find(f"{ns}title").text.split(" ")[0]
        terms = [c.get("term") for c in entry.iter(f"{ns}category")]
        assert terms == list(registry.release(version).hardware_versions), version


@pytest.mark.parametrize("notes, nested", [
    ("<h2>a</h2><h3>b</h3>", "<h3>a</h3><h4>b</h4>"),  # the notes' top heading becomes h3
    ("<h1>a</h1><h4>b</h4>", "<h3>a</h3><h6>b</h6>"),
    ("<h4>a</h4>", "<h4>a</h4>"),  # never raised
    ("<p>h1 &lt;h1&gt;</p>", "<p>h1 &lt;h1&gt;</p>"),
])
def test_notes_headings_start_below_the_section_heading(notes: str, nested: str) -> None:
    assert site.nest_headings(notes) == nested


# The one pass equals the obvious way: each release's series read on its own from each cohort's history.

def _naive_series(history, version: str, cohort: str) -> list[tuple[int, float | None]]:  # type: ignore[no-untyped-def]
    steps, level = [], None
    for change in history[cohort]:
        if change.releases is None:
            continue
        now = next((float(a.rollout_percent) for a in change.releases if a.version == version), None)
        if now != level and not (now is None and not steps):
            steps.append((change.date, now))
        level = now
    return steps


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["beta", "production", "stable"]), st.lists(
    st.one_of(st.none(), st.dictionaries(st.sampled_from(["1.0.0", "1.1.0", "2.0.0", "2.1.0"]),
                                         st.sampled_from([0, 1, 10.5, 50, 100]), max_size=4)),
    min_size=1, max_size=8), max_size=3))
def test_the_one_pass_equals_reading_each_release_on_its_own(states) -> None:  # type: ignore[no-untyped-def]
    history = {slug: [CohortChange(f"{i:040x}", T0 + i * DAY, "Ana", "", None if state is None else tuple(
        Activation(v, p) for v, p in sorted(state.items()))) for i, state in enumerate(changes)]
        for slug, changes in states.items()}
    result = rollout_history(history, ())
    for version in ("1.0.0", "1.1.0", "2.0.0", "2.1.0"):
        expected = {slug: _naive_series(history, version, slug) for slug in sorted(history)}
        expected = {slug: steps for slug, steps in expected.items() if steps}
        got = {s.label: [(step.date, step.percent) for step in s.steps] for s in result.by_release.get(version, ())}
        assert got == expected, version


@pytest.mark.parametrize(("cohort", "version", "deployed_to", "held"), [
    ("canary", "2.1.0", ("pvt",), ("dvt1", "pvt-b")),
    ("canary", "2.1.0", None, ()),  # no hold: the whole cohort
    ("canary", "1.4.0", ("pvt",), ("dvt1",)),  # 1.4.0 has no image for pvt-b: nothing is held back there
    ("canary", "1.4.0", ("dvt1", "pvt"), ()),
    ("production", "2.1.0", ("pvt", "pvt-b"), ()),
    ("listing none", "1.2.0", ("pvt",), ("dvt1", "evt2")),  # a cohort naming no hardware: the release's hardware
], ids=["held", "no hold", "no image is no hold", "every imaged board", "whole list", "cohort lists none"])
def test_held_back_names_only_hardware_the_release_could_go_to(
        registry, cohort: str, version: str, deployed_to: tuple[str, ...] | None,  # type: ignore[no-untyped-def]
        held: tuple[str, ...]) -> None:
    by_slug = {c.slug: c for c in registry.cohorts}
    chosen = replace(by_slug["canary"], hardware_versions=()) if cohort == "listing none" else by_slug[cohort]
    activation = Activation(version, 100, deployed_to)
    assert site.held_back_on(chosen, activation, registry.release(version)) == held
    assert site.held_back_on(chosen, activation, None) == (
        activation.held_back(chosen.hardware_versions))  # a missing release: the cohort's own list


@pytest.mark.parametrize(("cohort", "version", "deployed_to", "boards", "without_image"), [
    ("canary", "2.1.0", None, ("dvt1", "pvt", "pvt-b"), ()),
    ("canary", "2.1.0", ("pvt",), ("pvt",), ()),  # held back on the others: they are not among its boards
    ("canary", "1.4.0", None, ("dvt1", "pvt"), ("pvt-b",)),  # 1.4.0 has no image for pvt-b
    ("canary", "1.4.0", ("pvt", "pvt-b"), ("pvt",), ("pvt-b",)),
    ("listing none", "1.4.0", None, ("dvt1", "pvt"), ()),  # a cohort naming no hardware: the release's hardware
], ids=["whole cohort", "held back", "no image", "no image, held", "cohort lists none"])
def test_a_cohort_page_names_the_hardware_that_gets_each_release(
        registry, cohort: str, version: str, deployed_to: tuple[str, ...] | None,  # type: ignore[no-untyped-def]
        boards: tuple[str, ...], without_image: tuple[str, ...]) -> None:
    """The hardware column of a cohort's active releases: the boards the release goes to, and those named for
    it that it has no image for (they get nothing from it), never a board without an image as a recipient."""
    by_slug = {c.slug: c for c in registry.cohorts}
    chosen = replace(by_slug["canary"], hardware_versions=()) if cohort == "listing none" else by_slug[cohort]
    release = registry.release(version)
    assert site.deployed_on(chosen, Activation(version, 100, deployed_to), release) == (boards, without_image)
    assert all(board in release.hardware_versions for board in boards)


def test_the_deployment_history_names_only_hardware_a_release_has_an_image_for() -> None:
    """A board added to a cohort's list is not "released to" for a release without an image for it, and a
    hold names only boards the release could go to; without images known, every named board counts."""
    changes = [CohortChange("a" * 40, T0, "Ana", "start", (Activation("1.0.0", 100),), ("evt", "pvt")),
               CohortChange("b" * 40, T0 + DAY, "Ana", "add c", (Activation("1.0.0", 100),), ("evt", "pvt", "c")),
               CohortChange("c" * 40, T0 + 2 * DAY, "Ana", "hold", (Activation("1.0.0", 100, ("pvt",)),),
                            ("evt", "pvt", "c"))]
    images = {"1.0.0": ("evt", "pvt")}
    rows = site._history_rows(changes, images.get)
    assert [row.changes for row in rows] == [("1.0.0 held back on evt",), ("no change to the active releases",),
                                             ("added 1.0.0 at 100\u00a0%",)]
    unknown = site._history_rows(changes)
    assert unknown[1].changes == ("1.0.0 released to c",) and unknown[0].changes == ("1.0.0 held back on c, evt",)
