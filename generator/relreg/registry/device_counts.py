"""A fleet snapshot: how many devices run each version, given to `relreg build --device-counts`.

Two formats, chosen by the file's extension:

- JSON (`.json`): an object mapping version to count, `{"1.2.3": 120}`, or
  `{"snapshot_date": "2026-11-30", "counts": {"1.2.3": 120}}` to say when the
  counts were taken.
- CSV (anything else): rows `version,count`; an optional header row
  `version,count` or `version,count,snapshot_date`, with the same date on every
  row when the date column is there. A UTF-8 byte order mark (which
  spreadsheet programs write) is allowed.

Counts are whole numbers >= 0 (not 1.5, not true, not "120"); a version is
given once. Every problem is an error naming file:line:col.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Mapping

import click

_WHOLE = re.compile(r"^[0-9]+$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"\s*:')
_DATE_HEADER = ("version", "count", "snapshot_date")


class DeviceCountsError(click.ClickException):
    """The --device-counts file cannot be read; the message starts with file:line:col."""


@dataclass(frozen=True)
class FleetSnapshot:
    """Devices per version (exact version text -> count >= 0), and the day the counts were taken, if given."""

    counts: Mapping[str, int] = field(default_factory=dict)
    snapshot_date: str | None = None  # YYYY-MM-DD
    source: str = ""  # the file it was read from, for messages

    def unknown_versions(self, versions: Iterable[str]) -> list[str]:
        """Versions counted in the snapshot that are not among `versions` (sorted): their devices count nowhere."""
        known = set(versions)
        return sorted(version for version in self.counts if version not in known)

    def warnings(self, versions: Iterable[str]) -> list[str]:
        """What the build should warn about, given the registry's release versions: counts for unknown versions."""
        unknown = self.unknown_versions(versions)
        if not unknown:
            return []
        listed = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        return [f"{self.source}: device counts for {len(unknown)} version{'s' if len(unknown) != 1 else ''} that "
                f"{'are' if len(unknown) != 1 else 'is'} not a release of the registry ({listed}): those devices "
                "are not counted anywhere; check the version text (e.g. 'v1.2.3' against '1.2.3')"]


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _fail(path: Path, line: int, column: int, message: str) -> DeviceCountsError:
    return DeviceCountsError(f"{path}:{line}:{column}: {message}")


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DeviceCountsError(f"--device-counts {path}: {error.strerror}") from None
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]  # spreadsheet programs write one in their CSV exports
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _position(raw[:error.start].decode("utf-8", "replace"), error.start)
        raise _fail(path, line, column, f"byte 0x{raw[error.start]:02x} is not UTF-8: save the file as UTF-8") \
            from None


def _check_date(value: Any, fail: Any) -> str:
    if not isinstance(value, str) or not _DATE.match(value):
        raise fail(f"snapshot_date {json.dumps(value)} is not a date: write YYYY-MM-DD, e.g. \"2026-11-30\"")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise fail(f"snapshot_date \"{value}\" is not a day of the calendar") from None
    return value


def read_device_counts(path: Path) -> FleetSnapshot:
    """Read a fleet snapshot (see the module's docstring). Raises DeviceCountsError naming file:line:col."""
    text = _decode(path)
    if path.suffix.lower() == ".json":
        return _read_json(path, text)
    return _read_csv(path, text)


def _key_offsets(text: str) -> dict[str, list[int]]:
    """Where each object key of a JSON text starts, in document order (to point at a problem)."""
    offsets: dict[str, list[int]] = {}
    for match in _JSON_STRING.finditer(text):
        try:
            key = json.loads(match.group(0).rstrip(": \t\r\n"))
        except ValueError:
            continue
        offsets.setdefault(key, []).append(match.start())
    return offsets


