"""The manifest's body is written a member at a time (to bound memory), as json.dumps would write it whole."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from relreg.site.manifest import read_manifest, write_manifest

_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(),
                  st.lists(st.one_of(st.integers(), st.text()), max_size=4))
_value = st.recursive(_leaf, lambda inner: st.dictionaries(st.text(), inner, max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(body=st.dictionaries(st.text(), _value, max_size=5))
def test_body_is_what_json_dumps_writes(tmp_path_factory, body: dict) -> None:
    folder = tmp_path_factory.mktemp("manifest")
    header = {"fingerprint": "f", "source": None, "releases": 1, "files": 2}
    write_manifest(str(folder), header, body)
    lines = (Path(folder) / ".relreg-manifest.json").read_text(encoding="utf-8").split("\n")
    assert lines[1] == json.dumps(body, sort_keys=True)
    assert lines[2] == "" and len(lines) == 3
    assert read_manifest(Path(folder)) == ({**header, "format": 3}, body)


def test_job_records_with_tabs_and_newlines_round_trip(tmp_path: Path) -> None:
    records = {"release:1.0.0": "api/v1/releases/1.0.0.json\tab12\tkey\nreleases/1.0.0/index.html\tcd34\t\n"}
    body = {"jobs": records, "summaries": {"release:1.0.0": [2, [["api", "json"]], None]}, "loose": ""}
    write_manifest(str(tmp_path), {"fingerprint": None, "source": None, "releases": 1, "files": 2}, body)
    header, read = read_manifest(tmp_path)  # type: ignore[misc]
    assert read == body and header["files"] == 2
