"""What a small device can read: the C client's fixed buffers (clients/c/, docs/devices.md#devices-in-c).

PURE: the build hands in the bytes of each device document; this module says whether a device with a
4 KiB document buffer and 256 jsmn tokens can read it, and sums that up as build warnings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

DEVICE_BUFFER_BYTES = 4096  # the document buffer of the C client's reference budget
DEVICE_TOKENS = 256  # jsmn tokens of the same budget (16 bytes each on a 32-bit MCU)


def json_tokens(value: Any) -> int:
    """How many jsmn tokens a JSON value takes: one per object, array, key, string and primitive."""
    if isinstance(value, dict):
        return 1 + sum(1 + json_tokens(item) for item in value.values())
    if isinstance(value, list):
        return 1 + sum(json_tokens(item) for item in value)
    return 1


def document_cost(content: bytes) -> tuple[int, int]:
    """(bytes, tokens) of a document. A token takes at least two bytes with its separator, so documents
    of up to 2 x DEVICE_TOKENS - 1 bytes are within the token budget without being parsed."""
    if len(content) < 2 * DEVICE_TOKENS:
        return len(content), len(content) // 2 + 1
    return len(content), json_tokens(json.loads(content))


def fits_device(content: bytes) -> bool:
    size, tokens = document_cost(content)
    return size <= DEVICE_BUFFER_BYTES and tokens <= DEVICE_TOKENS


def document_kind(path: str) -> str:
    """"candidates", "rollouts" or "answer": how the budget warning names a device document."""
    if path.endswith("/candidates.json"):
        return "candidates"
    return "rollouts" if path.endswith("/rollouts.json") else "answer"


@dataclass
class DeviceBudget:
    """Documents of a site that a device with the reference budget cannot read, by kind."""

    checked: dict[str, int] = field(default_factory=dict)
    over: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)  # kind -> (bytes, tokens, path)

    def add(self, path: str, content: bytes) -> None:
        kind = document_kind(path)
        self.checked[kind] = self.checked.get(kind, 0) + 1
        size, tokens = document_cost(content)
        if size > DEVICE_BUFFER_BYTES or tokens > DEVICE_TOKENS:
            self.over.setdefault(kind, []).append((size, tokens, path))

    def warnings(self) -> list[str]:
        found = []
        for kind, items in sorted(self.over.items()):
            size, tokens, path = max(items)
            consequence = {"candidates": "a C device on a version the registry does not know cannot decide locally",
                           "rollouts": "a C device cannot weigh that channel's staged offers"
                           }.get(kind, "a C device on that version cannot read its answer")
            found.append(f"{len(items)} of {self.checked[kind]} device {kind} documents exceed what a small device "
                         f"reads ({DEVICE_BUFFER_BYTES} bytes, {DEVICE_TOKENS} JSON tokens); the largest is {path} "
                         f"({size} bytes, {tokens} tokens): {consequence} with that budget "
                         "(docs/devices.md#devices-in-c)")
        return found
