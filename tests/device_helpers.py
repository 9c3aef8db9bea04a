"""Shared pieces of the device tests: channels from short specs, an independent oracle of the
update rules, registries for the device documents, and a real nginx origin."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest
from conftest import EXAMPLE_REGISTRY, run_relreg
from git_helpers import commit_all, init_repo

from relreg.devices.update import Candidate, Channel, Payload, barriers_of
from relreg.registry.source import read_worktree
from relreg.registry.validate import validate_files
from relreg.registry.versions import VersionScheme, scheme_named
from relreg.site.jobs import ReleaseDates, SiteInputs, release_views

SEMVER = scheme_named("semver")

# --------------------------------------------------------------------------------------------
# Channels from short specs (pure tests of relreg.devices.update)


@dataclass(frozen=True)
class Spec:
    """A candidate in a table: version, rollout percent, gates and images."""

    version: str
    percent: float = 100
    min_version: str | None = None
    mpt: bool = False
    full: bool = True
    deltas: tuple[str, ...] = ()


def _payload(version: str, delta_from: str | None = None, hardware: str = "hw") -> Payload:
    name = f"{version}-from-{delta_from}.delta" if delta_from else f"{version}.bin"
    digest = hashlib.sha256(name.encode()).hexdigest()
    return Payload(hardware_version=hardware, software_type=None, filename=name, size=1000 + len(name),
                   build_id=digest[:40], sha256=digest, url=f"https://dl.example.test/{name}", delta_from=delta_from)


def candidate(spec: Spec, scheme: VersionScheme = SEMVER, index: int = 1) -> Candidate:
    return Candidate(
        version=spec.version, key=scheme.parse(spec.version).key, id=index, revision="",
        min_version=spec.min_version,
        min_key=scheme.parse(spec.min_version).key if spec.min_version else None,
        must_pass_through=spec.mpt, created_date="2025-01-01T00:00:00.000000+00:00",
        release_url=f"https://fw.example.test/api/v1/releases/{spec.version}.json", rollout_percent=spec.percent,
        full=_payload(spec.version) if spec.full else None,
        deltas=tuple(_payload(spec.version, source) for source in spec.deltas))


def channel(*specs: Spec | str, barriers: Sequence[str] = (), scheme: VersionScheme = SEMVER,
            cohort: str = "stable") -> Channel:
    """A channel of the given candidates; must-pass-through candidates are barriers too."""
    resolved = [Spec(s) if isinstance(s, str) else s for s in specs]
    resolved.sort(key=lambda s: scheme.parse(s.version).key)
    walls = set(barriers) | {s.version for s in resolved if s.mpt}
    versions, keys = barriers_of((v, scheme.parse(v).key) for v in walls)
    return Channel(cohort=cohort, hardware_version="hw", software_type=None,
                   candidates=tuple(candidate(s, scheme, i) for i, s in enumerate(resolved, start=1)),
                   barriers=versions, barrier_keys=keys)


# --------------------------------------------------------------------------------------------
# An oracle: the rules of the issue written the obvious way (membership first, then the target),
# without the offer-list shortcut relreg.devices.update takes. Tests compare the two.


def oracle_bucket(serial: str, cohort: str, version: str) -> int:
    return int(hashlib.sha256(f"{serial}\x00{cohort}\x00{version}".encode()).hexdigest()[:16], 16) % 10000


def oracle(ch: Channel, current: str, serial: str, scheme: VersionScheme = SEMVER) -> tuple[str, bool] | None:
    """(target version, is_delta) for one device, or None when it is up to date."""
    v = scheme.parse(current).key

    def member(c: Candidate) -> bool:
        return oracle_bucket(serial, ch.cohort, c.version) < round(c.rollout_percent * 100)

    walls = [scheme.parse(b).key for b in ch.barriers if scheme.parse(b).key > v]
    wall = min(walls) if walls else None
    reachable = []
    for c in ch.candidates:
        k = scheme.parse(c.version).key
        if k <= v or (wall is not None and k > wall) or not member(c):
            continue
        if c.min_version is not None and v < scheme.parse(c.min_version).key:
            continue
        delta = any(d.delta_from == current for d in c.deltas)
        if c.full is None and not delta:
            continue
        reachable.append((k, c.version, delta))
    if not reachable:
        return None
    _, version, delta = max(reachable)
    return version, delta


def random_channel(rng: random.Random, cohort: str = "c") -> tuple[Channel, list[str]]:
    """A random channel over a random version line; returns it and the whole version line."""
    line = {f"{rng.randint(1, 3)}.{rng.randint(0, 4)}.{rng.randint(0, 3)}" for _ in range(rng.randint(3, 12))}
    if rng.random() < 0.3:
        line.add(rng.choice(sorted(line)) + "-rc.1")  # a prerelease sorts before its release
    line = sorted(line, key=lambda t: SEMVER.parse(t).key)
    specs = []
    barriers = []
    for index, version in enumerate(line):
        if rng.random() < 0.1:
            barriers.append(version)  # a must-pass-through release the cohort does not deploy
        if rng.random() < 0.35:
            continue  # not deployed to this cohort
        lower = line[:index]
        specs.append(Spec(
            version=version,
            percent=rng.choice([100, 100, 100, 50, 25, 10.5, 0.01, 0, 99.99]),
            min_version=rng.choice(lower) if lower and rng.random() < 0.4 else None,
            mpt=rng.random() < 0.15,
            full=rng.random() < 0.93,
            deltas=tuple(sorted(set(rng.sample(lower, k=min(len(lower), rng.randint(0, 2)))))) if lower else (),
        ))
    return channel(*specs, barriers=barriers, cohort=cohort), line


# --------------------------------------------------------------------------------------------
# Registries for the device documents


def site_inputs(registry_dir: Path, site_url: str | None = None) -> SiteInputs:
    """SiteInputs for a registry folder, dated without git (release ids follow version order)."""
    result = validate_files(read_worktree(registry_dir))
    assert result.ok, [d.message for d in result.diagnostics]
    registry = result.registry
    assert registry is not None
    dates = {r.version: ReleaseDates(1_700_000_000 + 3600 * i, 1_700_000_000 + 3600 * i)
             for i, r in enumerate(registry.releases)}
    return SiteInputs(registry=registry, release_dates=dates, base_url=site_url,
                      notes_html={r.version: "" for r in registry.releases})


def planned_devices(registry_dir: Path, site_url: str | None = None) -> dict[str, bytes]:
    from relreg.site.device_documents import device_documents

    inputs = site_inputs(registry_dir, site_url)
    return device_documents(inputs, release_views(inputs))


def write_files(files: dict[str, bytes], root: Path) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def artifact_bytes(url: str) -> bytes:
    """Small, distinct, deterministic content for an artifact (1-4 KiB)."""
    seed = hashlib.sha256(url.encode()).digest()
    return (seed * 200)[: 1024 + seed[0] * 12]


def _yaml_string(value: str) -> str:
    return json.dumps(value)


@dataclass
class FleetRelease:
    version: str
    hardware: tuple[str, ...] = ("h1", "h2")
    min_version: str | None = None
    mpt: bool = False
    yanked: str | None = None
    deltas: tuple[str, ...] = ()  # versions deltas apply to (for every hardware the source also has)


# The fleet registry: every rule has something to do. Hardware h2 has no 1.5.0.
FLEET_RELEASES = (
    FleetRelease("1.0.0"),
    FleetRelease("1.1.0"),
    FleetRelease("1.2.0", yanked="Corrupts the schedule on first boot."),
    FleetRelease("1.3.0", mpt=True, deltas=("1.1.0",)),
    FleetRelease("1.4.0", min_version="1.3.0", deltas=("1.3.0",)),
    FleetRelease("1.5.0", hardware=("h1",), min_version="1.3.0"),
    FleetRelease("2.0.0", min_version="1.4.0", deltas=("1.4.0", "1.5.0")),
    FleetRelease("2.1.0", min_version="2.0.0", deltas=("2.0.0",)),
    FleetRelease("2.2.0-rc.1", min_version="2.0.0", deltas=("2.1.0",)),
)
FLEET_COHORTS = {
    "stable": [("1.1.0", 100), ("1.3.0", 100), ("1.4.0", 100), ("2.0.0", 100), ("2.1.0", 30)],
    "beta": [("1.3.0", 100), ("1.5.0", 100), ("2.0.0", 100), ("2.1.0", 100), ("2.2.0-rc.1", 50)],
    "frozen": [("1.1.0", 100), ("2.1.0", 100)],
    "paused": [("1.3.0", 100), ("1.4.0", 100), ("2.0.0", 0)],
}


def write_fleet_registry(target: Path, site_url: str, artifact_base_url: str, artifacts: Path) -> Path:
    """The fleet registry in `target`, its artifact files in `artifacts` (URLs relative to the base)."""
    (target / "releases").mkdir(parents=True)
    (target / "hardware").mkdir()
    (target / "cohorts").mkdir()
    (target / "registry.yaml").write_text(
        f"name: Fleet test\nsite_url: {site_url}\nartifact_base_url: {artifact_base_url}\n")
    for hardware in ("h1", "h2"):
        (target / "hardware" / f"{hardware}.yaml").write_text(f"name: {hardware}\n")
    by_version = {r.version: r for r in FLEET_RELEASES}
    for release in FLEET_RELEASES:
        lines = [f"version: {_yaml_string(release.version)}"]
        if release.min_version:
            lines.append(f"min_version: {_yaml_string(release.min_version)}")
        if release.mpt:
            lines.append("must_pass_through: true")
        if release.yanked:
            lines.append(f"yanked: {_yaml_string(release.yanked)}")
        lines.append("artifacts:")
        for hardware in release.hardware:
            images = [(f"{release.version}/{hardware}.bin", None)]
            images += [(f"{release.version}/{hardware}-from-{source}.delta", source)
                       for source in release.deltas if hardware in by_version[source].hardware]
            for url, source in images:
                content = artifact_bytes(url)
                (artifacts / url).parent.mkdir(parents=True, exist_ok=True)
                (artifacts / url).write_bytes(content)
                lines += [f"  - hardware_version: {hardware}"]
                if source:
                    lines += ["    type: delta", f"    delta_from: {_yaml_string(source)}"]
                lines += [f"    build_id: {_yaml_string(hashlib.sha1(url.encode()).hexdigest())}",
                          f"    url: {url}", f"    size: {len(content)}",
                          f"    sha256: {_yaml_string(hashlib.sha256(content).hexdigest())}"]
        (target / "releases" / f"{release.version}.yaml").write_text("\n".join(lines) + "\n")
    for slug, activations in FLEET_COHORTS.items():
        lines = [f"slug: {slug}", f"name: {slug.title()}", "hardware_versions: [h1, h2]", "releases:"]
        lines += [f"  - version: {_yaml_string(v)}\n    rollout_percent: {p}" for v, p in activations]
        (target / "cohorts" / f"{slug}.yaml").write_text("\n".join(lines) + "\n")
    return target


_ARTIFACT_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>url|size|sha256): (?P<value>.*)$")


def rehost_example_registry(target: Path, site_url: str, artifact_base_url: str, artifacts: Path) -> dict[str, bytes]:
    """Copy the example registry to `target` with its URLs pointing at a test origin, write a small
    real file for every artifact into `artifacts` and make each release's size and sha256 match it.
    Returns {artifact url (relative): content}."""
    shutil.copytree(EXAMPLE_REGISTRY, target)
    config = target / "registry.yaml"
    text = config.read_text()
    text = re.sub(r"(?m)^site_url: .*$", f"site_url: {site_url}", text)
    text = re.sub(r"(?m)^artifact_base_url: .*$", f"artifact_base_url: {artifact_base_url}", text)
    config.write_text(text)
    written: dict[str, bytes] = {}
    for release in sorted((target / "releases").glob("*.yaml")):
        out = []
        url = None
        for line in release.read_text().splitlines():
            match = _ARTIFACT_LINE.match(line)
            if match and match["key"] == "url":
                url = match["value"].strip().strip('"')
                assert not url.startswith("http"), "example artifacts are relative to the base URL"
                written[url] = artifact_bytes(url)
                (artifacts / url).parent.mkdir(parents=True, exist_ok=True)
                (artifacts / url).write_bytes(written[url])
            elif match and match["key"] == "size" and url:
                line = f"{match['indent']}size: {len(written[url])}"
            elif match and match["key"] == "sha256" and url:
                line = f'{match["indent"]}sha256: "{hashlib.sha256(written[url]).hexdigest()}"'
                url = None
            out.append(line)
        release.write_text("\n".join(out) + "\n")
    return written


def build_in_git(registry: Path, out: Path) -> None:
    """Commit the registry's folder as a new git repository and build it with the real CLI."""
    repo = registry.parent
    init_repo(repo)
    commit_all(repo, "registry", "2025-06-01T12:00:00+00:00")
    result = run_relreg("build", "--registry", registry, "--out", out)
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------------------------
# nginx as a real HTTP origin

