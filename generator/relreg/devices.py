"""Device-facing update documents (planned; see the devices issue)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relreg.plan import ReleaseView, SiteInputs


def device_documents(inputs: "SiteInputs", views: list["ReleaseView"]) -> dict[str, bytes]:
    return {}
