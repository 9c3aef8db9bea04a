"""The C device client against the Python reference client, on registries hypothesis generates.

Each generated registry (releases with min_version, must_pass_through, deltas, yanks, software
types, staged rollouts, in either version scheme) is built by the real `relreg build`. Then, for
every channel, every known version plus development builds the registry never saw (and versions
that are not versions at all), and a spread of serials, the C harness (`--batch`, one process,
AddressSanitizer and UBSan) and the reference client print the same bytes: the same JSON, or the
same error. The comparisons are counted; the run needs at least 10,000.

A second test compares version ordering itself, C against `relreg`'s schemes, on generated versions.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from c_client_helpers import (c_answers, channels_of, known_versions, python_answers, report, run_c, run_python)
from conftest import run_relreg
from git_helpers import commit_all, init_repo

MIN_COMPARISONS = 10_000
EXAMPLES = 12
PER_EXAMPLE = math.ceil(MIN_COMPARISONS / EXAMPLES) + 20
PERCENTS = (100, 100, 100, 50, 25, 10.5, 0, 99.99, 0.01, 1)
SOFTWARE_TYPES = (None, "main", "boot")


def _scheme(name: str):
    from relreg.registry.versions import scheme_named

    return scheme_named(name)


# --- generated registries -------------------------------------------------------------------------

@dataclass
class GenRelease:
    version: str
    images: dict[str, list[str | None]]  # hardware -> software types with a full image
    min_version: str | None = None
    mpt: bool = False
    yanked: bool = False
    deltas: list[tuple[str, str | None, str]] = field(default_factory=list)  # (hardware, software, from)


@dataclass
class GenRegistry:
    scheme: str
    releases: list[GenRelease]
    cohorts: dict[str, tuple[list[str] | None, list[tuple[str, float]]]]
    dev_versions: list[str]
    serial_seed: int


def _semver_text(draw) -> str:
    core = f"{draw(st.integers(0, 2))}.{draw(st.integers(0, 3))}.{draw(st.integers(0, 2))}"
    pre = draw(st.sampled_from(["", "", "", "-rc.1", "-rc.2", "-rc.10", "-beta", "-alpha.1", "-1", "-0a"]))
    build = draw(st.sampled_from(["", "", "", "", "+b7", "+exp.sha.5114f85"]))
    return core + pre + build


def _natural_text(draw) -> str:
    parts = [str(draw(st.integers(0, 12))) for _ in range(draw(st.integers(1, 4)))]
    if draw(st.booleans()) and len(parts) > 1:
        parts[1] = parts[1].zfill(2)  # 2022.01.3
    suffix = draw(st.sampled_from(["", "", "", "rc1", "-rc.2", ".beta3", "b", "RC10", "-dev"]))
    return ".".join(parts) + suffix


def _dev_versions(draw, scheme: str, line: list[str]) -> list[str]:
    picks = [draw(st.sampled_from(line)) for _ in range(3)]
    if scheme == "semver":
        base = [p.split("+")[0].split("-")[0] for p in picks]
        dev = [f"{base[0]}-dev.{draw(st.integers(1, 12))}", f"{base[1]}+local.1", f"{base[2]}-zz", f"{picks[0]}.1",
               f"{base[1]}-0", "0.0.1", "99.0.0", draw(st.sampled_from(["1.2", "v1.0.0", "1.0.0-01", "00.1.0"]))]
    else:
        dev = [f"{picks[0]}dev{draw(st.integers(1, 9))}", f"{picks[1]}.0", f"{picks[2]}_rc1", f"{picks[0]}.1",
               "0", "999.1", "7.0.0.0.1", draw(st.sampled_from(["1..2", "x1", "1.2.", "1.2-"]))]
    return dev


@st.composite
def semver_texts(draw) -> str:
    return _semver_text(draw)


@st.composite
def natural_texts(draw) -> str:
    return _natural_text(draw)


@st.composite
def registries(draw) -> GenRegistry:
    scheme = draw(st.sampled_from(["semver", "natural"]))
    parse = _scheme(scheme).parse
    texts = draw(st.lists(semver_texts() if scheme == "semver" else natural_texts(), min_size=3, max_size=8))
    line: list[str] = []
    for text in sorted(texts, key=lambda t: parse(t).key):
        if not line or parse(line[-1]).key != parse(text).key:
            line.append(text)
    typed = draw(st.booleans())
    releases: list[GenRelease] = []
    for index, version in enumerate(line):
        images: dict[str, list[str | None]] = {}
        for hardware in ("h1", "h2"):
            if hardware == "h2" and not draw(st.booleans()):
                continue
            kinds = draw(st.lists(st.sampled_from(SOFTWARE_TYPES), min_size=1, max_size=3, unique=True)) \
                if typed else [None]
            images[hardware] = kinds
        lower = line[:index + 1]
        release = GenRelease(
            version=version, images=images,
            min_version=draw(st.sampled_from(lower)) if draw(st.integers(0, 9)) < 3 else None,
            mpt=draw(st.integers(0, 9)) < 2, yanked=draw(st.integers(0, 9)) < 1)
        for source in releases:
            for hardware, kinds in images.items():
                for kind in kinds:
                    if kind in source.images.get(hardware, ()) and draw(st.integers(0, 9)) < 3:
                        release.deltas.append((hardware, kind, source.version))
        releases.append(release)
    live = [r.version for r in releases if not r.yanked]
    cohorts = {}
    for slug in ("alpha", "beta", "prod")[:draw(st.integers(1, 3))]:
        hardware = draw(st.sampled_from([None, ["h1"], ["h1", "h2"]]))
        chosen = draw(st.lists(st.sampled_from(live), unique=True, min_size=min(2, len(live)),
                               max_size=len(live))) if live else []
        cohorts[slug] = (hardware, [(v, draw(st.sampled_from(PERCENTS))) for v in chosen])
    return GenRegistry(scheme, releases, cohorts, _dev_versions(draw, scheme, line), draw(st.integers(0, 2**32)))


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_registry(spec: GenRegistry, target: Path) -> None:
    for folder in ("releases", "hardware", "cohorts"):
        (target / folder).mkdir(parents=True)
    (target / "registry.yaml").write_text(
        "name: Generated\nsite_url: https://fw.example.test/\nartifact_base_url: https://dl.example.test/fw/\n"
        f"version_scheme: {spec.scheme}\n")
    for hardware in ("h1", "h2"):
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
        lines += [f"  - version: {_q(v)}\n    rollout_percent: {p}" for v, p in activations]
        (target / "cohorts" / f"{slug}.yaml").write_text("\n".join(lines) + "\n")


def build(spec: GenRegistry, workdir: Path) -> Path:
    repo = init_repo(workdir / "repo")
    write_registry(spec, repo / "registry")
    commit_all(repo, "generated", "2025-06-01T12:00:00+00:00")
    result = run_relreg("build", "--registry", repo / "registry", "--out", workdir / "site")
    assert result.exit_code == 0, result.output
    return workdir / "site"


def queries_for(spec: GenRegistry, site: Path) -> list[tuple]:
    channels = channels_of(site)
    assert channels, "every generated registry has channels"
    rng = random.Random(spec.serial_seed)
    per_channel = [(ch, known_versions(site, ch) + spec.dev_versions) for ch in channels]
    cells = sum(len(versions) for _, versions in per_channel)
    serials = [f"SN-{rng.randrange(10**6):06d}" for _ in range(max(3, math.ceil(PER_EXAMPLE / cells)))]
    queries = [(c, h, s, v, n) for (c, h, s), versions in per_channel for v in versions for n in serials]
    # channels the site does not have: both clients must say so in the same words
    queries += [("nobody", "h1", None, "1.0.0", "SN-1"), (channels[0][0], "h9", "main", "1.0.0", "SN-1")]
    return queries


def test_c_and_python_clients_agree_on_generated_registries(tmp_path_factory: pytest.TempPathFactory) -> None:
    totals = {"comparisons": 0, "updates": 0, "errors": 0, "registries": 0, "natural": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(spec=registries())
    def compare(spec: GenRegistry) -> None:
        site = build(spec, tmp_path_factory.mktemp("gen"))
        queries = queries_for(spec, site)
        expected = python_answers(site, queries)
        got = c_answers(site, queries)
        for query, want, have in zip(queries, expected, got):
            assert have == want, f"C and Python disagree for {query}:\nC:\n{have}\nPython:\n{want}"
        totals["comparisons"] += len(queries)
        totals["updates"] += sum('"artifacts"' in text for text in expected)
        totals["errors"] += sum(text.startswith("Error:") for text in expected)
        totals["registries"] += 1
        totals["natural"] += spec.scheme == "natural"

    compare()
    line = (f"C/Python differential: {totals['comparisons']} comparisons on {totals['registries']} generated "
            f"registries ({totals['natural']} natural), {totals['updates']} offers, {totals['errors']} errors")
    report("differential.txt", line)
    print(line)
    assert totals["comparisons"] >= MIN_COMPARISONS, line
    assert totals["updates"] > 1500 and totals["errors"] > 100, line  # both kinds of answer were exercised


def test_a_version_with_a_trailing_newline_is_refused_by_both_clients(tmp_path: Path) -> None:
    """Found by comparing the clients: Python's natural scheme matched with `$`, which also matches before
    a final newline, so `relreg device check --current-version $'1.2\\n'` decided for "1.2" where the C
    client refuses the version. Both refuse it now, in the same words."""
    spec = GenRegistry("natural", [GenRelease("1.0", {"h1": [None]}), GenRelease("1.2", {"h1": [None]})],
                       {"alpha": (None, [("1.0", 100), ("1.2", 100)])}, [], 0)
    site = build(spec, tmp_path)
    for version in ("1.2\n", "1.1\n", "1.2"):
        arguments = ["--site", site, "--cohort", "alpha", "--hardware-version", "h1", "--current-version", version,
                     "--serial", "SN-1"]
        python, c = run_python(*arguments), run_c(*arguments)
        assert (c.returncode, c.stdout, c.stderr) == (python.returncode, python.stdout, python.stderr), version
        assert python.returncode == (0 if version == "1.2" else 1), python.stderr
        if version != "1.2":
            assert "is not a natural version" in python.stderr


# --- version ordering ------------------------------------------------------------------------------

VERSION_TEXT = st.one_of(
    semver_texts(),
    natural_texts(),
    st.text(alphabet="0123456789.-+abrcRC_~", min_size=1, max_size=12),
)


@settings(max_examples=25, deadline=None, database=None)
@given(pairs=st.lists(st.tuples(VERSION_TEXT, VERSION_TEXT), min_size=20, max_size=60))
def test_version_order_is_the_python_order(pairs: list[tuple[str, str]]) -> None:
    """`--compare-versions`: the C order, or "invalid", for each pair, against relreg's schemes."""
    from relreg.registry.versions import VersionError

    for scheme in ("semver", "natural"):
        parse = _scheme(scheme).parse
        expected = []
        for a, b in pairs:
            try:
                x, y = parse(a).key, parse(b).key
            except VersionError:
                expected.append("invalid")
                continue
            expected.append(str((x > y) - (x < y)))
        result = run_c("--compare-versions", scheme, stdin="".join(f"{a}\t{b}\n" for a, b in pairs))
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == expected, list(zip(pairs, result.stdout.splitlines(), expected))