NGINX = "/usr/sbin/nginx"


def nginx_or_skip() -> str:
    """The nginx binary; `make test` installs it (Debian's nginx-light). Waits briefly for an install
    in progress. A missing nginx is a failure, never a skip: the HTTP tests are the proof of the origin."""
    path = shutil.which("nginx") or NGINX
    for _ in range(60):
        if os.access(path, os.X_OK):
            return path
        time.sleep(1)
    pytest.fail(f"{path} is missing: install Debian's nginx-light (`make system-deps`; `make test` does it)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Nginx:
    port: int
    process: subprocess.Popen
    workdir: Path
    locations: dict[str, Path] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish requests, then exit
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def error_log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def nginx_config(workdir: Path, port: int, locations: dict[str, Path], server_body: str | None = None) -> str:
    """A self-contained nginx.conf: foreground, everything under workdir, JSON served as UTF-8 JSON.

    `server_body` replaces the per-prefix locations, e.g. with `root SITE; include SITE/nginx.conf;`.
    """
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read files under a 0700 tmp folder
    blocks = []
    for prefix, folder in sorted(locations.items(), key=lambda item: -len(item[0])):
        blocks.append(f"    location {prefix} {{\n      alias {folder}/;\n      try_files $uri =404;\n    }}\n")
    if server_body is not None:
        blocks = [server_body]
    temp = workdir / "temp"
    return (f"{user}daemon off;\nworker_processes 2;\npid {workdir}/nginx.pid;\nerror_log {workdir}/error.log warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "  types {\n    text/html html;\n    text/css css;\n    application/javascript js;\n"
            "    application/json json;\n    application/xml xml;\n    application/octet-stream bin delta;\n  }\n"
            "  default_type application/octet-stream;\n"
            "  charset utf-8;\n  charset_types application/json text/css application/javascript;\n"
            "  access_log off;\n  sendfile on;\n  etag on;\n  keepalive_requests 100000;\n"
            f"  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
            f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n"
            f"  server {{\n    listen 127.0.0.1:{port};\n    server_name localhost;\n"
            + "".join(blocks) +
            ("" if server_body is not None else "    location / { return 404; }\n") + "  }\n}\n")


def start_nginx(workdir: Path, locations: dict[str, Path], port: int, server_body: str | None = None) -> Nginx:
    """nginx in the foreground on 127.0.0.1:port, serving each URL prefix from its folder."""
    binary = nginx_or_skip()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "temp").mkdir(exist_ok=True)
    config = workdir / "nginx.conf"
    config.write_text(nginx_config(workdir, port, locations, server_body))
    process = subprocess.Popen([binary, "-p", str(workdir), "-c", str(config), "-e", str(workdir / "error.log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Nginx(port, process, workdir, locations)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"nginx exited with {process.returncode}: {stderr}{server.error_log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"nginx did not listen on port {port}: {server.error_log()}")


@dataclass
class HostedSite:
    """A registry built into a site and served by nginx with its artifact files."""

    nginx: Nginx
    site: Path
    registry: Path
    artifacts: Path

    @property
    def url(self) -> str:
        return self.nginx.url + "site/"

    @property
    def artifact_base_url(self) -> str:
        return self.nginx.url + "artifacts/"


def host_registry(workdir: Path, write_registry) -> Iterator[HostedSite]:
    """Write a registry with `write_registry(target, site_url, artifact_base_url, artifacts)`, build it
    from a git repository and serve it; yields the hosted site and stops nginx afterwards."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    artifacts = workdir / "artifacts"
    artifacts.mkdir(parents=True)
    registry = workdir / "repo" / "registry"
    registry.parent.mkdir(parents=True)
    write_registry(registry, base + "site/", base + "artifacts/", artifacts)
    site = workdir / "public"
    build_in_git(registry, site)
    server = start_nginx(workdir / "nginx", {"/site/": site, "/artifacts/": artifacts}, port)
    try:
        yield HostedSite(server, site, registry, artifacts)
    finally:
        server.stop()


def json_of(files: dict[str, bytes], path: str) -> Any:
    return json.loads(files[path])


# --------------------------------------------------------------------------------------------
# Large synthetic registries, built as model objects (no YAML, no git): for sizes and speed

SYNTH_HARDWARE = ("evt1", "dvt1", "dvt2", "pvt", "pvt-b")


def synth_version(index: int) -> str:
    return f"{index // 1000 + 1}.{index // 10 % 100}.{index % 10}"


def synthetic_inputs(releases: int, cohorts: int = 3, deployed: int = 6) -> SiteInputs:
    """`releases` releases with a full and a delta image for 5 hardware versions, a min_version gate
    every 100 releases and a must-pass-through release every 1,000; each cohort deploys `deployed`
    recent releases, the newest at 25 %."""
    from relreg.registry.model import Activation, Artifact, Cohort, HardwareVersion, Registry, RegistryConfig, Release

    def digest(*parts: object) -> str:
        return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()

    items = []
    for i in range(releases):
        version = synth_version(i)
        artifacts = []
        for hardware in SYNTH_HARDWARE:
            artifacts.append(Artifact(hardware, digest("b", i, hardware)[:40], f"{version}/{hardware}.bin",
                                      400_000 + i, digest("s", i, hardware)))
            if i:
                artifacts.append(Artifact(hardware, digest("d", i, hardware)[:40], f"{version}/{hardware}.delta",
                                          40_000 + i, digest("ds", i, hardware), type="delta",
                                          delta_from=synth_version(i - 1)))
        items.append(Release(version=version, parsed_version=SEMVER.parse(version), artifacts=tuple(artifacts),
                             source_path=f"registry/releases/{version}.yaml",
                             min_version=synth_version(i - i % 100) if i % 100 else None,
                             revision=digest("r", i)[:40], must_pass_through=i > 0 and i % 1000 == 0))
    groups = tuple(Cohort(slug=f"cohort-{c}", name=f"Cohort {c}", source_path=f"registry/cohorts/cohort-{c}.yaml",
                          hardware_versions=SYNTH_HARDWARE,
                          releases=tuple(Activation(synth_version(releases - 1 - k * 3 - c), 25.0 if k == 0 else 100.0)
                                         for k in range(deployed)))
                   for c in range(cohorts))
    registry = Registry(RegistryConfig("Synthetic", "https://fw.example.test/", "https://dl.example.test/fw/"),
                        SEMVER, tuple(items), tuple(HardwareVersion(h, f"registry/hardware/{h}.yaml")
                                                    for h in SYNTH_HARDWARE), groups)
    return SiteInputs(registry=registry,
                      release_dates={r.version: ReleaseDates(1_600_000_000 + 3600 * i, 1_600_000_000 + 3600 * i)
                                     for i, r in enumerate(items)},
                      notes_html={r.version: "" for r in items})
