"""The model's derived values agree with the standard library they shortcut."""

from __future__ import annotations

from urllib.parse import urljoin

from hypothesis import given, settings
from hypothesis import strategies as st

from relreg.registry.model import Artifact

BASE = "https://dl.example.test/fw/"
URL_PARTS = st.lists(st.sampled_from(["a", "b", ".", "..", "/", "?", "#", "%", ";", "-", "~", "_", "1.0.0"]),
                     min_size=1, max_size=8)


@settings(max_examples=2000, deadline=None)
@given(URL_PARTS)
def test_artifact_url_is_resolved_as_urljoin_resolves_it(parts: list[str]) -> None:
    url = "".join(parts).lstrip("/") or "a"
    assert Artifact("evt1", "b1", url, 1, "0" * 64).absolute_url(BASE) == urljoin(BASE, url)


def test_absolute_https_urls_are_kept() -> None:
    url = "https://cdn.example.test/x/evt1.bin"
    assert Artifact("evt1", "b1", url, 1, "0" * 64).absolute_url(BASE) == url
