"""The update decision (relreg.devices.update): one table row per rule and interaction, and property tests
against an independent oracle over thousands of random channels and devices."""

from __future__ import annotations

import random

import pytest
from device_helpers import SEMVER, Spec, channel, oracle, oracle_bucket, random_channel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relreg.devices.update import FULL_ROLLOUT, bucket, choose_index, decide, in_rollout, plan_update, rollout_threshold
from relreg.registry.versions import VersionError, scheme_named

NATURAL = scheme_named("natural")
SERIALS = [f"SN-{n:05d}" for n in range(4000)]


def target(ch, current: str, serial: str = "SN-1", scheme=SEMVER):
    """(version, is_delta, reason) of the decision, or ("up to date", reason)."""
    plan = plan_update(ch, scheme.parse(current))
    offer = plan.choose(serial)
    if offer is None:
        return ("up to date", plan.up_to_date_reason)
    return (offer.candidate.version, offer.payload.is_delta, offer.reason)


def serial_in(ch_cohort: str, version: str, percent: float, inside: bool) -> str:
    """A serial that is (or is not) inside the rollout of `version` at `percent`."""
    threshold = rollout_threshold(percent)
    return next(s for s in SERIALS if (bucket(s, ch_cohort, version) < threshold) == inside)


# --------------------------------------------------------------------------------------------
# The rules, one scenario per row: (candidates, must-pass-through releases outside the cohort,
# current version, expected). Every candidate is deployed to 100 % unless a row says otherwise.

