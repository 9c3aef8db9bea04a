"""Where a device finds its documents, relative to the site root (see docs/devices.md).

A channel is (cohort, hardware version, software type); a device without a software type
uses the segment `_`, which can never be a software type because identifiers start with a
letter or digit.
"""

from __future__ import annotations

DEVICES = "api/v1/devices"
NO_SOFTWARE_TYPE = "_"  # path segment of devices without a software type; never a valid identifier


def software_type_segment(software_type: str | None) -> str:
    return software_type if software_type is not None else NO_SOFTWARE_TYPE


def channel_folder(cohort: str, hardware_version: str, software_type: str | None) -> str:
    return f"{DEVICES}/{cohort}/{hardware_version}/{software_type_segment(software_type)}"


def candidates_path(cohort: str, hardware_version: str, software_type: str | None) -> str:
    return f"{channel_folder(cohort, hardware_version, software_type)}/candidates.json"


def rollouts_path(cohort: str, hardware_version: str, software_type: str | None) -> str:
    """The channel's rollouts document: the percent of every staged release (read after an answer)."""
    return f"{channel_folder(cohort, hardware_version, software_type)}/rollouts.json"


def answer_path(cohort: str, hardware_version: str, software_type: str | None, current_version: str) -> str:
    return f"{channel_folder(cohort, hardware_version, software_type)}/from/{current_version}.json"


def index_path() -> str:
    return f"{DEVICES}/index.json"
