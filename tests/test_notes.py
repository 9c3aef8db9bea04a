"""Release notes as readers see them (site/notes.py): GitHub Flavored Markdown, then the sanitizer.

The assertions read the result the way a browser does (html5lib's tree), not one Markdown engine's
bytes: what survives (text, structure, safe links and images, code languages, table alignment) and
what never does (script, handlers, javascript:/data: URLs, images not over https). The hostile
corpus and the built pages are in test_notes_hostile.py, the browser's side in test_browser.py.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import html
import platform
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import html5lib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from site_helpers import audit_notes_html

from relreg.site.notes import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, render_markdown, render_notes, sanitize_html


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    text: str  # all the text inside, as a browser shows it
    children: list["Node"] = field(default_factory=list)


def _nodes(rendered: str) -> list[Node]:
    """Every element of the notes, in document order."""
    fragment = html5lib.parseFragment(rendered, namespaceHTMLElements=False)
    return [Node(element.tag, dict(element.attrib), "".join(element.itertext()))
            for element in fragment.iter() if isinstance(element.tag, str) and element.tag != "DOCUMENT_FRAGMENT"]


def _text(rendered: str) -> str:
    """The notes' text, as a browser shows it."""
    return "".join(html5lib.parseFragment(rendered, namespaceHTMLElements=False).itertext())


def _tags(rendered: str) -> list[str]:
    return [node.tag for node in _nodes(rendered)]


def _scheme(url: str) -> str:
    """The scheme a browser reads in `url` (it drops ASCII tab and newline anywhere, and spaces around)."""
    return urlsplit(re.sub(r"[\t\n\r]", "", url).strip("\x00 \x0c")).scheme.lower()


def _md(text: str) -> str:
    return render_notes(text, "markdown")


# ---------------------------------------------------------------------------------------------
# What notes keep


@pytest.mark.parametrize(("markdown", "tag", "text"), [
    ("**bold**", "strong", "bold"),
    ("__bold__", "strong", "bold"),
    ("*emphasis*", "em", "emphasis"),
    ("`code`", "code", "code"),
    ("# Title", "h1", "Title"),
    ("###### Small", "h6", "Small"),
    ("> quoted", "blockquote", "quoted"),
    ("- one\n- two", "ul", "onetwo"),
    ("1. one\n2. two", "ol", "onetwo"),
    ("a\n\n---\n\nb", "hr", ""),
    ("<kbd>Reset</kbd>", "kbd", "Reset"),
    ("<details><summary>More</summary>\n\nhidden\n\n</details>", "summary", "More"),
    ("H<sub>2</sub>O", "sub", "2"),
])
def test_markdown_keeps_what_release_notes_use(markdown: str, tag: str, text: str) -> None:
    nodes = [node for node in _nodes(_md(markdown)) if node.tag == tag]
    assert nodes, (markdown, _md(markdown))
    assert nodes[0].text.replace("\n", "") == text


@pytest.mark.parametrize("markdown", ["~~gone~~", "~gone~"])
def test_strikethrough_as_on_github(markdown: str) -> None:
    nodes = [node for node in _nodes(_md(markdown)) if node.tag in ("del", "s")]
    assert [node.text for node in nodes] == ["gone"]


def test_tables_keep_their_cells_and_column_alignment() -> None:
    rendered = _md("| Mode | Before | After |\n|:-----|:------:|------:|\n| Idle | 41 mA | 33 mA |\n")
    nodes = _nodes(rendered)
    headers = [node for node in nodes if node.tag == "th"]
    cells = [node for node in nodes if node.tag == "td"]
    assert [node.text for node in headers] == ["Mode", "Before", "After"]
    assert [node.text for node in cells] == ["Idle", "41 mA", "33 mA"]
    assert [node.attrs.get("align") for node in headers] == ["left", "center", "right"]
    assert [node.attrs.get("align") for node in cells] == ["left", "center", "right"]
    assert "style" not in rendered  # alignment by attribute: the CSP allows no inline style


