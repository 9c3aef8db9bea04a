"""Release notes: Markdown rendered as GitHub renders it (cmark-gfm), then all notes sanitized with nh3.

Release notes are written and reviewed in pull requests, so Markdown is read the way GitHub's
preview reads it: cmark-gfm (through cmarkgfm, the binding PyPI's readme_renderer uses) with
GitHub's table, strikethrough and autolink extensions. Raw HTML passes the Markdown step (as on
GitHub) and is left to the sanitizer. Task lists are not enabled: their checkboxes are `<input>`
elements, which the allowlist does not keep, and the literal `[x]` reads better than nothing.

The same sanitized HTML goes into the JSON `notes` and the site, so neither
ever carries raw author input. The allowlist keeps what release notes need
(headings, lists, links, code, tables, images over https) and nothing that
runs or restyles: no script, event handlers, javascript:/data: URLs, iframes,
forms or styles. cmark-gfm's own safe mode is not relied on: the sanitizer
alone decides what is kept.
"""

from __future__ import annotations

import ctypes
import os
import re
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any, Callable, Sequence

import nh3
from cmarkgfm import _cmark
from cmarkgfm.cmark import Options

from relreg.registry.gcpause import forked_pool

if TYPE_CHECKING:
    from relreg.history.cache import WorkCache

# Below this many notes to render, starting worker processes costs more than it saves (a note takes
# some 0.1 ms: 2,000 notes take 0.2 s in one process, about what forking a large build costs).
PARALLEL_THRESHOLD = 2000

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


# GitHub's extensions, less tagfilter (the sanitizer removes those tags, and script with its content)
# and tasklist (see above).
EXTENSIONS = (b"table", b"strikethrough", b"autolink")
# UNSAFE: raw HTML and every URL reach the sanitizer, which decides, as for notes_format: html.
_OPTIONS = Options.CMARK_OPT_UNSAFE
_SURROGATE = re.compile("[\ud800-\udfff]")


class _CmarkMem(ctypes.Structure):
    """cmark-gfm's allocator (cmark_mem): its free is the one that releases what the library allocated."""

    _fields_ = [("calloc", ctypes.c_void_p), ("realloc", ctypes.c_void_p),
                ("free", ctypes.CFUNCTYPE(None, ctypes.c_void_p))]


@lru_cache(maxsize=1)
def _cmark_gfm() -> tuple[Any, Any, list[Any]]:
    """(cmark_node_free, the allocator's free, the extensions), once per process.

    cmarkgfm's wrappers never free the document tree nor the rendered buffer (some 90 KB for a long
    note: ten thousand notes would keep most of a gigabyte), so the two calls that free them are
    taken from the same library with ctypes and made after each note. (cffi's own declarations
    would load its C parser, a tenth of a second of every rebuild that renders a note.)
    """
    library = ctypes.CDLL(_cmark.__file__)
    library.cmark_get_default_mem_allocator.restype = ctypes.POINTER(_CmarkMem)
    library.cmark_get_default_mem_allocator.argtypes = []
    node_free = library.cmark_node_free
    node_free.argtypes, node_free.restype = [ctypes.c_void_p], None
    lib = _cmark.lib
    lib.cmark_gfm_core_extensions_ensure_registered()
    extensions = [lib.cmark_find_syntax_extension(name) for name in EXTENSIONS]
    if any(extension == _cmark.ffi.NULL for extension in extensions):
        raise RuntimeError(f"cmark-gfm lacks one of the extensions {EXTENSIONS}")
    return node_free, library.cmark_get_default_mem_allocator().contents.free, extensions


def render_markdown(text: str) -> str:
    """`text` (GitHub Flavored Markdown) as HTML, not yet sanitized. Lone surrogates become U+FFFD."""
    try:
        data = text.encode()
    except UnicodeEncodeError:
        data = _SURROGATE.sub("\ufffd", text).encode()
    node_free, free, extensions = _cmark_gfm()
    lib, cffi_of_cmark = _cmark.lib, _cmark.ffi
    parser = lib.cmark_parser_new(_OPTIONS)
    try:
        for extension in extensions:
            lib.cmark_parser_attach_syntax_extension(parser, extension)
        lib.cmark_parser_feed(parser, data, len(data))
        root = lib.cmark_parser_finish(parser)
        try:
            html = lib.cmark_render_html(root, _OPTIONS, lib.cmark_parser_get_syntax_extensions(parser))
            try:
                return cffi_of_cmark.string(html).decode()
            finally:
                free(int(cffi_of_cmark.cast("uintptr_t", html)))
        finally:
            node_free(int(cffi_of_cmark.cast("uintptr_t", root)))
    finally:
        lib.cmark_parser_free(parser)


