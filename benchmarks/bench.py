"""`make bench`: relreg's build and validate on synthetic registries with real git history.

Prints medians (and peak memory of the relreg process) for 1,000 and 10,000
releases, flat and grouped layouts: full build (no caches, empty output),
rebuild with nothing changed, rebuild after one release is added, validate
(cold and warm cache). For comparison it times the obvious approach (one
`git log` per file, on 200 sampled files, extrapolated) and Hugo building a
site of as many pages, when Debian's hugo is installed. Output goes to
/dev/shm when it exists, where disk noise does not blur the figures.
Results are also written to .bench/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synth import add_release, make_registry, release_path, version_of  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(os.environ.get("TMPDIR", "/tmp"))
WORK = SCRATCH / "relreg-bench"


def relreg(*args: str) -> list[str]:
    return [sys.executable, "-m", "relreg", *args]


def drop_caches(repo: Path, out: Path) -> None:
    shutil.rmtree(repo / ".git" / "relreg", ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)


def measure(repo: Path, releases: int, grouped: bool, runs: int) -> dict[str, object]:
    out = WORK / "out"
    full, full_peak = [], []
    for _ in range(runs):
        drop_caches(repo, out)
        seconds, peak, report = run_measured_with_rusage(relreg("build", "--out", str(out)), repo)
        full.append(seconds)
        full_peak.append(peak)
    files = sum(len(names) for _, _, names in os.walk(out)) - 1
    unchanged = [run_measured_with_rusage(relreg("build", "--out", str(out)), repo)[0] for _ in range(runs)]
    added = []
    for run in range(runs):
        add_release(repo, releases + run, grouped)
        added.append(run_measured_with_rusage(relreg("build", "--out", str(out)), repo)[0])
    validate_warm = [run_measured_with_rusage(relreg("validate"), repo)[0] for _ in range(runs)]
    validate_cold = []
    for _ in range(runs):
        shutil.rmtree(repo / ".git" / "relreg", ignore_errors=True)
        validate_cold.append(run_measured_with_rusage(relreg("validate"), repo)[0])
    return {
        "releases": releases, "layout": "grouped" if grouped else "flat", "files": files,
        "full_build_s": statistics.median(full), "full_build_peak_mib": max(full_peak),
        "files_per_s": files / statistics.median(full),
        "rebuild_unchanged_s": statistics.median(unchanged), "rebuild_one_added_s": statistics.median(added),
        "validate_warm_s": statistics.median(validate_warm), "validate_cold_s": statistics.median(validate_cold),
    }


def run_measured_with_rusage(args: list[str], cwd: Path) -> tuple[float, int, str]:
    started = time.perf_counter()
    process = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": str(ROOT / "generator")})
    assert process.stdout is not None
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}")
    return seconds, usage.ru_maxrss // 1024, stdout.decode()


def naive_git_log(repo: Path, releases: int, grouped: bool, sample: int = 200) -> dict[str, float]:
    """What one `git log` per file costs, timed on a sample and extrapolated."""
    rng = random.Random(7)
    indexes = rng.sample(range(releases), min(sample, releases))
    started = time.perf_counter()
    for index in indexes:
        path = release_path(index, grouped)
        subprocess.run(["git", "-C", str(repo), "log", "--follow", "--format=%ct", "--", path],
                       check=True, capture_output=True)
    per_file = (time.perf_counter() - started) / len(indexes)
    return {"naive_per_file_s": per_file, "naive_extrapolated_s": per_file * releases}


def hugo_pages_per_second(pages: int) -> dict[str, float] | None:
    hugo = shutil.which("hugo")
    if hugo is None:
        return None
    site = WORK / "hugo"
    shutil.rmtree(site, ignore_errors=True)
    (site / "content" / "releases").mkdir(parents=True)
    (site / "layouts" / "_default").mkdir(parents=True)
    (site / "hugo.toml").write_text('baseURL = "https://fw.bench.test/"\ndisableKinds = ["taxonomy", "term", "RSS", "sitemap"]\n')
    (site / "layouts" / "_default" / "single.html").write_text(
        "<!doctype html><html lang=en><title>{{ .Title }}</title><main><h1>{{ .Title }}</h1>{{ .Content }}</main></html>")
    (site / "layouts" / "_default" / "list.html").write_text(
        "<!doctype html><html lang=en><title>{{ .Title }}</title><ul>{{ range .Pages }}<li>{{ .Title }}</li>{{ end }}</ul></html>")
    body = "\n".join(f"- Fixed issue #{n}: the scheduler no longer drops work item {n}." for n in range(12))
    for index in range(pages):
        (site / "content" / "releases" / f"r{index}.md").write_text(
            f'---\ntitle: "Release {version_of(index)}"\n---\n## Release {version_of(index)}\n\n{body}\n')
    times = []
    for _ in range(3):
        shutil.rmtree(WORK / "hugo-out", ignore_errors=True)
        started = time.perf_counter()
        subprocess.run([hugo, "--quiet", "-s", str(site), "-d", str(WORK / "hugo-out")], check=True)
        times.append(time.perf_counter() - started)
    written = sum(len(names) for _, _, names in os.walk(WORK / "hugo-out"))
    return {"hugo_pages": written, "hugo_build_s": statistics.median(times),
            "hugo_pages_per_s": written / statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated release counts")
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"scratch {SCRATCH}; medians of {options.runs} runs")
    results = []
    for size in sizes:
        for grouped in ((False, True) if size == max(sizes) else (False,)):
            repo = WORK / f"repo-{size}-{'grouped' if grouped else 'flat'}"
            make_registry(repo, size, grouped)
            row = measure(repo, size, grouped, options.runs)
            row.update(naive_git_log(repo, size, grouped))
            results.append(row)
            print(f"{size:>6} releases {row['layout']:>7}: full build {row['full_build_s']:.2f}s "
                  f"({row['files']} files, {row['files_per_s']:.0f} files/s, peak {row['full_build_peak_mib']} MiB); "
                  f"rebuild unchanged {row['rebuild_unchanged_s']:.2f}s; one added {row['rebuild_one_added_s']:.2f}s; "
                  f"validate warm {row['validate_warm_s']:.2f}s, cold {row['validate_cold_s']:.2f}s; "
                  f"one git log per file: {row['naive_extrapolated_s']:.0f}s extrapolated", flush=True)
            shutil.rmtree(repo, ignore_errors=True)
    flat = {row["releases"]: row for row in results if row["layout"] == "flat"}
    if len(flat) >= 2:
        small, large = min(flat), max(flat)
        ratio = flat[large]["full_build_s"] / flat[small]["full_build_s"]
        print(f"full build {large}/{small} ratio: {ratio:.2f} (linear would be {large / small:.0f})")
    hugo = hugo_pages_per_second(max(sizes))
    if hugo:
        print(f"hugo: {hugo['hugo_pages']} pages in {hugo['hugo_build_s']:.2f}s = {hugo['hugo_pages_per_s']:.0f} pages/s")
    else:
        print("hugo: not installed (apt-get install hugo) - no side-by-side figure")
    Path(ROOT / ".bench").mkdir(exist_ok=True)
    (ROOT / ".bench" / "results.json").write_text(json.dumps({"rows": results, "hugo": hugo}, indent=2))
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