def _read_json(path: Path, text: str) -> FleetSnapshot:
    offsets = _key_offsets(text)

    def at(key: str, occurrence: int = 0) -> tuple[int, int]:
        places = offsets.get(key, [])
        return _position(text, places[min(occurrence, len(places) - 1)]) if places else (1, 1)

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                first, second = at(key, 0), at(key, 1)
                raise _fail(path, *second, f"{json.dumps(key)} is given twice (first at line {first[0]}): "
                                           "a later count would silently replace the earlier one")
            result[key] = value
        return result

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=_no_constant)
    except DeviceCountsError:
        raise
    except json.JSONDecodeError as error:
        raise _fail(path, error.lineno, error.colno, f"not valid JSON: {error.msg}") from None
    except ValueError as error:
        raise _fail(path, 1, 1, f"not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise _fail(path, 1, 1, "expected an object mapping version to device count, or "
                                "{\"snapshot_date\": \"YYYY-MM-DD\", \"counts\": {...}}")
    snapshot_date = None
    if "counts" in data or "snapshot_date" in data:
        for key in sorted(set(data) - {"counts", "snapshot_date"}):
            raise _fail(path, *at(key), f"unknown field {json.dumps(key)} next to \"counts\": versions go inside "
                                        "\"counts\"; the other field is \"snapshot_date\"")
        if not isinstance(data.get("counts"), dict):
            raise _fail(path, *at("counts" if "counts" in data else "snapshot_date"),
                        "\"counts\" must be an object mapping version to device count")
        if "snapshot_date" in data:
            snapshot_date = _check_date(data["snapshot_date"], lambda message: _fail(path, *at("snapshot_date"), message))
        data = data["counts"]
    counts: dict[str, int] = {}
    for version, count in data.items():
        where = at(version)
        if isinstance(count, bool) or not isinstance(count, int):
            shown = json.dumps(count)
            hint = f"; write {count} without quotes" if isinstance(count, str) and _WHOLE.match(count) else ""
            raise _fail(path, *where, f"count for {json.dumps(version)} is {shown}: a count is a whole number "
                                      f">= 0 (not a fraction, boolean or text){hint}")
        if count < 0:
            raise _fail(path, *where, f"count for {json.dumps(version)} is {count}: a count is >= 0")
        _add(counts, version, count, lambda message: _fail(path, *where, message))
    return FleetSnapshot(counts, snapshot_date, str(path))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _add(counts: dict[str, int], version: str, count: int, fail: Any) -> None:
    key = version.strip()
    if not key:
        raise fail("a count without a version")
    if key in counts:
        raise fail(f"version {json.dumps(key)} is given twice: a later count would silently replace the earlier one")
    counts[key] = count


def _read_csv(path: Path, text: str) -> FleetSnapshot:
    reader = csv.reader(io.StringIO(text, newline=""))
    counts: dict[str, int] = {}
    lines: dict[str, int] = {}
    columns = 2
    snapshot_date: str | None = None
    dated = False
    for index, row in enumerate(reader):
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue

        def fail(message: str, column: int = 1, line: int = line) -> DeviceCountsError:
            return _fail(path, line, column, message)

        raw_line = text.splitlines()[line - 1] if line - 1 < len(text.splitlines()) else ""
        cells = [cell.strip() for cell in row]
        if index == 0 and cells[0].lower() == "version":
            header = tuple(cell.lower() for cell in cells)
            if header not in (_DATE_HEADER[:2], _DATE_HEADER):
                raise fail(f"header {','.join(cells)}: expected version,count or version,count,snapshot_date")
            columns, dated = len(header), len(header) == 3
            continue
        if len(cells) != columns:
            expected = ",".join(_DATE_HEADER[:columns])
            hint = "; a date column needs the header row version,count,snapshot_date" if columns == 2 and \
                len(cells) == 3 else ""
            raise fail(f"{len(cells)} columns where {columns} are expected ({expected}){hint}")
        version, count = cells[0], cells[1]
        count_column = _column_of(raw_line, 1)
        if not _WHOLE.match(count):
            raise fail(f"count for {json.dumps(version)} is {json.dumps(count)}: a count is a whole number >= 0 "
                       "(not a fraction, boolean, sign or thousands separator)", count_column)
        if version in lines:
            raise fail(f"version {json.dumps(version)} is given twice (first at line {lines[version]}): "
                       "a later count would silently replace the earlier one")
        _add(counts, version, int(count), fail)
        lines[version] = line
        if dated:
            date_column = _column_of(raw_line, 2)
            day = _check_date(cells[2], lambda message: fail(message, date_column))
            if snapshot_date is not None and day != snapshot_date:
                raise fail(f"snapshot_date {day} differs from {snapshot_date} on the rows above: a snapshot is "
                           "taken on one day; give each day's counts in its own file", date_column)
            snapshot_date = day
    return FleetSnapshot(counts, snapshot_date, str(path))


def _column_of(raw_line: str, field_index: int) -> int:
    """1-based column where field `field_index` of a CSV line starts (1 when quoting makes it unclear)."""
    if '"' in raw_line:
        return 1
    parts = raw_line.split(",")
    return sum(len(part) + 1 for part in parts[:field_index]) + 1 if field_index < len(parts) else 1
