"""A version as one segment of a page's URL (`site/pages.url_segment`): quote()'s answer for any text, with
a shortcut for text that needs no escape."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from relreg.site.pages import url_segment


@given(st.one_of(st.text(), st.from_regex(r"[0-9]+\.[0-9]+\.[0-9]+(-[a-z0-9.]+)?(\+[a-z0-9.]+)?", fullmatch=True),
                 st.text(alphabet="abcXYZ019_.~-+/% \n\u00e9", max_size=12)))
@settings(max_examples=800)
def test_a_segment_is_what_quote_gives(text: str) -> None:
    assert url_segment(text) == quote(text, safe="")


def test_a_plus_is_escaped_and_a_plain_version_kept() -> None:
    assert url_segment("1.2.0+build.5") == "1.2.0%2Bbuild.5"
    assert url_segment("1.2.0-rc.1") == "1.2.0-rc.1"
    assert url_segment("1.2.0\n") == "1.2.0%0A"
