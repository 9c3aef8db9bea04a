"""The update planner (/update/) in Debian's Chromium: its decision in the browser equals relreg.devices.update's
on thousands of generated cases, on the channels of generated registries with holds per hardware version too,
and the page shows the path devices take, hop by hop, with the state in the URL (on a held-back board too).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
from c_client_helpers import channels_of, known_versions
from conftest import EXAMPLE_REGISTRY
from device_helpers import SEMVER, Spec, build_in_git, channel, planned_devices, random_channel, write_files
from generated_registries import HARDWARE, GenRegistry, GenRelease, write_registry
from browser_helpers import served_example_site
from site_helpers import serve

from relreg.devices.client import DeviceClient
from relreg.devices.update import DeviceIdentity, answer, bucket
from relreg.registry.versions import VersionError, scheme_named

pytestmark = pytest.mark.slow

NATURAL = scheme_named("natural")
BATCH = 400  # cases per page evaluation


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    with served_example_site(tmp_path_factory.mktemp("planner")) as served:
        yield served


@pytest.fixture(scope="module")
def page(browser: Any, example: tuple[Path, str]) -> Iterator[Any]:
    """The planner page, loaded once; its script exposes the decision as window.relregPlanner."""
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    # A 404 for from/<version>.json is how an unknown version shows (then candidates.json decides), as for devices.
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning")
            and "status of 404" not in m.text else None)
    page.goto(example[1] + "update/index.html")
    page.wait_for_function("() => window.relregPlanner !== undefined")
    yield page
    context.close()
    assert problems == []


def _natural_channel(rng: random.Random) -> tuple[Any, list[str]]:
    """A random channel over natural versions (numbers of any length, suffixes, trailing .0 parts)."""
    line = {".".join(str(rng.randint(0, 12)) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(3, 10))}
    line |= {rng.choice(sorted(line)) + rng.choice(["rc1", "-beta2", ".alpha", "b10"]) for _ in range(2)}
    by_key: dict[tuple, str] = {}
    for version in line:
        by_key.setdefault(NATURAL.parse(version).key, version)  # "1.2" and "1.2.0" are the same version
    ordered = [by_key[key] for key in sorted(by_key)]
    specs, barriers = [], []
    for index, version in enumerate(ordered):
        if rng.random() < 0.1:
            barriers.append(version)
        if rng.random() < 0.3:
            continue
        lower = ordered[:index]
        specs.append(Spec(version=version, percent=rng.choice([100, 100, 50, 25, 0.01, 0]),
                          min_version=rng.choice(lower) if lower and rng.random() < 0.3 else None,
                          mpt=rng.random() < 0.15, full=rng.random() < 0.9,
                          deltas=tuple(sorted(set(rng.sample(lower, k=min(len(lower), rng.randint(0, 2))))))))
    return channel(*specs, barriers=barriers, scheme=NATURAL, cohort=rng.choice(["stable", "beta"])), ordered


def _expected(ch: Any, scheme: Any, current: str, serial: str) -> Any:
    try:
        parsed = scheme.parse(current)
    except VersionError:
        return "invalid version"
    return answer(ch, parsed, serial)


def _cases(seed: int) -> list[dict[str, Any]]:
    """Channels as their candidates documents, each with (current version, serial, expected answer) cases."""
    rng = random.Random(seed)
    groups = []
    for number in range(420):
        natural = number % 3 == 2
        if natural:
            ch, line = _natural_channel(rng)
            scheme = NATURAL
            currents = line + [f"{rng.choice(line)}.dev{rng.randint(1, 9)}", "1.2", "0", "v1.0", "1..2"]
        else:
            ch, line = random_channel(rng, cohort=rng.choice(["stable", "beta", "Ünïcode"]))
            scheme = SEMVER
            currents = line + [f"{rng.choice(line)}-dev.{rng.randint(1, 9)}", f"{rng.choice(line)}+local",
                               "0.0.1", "9.9.9", "1.2", "01.2.3", "1.0.0-", ""]
        serials = [f"SN-{rng.randint(0, 99999):05d}" for _ in range(2)] + ["séria-✓"]
        cases = []
        for current in rng.sample(currents, k=min(len(currents), 6)):
            for serial in rng.sample(serials, k=2):
                cases.append({"current": current, "serial": serial,
                              "expected": _expected(ch, scheme, current, serial)})
        groups.append({"document": ch.document(scheme.name), "cases": cases})
    return groups


DECIDE_BATCH = """async (groups) => {
  const results = [];
  for (const group of groups) {
    for (const item of group.cases) {
      try {
        results.push(await window.relregPlanner.decide(group.document, item.current, item.serial));
      } catch (error) {
        results.push(error instanceof window.relregPlanner.VersionError ? "invalid version" : "error: " + error);
      }
    }
  }
  return results;
}"""


@pytest.mark.parametrize("seed", [1, 2])
def test_the_browser_decides_like_relreg_devices_update(page: Any, seed: int) -> None:
    """Over 2,000 cases per seed (semver and natural channels, gates, barriers the cohort lacks, deltas,
    staged and paused rollouts, dev builds, unknown and invalid versions): the device response the
    planner computes from candidates.json in Chromium equals the Python decision, field for field."""
    groups = _cases(seed)
    total = sum(len(g["cases"]) for g in groups)
    assert total >= 2000
    got = _evaluate(page, groups)
    expected = [case["expected"] for group in groups for case in group["cases"]]
    assert len(got) == total
    mismatches = [(i, e, g) for i, (e, g) in enumerate(zip(expected, got)) if e != g]
    assert mismatches == []
    kinds = {("update" if isinstance(e, dict) and "version" in e else
              e["reason"] if isinstance(e, dict) else e) for e in expected}
    # The cases reach every kind of answer, so the comparison covers every branch of the rules.
    assert kinds >= {"update", "latest", "outside_rollout", "blocked", "invalid version"}
    assert {e["reason"] for e in expected if isinstance(e, dict) and "version" in e} == \
        {"latest", "outside_rollout", "min_version", "must_pass_through"}


def _held_spec(rng: random.Random, scheme: Any) -> GenRegistry:
    """A registry whose cohorts hold releases back on some hardware, and whose releases lack an image for
    some hardware; with gates, required steps, deltas, yanks and staged rollouts."""
    if scheme is NATURAL:
        texts = {".".join(str(rng.randint(0, 9)) for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(3, 9))}
    else:
        texts = {f"{rng.randint(1, 3)}.{rng.randint(0, 4)}.{rng.randint(0, 3)}" for _ in range(rng.randint(3, 9))}
    by_key: dict[tuple, str] = {}
    for text in sorted(texts):  # sorted: the same spelling of equal versions ("1.2", "1.2.0") in every run
        by_key.setdefault(scheme.parse(text).key, text)
    line = [by_key[key] for key in sorted(by_key)]
    releases: list[GenRelease] = []
    for index, version in enumerate(line):
        images: dict[str, list[str | None]] = {h: [None] for h in HARDWARE if rng.random() < 0.75} or {"h1": [None]}
        release = GenRelease(version, images, min_version=rng.choice(line[:index]) if index and rng.random() < 0.25
                             else None, mpt=rng.random() < 0.15, yanked=rng.random() < 0.08)
        release.deltas = [(h, None, r.version) for r in releases for h in images
                          if h in r.images and rng.random() < 0.2]
        releases.append(release)
    live = [r for r in releases if not r.yanked]
    cohorts = {}
    for slug in ("stable", "beta"):
        hardware = rng.choice([None, ["h1", "h2"], ["h2"]])
        deployments = []
        fits = [r for r in live if any(h in r.images for h in hardware or HARDWARE)]  # what relreg validate allows
        for release in rng.sample(fits, k=rng.randint(min(1, len(fits)), len(fits))):
            eligible = [h for h in (hardware or HARDWARE) if h in release.images]
            names = rng.sample(eligible, k=rng.randint(1, len(eligible))) if eligible and rng.random() < 0.5 else None
            deployments.append((release.version, rng.choice([100, 100, 100, 50, 25, 0.01, 0]), names))
        cohorts[slug] = (hardware, deployments)
    dev = [f"{rng.choice(line)}.dev{rng.randint(1, 9)}", "0"] if scheme is NATURAL else \
        [f"{rng.choice(line)}-dev.{rng.randint(1, 9)}", f"{rng.choice(line)}+local", "0.0.1"]
    return GenRegistry(scheme.name, releases, cohorts, dev, rng.randrange(2**32))


def _held_cases(root: Path, seed: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Channels of generated registries with holds (candidates.json as relreg builds it), each with cases whose
    expected answer is the reference client's on the same files: the precomputed answer for known versions."""
    rng = random.Random(seed)
    groups, counts = [], {"held": 0, "on_held": 0}
    for number in range(40):
        scheme = NATURAL if number % 3 == 2 else SEMVER
        spec = _held_spec(rng, scheme)
        write_registry(spec, root / f"registry-{number}")
        site = write_files(planned_devices(root / f"registry-{number}"), root / f"site-{number}")
        with DeviceClient(str(site), site_url="https://fw.example.test/") as client:  # write_registry's
            for cohort, hardware, software in channels_of(site):
                held = spec.held_back(cohort, hardware)
                cases = []
                for current in known_versions(site, (cohort, hardware, software)) + spec.dev_versions:
                    for serial in (f"SN-{rng.randint(0, 99999):05d}", "séria-✓"):
                        expected = client.check(DeviceIdentity(cohort, hardware, current, serial, software)).document
                        cases.append({"current": current, "serial": serial, "expected": expected})
                        counts["held"] += bool(held)
                        counts["on_held"] += current in held
                        # Rule 1 on its own: a board never gets a release held back on it, nor a downgrade.
                        if "version" in expected:
                            assert expected["version"] not in held
                            assert scheme.parse(expected["version"]).key > scheme.parse(current).key
                document = json.loads((site / "api/v1/devices" / cohort / hardware / (software or "_")
                                       / "candidates.json").read_bytes())["data"]
                groups.append({"document": document, "cases": cases})
    return groups, counts


