"""Charts drawn at build time as inline SVG: rollouts over time and devices per release.

Pure and deterministic: the same inputs give the same bytes (coordinates are rounded to a tenth,
series keep the order they are given in). No script and no external request: colours come from the
site's stylesheet (classes s0..s7, light and dark), so a chart follows the reader's colour scheme.
Each chart has a title and a description; the tables under it are its text alternative.

`rollout_history` reads the whole deployment history once and gives every cohort's and every
release's series, so the release pages of a large registry cost O(history), not O(releases x history).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from markupsafe import Markup, escape

if TYPE_CHECKING:
    from relreg.history.deployments import CohortChange
    from relreg.registry.model import Activation, Cohort

PALETTE = 8  # series classes s0..s7 in site.css; dash patterns d0..d3 tell neighbours apart without colour
CHART_SERIES = 8  # lines on a cohort's chart: its newest releases (the history table lists them all)
WIDTH, HEIGHT = 560, 240  # the viewBox; site.css draws text larger on phones, where the chart is scaled down
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 44
DAY = 86_400


@dataclass(frozen=True)
class Step:
    """From `date` on (unix seconds), the series is at `percent`; None: no longer deployed."""

    date: int
    percent: float | None


@dataclass(frozen=True)
class Series:
    """One line: a release in a cohort (on some hardware only, when the activation says so)."""

    label: str
    steps: tuple[Step, ...]  # oldest first; the first step has a percent
    end: int  # where the line stops: the cohort's last change while deployed, else the removal

    @property
    def start(self) -> int:
        return self.steps[0].date


def scope_of(activation: "Activation") -> tuple[str, ...]:
    """The hardware an activation is limited to (a hold per hardware); () for the whole cohort.

    Each scope is a series of its own, so a hold shows as its own line.
    """
    return activation.hardware_versions or ()


def _scoped(label: str, scope: tuple[str, ...]) -> str:
    return f"{label} on {', '.join(scope)}" if scope else label


@dataclass(frozen=True)
class RolloutHistory:
    by_cohort: Mapping[str, tuple[Series, ...]]  # slug -> one series per release (and scope), by first deployment
    by_release: Mapping[str, tuple[Series, ...]]  # version -> one series per cohort (and scope), by cohort slug


def rollout_history(history: Mapping[str, Sequence["CohortChange"]],
                    cohorts: Iterable["Cohort"]) -> RolloutHistory:
    """Every cohort's and every release's rollout series, in one pass over the deployment history."""
    names = {cohort.slug: cohort.name for cohort in cohorts}
    by_cohort: dict[str, tuple[Series, ...]] = {}
    by_release: dict[str, list[tuple[str, Series]]] = {}
    for slug in sorted(history):
        changes = [change for change in history[slug] if change.releases is not None]
        if not changes:
            continue
        steps: dict[tuple[str, tuple[str, ...]], list[Step]] = {}  # in order of first deployment
        before: dict[tuple[str, tuple[str, ...]], float] = {}
        for change in changes:
            after = {(a.version, scope_of(a)): float(a.rollout_percent) for a in change.releases or ()}
            for key in before:
                if key not in after:
                    steps[key].append(Step(change.date, None))
            for key, percent in after.items():
                if before.get(key) != percent:
                    steps.setdefault(key, []).append(Step(change.date, percent))
            before = after
        last = changes[-1].date
        series = []
        for (version, scope), points in steps.items():
            end = last if points[-1].percent is not None else points[-1].date
            series.append(Series(_scoped(version, scope), tuple(points), end))
            by_release.setdefault(version, []).append(
                (slug, Series(_scoped(names.get(slug, slug), scope), tuple(points), end)))
        by_cohort[slug] = tuple(series)
    return RolloutHistory(by_cohort, {version: tuple(s for _, s in sorted(items, key=lambda item: item[0]))
                                      for version, items in by_release.items()})


def _day(seconds: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def _n(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _percent(value: float) -> str:
    return f"{value:g}\u00a0%"


def rollout_chart(chart_id: str, title: str, series: Sequence[Series]) -> Markup:
    """A step chart of rollout percent over time, one line per series, with its legend; empty without series."""
    if not series:
        return Markup("")
    start = min(s.start for s in series)
    end = max(s.end for s in series)
    span = max(end - start, DAY)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(seconds: int) -> str:
        return _n(LEFT + (seconds - start) * plot_w / span)

    def y(percent: float) -> str:
        return _n(TOP + (100 - percent) * plot_h / 100)

    parts = [f'<figure class="chart" aria-labelledby="{chart_id}-caption">',
             f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{chart_id}-title {chart_id}-desc"'
             ' xmlns="http://www.w3.org/2000/svg">',
             f'<title id="{chart_id}-title">{escape(title)}</title>',
             f'<desc id="{chart_id}-desc">Rollout percent over time, from {_day(start)} to {_day(end)}: '
             f'{escape(", ".join(s.label for s in series))}. The table below lists every change.</desc>']
    for percent in (0, 25, 50, 75, 100):
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(percent)}" y2="{y(percent)}"/>')
        if percent % 50 == 0:
            parts.append(f'<text class="tick" x="{LEFT - 8}" y="{y(percent)}" text-anchor="end" '
                         f'dominant-baseline="central">{percent}%</text>')
    baseline = _n(HEIGHT - 6)
    parts.append(f'<text class="tick" x="{LEFT}" y="{baseline}" text-anchor="start">{_day(start)}</text>')
    if end > start:
        parts.append(f'<text class="tick" x="{WIDTH - RIGHT}" y="{baseline}" text-anchor="end">{_day(end)}</text>')
    for index, line in enumerate(series):
        css = f"series s{index % PALETTE} d{index // PALETTE % 4}"
        path: list[str] = []
        marks: list[str] = []
        level: float | None = None
        for step in line.steps:
            if level is not None:
                path.append(f"H{x(step.date)}")
                if step.percent is not None:
                    path.append(f"V{y(step.percent)}")
            elif step.percent is not None:
                path.append(f"M{x(step.date)} {y(step.percent)}")
            level = step.percent
            if step.percent is not None:
                marks.append(f'<circle class="mark" cx="{x(step.date)}" cy="{y(step.percent)}" r="3.5">'
                             f'<title>{escape(line.label)}: {_percent(step.percent)} on {_day(step.date)}</title>'
                             '</circle>')
        if level is not None:
            path.append(f"H{x(line.end)}")
        parts.append(f'<g class="{css}"><path d="{" ".join(path)}"/>{"".join(marks)}</g>')
    parts.append("</svg>")
    legend = "".join(f'<li><svg class="key" viewBox="0 0 28 10" aria-hidden="true"><g class="series s{i % PALETTE} '
                     f'd{i // PALETTE % 4}"><path d="M1 5H27"/></g></svg>{escape(s.label)}</li>'
                     for i, s in enumerate(series))
    parts.append(f'<figcaption id="{chart_id}-caption">{escape(title)}<ul class="legend">{legend}</ul></figcaption>')
    parts.append("</figure>")
    return Markup("".join(parts))


BAR_HEIGHT, BAR_GAP, LABEL_W = 26, 10, 130


def bar_chart(chart_id: str, title: str, bars: Sequence[tuple[str, int]], unit: str = "devices") -> Markup:
    """Horizontal bars, one per (label, count), largest first as given; empty without bars."""
    if not bars:
        return Markup("")
    top = max(count for _, count in bars) or 1
    height = len(bars) * (BAR_HEIGHT + BAR_GAP) + BAR_GAP
    room = WIDTH - LABEL_W - 90  # the count is written after the bar
    parts = [f'<figure class="chart bars" aria-labelledby="{chart_id}-caption">',
             f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="{chart_id}-title"'
             ' xmlns="http://www.w3.org/2000/svg">',
             f'<title id="{chart_id}-title">{escape(title)}: '
             f'{escape(", ".join(f"{label} {count:,}" for label, count in bars))} {unit}</title>']
    for index, (label, count) in enumerate(bars):
        row = BAR_GAP + index * (BAR_HEIGHT + BAR_GAP)
        width = count * room / top
        middle = _n(row + BAR_HEIGHT / 2)
        parts.append(f'<text class="tick" x="{LABEL_W - 8}" y="{middle}" text-anchor="end" '
                     f'dominant-baseline="central">{escape(label)}</text>')
        parts.append(f'<rect class="bar" x="{LABEL_W}" y="{row}" width="{_n(max(width, 1))}" height="{BAR_HEIGHT}"/>')
        parts.append(f'<text class="tick" x="{_n(LABEL_W + max(width, 1) + 6)}" y="{middle}" '
                     f'dominant-baseline="central">{count:,}</text>')
    parts.append("</svg>")
    parts.append(f'<figcaption id="{chart_id}-caption">{escape(title)}</figcaption></figure>')
    return Markup("".join(parts))
