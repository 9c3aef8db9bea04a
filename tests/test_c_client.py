"""The C device client (clients/c/): its unit tests under AddressSanitizer and UBSan, its fuzz targets
for a bounded time, its device budgets (no heap, no I/O, flash and stack on a Cortex-M4), and its
harness against `relreg device check` on the example registry, command line for command line."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from c_client_helpers import BUILD, C_DIR, SANITIZER_ENV, make_c, report, run_c, run_python
from conftest import EXAMPLE_REGISTRY, run_relreg
from git_helpers import commit_all, init_repo

FUZZ_SECONDS = 3  # per target in `make test`; `make fuzz` runs them longer


def _bench():
    spec = importlib.util.spec_from_file_location("bench_device", C_DIR / "bench_device.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_unit_tests_pass_under_address_and_undefined_behaviour_sanitizers() -> None:
    make_c()
    result = subprocess.run([str(BUILD / "test_unit-asan")], capture_output=True, text=True,
                            env={**SANITIZER_ENV}, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.fullmatch(r"(\d+) checks, 0 failed\n", result.stdout)
    assert match and int(match[1]) > 300, result.stdout


def test_every_parser_entry_point_survives_its_fuzz_target() -> None:
    make_c("fuzz-smoke", f"FUZZ_SECONDS={FUZZ_SECONDS}")
    executions = {}
    for target in ("fuzz_answer", "fuzz_candidates", "fuzz_signature", "fuzz_version", "fuzz_parse"):
        log = (BUILD / f"{target}.log").read_text()
        assert "ERROR" not in log and "SUMMARY" not in log, log[-3000:]
        match = re.search(r"stat::number_of_executed_units: (\d+)", log)
        assert match, log[-3000:]
        executions[target] = int(match[1])
        assert executions[target] > 1000, (target, executions[target])
    line = (f"C fuzz targets ({FUZZ_SECONDS} s each): {sum(executions.values())} executions: "
            + ", ".join(f"{name} {count}" for name, count in executions.items()))
    report("fuzz.txt", line)
    print(line)


def test_the_library_allocates_nothing_and_does_no_io() -> None:
    """The Cortex-M object needs nothing from libc but mem*/str* (no malloc, no stdio, no time); the
    compiler's own ARM EABI helpers (__aeabi_*) are allowed."""
    make_c("budgets")
    nm = subprocess.run(["arm-none-eabi-nm", "-u", str(BUILD / "arm" / "relreg_client.o")], capture_output=True,
                        text=True, check=True)
    undefined = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip()}
    undefined = {name for name in undefined if not name.startswith("__aeabi_")}
    assert undefined and undefined <= {"memcmp", "memcpy", "memset", "memchr", "strlen"}, undefined


def test_flash_and_stack_are_within_the_device_budgets() -> None:
    make_c("budgets")
    bench = _bench()
    flash = bench.flash_bytes()
    assert 2000 < flash["flash"] <= bench.FLASH_BUDGET, flash
    assert flash["bss"] == 0 and flash["data"] == 0, flash  # no global state
    peaks = bench.stack_peaks()
    assert {"rr_parse", "rr_decide_answer", "rr_decide_candidates", "rr_verify_signature",
            "rr_image_update", "rr_version_compare"} <= set(peaks)
    for name, peak in peaks.items():
        assert peak["bytes"] <= bench.STACK_BUDGET, (name, peak)
    worst = max(peaks.items(), key=lambda item: item[1]["bytes"])
    report("budgets.txt", f"C client on Cortex-M4 (-Os, without crypto): {flash['flash']} bytes of flash; "
                          f"peak stack {worst[1]['bytes']} bytes ({worst[0]})")


# --- the harness against `relreg device check`, one command line at a time ------------------------

@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("c-example")
    repo = init_repo(base / "repo")
    shutil.copytree(EXAMPLE_REGISTRY, repo / "registry")
    commit_all(repo, "registry", "2025-06-01T12:00:00+00:00")
    result = run_relreg("build", "--registry", repo / "registry", "--out", base / "site")
    assert result.exit_code == 0, result.output
    return base / "site"