def _evaluate(page: Any, groups: list[dict[str, Any]]) -> list[Any]:
    """The planner's answers for every case of the groups, BATCH cases per page evaluation."""
    got: list[Any] = []
    batch: list[dict[str, Any]] = []
    for group in groups:
        batch.append({"document": group["document"], "cases": group["cases"]})
        if sum(len(g["cases"]) for g in batch) >= BATCH:
            got += page.evaluate(DECIDE_BATCH, batch)
            batch = []
    if batch:
        got += page.evaluate(DECIDE_BATCH, batch)
    return got


def test_the_browser_decides_like_relreg_on_boards_held_back(page: Any, tmp_path: Path) -> None:
    """Channels built by relreg from registries with holds per hardware version and releases without an image
    for some hardware: the planner's local decision from candidates.json equals the reference client's answer
    (the answer precomputed by relreg for every known version, the local decision for the others)."""
    groups, counts = _held_cases(tmp_path, 3)
    expected = [case["expected"] for group in groups for case in group["cases"]]
    got = _evaluate(page, groups)
    assert len(got) == len(expected) >= 1000
    mismatches = [(i, e, g) for i, (e, g) in enumerate(zip(expected, got)) if e != g]
    assert mismatches == []
    assert counts["held"] >= 300 and counts["on_held"] >= 20, counts  # held-back boards, some on the held release
    assert {e["reason"] for e in expected} >= {"latest", "outside_rollout", "blocked", "min_version"}


