"""A fleet snapshot: how many devices run each version, given to `relreg build --device-counts`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click


class DeviceCountsError(click.ClickException):
    """The --device-counts file cannot be read."""


def read_device_counts(path: Path) -> dict[str, int]:
    """A fleet snapshot: JSON {"1.2.3": 120, ...} or CSV rows `version,count` (a header row is allowed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DeviceCountsError(f"--device-counts {path}: {error.strerror}") from None
    counts: dict[str, int] = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as error:
            raise DeviceCountsError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(data, dict):
            raise DeviceCountsError(f"{path}: expected an object mapping version to device count")
        items = data.items()
        where = lambda index: path.name  # noqa: E731
    else:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
        if rows and rows[0][0].strip().lower() == "version":
            rows = rows[1:]  # header row
        items = [(row[0], row[1] if len(row) > 1 else "") for row in rows]
        where = lambda index: f"{path.name} row {index}"  # noqa: E731
    for index, (version, count) in enumerate(items, start=1):
        try:
            number = int(count)
        except (TypeError, ValueError):
            number = -1
        if number < 0:
            raise DeviceCountsError(f"{where(index)}: count for {version!r} must be a whole number >= 0")
        counts[str(version).strip()] = number
    return counts
