"""The JSON the site writes is the standard library's (compact, UTF-8), whichever encoder makes it: orjson makes
release documents and URLs (jobs.encode_plain), and must give the same bytes or leave the value to json."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relreg.site.api import encode_release
from relreg.site.jobs import encode, encode_plain, holds_float

# Integers past 64 bits (orjson refuses them) and text of any code point, surrogates included (neither encodes them).
_SCALARS = st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.text()
_FLOATS = st.floats(allow_nan=False, allow_infinity=False)


def _json(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                        | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=12)


def _outcome(encoder: Any, value: Any) -> bytes | str:
    try:
        return encoder(value)
    except (ValueError, TypeError):  # UnicodeEncodeError is a ValueError
        return "refused"


@settings(max_examples=400, deadline=None)
@given(_json(_SCALARS))
def test_encode_plain_gives_the_standard_librarys_bytes_for_values_without_floats(value: Any) -> None:
    assert not holds_float(value)
    assert _outcome(encode_plain, value) == _outcome(encode, value)


@settings(max_examples=300, deadline=None)
@given(_json(_SCALARS | _FLOATS))
def test_a_release_document_is_encoded_as_the_standard_library_does_floats_or_not(extra_info: Any) -> None:
    document = {"id": 3, "version": "1.0.0", "notes": "<p>é</p>", "extra_info": extra_info,
                "artifacts": [{"size": 400_000, "sha256": "ab" * 32, "delta_from": None}], "yanked": None}
    assert _outcome(encode_release, document) == _outcome(encode, document)


@pytest.mark.parametrize(("value", "expected"), [
    (1e-07, True), ({"a": [1, {"b": 0.5}]}, True), ([1, "1.5", None, True], False), ({"x": {}}, False),
    (2**80, False), ("1e-07", False),
])
def test_holds_float_finds_a_float_at_any_depth(value: Any, expected: bool) -> None:
    assert holds_float(value) is expected