ANSWER_BATCH = """async (cases) => {
  const p = window.relregPlanner;
  const results = [];
  for (const c of cases) {
    results.push(await p.choose(p.planFromAnswer(c.answer, c.rollouts), c.serial, c.answer.cohort, c.answer.current_version));
  }
  return results;
}"""


@pytest.mark.parametrize("moved", [False, True])
def test_the_browser_reads_answers_and_rollouts_like_the_reference_client(page: Any, tmp_path: Path,
                                                                          moved: bool) -> None:
    """Every answer of the example registry, read with its channel's rollouts.json (as built, or as another build
    may have it: entries dropped, thresholds anywhere in 0..10000): the planner's choice equals the reference
    client's, a staged offer the rollouts do not list counting as 0 %."""
    files = planned_devices(EXAMPLE_REGISTRY)
    rng = random.Random(5)
    if moved:
        for path in [p for p in files if p.endswith("/rollouts.json")]:
            document = json.loads(files[path])
            document["data"]["rollouts"] = [{**e, "rollout_threshold": rng.choice([0, 1, 2500, 9999, 10000])}
                                            for e in document["data"]["rollouts"] if rng.random() < 0.7]
            files[path] = json.dumps(document).encode()
    site = write_files(files, tmp_path / "site")
    cases, expected = [], []
    with DeviceClient(str(site), site_url="https://firmware.aurora.example/") as client:
        for path in sorted(p for p in files if "/from/" in p):
            answer = json.loads(files[path])["data"]
            rollouts = json.loads(files[path.split("/from/")[0] + "/rollouts.json"])["data"]
            for serial in [f"SN-{rng.randint(0, 99999):05d}" for _ in range(12)]:
                cases.append({"answer": answer, "rollouts": rollouts, "serial": serial})
                expected.append(client.check(DeviceIdentity(answer["cohort"], answer["hardware_version"],
                                                            answer["current_version"], serial,
                                                            answer["software_type"])).document)
    got = []
    for start in range(0, len(cases), BATCH):
        got += page.evaluate(ANSWER_BATCH, cases[start:start + BATCH])
    assert len(got) == len(expected) >= 1000
    assert [(i, e, g) for i, (e, g) in enumerate(zip(expected, got)) if e != g] == []
    assert any(any(o["staged"] for o in c["answer"]["offers"]) for c in cases)


