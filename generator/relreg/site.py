"""The HTML side of the site, rendered from Jinja2 templates in site/."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from relreg.resources import site_dir

if TYPE_CHECKING:
    from relreg.plan import ReleaseView, SiteInputs


@lru_cache(maxsize=1)
def environment() -> Environment:
    """Templates compiled once per process and reused for every page."""
    return Environment(loader=FileSystemLoader(site_dir() / "templates"), autoescape=select_autoescape(),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def site_pages(inputs: "SiteInputs", views: list["ReleaseView"]) -> dict[str, bytes]:
    template = environment().get_template("index.html")
    html = template.render(config=inputs.registry.config, releases=views)
    return {"index.html": html.encode()}