CASES = [
    # (arguments after --site, exit status of the Python command)
    (["--cohort", "beta", "--hardware-version", "pvt", "--software-type", "main", "--current-version", "2.1.0",
      "--serial", "AT100-000123", "--exit-code"], 0),
    (["--cohort", "beta", "--hardware-version", "pvt", "--software-type", "main", "--current-version", "2.0.0",
      "--serial", "AT100-000123", "--exit-code"], 10),
    (["--cohort", "production", "--hardware-version", "pvt", "--software-type", "main", "--current-version",
      "1.3.0", "--serial", "SN-1"], 0),
    (["--cohort", "beta", "--hardware-version", "pvt", "--software-type", "main", "--current-version",
      "2.1.1-dev.3", "--serial", "SN-1", "--exit-code"], 10),
    (["--cohort", "beta", "--hardware-version", "pvt", "--software-type", "main", "--current-version",
      "2.0.0+local", "--serial", "SN-1", "--exit-code"], 10),
    (["--cohort", "beta", "--hardware-version", "pvt", "--software-type", "main", "--current-version", "v2",
      "--serial", "SN-1"], 1),
    (["--cohort", "nobody", "--hardware-version", "pvt", "--current-version", "2.0.0", "--serial", "SN-1"], 1),
    (["--cohort", "beta", "--hardware-version", "pvt", "--software-type", "other", "--current-version", "2.0.0",
      "--serial", "SN-1"], 1),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_the_harness_prints_what_relreg_device_check_prints(case: int, example_site: Path) -> None:
    arguments, status = CASES[case]
    python = run_python("--site", example_site, *arguments)
    c = run_c("--site", example_site, *arguments)
    assert python.returncode == status, python.stderr
    assert (c.returncode, c.stdout, c.stderr) == (python.returncode, python.stdout, python.stderr)


def test_a_folder_that_is_not_a_site_is_refused_by_both(tmp_path: Path) -> None:
    arguments = ["--site", str(tmp_path), "--cohort", "beta", "--hardware-version", "pvt", "--current-version",
                 "2.0.0", "--serial", "SN-1"]
    python, c = run_python(*arguments), run_c(*arguments)
    assert python.returncode == c.returncode == 1
    assert c.stderr == python.stderr


def test_usage_errors_exit_2_like_click() -> None:
    assert run_c("--cohort", "beta").returncode == 2
    assert run_c("--site", ".", "--trust", "nokey", "--cohort", "c", "--hardware-version", "h",
                 "--current-version", "1.0.0", "--serial", "s").returncode == 2


# --- documents that outgrow a small device -----------------------------------------------------------

def test_the_build_warns_when_device_documents_outgrow_a_small_device(tmp_path: Path) -> None:
    """A cohort that keeps every release deployed makes candidates.json grow past 4 KiB and 256 tokens:
    the build says so, and its count of tokens is the C parser's."""
    repo = init_repo(tmp_path / "repo")
    shutil.copytree(EXAMPLE_REGISTRY, repo / "registry")
    commit_all(repo, "registry", "2025-06-01T12:00:00+00:00")
    example = run_relreg("build", "--registry", repo / "registry", "--out", tmp_path / "example")
    assert example.exit_code == 0 and "small device" not in example.output  # the example fits

    live = sorted(p.stem for p in (repo / "registry" / "releases").glob("*.yaml") if "yanked:" not in p.read_text())
    (repo / "registry" / "cohorts" / "everything.yaml").write_text(
        "slug: everything\nname: Everything\nhardware_versions: [pvt]\nreleases:\n"
        + "".join(f'  - version: "{v}"\n    rollout_percent: 100\n' for v in live))
    commit_all(repo, "a cohort that keeps every release", "2025-06-02T12:00:00+00:00")
    result = run_relreg("build", "--registry", repo / "registry", "--out", tmp_path / "site")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "exceed what a small device reads" in line]
    assert len(warnings) == 1 and "device candidates documents" in warnings[0], result.output
    largest = re.search(r"the largest is (\S+) \((\d+) bytes, (\d+) tokens\)", warnings[0])
    assert largest and largest[1].startswith("api/v1/devices/everything/pvt/"), warnings[0]
    measured = run_c("--measure", stdin=str(tmp_path / "site" / largest[1]) + "\n").stdout.split()
    assert measured == [largest[2], largest[3], "ok"] and int(measured[1]) > 256