def test_bucket_and_version_order_equal_pythons(page: Any) -> None:
    rng = random.Random(7)
    triples = [(f"SN-{n}", rng.choice(["beta", "production", "ü"]), f"{n % 7}.{n % 5}.{n % 3}") for n in range(300)]
    triples += [("AT100-000123", "beta", "2.1.1"), ("", "", ""), ("é✓\U0001F600", "c", "1.0.0")]
    got = page.evaluate("async (items) => Promise.all(items.map(t => window.relregPlanner.bucket(t[0], t[1], t[2])))",
                        triples)
    assert got == [bucket(*t) for t in triples]
    assert got[300] == 7594  # docs/devices.md's test vector

    words = ["1.0.0", "1.0.0-rc.1", "1.0.0-rc.10", "1.0.0-rc.2", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-1",
             "1.0.0+build", "2.0.0", "10.0.0", "1.10.0", "99999999999999999999.0.0", "1.0", "v1.0.0", "1.0.0-01"]
    for scheme, extra in ((SEMVER, []), (NATURAL, ["1.2", "1.2.0", "1.2.0rc1", "1.2.0-RC2", "2022.01.3", "11.0.0.6",
                                                     "1.2.0\n", "1.2.0 "])):
        texts = words + extra
        got = page.evaluate("""([scheme, texts]) => texts.map(a => texts.map(b => {
            try { const x = window.relregPlanner.parseVersion(scheme, a), y = window.relregPlanner.parseVersion(scheme, b);
                  return window.relregPlanner.compare(x.key, y.key); }
            catch (error) { return null; } }))""", [scheme.name, texts])

        def order(a: str, b: str) -> int | None:
            try:
                x, y = scheme.parse(a).key, scheme.parse(b).key
            except VersionError:
                return None
            return (x > y) - (x < y)
        assert got == [[order(a, b) for b in texts] for a in texts], scheme.name


def _python_path(out: Path, cohort: str, hardware: str, software: str | None, current: str,
                 serial: str) -> list[str]:
    """The hops the reference client takes, check after check, on the built site's files."""
    hops = []
    with DeviceClient(str(out)) as client:
        while len(hops) < 20:
            result = client.check(DeviceIdentity(cohort=cohort, hardware_version=hardware, current_version=current,
                                                 serial=serial, software_type=software))
            if result.payload is None:
                return hops
            current = result.document["version"]
            hops.append(current)
    return hops


PATHS = [  # (cohort, hardware, software type, current version, serial): gates, required steps, staged
    # rollouts, dev builds, software types, a version only the candidates know of
    ("production", "pvt", "", "1.3.1", ""),
    ("production", "pvt", "", "1.0.0", "AT100-000123"),
    ("beta", "pvt", "", "1.4.0", "AT100-000123"),
    ("beta", "pvt", "", "2.0.0", "SN-1"),
    ("beta", "pvt-b", "", "2.0.0-rc.2", "SN-2"),
    ("canary", "dvt1", "", "1.2.0+dev.4", "SN-3"),
    ("production", "pvt", "", "2.0.1", "SN-4"),
    ("canary", "pvt", "main", "2.1.0", ""),
    ("canary", "pvt", "main", "2.0.9", "SN-5"),
]


