"""Shared by the browser tests (test_browser.py, test_pages_browser.py, test_planner.py): the example site
built and served, and axe-core's verdict on a page. The browser itself is conftest.py's `browser` fixture."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from site_helpers import build_example_site, serve

AXE_RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


@contextlib.contextmanager
def served_example_site(root: Path, *build_args: Any) -> Iterator[tuple[Path, str]]:
    """The example registry built into root/site (`build_args` as build_example_site takes them) and served
    over loopback HTTP; yields (output folder, its URL ending in /)."""
    out = build_example_site(root / "site", *build_args)
    with serve(root) as base:
        yield out, f"{base}site/public/"


def axe_violations(page: Any) -> list[str]:
    """axe-core's violations (WCAG 2.1 A/AA and best practices, colour contrast included) on the page shown,
    as "rule: [first three targets]"; empty when there are none. The page's context needs bypass_csp=True."""
    import axe_playwright_python.base as axe

    page.evaluate(axe.AXE_SCRIPT)
    result = page.evaluate("rules => axe.run(document, {runOnly: {type: 'tag', values: rules},"
                           " resultTypes: ['violations']})", AXE_RULES)
    return [f"{v['id']}: {[n['target'] for n in v['nodes']][:3]}" for v in result["violations"]]