_CLEAN_OPTIONS: dict[str, Any] = {
    "tags": ALLOWED_TAGS,
    "attributes": ALLOWED_ATTRIBUTES,
    "url_schemes": URL_SCHEMES,
    "link_rel": "noopener noreferrer nofollow",
    "attribute_filter": _filter_attribute,
    "strip_comments": True,
}


@lru_cache(maxsize=1)
def _cleaner() -> Callable[[str], str]:
    """nh3.clean with the allowlist, as a reusable nh3.Cleaner where this nh3 has one: it takes the
    allowlist once instead of on every call, which halves the cost of a note (same options, same HTML)."""
    if hasattr(nh3, "Cleaner"):
        return nh3.Cleaner(**_CLEAN_OPTIONS).clean  # type: ignore[no-any-return]
    return partial(nh3.clean, **_CLEAN_OPTIONS)


def sanitize_html(html: str) -> str:
    """`html` with only the allowlist left (see the module's docstring); lone surrogates become U+FFFD."""
    if not html.isascii():
        html = _SURROGATE.sub("\ufffd", html)
    clean = _cleaner()
    html = html.strip()
    for _ in range(4):
        # What the sanitizer writes may parse into another tree (`<pre>\n` loses its newline, a `<p>`
        # inside a `<p>` is split): again until nothing changes, so what is published is a fixed point.
        # Clean Markdown output is one already, and costs one pass.
        cleaned = clean(html).strip()
        if cleaned == html:
            break
        html = cleaned
    return html


def render_notes(text: str, notes_format: str) -> str:
    """Safe HTML for the notes of a release: `notes_format` "markdown" (rendered first) or "html"."""
    if not text.strip():
        return ""
    html = render_markdown(text) if notes_format == "markdown" else text
    return sanitize_html(html)


def render_all(notes: list[tuple[str, str]], cache: "WorkCache") -> list[str]:
    """Safe HTML for many (text, format) pairs, reusing the cache and spreading misses over the cores."""
    return render_keyed([cache.notes_key(text, notes_format) for text, notes_format in notes], notes.__getitem__,
                        cache)


def render_keyed(keys: Sequence[str], notes_of: Callable[[int], tuple[str, str]], cache: "WorkCache") -> list[str]:
    """Safe HTML for the notes known by `keys` in the cache (keys[i] stands for notes_of(i), a (text, format)
    pair): only the notes the cache lacks are read (notes_of) and rendered, spread over the cores."""
    render_missing(keys, notes_of, cache)
    return [cache.rendered_notes(key) or "" for key in keys]


def render_missing(keys: Sequence[str], notes_of: Callable[[int], tuple[str, str]], cache: "WorkCache") -> None:
    """Render into the cache the notes known by `keys` that it lacks (keys[i] stands for notes_of(i), a (text,
    format) pair), spread over the cores; each is stored (to the cache's spool) as it comes back, so neither
    the texts nor the HTML of every release are held at once (at 100,000 releases, 150 and 140 MB)."""
    global _NOTES_OF
    wanted: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key not in wanted and not cache.has_notes(key):
            wanted[key] = index
    missing = sorted(wanted.items())
    if missing:
        indexes = [index for _, index in missing]
        workers = min(os.cpu_count() or 1, 8)
        if len(missing) >= PARALLEL_THRESHOLD and workers > 1 and hasattr(os, "fork"):
            # The forked workers read each note's text themselves (notes_of, inherited): this process
            # never holds the texts of every release at once (150 MB at 100,000 releases, decompressed
            # from the model), only the rendered notes as they come back.
            _NOTES_OF = notes_of
            try:
                with forked_pool(workers) as pool:
                    rendered = pool.map(_render_of, indexes, chunksize=max(1, len(missing) // (workers * 8)))
                    for (key, _), html in zip(missing, rendered):
                        cache.store_notes(key, html)
            finally:
                _NOTES_OF = None
        else:
            for key, index in missing:
                cache.store_notes(key, render_notes(*notes_of(index)))


# What the forked workers of render_keyed read the notes from (set while they run).
_NOTES_OF: Callable[[int], tuple[str, str]] | None = None


def _render_of(index: int) -> str:
    """In a worker of render_keyed: the safe HTML of the notes `_NOTES_OF(index)` gives."""
    assert _NOTES_OF is not None
    return render_notes(*_NOTES_OF(index))