def _page_path(page: Any, url: str) -> list[str]:
    page.goto(url)
    page.wait_for_function("() => document.querySelector('#planner:not([data-busy])') !== null && "
                           "document.getElementById('plan-status').textContent.indexOf('Working') < 0")
    return page.eval_on_selector_all("#plan li.hop", "items => items.map(i => i.dataset.version)")


@pytest.mark.parametrize("cohort, hardware, software, current, serial", PATHS)
def test_the_page_shows_the_path_the_reference_client_takes(page: Any, example: tuple[Path, str], cohort: str,
                                                            hardware: str, software: str, current: str,
                                                            serial: str) -> None:
    out, url = example
    query = f"?cohort={cohort}&hardware={hardware}&software={software}&current={current.replace('+', '%2B')}" \
            f"&serial={serial}"
    shown = _page_path(page, url + "update/index.html" + query)
    if serial:
        assert shown == _python_path(out, cohort, hardware, software or None, current, serial)
    else:  # without a serial the planner assumes the device is in every rollout: the first offer of each answer
        hops, version = [], current
        while True:
            folder = out / f"api/v1/devices/{cohort}/{hardware}/{software or '_'}/from/{version}.json"
            offers = json.loads(folder.read_bytes())["data"]["offers"]
            if not offers:
                break
            version = offers[0]["release"]["version"]
            hops.append(version)
        assert shown == hops
    assert page.input_value("#cohort") == cohort and page.input_value("#current") == current


# The example registry with holds per hardware version: cohort file -> (release, the hardware it goes to).
HOLDS = {"production.yaml": ("2.1.0", "[pvt]"), "beta.yaml": ("2.1.1", "[pvt]"),
         "canary.yaml": ("2.1.1", "[dvt1, pvt]")}
HELD_PATHS = [  # (cohort, hardware, software type, current version, serial): held-back boards and the others
    ("production", "pvt-b", "", "2.0.0", "SN-1"),  # to 2.0.1, not on to 2.1.0
    ("production", "pvt-b", "main", "2.1.0", "SN-2"),  # already on the held release: up to date, no downgrade
    ("production", "pvt", "main", "2.0.1", "AT100-000123"),
    ("beta", "pvt-b", "", "1.4.0", "SN-3"),
    ("beta", "pvt-b", "main", "2.1.0", "SN-4"),
    ("beta", "pvt", "main", "2.1.0", "SN-77"),
    ("canary", "pvt-b", "main", "2.1.0+dev.1", "SN-5"),  # a version only the candidates know of
    ("canary", "pvt-b", "", "2.0.0", "SN-6"),
    ("canary", "dvt1", "main", "2.1.0", "SN-7"),
]


