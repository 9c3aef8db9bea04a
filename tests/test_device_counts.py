"""`--device-counts`: the fleet snapshot file, read strictly, with file:line:col for every problem."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from relreg.registry.device_counts import DeviceCountsError, FleetSnapshot, read_device_counts

BOM = codecs.BOM_UTF8.decode("utf-8")

# (file name, content, counts, snapshot date)
VALID = [
    ("plain.json", '{"1.0.0": 1200, "1.1.0": 0}', {"1.0.0": 1200, "1.1.0": 0}, None),
    ("dated.json", '{"snapshot_date": "2026-11-30", "counts": {"1.0.0": 3}}', {"1.0.0": 3}, "2026-11-30"),
    ("undated.json", '{"counts": {"1.0.0": 3}}', {"1.0.0": 3}, None),
    ("bom.json", BOM + '{"1.0.0": 1}', {"1.0.0": 1}, None),
    ("plain.csv", "1.0.0,1200\n1.1.0,34\n", {"1.0.0": 1200, "1.1.0": 34}, None),
    ("header.csv", "version,count\r\n1.0.0,1200\r\n", {"1.0.0": 1200}, None),
    ("bom.csv", BOM + "version,count\n1.0.0,12\n", {"1.0.0": 12}, None),
    ("spaces.csv", " 1.0.0 , 12 \n\n", {"1.0.0": 12}, None),
    ("dated.csv", "Version,Count,Snapshot_Date\n1.0.0,1,2026-11-30\n1.1.0,2,2026-11-30\n",
     {"1.0.0": 1, "1.1.0": 2}, "2026-11-30"),
    ("empty.csv", "", {}, None),
    ("big.json", '{"1.0.0": 123456789012}', {"1.0.0": 123456789012}, None),
]

# (file name, content, line, column, part of the message)
INVALID = [
    ("fraction.json", '{\n  "1.0.0": 1.5\n}', 2, 3, 'count for "1.0.0" is 1.5: a count is a whole number >= 0'),
    ("integral-float.json", '{"1.0.0": 1.0}', 1, 2, "is 1.0: a count is a whole number"),
    ("boolean.json", '{"1.0.0": 1, "1.1.0": true}', 1, 14, 'count for "1.1.0" is true'),
    ("text.json", '{"1.0.0": "120"}', 1, 2, 'is "120": a count is a whole number >= 0 (not a fraction, boolean or '
                                             'text); write 120 without quotes'),
    ("null.json", '{"1.0.0": null}', 1, 2, "is null"),
    ("negative.json", '{"1.0.0": -1}', 1, 2, "is -1: a count is >= 0"),
    ("duplicate.json", '{"1.0.0": 1,\n "1.0.0": 2}', 2, 2, '"1.0.0" is given twice (first at line 1)'),
    ("duplicate-dated.json", '{"snapshot_date": "2026-11-30", "counts": {"1.0.0": 1, "1.0.0": 1}}', 1, 56,
     "given twice"),
    ("duplicate-after-strip.json", '{"1.0.0": 1, " 1.0.0": 2}', 1, 14, 'version "1.0.0" is given twice'),
    ("nan.json", '{"1.0.0": NaN}', 1, 1, "NaN is not a JSON number"),
    ("syntax.json", '{"1.0.0": 1,}', 1, 13, "not valid JSON"),
    ("list.json", "[1, 2]", 1, 1, "expected an object mapping version to device count"),
    ("bad-date.json", '{"snapshot_date": "30.11.2026", "counts": {}}', 1, 2, "is not a date: write YYYY-MM-DD"),
    ("no-day.json", '{"snapshot_date": "2026-02-30", "counts": {}}', 1, 2, "is not a day of the calendar"),
    ("extra-field.json", '{"snapshot_date": "2026-11-30", "counts": {}, "1.0.0": 3}', 1, 47,
     'unknown field "1.0.0" next to "counts"'),
    ("counts-not-object.json", '{"counts": [1]}', 1, 2, '"counts" must be an object'),
    ("fraction.csv", "version,count\n1.0.0,1.5\n", 2, 7, 'count for "1.0.0" is "1.5"'),
    ("boolean.csv", "1.0.0,true\n", 1, 7, 'is "true"'),
    ("thousands.csv", '1.0.0,"1,200"\n', 1, 1, 'is "1,200"'),
    ("signed.csv", "1.0.0,+5\n", 1, 7, 'is "+5"'),
    ("missing-count.csv", "1.0.0\n", 1, 1, "1 columns where 2 are expected"),
    ("duplicate.csv", "1.0.0,1\n1.1.0,2\n1.0.0,3\n", 3, 1, 'version "1.0.0" is given twice (first at line 1)'),
    ("no-version.csv", ",3\n", 1, 1, "a count without a version"),
    ("bad-header.csv", "version,devices\n1.0.0,1\n", 1, 1, "expected version,count or version,count,snapshot_date"),
    ("date-without-header.csv", "1.0.0,1,2026-11-30\n", 1, 1, "needs the header row version,count,snapshot_date"),
    ("two-dates.csv", "version,count,snapshot_date\n1.0.0,1,2026-11-30\n1.1.0,2,2026-12-01\n", 3, 9,
     "snapshot_date 2026-12-01 differs from 2026-11-30"),
    ("missing-date.csv", "version,count,snapshot_date\n1.0.0,1,\n", 2, 9, 'snapshot_date "" is not a date'),
    ("latin1.csv", b"1.0.0,1\n1.1.0\xe9,2\n", 2, 6, "byte 0xe9 is not UTF-8"),
]


@pytest.mark.parametrize("name, content, counts, day", VALID, ids=[case[0] for case in VALID])
def test_valid_snapshots_are_read(tmp_path: Path, name: str, content: str, counts: dict, day: str | None) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8", newline="")
    snapshot = read_device_counts(path)
    assert snapshot == FleetSnapshot(counts, day, str(path))


@pytest.mark.parametrize("name, content, line, column, message", INVALID, ids=[case[0] for case in INVALID])
def test_bad_snapshots_are_refused_at_their_place(tmp_path: Path, name: str, content: str | bytes, line: int,
                                                   column: int, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(DeviceCountsError) as caught:
        read_device_counts(path)
    assert caught.value.message.startswith(f"{path}:{line}:{column}: "), caught.value.message
    assert message in caught.value.message


def test_unknown_versions_are_listed_for_a_warning() -> None:
    snapshot = FleetSnapshot({"1.0.0": 1, "v1.1.0": 2, "1.2": 3}, None, "fleet.csv")
    assert snapshot.unknown_versions(["1.0.0", "1.1.0", "1.2.0"]) == ["1.2", "v1.1.0"]
    assert snapshot.warnings(["1.0.0", "1.1.0", "1.2.0"])[0].startswith(
        "fleet.csv: device counts for 2 versions that are not a release of the registry (1.2, v1.1.0)")
    assert FleetSnapshot({"1.0.0": 1}).warnings(["1.0.0"]) == []
