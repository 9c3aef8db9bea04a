"""Release notes: Markdown rendered with markdown-it-py, then all notes sanitized with nh3.

The same sanitized HTML goes into the JSON `notes` and the site, so neither
ever carries raw author input. The allowlist keeps what release notes need
(headings, lists, links, code, tables, images over https) and nothing that
runs or restyles: no script, event handlers, javascript:/data: URLs, iframes,
forms or styles.
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

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
