"""Shared by the browser tests (test_browser.py, test_pages_browser.py, test_planner.py): the example site
built and served, screenshots in every colour scheme and width, and axe-core's verdict on pages. The browser
itself is conftest.py's `browser` fixture."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from site_helpers import build_example_site, serve

AXE_RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


@contextlib.contextmanager
def served_example_site(root: Path, *build_args: Any) -> Iterator[tuple[Path, str]]:
    """The example registry built into root/site (`build_args` as build_example_site takes them) and served
    over loopback HTTP; yields (output folder, its URL ending in /)."""
    out = build_example_site(root / "site", *build_args)
    with serve(root) as base:
        yield out, f"{base}site/public/"


def screenshots(browser: Any, base_url: str, pages: dict[str, str], folder: Path,
                on_page: Callable[[Any], object] | None = None,
                after_load: Callable[[Any, str, int], object] | None = None) -> list[Path]:
    """Full-page PNGs of each page ({name: path under base_url}) in light and dark, at desktop (1280 px) and
    phone (390 px) widths: folder/<name>-<scheme>[-phone].png, each checked to be a real picture. `on_page(page)`
    runs on each new page (one per scheme and width), `after_load(page, path, width)` after each load."""
    folder.mkdir(parents=True, exist_ok=True)
    taken = []
    for scheme in ("light", "dark"):
        for width, suffix in ((1280, ""), (390, "-phone")):
            context = browser.new_context(color_scheme=scheme, viewport={"width": width, "height": 900})
            page = context.new_page()
            if on_page is not None:
                on_page(page)
            for name, path in pages.items():
                page.goto(base_url + path)
                if after_load is not None:
                    after_load(page, path, width)
                target = folder / f"{name}-{scheme}{suffix}.png"
                page.screenshot(path=str(target), full_page=True)
                taken.append(target)
            context.close()
    for target in taken:
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 10_000, target
    return taken


def axe_violations(page: Any, base_url: str, paths: Iterable[str],
                   prepare: Callable[[Any], object] | None = None) -> dict[str, list[str]]:
    """axe-core's violations (WCAG 2.1 A/AA and best practices, colour contrast included) on each page
    base_url + path, loaded in turn, after `prepare(page)` when given: {path: ["rule: [first three
    targets]", ...]} for the pages that have any, so {} is a pass. The page's context needs bypass_csp=True."""
    import axe_playwright_python.base as axe

    violations = {}
    for path in paths:
        page.goto(base_url + path)
        if prepare is not None:
            prepare(page)
        page.evaluate(axe.AXE_SCRIPT)
        result = page.evaluate("rules => axe.run(document, {runOnly: {type: 'tag', values: rules},"
                               " resultTypes: ['violations']})", AXE_RULES)
        found = [f"{v['id']}: {[n['target'] for n in v['nodes']][:3]}" for v in result["violations"]]
        if found:
            violations[path] = found
    return violations
