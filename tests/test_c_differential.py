"""The C device client against the Python reference client, on registries hypothesis generates.

Each generated registry (releases with min_version, must_pass_through, deltas, yanks, software
types, releases without an image for some hardware, staged rollouts, holds per hardware version
(activations that name `hardware_versions`), in either version scheme) is built by the real
`relreg build`. Each channel's candidates are first checked against rule 1 worked out from the
spec (generated_registries.py: a held-back board does not list the held release). Then, for
every channel, every known version plus development builds the registry never saw (and versions
that are not versions at all), and a spread of serials, the C harness (`--batch`, one process,
AddressSanitizer and UBSan) and the reference client print the same bytes: the same JSON, or the
same error. The comparisons are counted; the run needs at least 10,000.

A second test compares version ordering itself, C against `relreg`'s schemes, on generated versions.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from c_client_helpers import c_answers, channels_of, known_versions, python_answers, report, run_c, run_python
from conftest import run_relreg
from generated_registries import HARDWARE, Deployment, GenRegistry, GenRelease, check_candidates, write_registry
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
        for hardware in HARDWARE:  # some releases have no image for h1 or for h2, none for neither
            if hardware == "h1" and draw(st.integers(0, 9)) < 1 or hardware == "h2" and images \
                    and draw(st.integers(0, 9)) < 3:
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
    by_version = {r.version: r for r in releases}
    cohorts = {}
    for slug in ("alpha", "beta", "prod")[:draw(st.integers(1, 3))]:
        hardware = draw(st.sampled_from([None, ["h1"], ["h1", "h2"], ["h2", "h1"]]))
        # relreg validate: a cohort deploys only releases with an image for some of its hardware
        fits = [v for v in live if any(h in by_version[v].images for h in hardware or HARDWARE)]
        chosen = draw(st.lists(st.sampled_from(fits), unique=True, min_size=min(2, len(fits)),
                               max_size=len(fits))) if fits else []
        deployments: list[Deployment] = []
        for version in chosen:
            # A hold names some of the cohort's hardware, each with an image of the release (relreg validate).
            eligible = [h for h in (hardware or HARDWARE) if h in by_version[version].images]
            names = None
            kind = draw(st.integers(0, 9))
            if len(eligible) > 1 and kind < 7:
                names = [draw(st.sampled_from(eligible))]  # held back on the other board
            elif eligible and kind == 9:
                names = eligible  # names every board: no hold
            deployments.append((version, draw(st.sampled_from(PERCENTS)), names))
        cohorts[slug] = (hardware, deployments)
    return GenRegistry(scheme, releases, cohorts, _dev_versions(draw, scheme, line), draw(st.integers(0, 2**32)))



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



def _moved_rollouts(site: Path, into: Path, rng: random.Random) -> Path:
    """A copy of `site` whose rollouts documents list their staged releases with other thresholds, some not
    at all (what a device reads when the rollouts document comes from another build)."""
    import json
    import shutil

    copy = into / "site"
    shutil.copytree(site, copy)
    for path in copy.glob("api/v1/devices/*/*/*/rollouts.json"):
        document = json.loads(path.read_bytes())
        entries = [{**entry, "rollout_threshold": rng.choice([0, 1, 2500, 5000, 9999, 10000])}
                   for entry in document["data"]["rollouts"] if rng.random() < 0.8]
        document["data"]["rollouts"] = entries
        path.write_text(json.dumps(document))
    return copy


def test_c_and_python_clients_agree_on_generated_registries(tmp_path_factory: pytest.TempPathFactory) -> None:
    totals = {"comparisons": 0, "updates": 0, "errors": 0, "registries": 0, "natural": 0, "held": 0,
              "held_registries": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(spec=registries())
    def compare(spec: GenRegistry) -> None:
        site = build(spec, tmp_path_factory.mktemp("gen"))
        check_candidates(spec, site)
        queries = queries_for(spec, site)
        expected = python_answers(site, queries)
        got = c_answers(site, queries)
        for query, want, have in zip(queries, expected, got):
            assert have == want, f"C and Python disagree for {query}:\nC:\n{have}\nPython:\n{want}"
        totals["comparisons"] += len(queries)
        # The same answers read with other rollouts documents (another build's, as a cache between two
        # builds may serve): entries dropped, thresholds moved anywhere in 0..10000. Both clients weigh the
        # staged offers alike, an unlisted one as 0 %.
        moved = _moved_rollouts(site, tmp_path_factory.mktemp("moved"), random.Random(spec.serial_seed))
        known = {channel: set(known_versions(site, channel)) for channel in channels_of(site)}
        sample = [q for q in queries if q[3] in known.get(q[:3], ())][::3]
        for query, want, have in zip(sample, python_answers(moved, sample), c_answers(moved, sample)):
            assert have == want, f"C and Python disagree (moved rollouts) for {query}:\nC:\n{have}\nPython:\n{want}"
        totals["comparisons"] += len(sample)
        totals["updates"] += sum('"artifacts"' in text for text in expected)
        totals["errors"] += sum(text.startswith("Error:") for text in expected)
        totals["registries"] += 1
        totals["natural"] += spec.scheme == "natural"
        held = sum(bool(c in spec.cohorts and h in HARDWARE and spec.held_back(c, h)) for c, h, *_ in queries)
        totals["held"] += held
        totals["held_registries"] += held > 0

    compare()
    line = (f"C/Python differential: {totals['comparisons']} comparisons on {totals['registries']} generated "
            f"registries ({totals['natural']} natural, {totals['held_registries']} with holds per hardware), "
            f"{totals['updates']} offers, {totals['errors']} errors, {totals['held']} on held-back hardware")
    report("differential.txt", line)
    print(line)
    assert totals["comparisons"] >= MIN_COMPARISONS, line
    # Both kinds of answer were exercised (holds leave fewer offers: 1,100 to 2,100 a run here, 2,400 without).
    assert totals["updates"] > 500 and totals["errors"] > 100, line
    assert totals["held"] > 300, line  # devices of held-back hardware were asked about


def test_a_version_with_a_trailing_newline_is_refused_by_both_clients(tmp_path: Path) -> None:
    """Found by comparing the clients: Python's natural scheme matched with `$`, which also matches before
    a final newline, so `relreg device check --current-version $'1.2\\n'` decided for "1.2" where the C
    client refuses the version. Both refuse it now, in the same words."""
    spec = GenRegistry("natural", [GenRelease("1.0", {"h1": [None]}), GenRelease("1.2", {"h1": [None]})],
                       {"alpha": (None, [("1.0", 100, None), ("1.2", 100, None)])}, [], 0)
    site = build(spec, tmp_path)
    for version in ("1.2\n", "1.1\n", "1.2"):
        arguments = ["--site", site, "--cohort", "alpha", "--hardware-version", "h1", "--current-version", version,
                     "--serial", "SN-1"]
        python, c = run_python(*arguments), run_c(*arguments)
        assert (c.returncode, c.stdout, c.stderr) == (python.returncode, python.stdout, python.stderr), version
        assert python.returncode == (0 if version == "1.2" else 1), python.stderr
        if version != "1.2":
            assert "is not a natural version" in python.stderr


# A served answer or rollouts document changed on its way (an unsigned site: a buggy proxy, a hand
# edit): (document, pattern, replacement). Found by a new-user trial, where the reference client took
# values the C client refuses, and the two picked different releases for an escaped version.
TAMPERED = {
    "file_size -1": ("answer", r'"file_size":\d+', '"file_size":-1'),
    "file_size 2^64": ("answer", r'"file_size":\d+', '"file_size":18446744073709551616'),
    "file_size 1e3": ("answer", r'"file_size":\d+', '"file_size":1e3'),
    "file_size decimal": ("answer", r'"file_size":(\d+)', r'"file_size":\1.0'),
    "sha256 upper case": ("answer", r'"sha256":"([0-9a-f]{64})"', lambda m: f'"sha256":"{m[1].upper()}"'),
    "sha256 short": ("answer", r'"sha256":"([0-9a-f]{4})[0-9a-f]{60}"', r'"sha256":"\1"'),
    "threshold -1": ("rollouts", r'"rollout_threshold":\d+', '"rollout_threshold":-1'),
    "threshold decimal": ("rollouts", r'"rollout_threshold":(\d+)', r'"rollout_threshold":\1.5'),
    "threshold 9e99": ("rollouts", r'"rollout_threshold":\d+', '"rollout_threshold":9e99'),
    "threshold 20000": ("rollouts", r'"rollout_threshold":\d+', '"rollout_threshold":20000'),
    "byte-order mark": ("answer", r'\A', "\ufeff"),
    "escaped version": ("answer", r'"version":"1\.2\.0"', r'"version":"1.2.\\u0030"'),
    "version not a string": ("answer", r'"version":"1\.2\.0"', '"version":120'),
    # An offer not above the device's 1.0.0 (relreg never writes one: rule 2): refused by both, for every device.
    "downgrade offer": ("answer", r'"version":"1\.1\.0"', '"version":"0.9.0"'),
    "reinstall offer": ("answer", r'"version":"1\.1\.0"', '"version":"1.0.0"'),
    "reinstall offer with build metadata": ("answer", r'"version":"1\.1\.0"', '"version":"1.0.0+b7"'),
    "prerelease of the current version": ("answer", r'"version":"1\.1\.0"', '"version":"1.0.0-rc.1"'),
    "downgrade as the staged offer": ("answer", r'"version":"1\.2\.0"', '"version":"0.9.0"'),
    "version scheme removed": ("answer", r'"version_scheme":"semver",', ''),
    "version scheme unknown": ("answer", r'"version_scheme":"semver"', '"version_scheme":"calver"'),
    "version scheme natural": ("answer", r'"version_scheme":"semver"', '"version_scheme":"natural"'),
}
# Refused for every device, whatever its serial; the downgrades with the same words by both clients.
REFUSED_BY_ALL = {"downgrade offer", "reinstall offer", "reinstall offer with build metadata",
                  "prerelease of the current version", "downgrade as the staged offer", "version scheme removed",
                  "version scheme unknown"}


@pytest.mark.parametrize("name", sorted(TAMPERED))
def test_both_clients_take_or_refuse_a_tampered_document_alike(name: str, tmp_path: Path) -> None:
    import re

    spec = GenRegistry("semver", [GenRelease(v, {"h1": [None]}) for v in ("1.0.0", "1.1.0", "1.2.0")],
                       {"alpha": (None, [("1.1.0", 100, None), ("1.2.0", 50, None)])}, [], 0)
    site = build(spec, tmp_path)
    channel = site / "api" / "v1" / "devices" / "alpha" / "h1" / "_"
    document, pattern, replacement = TAMPERED[name]
    path = channel / ("from/1.0.0.json" if document == "answer" else "rollouts.json")
    original = path.read_text(encoding="utf-8")
    changed = re.sub(pattern, replacement, original, count=1)
    assert changed != original, name
    path.write_text(changed, encoding="utf-8")
    outcomes = set()
    for serial in [f"SN-{n}" for n in range(12)]:
        arguments = ["--site", site, "--cohort", "alpha", "--hardware-version", "h1", "--current-version", "1.0.0",
                     "--serial", serial]
        python, c = run_python(*arguments), run_c(*arguments)
        assert (c.returncode, c.stdout) == (python.returncode, python.stdout), (serial, python.stderr, c.stderr)
        assert "Traceback" not in python.stderr
        outcomes.add(python.returncode)
        if "offer" in name or "current version" in name:
            assert python.stderr == c.stderr, (python.stderr, c.stderr)
            assert "which is not above the current version 1.0.0: refused (downgrade-offer)" in c.stderr
    if name in REFUSED_BY_ALL:
        assert outcomes == {1}, "refused by both for every device"
    elif name not in ("escaped version", "threshold 20000", "version scheme natural"):  # read as the same values
        assert {1} <= outcomes, "refused by both for the devices that take the tampered offer"


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
