"""Registries written from short specs (releases, hardware, cohorts with staged rollouts and holds per
hardware version), and the candidates docs/devices.md rule 1 gives each channel, worked out from the spec.

Shared by the C/Python differential (tests/test_c_differential.py, specs from hypothesis) and the
planner tests (tests/test_planner.py, specs from a seeded random generator).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from c_client_helpers import channels_of

HARDWARE = ("h1", "h2")


@dataclass
class GenRelease:
    """A release: full images per hardware version and software type, gates, deltas."""

    version: str
    images: dict[str, list[str | None]]  # hardware -> software types with a full image
    min_version: str | None = None
    mpt: bool = False
    yanked: bool = False
    deltas: list[tuple[str, str | None, str]] = field(default_factory=list)  # (hardware, software, from)


Deployment = tuple[str, float, "list[str] | None"]  # version, rollout percent, hardware_versions (None: all)


@dataclass
class GenRegistry:
    """A registry in `scheme` over HARDWARE, with the versions a test asks about that it never saw."""

    scheme: str
    releases: list[GenRelease]
    cohorts: dict[str, tuple[list[str] | None, list[Deployment]]]  # slug -> (cohort hardware, deployments)
    dev_versions: list[str]
    serial_seed: int

    def held_back(self, cohort: str, hardware: str) -> list[str]:
        """The versions the cohort holds back on `hardware`: deployed to some of its other hardware, not to
        this one, though they have an image for it (a release without one is not called held back)."""
        images = {r.version: r.images for r in self.releases}
        return [v for v, _, names in self.cohorts[cohort][1]
                if names is not None and hardware not in names and hardware in images[v]]

    def expected_candidates(self, cohort: str, hardware: str, software: str | None) -> list[str]:
        """The channel's candidates by docs/devices.md rule 1, from the spec: deployed to the cohort for
        this hardware, not yanked, with an image for (hardware, software type); ascending."""
        deployed = {v for v, _, names in self.cohorts[cohort][1] if names is None or hardware in names}
        return [r.version for r in self.releases if r.version in deployed and not r.yanked
                and software in r.images.get(hardware, ())]


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_registry(spec: GenRegistry, target: Path) -> None:
    """The registry's YAML files in `target` (created): what `relreg validate` accepts."""
    for folder in ("releases", "hardware", "cohorts"):
        (target / folder).mkdir(parents=True)
    (target / "registry.yaml").write_text(
        "name: Generated\nsite_url: https://fw.example.test/\nartifact_base_url: https://dl.example.test/fw/\n"
        f"version_scheme: {spec.scheme}\n")
    for hardware in HARDWARE:
        (target / "hardware" / f"{hardware}.yaml").write_text(f"name: {hardware}\n")
    for release in spec.releases:
        lines = [f"version: {_q(release.version)}"]
        if release.min_version:
            lines.append(f"min_version: {_q(release.min_version)}")
        if release.mpt:
            lines.append("must_pass_through: true")
        if release.yanked:
            lines.append("yanked: \"Generated yank.\"")
        lines.append("artifacts:")
        images = [(h, k, None) for h, kinds in release.images.items() for k in kinds] + release.deltas
        for hardware, kind, source in images:
            name = f"{release.version}/{hardware}-{kind or 'x'}-{source or 'full'}.bin"
            digest = hashlib.sha256(name.encode()).hexdigest()
            lines.append(f"  - hardware_version: {hardware}")
            if kind:
                lines.append(f"    software_type: {kind}")
            if source:
                lines += ["    type: delta", f"    delta_from: {_q(source)}"]
            lines += [f"    build_id: {_q(digest[:40])}", f"    url: {_q(name)}", f"    size: {1000 + len(name)}",
                      f"    sha256: {_q(digest)}"]
        (target / "releases" / f"{release.version}.yaml").write_text("\n".join(lines) + "\n")
    for slug, (hardware, activations) in spec.cohorts.items():
        lines = [f"slug: {slug}", f"name: {slug.title()}"]
        if hardware:
            lines.append(f"hardware_versions: [{', '.join(hardware)}]")
        lines.append("releases: []" if not activations else "releases:")
        for version, percent, names in activations:
            lines += [f"  - version: {_q(version)}", f"    rollout_percent: {percent}"]
            if names is not None:
                lines.append(f"    hardware_versions: [{', '.join(names)}]")
        (target / "cohorts" / f"{slug}.yaml").write_text("\n".join(lines) + "\n")


def check_candidates(spec: GenRegistry, site: Path) -> None:
    """Each channel lists what rule 1 says, so a held-back board never sees the held release."""
    for cohort, hardware, software in channels_of(site):
        document = json.loads((site / "api/v1/devices" / cohort / hardware / (software or "_")
                               / "candidates.json").read_bytes())
        listed = [c["version"] for c in document["data"]["candidates"]]
        expected = spec.expected_candidates(cohort, hardware, software)
        assert listed == expected, f"{cohort}/{hardware}/{software or '_'} lists {listed}, not {expected}"