@pytest.mark.parametrize(("markdown", "language"), [
    ("```c\nint x;\n```", "c"),
    ("```python extra words\nx = 1\n```", "python"),
    ("~~~sh\nmake\n~~~", "sh"),
    ("```\nplain\n```", None),
    ('<pre><code class="language-rust">fn main() {}</code></pre>', "rust"),
    ('<pre><code class="evil">x</code></pre>', None),  # only language-* classes
])
def test_code_blocks_name_their_language_in_a_class(markdown: str, language: str | None) -> None:
    codes = [node for node in _nodes(_md(markdown)) if node.tag == "code"]
    assert len(codes) == 1
    assert codes[0].attrs.get("class") == (f"language-{language}" if language else None)
    assert _tags(_md(markdown))[:2] == ["pre", "code"]


@pytest.mark.parametrize(("markdown", "href"), [
    ("[changelog](https://example.com/changes \"Changes\")", "https://example.com/changes"),
    ("[old site](http://example.com/)", "http://example.com/"),
    ("[support](mailto:support@example.com)", "mailto:support@example.com"),
    ("<https://example.com/auto>", "https://example.com/auto"),
    ("see https://example.com/bare for more", "https://example.com/bare"),  # GitHub's autolinks
    ("see www.example.com for more", "http://www.example.com"),
    ("[relative](../2.0.0/index.html)", "../2.0.0/index.html"),
    ("[ref][r]\n\n[r]: https://example.com/ref", "https://example.com/ref"),
])
def test_safe_links_are_kept_and_open_nothing_of_the_page(markdown: str, href: str) -> None:
    links = [node for node in _nodes(_md(markdown)) if node.tag == "a"]
    assert [node.attrs.get("href") for node in links] == [href]
    assert set(links[0].attrs["rel"].split()) == {"noopener", "noreferrer", "nofollow"}


@pytest.mark.parametrize("target", [
    "javascript:alert(1)", "JAVASCRIPT:alert(1)", "javascript&#58;alert(1)", "jav&#x09;ascript:alert(1)",
    "<javascript:alert(1)>", "data:text/html;base64,PHNjcmlwdD4=", "vbscript:msgbox(1)", "file:///etc/passwd",
])
def test_links_to_scripts_and_inline_documents_lose_their_target_but_keep_their_text(target: str) -> None:
    rendered = _md(f"[click me]({target}) and [ref][evil]\n\n[evil]: {target}")
    links = [node for node in _nodes(rendered) if node.tag == "a"]
    assert [node.text for node in links] == ["click me", "ref"]
    # No target, or one a browser reads as a relative path (cmark-gfm percent-encodes a tab: jav%09ascript:...).
    assert all(_scheme(node.attrs.get("href", "")) == "" for node in links), rendered


@pytest.mark.parametrize(("markdown", "src"), [
    ("![board](https://images.example/board.png)", "https://images.example/board.png"),
    ("![board](http://images.example/board.png)", None),  # no mixed content
    ("![board](//images.example/board.png)", None),
    ("![board](board.png)", None),
    ("![board](data:image/svg+xml;base64,PHN2Zz4=)", None),
    ("![board](javascript:alert(1))", None),
    ('<img src="https://images.example/a.png" width="320" height="200" alt="board">', "https://images.example/a.png"),
])
def test_images_load_only_over_https(markdown: str, src: str | None) -> None:
    images = [node for node in _nodes(_md(markdown)) if node.tag == "img"]
    assert len(images) == 1
    assert images[0].attrs.get("src") == src
    assert images[0].attrs.get("alt") == "board"


@pytest.mark.parametrize("text", [
    "a < b && c > d",
    "5 > 3 and \"quoted\" 'single' & ampersand",
    "<not a tag",
    "AT&T &copy; &amp;",
])
def test_text_reads_back_as_written(text: str) -> None:
    rendered = _md(text)
    assert _text(rendered) == html.unescape(text)  # entities as in HTML, every other character as it is
    assert _tags(rendered) == ["p"]