TABLE = [
    # 1. the highest candidate above the current version
    ("latest", ["1.0.0", "1.1.0", "1.2.0"], [], "1.0.0", ("1.2.0", False, "latest")),
    ("latest from far below", ["1.1.0", "1.2.0"], [], "0.1.0", ("1.2.0", False, "latest")),
    ("no candidates: up to date", [], [], "1.0.0", ("up to date", "latest")),
    # never a downgrade, never a reinstall
    ("above every candidate", ["1.0.0", "1.1.0"], [], "1.5.0", ("up to date", "latest")),
    ("on the newest candidate", ["1.0.0", "1.1.0"], [], "1.1.0", ("up to date", "latest")),
    ("build metadata is the same version", ["1.0.0", "1.1.0"], [], "1.1.0+local.3", ("up to date", "latest")),
    ("prerelease below its release", ["1.0.0", "1.1.0"], [], "1.1.0-dev.4", ("1.1.0", False, "latest")),
    ("release above its prerelease", ["1.1.0-rc.1"], [], "1.1.0", ("up to date", "latest")),
    ("prereleases are candidates when deployed", ["1.0.0", "1.1.0-rc.2"], [], "1.0.0",
     ("1.1.0-rc.2", False, "latest")),
    # 3. min_version: the path hop by hop
    ("gate met", [Spec("2.0.0", min_version="1.4.0")], [], "1.4.0", ("2.0.0", False, "latest")),
    ("gate not met: blocked", [Spec("2.0.0", min_version="1.4.0")], [], "1.3.9", ("up to date", "blocked")),
    ("gate: the highest reachable step", ["1.1.0", "1.2.0", Spec("2.0.0", min_version="1.2.0")], [], "1.0.0",
     ("1.2.0", False, "min_version")),
    ("gate: next hop", ["1.1.0", "1.2.0", Spec("2.0.0", min_version="1.2.0")], [], "1.2.0",
     ("2.0.0", False, "latest")),
    ("gates in a chain: first hop", ["1.1.0", Spec("1.2.0", min_version="1.1.0"), Spec("2.0.0", min_version="1.2.0")],
     [], "1.0.0", ("1.1.0", False, "min_version")),
    ("gates in a chain: second hop", ["1.1.0", Spec("1.2.0", min_version="1.1.0"),
                                       Spec("2.0.0", min_version="1.2.0")], [], "1.1.0",
     ("1.2.0", False, "min_version")),
    ("min_version equal to the current version", [Spec("1.5.0", min_version="1.4.0")], [], "1.4.0",
     ("1.5.0", False, "latest")),
    # must pass through
    ("must-pass-through is not skipped", ["1.1.0", Spec("1.3.0", mpt=True), "1.5.0", "2.0.0"], [], "1.0.0",
     ("1.3.0", False, "must_pass_through")),
    ("past the must-pass-through", ["1.1.0", Spec("1.3.0", mpt=True), "1.5.0", "2.0.0"], [], "1.3.0",
     ("2.0.0", False, "latest")),
    ("above the must-pass-through", ["1.1.0", Spec("1.3.0", mpt=True), "1.5.0", "2.0.0"], [], "1.4.0",
     ("2.0.0", False, "latest")),
    ("the lowest of two must-pass-through", [Spec("1.3.0", mpt=True), Spec("1.6.0", mpt=True), "2.0.0"], [], "1.0.0",
     ("1.3.0", False, "must_pass_through")),
    ("the next must-pass-through", [Spec("1.3.0", mpt=True), Spec("1.6.0", mpt=True), "2.0.0"], [], "1.3.0",
     ("1.6.0", False, "must_pass_through")),
    ("must-pass-through that is the newest", ["1.1.0", Spec("1.3.0", mpt=True)], [], "1.0.0",
     ("1.3.0", False, "latest")),
    ("must-pass-through not deployed to the cohort still holds devices", ["1.1.0", "2.0.0"], ["1.5.0"], "1.0.0",
     ("1.1.0", False, "must_pass_through")),
    ("held below a must-pass-through the cohort lacks", ["1.1.0", "2.0.0"], ["1.5.0"], "1.1.0",
     ("up to date", "blocked")),
    ("a must-pass-through below the device does not matter", ["1.1.0", "2.0.0"], ["1.0.5"], "1.1.0",
     ("2.0.0", False, "latest")),
    ("must-pass-through behind its own min_version: climb to it", [
        "1.1.0", "1.2.0", Spec("1.3.0", mpt=True, min_version="1.2.0"), "2.0.0"], [], "1.0.0",
     ("1.2.0", False, "min_version")),
    # 5. payload: a delta only from exactly the current version
    ("delta from the current version", [Spec("2.0.0", deltas=("1.9.0",))], [], "1.9.0", ("2.0.0", True, "latest")),
    ("no delta from another version", [Spec("2.0.0", deltas=("1.9.0",))], [], "1.8.0", ("2.0.0", False, "latest")),
    ("no delta for a dev build of the base version", [Spec("2.0.0", deltas=("1.9.0",))], [], "1.9.0+dev.1",
     ("2.0.0", False, "latest")),
    ("the delta that matches among several", [Spec("2.0.0", deltas=("1.8.0", "1.9.0"))], [], "1.8.0",
     ("2.0.0", True, "latest")),
    ("a delta does not pass a min_version gate", [Spec("2.0.0", min_version="1.9.0", deltas=("1.8.0",))], [],
     "1.8.0", ("up to date", "blocked")),
    ("a delta does not skip a must-pass-through", [Spec("1.5.0", mpt=True), Spec("2.0.0", deltas=("1.4.0",))], [],
     "1.4.0", ("1.5.0", False, "must_pass_through")),
    ("a delta-only release: from its base", ["1.5.0", Spec("2.0.0", full=False, deltas=("1.9.0",))], [], "1.9.0",
     ("2.0.0", True, "latest")),
    ("a delta-only release: not from elsewhere", ["1.5.0", Spec("2.0.0", full=False, deltas=("1.9.0",))], [], "1.0.0",
     ("1.5.0", False, "min_version")),
    ("a delta to a must-pass-through", [Spec("1.5.0", mpt=True, deltas=("1.4.0",)), "2.0.0"], [], "1.4.0",
     ("1.5.0", True, "must_pass_through")),
    # 2. rollouts that nobody or everybody is in
    ("0 % pauses: the previous release", ["1.1.0", Spec("1.2.0", percent=0)], [], "1.0.0",
     ("1.1.0", False, "outside_rollout")),
    ("0 % pauses: nothing else", ["1.1.0", Spec("1.2.0", percent=0)], [], "1.1.0", ("up to date", "outside_rollout")),
    ("100 % is everybody", ["1.1.0", Spec("1.2.0", percent=100)], [], "1.0.0", ("1.2.0", False, "latest")),
]


