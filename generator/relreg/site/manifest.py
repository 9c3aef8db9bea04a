"""The manifest file of a built site (`.relreg-manifest.json`, never served): its two lines.

Line 1, the header, is small: the format, the fingerprint of every input, the source key (the
commit and options, when built from a clean tree) and the release count. Line 2, the body, holds
the record and summary of every job (see write.py), tens of megabytes for a large registry. A
rebuild with nothing changed compares the source key and stops, so it reads line 1 only.

This module imports only the standard library: it is on the path of that rebuild, where start-up
time is most of the time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from relreg.site.paths import MANIFEST

MANIFEST_FORMAT = 3  # 3: header line, then body line; 2 was one JSON object


@dataclass(frozen=True)
class WriteStats:
    """What a write did: files written, files kept as they were (linked), files removed."""

    written: int
    unchanged: int
    removed: int
    notes: list[Any] = field(default_factory=list)  # what the Summarizer said of each job, in plan order


def write_manifest(folder: str, header: dict[str, Any], body: dict[str, Any]) -> None:
    """Write the manifest into `folder` (a staging folder: the swap makes it visible)."""
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as stream:
        stream.write(json.dumps({**header, "format": MANIFEST_FORMAT}, sort_keys=True) + "\n")
        _write_json_object(stream, body)
        stream.write("\n")


def _write_json_object(stream: TextIO, value: dict[str, Any]) -> None:
    """Write `value` as json.dumps(value, sort_keys=True) would, a member of a member at a time.

    The body of a large site is hundreds of megabytes as one string (and as much again encoded):
    written whole, it set the build's peak memory. Each leaf still goes through the C encoder in one call.
    """
    stream.write("{")
    for index, key in enumerate(sorted(value)):
        stream.write((", " if index else "") + json.dumps(key) + ": ")
        member = value[key]
        if isinstance(member, dict):
            _write_json_object(stream, member)
        else:
            stream.write(json.dumps(member, sort_keys=True))
    stream.write("}")


def _is_header(value: object) -> bool:
    return (isinstance(value, dict) and value.get("format") == MANIFEST_FORMAT
            and isinstance(value.get("files"), int) and isinstance(value.get("releases"), int))


def read_header(folder: Path) -> dict[str, Any] | None:
    """Line 1 of the manifest in `folder`; None when there is none, or it is unreadable, incomplete or
    of another format (then nothing of the previous build is trusted)."""
    try:
        with open(folder / MANIFEST, encoding="utf-8") as stream:
            header = json.loads(stream.readline())
    except (OSError, ValueError):
        return None
    return header if _is_header(header) else None


def read_manifest(folder: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Both lines of the manifest in `folder`: (header, body); None as for read_header."""
    try:
        with open(folder / MANIFEST, encoding="utf-8") as stream:
            header = json.loads(stream.readline())
            body = json.loads(stream.readline())
    except (OSError, ValueError):
        return None
    if not (_is_header(header) and isinstance(body, dict)):
        return None
    return header, body
