"""The model's derived values agree with the standard library they shortcut."""

from __future__ import annotations

import copy
import pickle
from dataclasses import fields
from urllib.parse import urljoin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import relreg.registry.model as model
from relreg.registry.model import Artifact, Release
from relreg.registry.versions import scheme_named


def _values(item: object) -> dict[str, object]:
    """Every field's value, those with a default included (an Artifact's by ARTIFACT_FIELDS)."""
    from relreg.registry.model import ARTIFACT_FIELDS

    names = ARTIFACT_FIELDS if isinstance(item, Artifact) else [f.name for f in fields(item)  # type: ignore[arg-type]
                                                                 if not f.name.startswith("_")]
    return {name: getattr(item, name) for name in names}

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


@pytest.mark.parametrize("url, filename", [
    ("1.0.0/evt1.bin", "evt1.bin"),
    ("https://cdn.example.test/x/evt1.bin", "evt1.bin"),
    ("https://cdn.example.test/x/evt1.bin?v=2&cache=no", "evt1.bin"),  # the query is not part of the name
    ("https://cdn.example.test/x/evt1.bin/", "evt1.bin"),
    ("evt1.bin", "evt1.bin"),
])
def test_an_artifacts_filename_is_the_last_segment_of_its_urls_path(url: str, filename: str) -> None:
    assert Artifact("evt1", "b1", url, 1, "0" * 64).filename == filename


def test_from_dict_makes_the_same_objects_as_the_constructors() -> None:
    """Release and Artifact.from_dict skip the dataclass __init__ for speed: the objects must be the same."""
    from relreg.registry.model import Artifact, Release
    from relreg.registry.versions import scheme_named

    scheme = scheme_named("semver")
    full = {"hardware_version": "evt1", "build_id": "b1", "url": "1.0.0/evt1.bin", "size": 3, "sha256": "ab" * 32,
            "software_type": "main", "type": "delta", "delta_from": "0.9.0"}
    bare = {key: full[key] for key in ("hardware_version", "build_id", "url", "size", "sha256")}
    for data in (full, bare):
        made = Artifact.from_dict(dict(data))
        expected = Artifact(**data)
        assert made == expected and repr(made) == repr(expected) and hash(made) == hash(expected)
        assert _values(made) == _values(expected) and pickle.loads(pickle.dumps(made)) == expected
    for data in ({"version": "1.0.0", "artifacts": [full, bare]},
                 {"version": "1.0.0", "artifacts": [bare], "min_version": "0.1.0", "revision": "r", "notes": "n",
                  "notes_format": "text", "extra_info": {"a": 1}, "must_pass_through": True, "yanked": "bad"}):
        before = copy.deepcopy(data)
        made = Release.from_dict(data, scheme, "releases/1.0.0.yaml")
        expected = Release(version=data["version"], parsed_version=scheme.parse(data["version"]),
                           artifacts=tuple(Artifact(**item) for item in data["artifacts"]),
                           source_path="releases/1.0.0.yaml",
                           **{key: value for key, value in data.items() if key not in ("version", "artifacts")})
        assert made == expected and repr(made) == repr(expected) and hash(made) == hash(expected)
        assert _values(made) == _values(expected) and pickle.loads(pickle.dumps(made)) == expected
        assert [_values(a) for a in made.artifacts] == [_values(a) for a in expected.artifacts]
        assert made.hardware_versions == expected.hardware_versions  # kept once made
        assert made.hardware_versions is made.hardware_versions and made.image_slots is made.image_slots
        assert made.image_slots == expected.image_slots
        assert data == before  # the caller's data is not changed
        try:
            made.version = "2.0.0"  # type: ignore[misc]
        except AttributeError:
            pass
        else:
            raise AssertionError("Release stayed frozen")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.text(alphabet="ab\n -#é\U0001f600\ud800", min_size=200, max_size=9000),
                 st.builds(lambda line, count: line * count, st.text(min_size=1, max_size=60), st.integers(1, 400))))
def test_notes_read_back_as_written_whether_or_not_held_compressed(notes: str) -> None:
    # Long notes are held compressed (with a 4 KiB window, read back by zlib's default one); lone surrogates too.
    data = {"version": "1.0.0", "notes": notes, "artifacts": [
        {"hardware_version": "evt", "build_id": "ab", "url": "a.bin", "size": 1, "sha256": "cd"}]}
    assert Release.from_dict(data, scheme_named("semver"), "a.yaml").notes == notes
    stored = model._notes_stored(notes)
    assert model._notes_text(stored) == notes
    if isinstance(stored, bytes):
        assert len(notes) >= model.COMPRESSED_NOTES and len(stored) < len(notes)
