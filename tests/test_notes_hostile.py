"""Hostile release notes (tests/fixtures/notes) are rendered harmless, on the text of every output:
the sanitizer's result, the HTML pages, the JSON `notes` and the Atom feeds. The browser side is in
test_browser.py."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from site_helpers import audit_notes_html, audit_page, build_hostile_site, corpus_files, html_pages, parse_page

from relreg.site.notes import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, render_notes
from relreg.site.pages import nest_headings

ATOM = "{http://www.w3.org/2005/Atom}"


def _render(path: Path) -> str:
    return render_notes(path.read_text(encoding="utf-8"), "markdown" if path.suffix == ".md" else "html")


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_sanitized_notes_keep_nothing_executable(path: Path) -> None:
    rendered = _render(path)
    assert audit_notes_html(rendered) == []
    assert _tag_names(rendered) <= ALLOWED_TAGS, path.name
    assert html.unescape(re.sub(r"<[^>]*>", "", rendered)).strip()  # some readable text is left


def _tag_names(rendered: str) -> set[str]:
    return {name.lower() for name in re.findall(r"<[/]?([A-Za-z][^\s/>]*)", rendered)}


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_sanitized_notes_pass_a_spec_html_parser_audit(path: Path) -> None:
    """The same audit on the tree of html5lib, which parses like a browser (mutation XSS shows up here)."""
    import html5lib
    fragment = html5lib.parseFragment(_render(path), namespaceHTMLElements=False)
    for element in fragment.iter():
        if not isinstance(element.tag, str):
            continue  # comments
        assert element.tag in ALLOWED_TAGS or element.tag == "DOCUMENT_FRAGMENT", (path.name, element.tag)
        for name, value in element.attrib.items():
            assert name in ALLOWED_ATTRIBUTES.get(element.tag, set()) | {"rel"}, (path.name, element.tag, name)
            if name in ("href", "src"):
                scheme = urlsplit(value.strip()).scheme.lower()
                assert scheme in ({"https"} if element.tag == "img" else {"", "http", "https", "mailto"}), \
                    (path.name, value)


def _elements(rendered: str) -> list[tuple[str, dict[str, str], str]]:
    """(tag, attributes, text inside) of every element, as a browser parses the notes (html5lib)."""
    import html5lib
    fragment = html5lib.parseFragment(rendered, namespaceHTMLElements=False)
    return [(e.tag, dict(e.attrib), "".join(e.itertext())) for e in fragment.iter()
            if isinstance(e.tag, str) and e.tag != "DOCUMENT_FRAGMENT"]


def _has(elements: list[tuple[str, dict[str, str], str]], tag: str, text: str | None = None, **attrs: str) -> bool:
    return any(t == tag and (text is None or inner == text) and all(a.get(k) == v for k, v in attrs.items())
               for t, a, inner in elements)


def test_benign_notes_keep_what_release_notes_need() -> None:
    """What legitimate notes use, read back from the parsed result (not one Markdown engine's bytes)."""
    markdown = _elements(_render(Path(__file__).parent / "fixtures" / "notes" / "benign-markdown.md"))
    expected = [("h1", "Aurora 3.0", {}), ("strong", "Bold", {}), ("em", "emphasis", {}), ("blockquote", None, {}),
                ("a", "link", {"href": "https://example.com/changelog", "title": "Changelog",
                               "rel": "noopener noreferrer nofollow"}),
                ("a", "https://example.com/auto", {"href": "https://example.com/auto"}),
                ("a", "support", {"href": "mailto:support@example.com"}),
                ("table", None, {}), ("th", "Mode", {}), ("th", "Before", {"align": "right"}),
                ("code", None, {"class": "language-c"}), ("ol", None, {}), ("hr", None, {}),
                ("img", None, {"src": "https://images.example/board.png", "alt": "Board photo"})]
    for tag, text, attrs in expected:
        assert _has(markdown, tag, text, **attrs), (tag, text, attrs)
    assert any(tag in ("del", "s") and text == "strike" for tag, _, text in markdown)
    html_notes = _elements(_render(Path(__file__).parent / "fixtures" / "notes" / "benign-html.html"))
    expected = [("kbd", "Reset", {}), ("ol", None, {"start": "3"}), ("abbr", "OTA", {"title": "Over the air"}),
                ("summary", "Details", {}), ("details", None, {}), ("td", "c", {"colspan": "2"}),
                ("th", "B", {"align": "right"}), ("th", "A", {"scope": "col"}), ("sub", "2", {}), ("sup", "2", {}),
                ("del", "old", {}), ("s", "struck", {}), ("var", "n", {}), ("samp", "out", {}),
                ("code", None, {"class": "language-sh"}), ("dt", "Term", {}), ("dd", "Definition", {}),
                ("img", None, {"src": "https://images.example/board.png", "width": "320", "height": "200"})]
    for tag, text, attrs in expected:
        assert _has(html_notes, tag, text, **attrs), (tag, text, attrs)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    return build_hostile_site(tmp_path_factory.mktemp("hostile"))


def test_no_page_of_the_hostile_site_carries_executable_content(hostile: tuple[Path, dict[str, Path]]) -> None:
    out, by_version = hostile
    problems = [problem for page in html_pages(out) for problem in audit_page(out, page)]
    assert problems == []
    for version in by_version:
        assert f"releases/{version}/index.html" in html_pages(out)


def test_hostile_notes_cannot_break_the_page_around_them(hostile: tuple[Path, dict[str, Path]]) -> None:
    """Stray end tags, unclosed elements and headings in notes stay inside the notes."""
    out, by_version = hostile
    for version, source in by_version.items():
        page = parse_page(out / f"releases/{version}/index.html")
        tags = [e.tag for e in page.elements]
        assert page.problems == [], (source.name, page.problems)
        assert tags.count("h1") == 1 and tags.count("main") == 1 and tags.count("footer") == 1, source.name
        after_notes = tags[max(i for i, e in enumerate(page.elements) if e.in_notes) + 1:]
        assert "table" in after_notes and "footer" in after_notes, source.name  # artifacts and footer follow
    import html5lib
    for version in by_version:
        parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
        parser.parse((out / f"releases/{version}/index.html").read_text(encoding="utf-8"))


def test_json_notes_are_the_sanitized_notes_and_the_page_shows_the_same(
        hostile: tuple[Path, dict[str, Path]]) -> None:
    out, by_version = hostile
    for version, path in by_version.items():
        notes = json.loads((out / f"api/v1/releases/{version}.json").read_bytes())["data"]["notes"]
        assert notes == _render(path), path.name
        assert audit_notes_html(notes) == [], path.name
        page = (out / f"releases/{version}/index.html").read_text(encoding="utf-8")
        assert nest_headings(notes) in page, path.name
    listing = json.loads((out / "api/v1/releases.json").read_bytes())["data"]
    assert all(audit_notes_html(release["notes"]) == [] for release in listing)


def test_feed_content_is_the_sanitized_notes_escaped_once(hostile: tuple[Path, dict[str, Path]]) -> None:
    out, by_version = hostile
    feed = ET.parse(out / "feed.xml").getroot()  # well-formed XML whatever the notes held
    contents = {e.findtext(f"{ATOM}title"): e.findtext(f"{ATOM}content") for e in feed.iter(f"{ATOM}entry")}
    for version, path in by_version.items():
        assert contents[version] == _render(path), path.name
        assert audit_notes_html(contents[version]) == []


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_the_reusable_cleaner_sanitizes_as_nh3_clean_does(path: Path) -> None:
    """sanitize_html's nh3.Cleaner, made once, against nh3.clean with the same options on each call."""
    import nh3

    from relreg.site import notes

    text = path.read_text(encoding="utf-8")
    for html_text in (text, notes.render_markdown(text)):
        assert notes.sanitize_html(html_text) == nh3.clean(html_text, **notes._CLEAN_OPTIONS).strip(), path.name