def test_code_shows_markup_as_text() -> None:
    rendered = _md("`<script>alert(1)</script>`\n\n```html\n<img src=x onerror=alert(1)>\n```")
    assert _tags(rendered) == ["p", "code", "pre", "code"]
    assert "<script>alert(1)</script>" in _text(rendered) and "<img src=x onerror=alert(1)>" in _text(rendered)


# ---------------------------------------------------------------------------------------------
# What notes never keep


@pytest.mark.parametrize(("notes", "notes_format"), [
    ("<script>top.__pwned = 1</script>after", "markdown"),
    ("<script>top.__pwned = 1</script>after", "html"),
    ("before\n\n<script>\ntop.__pwned = 1\n</script>\n\nafter", "markdown"),
    ("<SCRIPT SRC=//evil.example/x.js></SCRIPT>after", "html"),
    ("<style>body { display: none }</style>after", "markdown"),
])
def test_scripts_and_styles_go_with_their_content(notes: str, notes_format: str) -> None:
    rendered = render_notes(notes, notes_format)
    assert not {"script", "style"} & set(_tags(rendered))
    assert "pwned" not in rendered and "display" not in rendered and "evil" not in rendered
    assert "after" in _text(rendered)


@pytest.mark.parametrize(("notes", "notes_format"), [
    ('<img src="https://images.example/a.png" onerror="alert(1)">', "markdown"),
    ('<a href="https://example.com" onclick="alert(1)" style="color: red" target="_blank">x</a>', "html"),
    ('<p style="position: fixed" class="banner" id="main">x</p>', "markdown"),
    ('<details open ontoggle="alert(1)"><summary>s</summary>b</details>', "markdown"),
    ("<iframe src=\"https://evil.example\"></iframe><form action=/x><input name=a></form>", "html"),
    ('<svg onload="alert(1)"><a xlink:href="javascript:alert(1)">x</a></svg>', "markdown"),
])
def test_handlers_styles_frames_and_forms_are_removed(notes: str, notes_format: str) -> None:
    rendered = render_notes(notes, notes_format)
    assert audit_notes_html(rendered) == []
    assert not re.search(r"\son\w+=|style=|\sid=|target=", rendered)


def test_empty_and_blank_notes_render_as_nothing() -> None:
    assert render_notes("", "markdown") == render_notes(" \n\t\n", "markdown") == render_notes("\n", "html") == ""


@pytest.mark.parametrize("notes_format", ["markdown", "html"])
def test_lone_surrogates_and_nul_become_replacement_characters(notes_format: str) -> None:
    rendered = render_notes("broken \ud800 text\x00here", notes_format)
    assert "\ufffd" in rendered and "\ud800" not in rendered and "\x00" not in rendered
    assert "broken" in rendered and "here" in rendered


# ---------------------------------------------------------------------------------------------
# Properties over any input

_HOSTILE = st.sampled_from([
    "<script>", "</script>", "alert(1)", "<img src=x onerror=alert(1)>", "javascript:", "JaVaScRiPt:",
    "data:text/html,", "vbscript:", "&#106;", "&#x6A;", "&colon;", "<a href=\"", "\">", "[x](", "](", ")", "![",
    "<", ">", "&", "\"", "'", "`", "```", "~~~", "|", "|---|", "\n", "\n\n", "    ", "- ", "1. ", "# ", "> ",
    "<svg", "<math>", "<style>", "<iframe", "<!--", "-->", "<![CDATA[", "]]>", "<details open ontoggle=",
    "<object data=", "<base href=", "<meta http-equiv=refresh content=", "style=", " onclick=", "www.",
    "https://", "http://", "mailto:", "<noscript>", "<template>", "<textarea>", "<title>", "<xmp>", "\x00",
    "<!doctype html>", "<table>", "<td>", "<pre>", "<code class=\"", "language-", "\\", "*", "_", "~",
])
_NOTES = st.lists(st.one_of(_HOSTILE, st.text(max_size=8)), max_size=40).map("".join)


