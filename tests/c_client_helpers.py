"""The C device client (clients/c/) from the tests: building it, running its harness, and asking the
Python reference client the same questions in-process.

A missing compiler or library makes these tests fail (make's error), never skip: `make test`
installs them (`make system-deps`). Python internals are imported inside the functions, so the
module paths are named in one place.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from pathlib import Path
from typing import Iterable, Sequence

import pytest

REPO = Path(__file__).resolve().parent.parent
C_DIR = REPO / "clients" / "c"
BUILD = C_DIR / "build"
REPORT = BUILD / "report"  # figures the Makefile prints after the tests (counts, executions)

# The sanitizers fail the process on the first finding (UBSan too), and LeakSanitizer checks the harness.
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:abort_on_error=0",
                 "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}

Query = tuple[str, str, "str | None", str, str]  # cohort, hardware version, software type, version, serial


def make_c(*targets: str) -> None:
    """`make -C clients/c TARGETS`, serialized between test processes (pytest-xdist)."""
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".make.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(["make", "-s", "-C", str(C_DIR), *targets], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"make -C clients/c {' '.join(targets)} failed (run `make system-deps`):\n"
                    f"{result.stdout}\n{result.stderr}")


def harness() -> Path:
    """The harness built with AddressSanitizer and UBSan: what every test runs."""
    make_c()
    return BUILD / "relreg-device-c-asan"


def run_c(*args: str | Path, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([str(harness()), *map(str, args)], input=stdin, capture_output=True, text=True,
                            env={**os.environ, **SANITIZER_ENV}, timeout=timeout)
    assert "Sanitizer" not in result.stderr and "runtime error" not in result.stderr, result.stderr
    return result


def run_python(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real `relreg device check` command line, in its own process like the harness."""
    import sys

    return subprocess.run([sys.executable, "-m", "relreg", "device", "check", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def report(name: str, line: str) -> None:
    REPORT.mkdir(parents=True, exist_ok=True)
    (REPORT / name).write_text(line + "\n")


def c_answers(site: str | Path, queries: Sequence[Query]) -> list[str]:
    """What `relreg-device-c` prints for each device (stdout, or "Error: ..."), in one process."""
    lines = "".join(f"{c}\t{h}\t{s if s is not None else '_'}\t{v}\t{n}\n" for c, h, s, v, n in queries)
    result = run_c("--site", site, "--batch", stdin=lines)
    assert result.returncode == 0, result.stderr
    records = result.stdout.split("%%\n")
    assert records[-1] == "" and len(records) == len(queries) + 1, result.stdout[-2000:]
    return records[:-1]


def python_answers(site: str | Path, queries: Iterable[Query]) -> list[str]:
    """What `relreg device check` prints for each device, from the reference client in this process."""
    from relreg.devices.client import ClientError, DeviceClient
    from relreg.devices.update import DeviceIdentity

    out = []
    with DeviceClient(str(site)) as client:
        for cohort, hardware, software, version, serial in queries:
            try:
                result = client.check(DeviceIdentity(cohort, hardware, version, serial, software))
            except ClientError as error:
                out.append(f"Error: {error}\n")
                continue
            out.append(json.dumps(result.document, indent=2, ensure_ascii=False) + "\n")
    return out


def channels_of(site: Path) -> list[tuple[str, str, str | None]]:
    """Every (cohort, hardware version, software type) a built site has documents for."""
    found = []
    for candidates in sorted((site / "api/v1/devices").glob("*/*/*/candidates.json")):
        cohort, hardware, software = candidates.parent.relative_to(site / "api/v1/devices").parts
        found.append((cohort, hardware, None if software == "_" else software))
    return found


def known_versions(site: Path, channel: tuple[str, str, str | None]) -> list[str]:
    from urllib.parse import unquote

    cohort, hardware, software = channel
    folder = site / "api/v1/devices" / cohort / hardware / (software or "_") / "from"
    return sorted(unquote(p.name.removesuffix(".json")) for p in folder.glob("*.json")) if folder.is_dir() else []