@pytest.mark.parametrize("name, specs, barriers, current, expected", TABLE, ids=[row[0] for row in TABLE])
def test_rule_table(name, specs, barriers, current, expected) -> None:
    ch = channel(*specs, barriers=barriers)
    for serial in SERIALS[:50]:  # none of these rows depends on the serial
        assert target(ch, current, serial) == expected
    assert oracle(ch, current, SERIALS[0]) == (None if expected[0] == "up to date" else expected[:2])


# --------------------------------------------------------------------------------------------
# Staged rollouts


def test_inside_and_outside_a_staged_rollout() -> None:
    ch = channel("1.1.0", Spec("1.2.0", percent=25))
    inside = serial_in("stable", "1.2.0", 25, True)
    outside = serial_in("stable", "1.2.0", 25, False)
    assert target(ch, "1.0.0", inside) == ("1.2.0", False, "latest")
    assert target(ch, "1.0.0", outside) == ("1.1.0", False, "outside_rollout")  # the previous release, not nothing
    assert target(ch, "1.1.0", outside) == ("up to date", "outside_rollout")
    assert target(ch, "1.1.0", inside) == ("1.2.0", False, "latest")


def test_outside_several_rollouts_falls_back_one_by_one() -> None:
    ch = channel("2.0.0", Spec("2.1.0", percent=50), Spec("2.2.0", percent=10))
    plan = plan_update(ch, SEMVER.parse("1.0.0"))
    assert [(o.candidate.version, o.threshold, o.reason) for o in plan.offers] == [
        ("2.2.0", 1000, "latest"), ("2.1.0", 5000, "outside_rollout"), ("2.0.0", 10000, "outside_rollout")]
    assert plan.up_to_date_reason is None  # the last offer reaches everybody
    seen = {target(ch, "1.0.0", s)[0] for s in SERIALS[:500]}
    assert seen == {"2.2.0", "2.1.0", "2.0.0"}
    for serial in SERIALS[:500]:
        in_22 = bucket(serial, "stable", "2.2.0") < 1000
        in_21 = bucket(serial, "stable", "2.1.0") < 5000
        assert target(ch, "1.0.0", serial)[0] == ("2.2.0" if in_22 else "2.1.0" if in_21 else "2.0.0")


def test_a_staged_must_pass_through_holds_devices_outside_its_rollout() -> None:
    ch = channel("1.1.0", Spec("1.3.0", mpt=True, percent=20), "2.0.0")
    inside = serial_in("stable", "1.3.0", 20, True)
    outside = serial_in("stable", "1.3.0", 20, False)
    assert target(ch, "1.0.0", inside) == ("1.3.0", False, "must_pass_through")
    assert target(ch, "1.0.0", outside) == ("1.1.0", False, "outside_rollout")  # never 2.0.0 past the barrier
    assert target(ch, "1.1.0", outside) == ("up to date", "outside_rollout")