def _audit_tree(rendered: str) -> list[str]:
    """What a browser's tree of the notes holds beyond the allowlist (html5lib parses as browsers do)."""
    found = []
    for node in _nodes(rendered):
        if node.tag not in ALLOWED_TAGS:
            found.append(f"<{node.tag}>")
        for name, value in node.attrs.items():
            if name not in ALLOWED_ATTRIBUTES.get(node.tag, set()) | ({"rel"} if node.tag == "a" else set()):
                found.append(f"{name} on <{node.tag}>")
            if name in ("href", "src"):
                scheme = _scheme(value)
                allowed = {"https"} if node.tag == "img" else {"", "http", "https", "mailto"}
                if scheme not in allowed or (node.tag == "img" and not value.startswith("https://")):
                    found.append(f"{name}={value!r} on <{node.tag}>")
    return found


@settings(max_examples=400, deadline=None)
@given(_NOTES, st.sampled_from(["markdown", "html"]))
def test_any_notes_render_to_the_allowlist_only(notes: str, notes_format: str) -> None:
    rendered = render_notes(notes, notes_format)
    assert _audit_tree(rendered) == []
    assert audit_notes_html(rendered) == []


@settings(max_examples=200, deadline=None)
@given(_NOTES, st.sampled_from(["markdown", "html"]))
def test_sanitized_notes_are_left_as_they_are_by_the_sanitizer(notes: str, notes_format: str) -> None:
    """What the build publishes is a fixed point of the sanitizer: nothing in it is still to be removed."""
    rendered = render_notes(notes, notes_format)
    assert sanitize_html(rendered) == rendered


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=12),
                min_size=1, max_size=20))
def test_plain_words_read_back_unchanged(words: list[str]) -> None:
    text = " ".join(words)
    rendered = _md(text)
    assert _text(rendered).split() == text.split()


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(exclude_characters="`\r\n", exclude_categories=("Cs", "Cc")), min_size=1,
               max_size=30).filter(lambda s: s.strip() and s == s.strip()))
def test_text_in_a_code_span_reads_back_exactly(text: str) -> None:
    rendered = _md(f"`` {text} ``")
    codes = [node for node in _nodes(rendered) if node.tag == "code"]
    assert [node.text for node in codes] == [text.replace("\x00", "\ufffd")]


# ---------------------------------------------------------------------------------------------
# The Markdown engine's memory


def _malloc_in_use() -> int | None:
    """Bytes the C heap has handed out and not taken back (glibc's mallinfo2), or None elsewhere."""
    if platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc":
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "mallinfo2"):
        return None

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


def test_rendering_markdown_gives_its_memory_back() -> None:
    """cmarkgfm's own wrappers keep every document tree and rendered buffer (some 90 KB a long note); a
    build renders ten thousand notes in one process."""
    note = "## Release\n\n" + "".join(f"- Fixed **issue** #{n}: [link](https://example.com/{n}) ~~old~~\n"
                                      for n in range(100)) + "\n| a | b |\n|---|--:|\n| 1 | 2 |\n"
    render_markdown(note)
    before = _malloc_in_use()
    if before is None:
        pytest.skip("glibc's mallinfo2 is needed to count the C heap")
    for _ in range(300):
        render_markdown(note)
    assert _malloc_in_use() - before < 3_000_000  # leaking, 300 notes keep some 30 MB


def test_notes_rendered_by_worker_processes_equal_those_rendered_here(monkeypatch: pytest.MonkeyPatch) -> None:
    from relreg.history.cache import WorkCache
    from relreg.site import notes
    pairs = [(f"# Notes {n}\n\n- fixed **{n}** ~~x~~ www.example.com\n\n<script>x</script>", "markdown")
             for n in range(40)] + [("<p onclick=x>html</p>", "html"), ("", "markdown"), ("# Notes 0", "markdown")]
    here = notes.render_all(pairs, WorkCache())
    monkeypatch.setattr(notes, "PARALLEL_THRESHOLD", 1)
    monkeypatch.setattr(notes.os, "cpu_count", lambda: 2)
    assert notes.render_all(pairs, WorkCache()) == here == [render_notes(*pair) for pair in pairs]