@pytest.fixture(scope="module")
def held_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The example registry with the HOLDS, built by the real CLI and served: (output folder, its URL)."""
    root = tmp_path_factory.mktemp("held")
    registry = root / "repo" / "registry"
    shutil.copytree(EXAMPLE_REGISTRY, registry)
    for name, (version, hardware) in HOLDS.items():
        path = registry / "cohorts" / name
        entry = f'  - version: "{version}"\n'
        assert entry in path.read_text(), name
        path.write_text(path.read_text().replace(entry, f"{entry}    hardware_versions: {hardware}\n"))
    build_in_git(registry, root / "public")
    with serve(root) as base:
        yield root / "public", f"{base}public/"


def test_the_page_shows_the_path_of_a_board_held_back(page: Any, held_example: tuple[Path, str]) -> None:
    """On a site whose cohorts hold releases back on pvt-b (and dvt1 in canary), the page walks the path the
    reference client takes, hop by hop; a held-back board is never shown the release held back on it."""
    out, url = held_example
    for cohort, hardware, software, current, serial in HELD_PATHS:
        query = f"?cohort={cohort}&hardware={hardware}&software={software}" \
                f"&current={current.replace('+', '%2B')}&serial={serial}"
        shown = _page_path(page, url + "update/index.html" + query)
        assert shown == _python_path(out, cohort, hardware, software or None, current, serial), query
        held = [version for name, (version, names) in HOLDS.items()
                if name == f"{cohort}.yaml" and hardware not in names.strip("[]").split(", ")]
        assert not set(shown) & set(held), query
    # The holds change what the boards are offered: pvt goes on where pvt-b stops.
    assert _page_path(page, url + "update/index.html?cohort=production&hardware=pvt-b&current=2.0.1") == []
    assert "newest release deployed" in page.text_content("#plan-status")
    assert _page_path(page, url + "update/index.html?cohort=production&hardware=pvt&current=2.0.1") == ["2.1.0"]


def test_the_path_shows_gates_payloads_rollouts_and_the_notes_between(page: Any, example: tuple[Path, str]) -> None:
    out, url = example
    shown = _page_path(page, url + "update/index.html?cohort=production&hardware=pvt&current=1.3.1")
    assert shown == [] and "none is reachable" in page.text_content("#plan-status")  # production lacks 1.4.0

    shown = _page_path(page, url + "update/index.html?cohort=production&hardware=pvt&software=main&current=1.4.0")
    assert shown == ["2.1.0"]  # without a serial: as if in the 10.5 % rollout
    text = page.inner_text("#plan")
    assert "Decided here from candidates.json" in text  # no `main` image of 1.4.0: the registry does not know it
    assert "Gate: needs at least 1.4.0" in text
    assert "full image, " in text and "KiB" in text
    assert "Staged rollout: 10.5 % of the cohort; give a serial" in text
    notes = page.eval_on_selector_all("#plan-notes h3 a", "links => links.map(a => a.textContent)")
    target = shown[-1]
    releases = json.loads((out / "update/releases.json").read_bytes())["releases"]
    between = [r["version"] for r in releases if "pvt" in r["hardware_versions"] and "-" not in r["version"]
               and SEMVER.parse("1.4.0").key < SEMVER.parse(r["version"]).key <= SEMVER.parse(target).key]
    assert notes == list(reversed(between)) and notes
    assert page.locator("#plan-notes .notes").first.inner_html().strip() != ""


def test_state_lives_in_the_url_and_release_pages_link_with_their_version(page: Any, example: tuple[Path, str]) -> None:
    _, url = example
    page.goto(url + "releases/2.0.1/index.html")
    page.get_by_role("link", name="Plan an update from 2.0.1").click()
    page.wait_for_function("() => document.getElementById('current').value === '2.0.1'")
    page.select_option("#cohort", "beta")
    page.select_option("#hardware", "pvt")
    page.select_option("#software", "main")
    page.fill("#serial", "SN-77")
    page.get_by_role("button", name="Show the path").click()
    page.wait_for_function("() => location.search.indexOf('serial=SN-77') >= 0")
    assert "cohort=beta" in page.url and "current=2.0.1" in page.url
    shared = page.url
    assert _page_path(page, shared) and page.input_value("#serial") == "SN-77"

    page.goto(url + "update/index.html?cohort=beta&hardware=pvt&current=not-a-version")
    page.wait_for_function("() => document.getElementById('plan-status').textContent.indexOf('Current version') === 0")
    assert "is not a SemVer 2.0 version" in page.text_content("#plan-status")


def test_without_javascript_the_page_says_so_and_links_to_the_documents(browser: Any,
                                                                       example: tuple[Path, str]) -> None:
    out, url = example
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(url + "update/index.html")
        assert "needs JavaScript" in page.inner_text("main")
        assert not page.is_visible("#planner")
        links = page.eval_on_selector_all("#documents ~ * a", "l => l.map(a => a.href)")
        assert any(link.endswith("api/v1/devices/index.json") for link in links)
        candidates = [link for link in links if link.endswith("/candidates.json")]
        index = json.loads((out / "api/v1/devices/index.json").read_bytes())["data"]
        assert len(candidates) == len(index["channels"])
        for link in candidates:
            assert context.request.get(link).status == 200, link
    finally:
        context.close()


def test_from_a_file_url_the_page_says_why_it_cannot_plan(browser: Any, example: tuple[Path, str]) -> None:
    out, _ = example
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto((out / "update" / "index.html").as_uri() + "?cohort=beta&hardware=pvt&current=2.0.0")
        page.wait_for_function("() => document.getElementById('plan-status').textContent !== ''")
        assert "file://" in page.text_content("#plan-status") and page.locator("#plan li").count() == 0
    finally:
        context.close()