def test_the_bucket_is_sha256_of_serial_cohort_version_with_001_percent_resolution() -> None:
    assert bucket("SN-1", "stable", "1.2.0") == oracle_bucket("SN-1", "stable", "1.2.0")
    # the test vectors of docs/devices.md, for device implementations
    assert bucket("AT100-000123", "beta", "2.1.1") == 7594
    assert bucket("AT100-000123", "production", "2.1.0") == 4201
    assert bucket("SN-1", "stable", "1.2.0") == 9377
    assert all(0 <= bucket(s, "c", "1.0.0") < 10000 for s in SERIALS)
    assert rollout_threshold(0.01) == 1 and rollout_threshold(10.5) == 1050 and rollout_threshold(0.29) == 29
    assert rollout_threshold(100) == FULL_ROLLOUT and rollout_threshold(0) == 0
    # independent per release and per cohort
    assert [bucket(s, "c", "1.0.0") for s in SERIALS[:20]] != [bucket(s, "c", "1.0.1") for s in SERIALS[:20]]
    assert [bucket(s, "c", "1.0.0") for s in SERIALS[:20]] != [bucket(s, "d", "1.0.0") for s in SERIALS[:20]]
    assert not any(in_rollout(0, s, "c", "1.0.0") for s in SERIALS)
    assert all(in_rollout(FULL_ROLLOUT, s, "c", "1.0.0") for s in SERIALS)


PERCENT_LADDER = [0, 0.01, 0.5, 1, 5, 10.5, 25, 33.33, 50, 75, 99.99, 100]


def test_raising_the_percent_never_removes_a_device_and_the_share_matches() -> None:
    serials = [f"dev-{n}" for n in range(20000)]
    previous: set[str] = set()
    for percent in PERCENT_LADDER:
        inside = {s for s in serials if in_rollout(rollout_threshold(percent), s, "beta", "2.1.1")}
        assert previous <= inside, f"raising to {percent} % removed devices"
        share = len(inside) / len(serials)
        assert abs(share - percent / 100) < 0.012, (percent, share)
        previous = inside


def test_raising_the_percent_never_changes_the_answer_of_a_device_that_was_in() -> None:
    rng = random.Random(7)
    for percent_low, percent_high in [(1, 5), (10.5, 25), (25, 50), (50, 99.99), (99.99, 100)]:
        low = channel("2.0.0", Spec("2.1.0", percent=percent_low, deltas=("2.0.0",)))
        high = channel("2.0.0", Spec("2.1.0", percent=percent_high, deltas=("2.0.0",)))
        for serial in rng.sample(SERIALS, 1500):
            for current in ("1.0.0", "2.0.0"):
                before, after = target(low, current, serial), target(high, current, serial)
                if before[0] == "2.1.0":
                    assert after == before


# --------------------------------------------------------------------------------------------
# Versions the registry never saw, and other schemes


def test_dev_builds_decide_like_their_neighbours() -> None:
    ch = channel("1.0.0", Spec("1.4.0", mpt=True), Spec("2.0.0", min_version="1.4.0", deltas=("1.4.0",)))
    assert target(ch, "1.3.7-dev.12") == ("1.4.0", False, "must_pass_through")
    assert target(ch, "1.4.0-rc.1") == ("1.4.0", False, "must_pass_through")  # below its release
    assert target(ch, "1.4.0+git.abc123") == ("2.0.0", False, "latest")  # same version as 1.4.0, but no delta
    assert target(ch, "1.9.9-local") == ("2.0.0", False, "latest")
    assert target(ch, "3.0.0-dev") == ("up to date", "latest")  # never a downgrade
    with pytest.raises(VersionError):
        SEMVER.parse("nightly-2025-01-01")


def test_natural_version_scheme() -> None:
    ch = channel("1.9", "1.10", Spec("1.10.1rc1", percent=100), scheme=NATURAL)
    assert target(ch, "1.9", scheme=NATURAL) == ("1.10.1rc1", False, "latest")
    assert target(ch, "1.10.1", scheme=NATURAL) == ("up to date", "latest")
    assert target(ch, "1.10.0", scheme=NATURAL) == ("1.10.1rc1", False, "latest")  # 1.10 == 1.10.0
    ch = channel("1.9", "1.10", scheme=NATURAL)
    assert target(ch, "1.10.0", scheme=NATURAL) == ("up to date", "latest")


