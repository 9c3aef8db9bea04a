from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner, Result

from relreg.cli.main import cli

FIXTURES = Path(__file__).parent / "fixtures"
BASE_REGISTRY = FIXTURES / "base"
EXAMPLE_REGISTRY = Path(__file__).parent.parent / "registry"
# Every `relreg` the tests start runs in its own process, as in CI; tests/test_daemon.py asks for the daemon.
os.environ["RELREG_DAEMON"] = "0"


def run_relreg(*args: str | Path) -> Result:
    """Run the real `relreg` command line in-process and return its exit code and output."""
    return CliRunner().invoke(cli, [str(arg) for arg in args], prog_name="relreg", catch_exceptions=False)


@pytest.fixture
def base_registry(tmp_path: Path) -> Path:
    """A small valid registry copied into a temporary folder, free to modify."""
    target = tmp_path / "registry"
    shutil.copytree(BASE_REGISTRY, target)
    return target


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright, one per test module. A missing browser fails the tests
    that use it, never skips them: `make test` installs it (`make system-deps`)."""
    from site_helpers import CHROMIUM, launch_chromium

    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run `make system-deps` (Debian's chromium)")
    import playwright.sync_api as sync_api

    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()
