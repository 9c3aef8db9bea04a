"""Release notes: Markdown rendered with markdown-it-py, then all notes sanitized with nh3.

The same sanitized HTML goes into the JSON `notes` and the site, so neither
ever carries raw author input. The allowlist keeps what release notes need
(headings, lists, links, code, tables, images over https) and nothing that
runs or restyles: no script, event handlers, javascript:/data: URLs, iframes,
forms or styles.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING

import nh3
from markdown_it import MarkdownIt

if TYPE_CHECKING:
    from relreg.history.cache import WorkCache

# Below this many notes to render, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 400

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s",
    "samp", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "ul", "var",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
    "ol": {"start"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan", "scope"},
    "code": {"class"},
}
URL_SCHEMES = {"https", "http", "mailto"}


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src" and not value.startswith("https://"):
        return None  # images only over https: nothing mixed, nothing inline
    if tag == "code" and attribute == "class" and not value.startswith("language-"):
        return None
    return value


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True, "linkify": False}).enable(["table", "strikethrough"])


def sanitize_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_filter_attribute,
        strip_comments=True,
    ).strip()


def render_notes(text: str, notes_format: str) -> str:
    """Safe HTML for the notes of a release."""
    if not text.strip():
        return ""
    html = _markdown().render(text) if notes_format == "markdown" else text
    return sanitize_html(html)


def render_all(notes: list[tuple[str, str]], cache: "WorkCache") -> list[str]:
    """Safe HTML for many (text, format) pairs, reusing the cache and spreading misses over the cores."""
    keys = [cache.notes_key(text, notes_format) for text, notes_format in notes]
    missing = sorted({key: pair for key, pair in zip(keys, notes) if cache.rendered_notes(key) is None}.items())
    if missing:
        texts = [pair[0] for _, pair in missing]
        formats = [pair[1] for _, pair in missing]
        workers = min(os.cpu_count() or 1, 8)
        if len(missing) >= PARALLEL_THRESHOLD and workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                rendered = list(pool.map(render_notes, texts, formats,
                                         chunksize=max(1, len(missing) // (workers * 8))))
        else:
            rendered = [render_notes(text, notes_format) for text, notes_format in zip(texts, formats)]
        for (key, _), html in zip(missing, rendered):
            cache.store_notes(key, html)
    return [cache.notes[key] for key in keys]