def test_choose_index_is_all_a_small_device_needs() -> None:
    offers = [("2.2.0", 1000), ("2.1.0", 5000), ("2.0.0", 10000)]
    for serial in SERIALS[:300]:
        index = choose_index(offers, serial, "stable")
        expected = 0 if bucket(serial, "stable", "2.2.0") < 1000 else 1 if bucket(serial, "stable", "2.1.0") < 5000 \
            else 2
        assert index == expected
    assert choose_index([("2.0.0", 0)], "x", "c") is None
    assert choose_index([], "x", "c") is None


# --------------------------------------------------------------------------------------------
# Properties over random channels (seeded, so a failure reproduces)


def _gates_hold(ch, current: str, version: str) -> bool:
    """The step current -> version respects min_version, must-pass-through and never goes down."""
    v, t = SEMVER.parse(current).key, SEMVER.parse(version).key
    c = next(c for c in ch.candidates if c.version == version)
    if t <= v or (c.min_key is not None and v < c.min_key):
        return False
    return not any(v < SEMVER.parse(b).key < t for b in ch.barriers)


@pytest.mark.parametrize("seed", range(8))
def test_decisions_equal_the_oracle_for_random_channels_and_devices(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(150):
        ch, line = random_channel(rng, cohort=rng.choice(["stable", "beta"]))
        currents = line + [f"{rng.randint(0, 4)}.{rng.randint(0, 5)}.{rng.randint(0, 4)}-dev.{rng.randint(1, 9)}"
                           for _ in range(3)]
        for current in currents:
            plan = plan_update(ch, SEMVER.parse(current))
            assert all(o.threshold < FULL_ROLLOUT for o in plan.offers[:-1])
            assert [SEMVER.parse(o.candidate.version).key for o in plan.offers] == \
                sorted((SEMVER.parse(o.candidate.version).key for o in plan.offers), reverse=True)
            for serial in rng.sample(SERIALS, 12):
                offer = decide(ch, SEMVER.parse(current), serial)
                got = None if offer is None else (offer.candidate.version, offer.payload.is_delta)
                assert got == oracle(ch, current, serial), (ch, current, serial)
                if offer is not None:
                    assert _gates_hold(ch, current, offer.candidate.version)


@pytest.mark.parametrize("seed", range(4))
def test_repeated_updating_terminates_at_the_highest_reachable_release(seed: int) -> None:
    rng = random.Random(1000 + seed)
    for _ in range(150):
        ch, line = random_channel(rng)
        for serial in rng.sample(SERIALS, 6):
            current = rng.choice(line + ["0.0.1"])
            path = [current]
            while (offer := decide(ch, SEMVER.parse(current), serial)) is not None:
                assert _gates_hold(ch, current, offer.candidate.version)
                current = offer.candidate.version
                path.append(current)
                assert len(path) <= len(line) + 2, path
            # At the end no candidate the device is in is installable below the next barrier: the oracle agrees.
            assert oracle(ch, current, serial) is None
            # And the oracle, applied step by step, takes the same path.
            walk, step = [path[0]], path[0]
            while (found := oracle(ch, step, serial)) is not None:
                step = found[0]
                walk.append(step)
            assert walk == path


# --------------------------------------------------------------------------------------------
# The same property, driven by hypothesis: random registries (channels) and random devices


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False),
       serial=st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-", min_size=1, max_size=16),
       start=st.integers(min_value=0, max_value=64))
def test_hypothesis_updating_always_ends_at_the_highest_reachable_release_without_breaking_a_gate(
        rng: random.Random, serial: str, start: int) -> None:
    ch, line = random_channel(rng)
    starts = line + ["0.0.1", "0.0.0-dev.1"]
    current = starts[start % len(starts)]
    path = [current]
    while (offer := decide(ch, SEMVER.parse(current), serial)) is not None:
        assert _gates_hold(ch, current, offer.candidate.version), (path, offer.candidate.version)
        current = offer.candidate.version
        path.append(current)
        assert len(path) <= len(line) + 2, path  # terminates: every hop goes up the line
    assert oracle(ch, current, serial) is None  # nothing reachable is left: the highest reachable release
