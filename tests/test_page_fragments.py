"""The row fragments the HTML pages make in Python (site/pages.py: the releases list's rows, a release page's
artifact table and download list, badges, dates): escaped exactly as the templates escape, whatever the values.

The example site's pages themselves are checked by test_site.py and the browser tests; here the values are
chosen to need escaping, which the schema would not let through a registry."""

from __future__ import annotations

import html
import re
from dataclasses import replace

import html5lib
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape

from conftest import EXAMPLE_REGISTRY
from relreg.registry.model import Artifact
from relreg.registry.source import read_worktree
from relreg.registry.validate import validate_files
from relreg.site import pages
from relreg.site.jobs import ReleaseDates, ReleaseView

HOSTILE = "a\"b'c<d>&e"


def _example_release(version: str = "2.1.0"):
    registry = validate_files(read_worktree(EXAMPLE_REGISTRY)).registry
    assert registry is not None
    return registry.release(version)


def _hostile_release():
    release = _example_release()
    artifacts = (
        Artifact(hardware_version=HOSTILE, build_id=HOSTILE, url=f"x/{HOSTILE}.bin", size=2048, sha256=HOSTILE,
                 software_type=HOSTILE),
        Artifact(hardware_version="pvt", build_id="ab" * 20, url="pvt-delta.bin", size=10, sha256="0" * 64,
                 type="delta", delta_from=HOSTILE),
    )
    return replace(release, artifacts=artifacts, revision=HOSTILE, yanked="gone")


@given(st.text())
def test_text_escapes_as_markupsafe_does(value: str) -> None:
    assert pages._text(value) == str(escape(value))


def test_text_of_numbers_and_clean_values_is_the_value() -> None:
    assert pages._text(415977) == "415977"
    assert pages._text("2.0.0-rc.1") == "2.0.0-rc.1"


def test_badges_and_dates() -> None:
    release = _example_release()
    assert pages.badges(release) == ""
    assert pages.badges(replace(release, yanked="bad", must_pass_through=True)) == \
        ' <span class="badge badge-danger">yanked</span> <span class="badge badge-info">required step</span>'
    assert pages.day(86_400) == '<time datetime="1970-01-02T00:00:00Z">1970-01-02</time>'


def _fragment_text(markup: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The texts and the attribute values of an HTML fragment, as a browser reads them."""
    tree = html5lib.parseFragment(f"<table><tbody>{markup}</tbody></table>" if markup.startswith("<tr")
                                  else f"<ul>{markup}</ul>", namespaceHTMLElements=False)
    texts = [text for element in tree.iter() for text in (element.text, element.tail) if text and text.strip()]
    attributes = [(name, value) for element in tree.iter() for name, value in element.attrib.items()]
    return texts, attributes


def test_artifact_table_escapes_every_value_and_keeps_its_structure() -> None:
    release = _hostile_release()
    rows = str(pages.artifact_table(release, True, {HOSTILE: object()}, "https://dl.example/fw/"))
    assert HOSTILE not in rows and "<d>" not in rows and "b'c" not in rows
    assert rows.count("<tr>") == 2 and rows.count("</tr>\n") == 2
    texts, attributes = _fragment_text(rows)
    assert HOSTILE in texts  # hardware, software type, build id, sha256 read back as written
    assert ("data-copy", HOSTILE) in attributes
    assert ("aria-label", f"Copy SHA-256 of {HOSTILE}.bin") in attributes
    assert ("href", f"../{HOSTILE}/index.html") in attributes  # the delta's base release has a page
    assert ("href", f"https://dl.example/fw/x/{HOSTILE}.bin") in attributes
    without_software = str(pages.artifact_table(release, False, {}, "https://dl.example/fw/"))
    assert f"<td>{html.escape(HOSTILE, quote=False)}" not in without_software
    assert f"delta from {escape(HOSTILE)}</td>" in without_software  # no page: not linked


def test_download_list_lists_full_images_by_hardware_escaped() -> None:
    release = _hostile_release()
    items = str(pages.download_list(release, "https://dl.example/fw/"))
    assert items.count("<li>") == 1  # the delta is not a download
    texts, attributes = _fragment_text(items)
    assert ("href", f"https://dl.example/fw/x/{HOSTILE}.bin") in attributes
    assert any(f"Download for {HOSTILE} ({HOSTILE})" in text for text in texts)


def test_release_list_row_escapes_and_marks_what_the_search_and_filter_read() -> None:
    release = _hostile_release()
    view = ReleaseView(id=1, release=release, dates=ReleaseDates(86_400, 86_400), notes_html="", count_devices=0)
    row = pages.release_list_row(view)
    assert row.startswith(f'<tr data-hw="{escape(HOSTILE + " pvt")}">') and row.endswith("</tr>\n")
    texts, attributes = _fragment_text(row)
    assert ("data-sw", HOSTILE) in attributes and ("data-from", HOSTILE) in attributes
    assert texts.count(HOSTILE) >= 3  # chip, revision, build id
    assert "yanked" in texts and "1970-01-02" in texts
    assert len(re.findall(r'class="k id"', row)) == 3  # the revision and both build ids are searchable
