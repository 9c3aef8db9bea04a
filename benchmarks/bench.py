"""`make bench`: relreg's build and validate on synthetic registries with real git history.

Prints medians (and peak memory of the largest relreg process) for 1,000 and
10,000 releases, flat and grouped layouts: full build (no caches, empty
output), rebuild with nothing changed, rebuild after one release is added, a
notes fix and a rollout change, validate (cold and warm cache), each in a process of
its own and, for the rebuilds and warm validate, through relreg's daemon. For comparison
it times the obvious approach (one `git log` per file, on 200 sampled files,
extrapolated) and, on equal pages, relreg's HTML pages alone against Hugo
(Debian's) building the same release pages with the same Markdown notes and as
many list pages. With `--baseline REV` the same registries are measured with
the code of git revision REV too, in the same run, so old and new figures
share the machine's load. Output goes to /dev/shm when it exists, where disk
noise does not blur the figures. Results are also written to .bench/results.json ($RELREG_BENCH_RESULTS).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synth import add_release, make_registry, release_path, version_of  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(os.environ.get("TMPDIR", "/tmp"))
RESULTS = Path(os.environ.get("RELREG_BENCH_RESULTS", ROOT / ".bench" / "results.json"))  # the tests write elsewhere
WORK = Path(os.environ.get("RELREG_BENCH_WORK", SCRATCH / "relreg-bench"))  # two benches at once need two


def relreg(*args: str) -> list[str]:
    return [sys.executable, "-m", "relreg", *args]


def code_of(revision: str | None) -> Path:
    """The generator/ folder to run: the work tree's, or revision's exported from git."""
    if revision is None:
        return ROOT / "generator"
    folder = WORK / f"code-{revision}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "generator", "schemas"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "generator"


def drop_caches(repo: Path, out: Path) -> None:
    shutil.rmtree(repo / ".git" / "relreg", ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.parent / f".{out.name}.spare", ignore_errors=True)


def _commit(repo: Path, message: str, seconds: int) -> None:
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=Bench", "-c", "user.email=b@example.test",
                    "commit", "-q", "-m", message], check=True,
                   env={"GIT_AUTHOR_DATE": f"@{seconds} +0000", "GIT_COMMITTER_DATE": f"@{seconds} +0000",
                        "PATH": "/usr/bin:/bin"})


LIST_PAGE_RELEASES = 500  # relreg.site.pages.LIST_PAGE_RELEASES: rows a page of the releases list, for Hugo's
CHANGES = itertools.count()  # numbers the commits of the notes and rollout runs, so that each changes something


def fix_notes(repo: Path, index: int, grouped: bool) -> None:
    """Commit a corrected line in the notes of an old release."""
    run = next(CHANGES)
    path = repo / release_path(index, grouped)
    path.write_text(path.read_text().replace("drops work item 3 ", f"drops work item 3 (fix {run}) ", 1))
    _commit(repo, f"fix notes of {version_of(index)}", 2_000_000_000 + run)


def change_rollout(repo: Path, versions: list[str]) -> None:
    """Commit a cohort file whose rollout percentage changes each run."""
    run = next(CHANGES)
    cohort = repo / "registry" / "cohorts" / "beta.yaml"
    cohort.parent.mkdir(exist_ok=True)
    cohort.write_text("slug: beta\nname: Beta\nreleases:\n"
                      + "".join(f'  - version: "{v}"\n    rollout_percent: {10 + run}\n' for v in versions))
    _commit(repo, f"rollout {10 + run}%", 2_000_100_000 + run)


def measure(repo: Path, releases: int, grouped: bool, runs: int, code: Path, full_runs: int) -> dict[str, object]:
    """Wall seconds (medians of `runs`) of each build kind, with the CPU seconds (user + system, the
    workers included) beside them: on a shared machine the CPU time is the steadier figure."""
    out = WORK / "out"
    build = relreg("build", "--out", str(out))
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    peaks = []

    def timed(kind: str, args: list[str], daemon: dict[str, str] | None = None) -> None:
        seconds, peak, _ = run_measured_with_rusage(args, repo, code, daemon)
        wall.setdefault(kind, []).append(seconds)
        cpu.setdefault(kind, []).append(LAST_CPU[0])
        if daemon is None:  # through the daemon, the measured process is the client alone
            peaks.append((kind, peak))

    for _ in range(full_runs):
        drop_caches(repo, out)
        timed("full_build", build)
    files = sum(len(names) for _, _, names in os.walk(out)) - 1
    for _ in range(runs):
        timed("rebuild_unchanged", build)
    existing = sum(1 for _ in (repo / "registry" / "releases").rglob("*.yaml"))  # another code's run added some
    for run in range(runs):
        add_release(repo, existing + run, grouped)
        timed("rebuild_one_added", build)
    for _ in range(runs):
        fix_notes(repo, releases // 2, grouped)
        timed("rebuild_notes_fix", build)
    for _ in range(runs):
        change_rollout(repo, [version_of(releases - 2), version_of(releases - 1)])
        timed("rebuild_rollout", build)
    for _ in range(runs):
        timed("validate_warm", relreg("validate"))
    for _ in range(runs):
        shutil.rmtree(repo / ".git" / "relreg", ignore_errors=True)
        timed("validate_cold", relreg("validate"))
    daemon = daemon_environment(code)
    if daemon is not None:  # the same rebuilds, run by relreg's daemon (started, untimed, by the first)
        run_measured_with_rusage(relreg("validate"), repo, code, daemon)
        for _ in range(runs):
            timed("daemon_rebuild_unchanged", build, daemon)
        for run in range(runs):
            add_release(repo, existing + runs + run, grouped)
            timed("daemon_rebuild_one_added", build, daemon)
        for _ in range(runs):
            fix_notes(repo, releases // 2, grouped)
            timed("daemon_rebuild_notes_fix", build, daemon)
        for _ in range(runs):
            change_rollout(repo, [version_of(releases - 2), version_of(releases - 1)])
            timed("daemon_rebuild_rollout", build, daemon)
        for _ in range(runs):
            timed("daemon_validate_warm", relreg("validate"), daemon)
        stop_daemons(Path(daemon["XDG_RUNTIME_DIR"]))
        shutil.rmtree(daemon["XDG_RUNTIME_DIR"], ignore_errors=True)
    row: dict[str, object] = {"releases": releases, "layout": "grouped" if grouped else "flat", "files": files,
                              "full_build_peak_mib": max(peak for kind, peak in peaks if kind == "full_build"),
                              "peak_mib": max(peak for _, peak in peaks)}
    for kind in wall:
        row[f"{kind}_s"] = statistics.median(wall[kind])
        row[f"{kind}_cpu_s"] = statistics.median(cpu[kind])
        row[f"{kind}_runs_s"] = [round(seconds, 3) for seconds in wall[kind]]  # each run, in order: the first
        # rebuild after a full build also makes the spare folder whole, and a median hides which run was slow
    row["files_per_s"] = files / row["full_build_s"]  # type: ignore[operator]
    return row


LAST_CPU = [0.0]  # CPU seconds of the last measured process and the children it waited for


def bench_environment(code: Path) -> dict[str, str]:
    """The environment of a measured run: `code` first on the path, and bytecode written as a user's
    install writes it (a shell with PYTHONDONTWRITEBYTECODE set made every run compile relreg again),
    and each command in a process of its own (see daemon_environment for the daemon's runs)."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**environment, "PYTHONPATH": str(code), "RELREG_DAEMON": "0"}


def daemon_environment(code: Path) -> dict[str, str] | None:
    """What runs a command in relreg's daemon, one for this code (its own socket folder); None for
    code from before the daemon."""
    if not (code / "relreg" / "daemon.py").is_file():
        return None
    folder = tempfile.mkdtemp(prefix="rrd", dir="/tmp")  # short: the socket's path must fit
    return {"RELREG_DAEMON": "require", "XDG_RUNTIME_DIR": str(folder), "RELREG_DAEMON_IDLE": "600"}


def stop_daemons(folder: Path) -> None:
    """SIGTERM to the daemons whose socket is in `folder`."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(folder).encode() in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), 15)
        except OSError:
            pass


def run_measured_with_rusage(args: list[str], cwd: Path, code: Path,
                             daemon: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak memory (MiB) and standard output of a relreg command run in a process of its
    own, or through relreg's daemon with `daemon` (daemon_environment)."""
    started = time.perf_counter()
    errors = (WORK / "stderr.txt").open("w+b")
    environment = {**bench_environment(code), **(daemon or {})}
    process = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=errors, env=environment)
    assert process.stdout is not None
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    LAST_CPU[0] = usage.ru_utime + usage.ru_stime
    if os.waitstatus_to_exitcode(status) != 0:
        errors.seek(0)
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{errors.read().decode(errors='replace')[-3000:]}")
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


def html_vs_hugo(repo: Path, codes: dict[str, Path], runs: int) -> dict[str, object] | None:
    """relreg's HTML pages alone (html_pages.py) and Hugo on a site of the same pages, medians of `runs`.

    Hugo gets one page per release with the same Markdown notes and the same facts in front matter
    (rendered as a table like relreg's), and as many list pages as relreg writes: the home page
    (newest 10), the releases list (in pages of relreg's LIST_PAGE_RELEASES, as relreg pages it past twice
    that) and one page per hardware version (newest 100, as a taxonomy term). Both write to an empty folder
    and use every core.
    """
    import yaml

    hugo = shutil.which("hugo")
    if hugo is None:
        return None
    site = WORK / "hugo"
    shutil.rmtree(site, ignore_errors=True)
    (site / "content" / "releases").mkdir(parents=True)
    layouts = site / "layouts" / "_default"
    layouts.mkdir(parents=True)
    (site / "hugo.toml").write_text('baseURL = "https://fw.bench.test/"\n'
                                    f'paginate = {LIST_PAGE_RELEASES}\n'
                                    'disableKinds = ["taxonomy", "RSS", "sitemap", "404", "robotsTXT"]\n'
                                    'ignoreErrors = ["error-disable-taxonomy"]\n'
                                    '[taxonomies]\n  hardware = "hardware"\n')
    head = "<!doctype html><html lang=en><head><meta charset=utf-8><title>{{ .Title }}</title></head><body><main>"
    (layouts / "single.html").write_text(
        head + "<h1>{{ .Title }}</h1><p>Released {{ .Date.Format \"2006-01-02 15:04\" }}</p>"
        "<p>{{ range .Params.hardware }}<a href=\"/hardware/{{ . }}/\">{{ . }}</a> {{ end }}</p>"
        "<h2>Release notes</h2><div class=notes>{{ .Content }}</div><h2>Artifacts</h2><table><tbody>"
        "{{ range .Params.artifacts }}<tr><th>{{ .hardware_version }}</th><td>{{ .type }}</td>"
        "<td><code>{{ .build_id }}</code></td><td>{{ .size }}</td><td><code>{{ .sha256 }}</code></td>"
        "<td><a href=\"https://dl.bench.test/fw/{{ .url }}\">{{ .url }}</a></td></tr>{{ end }}</tbody></table>"
        "</main></body></html>\n")
    row = "<tr><td><a href=\"{{ .RelPermalink }}\">{{ .Title }}</a></td><td>{{ .Date.Format \"2006-01-02\" }}</td></tr>"
    (layouts / "list.html").write_text(head + "<h1>{{ .Title }}</h1><table>{{ range .Paginator.Pages }}" + row
                                       + "{{ end }}</table></main></body></html>\n")
    (layouts / "term.html").write_text(head + "<h1>{{ .Title }}</h1><table>{{ range first 100 .Pages }}" + row
                                       + "{{ end }}</table></main></body></html>\n")
    (site / "layouts" / "index.html").write_text(head + "<h1>Releases</h1><table>{{ range first 10 .Site.RegularPages }}"
                                                 + row + "{{ end }}</table></main></body></html>\n")
    history = subprocess.run(["git", "-C", str(repo), "log", "--format=%ct", "--name-only", "--diff-filter=A",
                              "--", "registry/releases"], check=True, capture_output=True, text=True).stdout
    dates: dict[str, int] = {}
    seconds = 0
    for line in history.splitlines():
        if line.isdigit():
            seconds = int(line)
        elif line:
            dates[line] = seconds
    for path in sorted((repo / "registry" / "releases").rglob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        front = {"title": data["version"], "hardware": sorted({a["hardware_version"] for a in data["artifacts"]}),
                 "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(dates[path.relative_to(repo).as_posix()])),
                 "artifacts": [{**a, "type": a.get("type", "full")} for a in data["artifacts"]]}
        (site / "content" / "releases" / f"{data['version']}.md").write_text(
            "---\n" + json.dumps(front) + "\n---\n" + data["notes"])
    result: dict[str, object] = {}
    for label, code in codes.items():
        times, cpu, pages = [], [], 0
        # Untimed: relreg's git history cache (Hugo's dates were read before its runs too) and the disk cache.
        shutil.rmtree(WORK / "html-out", ignore_errors=True)
        run_measured_with_rusage([sys.executable, str(ROOT / "benchmarks" / "html_pages.py"), str(repo / "registry"),
                                  str(WORK / "html-out")], repo, code)
        for _ in range(runs):
            shutil.rmtree(WORK / "html-out", ignore_errors=True)
            seconds_taken, _, stdout = run_measured_with_rusage(
                [sys.executable, str(ROOT / "benchmarks" / "html_pages.py"), str(repo / "registry"),
                 str(WORK / "html-out")], repo, code)
            times.append(seconds_taken)
            cpu.append(LAST_CPU[0])
            pages = int(stdout.split()[-1])
        result[f"relreg_html_{label}_s"] = statistics.median(times)
        result[f"relreg_html_{label}_cpu_s"] = statistics.median(cpu)
        result[f"relreg_html_{label}_pages"] = pages  # each code's own: a code may write more list pages
    times, cpu = [], []
    run_measured_with_rusage([hugo, "--quiet", "-s", str(site), "-d", str(WORK / "hugo-out")], site,
                             ROOT / "generator")  # untimed, as relreg's first run
    for _ in range(runs):
        shutil.rmtree(WORK / "hugo-out", ignore_errors=True)
        times.append(run_measured_with_rusage([hugo, "--quiet", "-s", str(site), "-d", str(WORK / "hugo-out")],
                                              site, ROOT / "generator")[0])
        cpu.append(LAST_CPU[0])
    result["hugo_cpu_s"] = statistics.median(cpu)
    result["hugo_pages"] = sum(1 for _, _, names in os.walk(WORK / "hugo-out") for name in names
                               if name.endswith(".html"))
    result["hugo_build_s"] = statistics.median(times)
    result["hugo_version"] = subprocess.run([hugo, "version"], capture_output=True, text=True).stdout.strip()
    return result


def _row_text(row: dict[str, object]) -> str:
    def both(kind: str) -> str:
        return f"{row[kind + '_s']:.2f}s (cpu {row[kind + '_cpu_s']:.2f}s)"

    return (f"full build {both('full_build')} ({row['files']} files, {row['files_per_s']:.0f} files/s, "
            f"peak {row['full_build_peak_mib']} MiB, any build {row['peak_mib']} MiB); "
            f"rebuild unchanged {both('rebuild_unchanged')}; one added {both('rebuild_one_added')}; "
            f"notes fix {both('rebuild_notes_fix')}; rollout change {both('rebuild_rollout')}; "
            f"validate warm {both('validate_warm')}, cold {both('validate_cold')}"
            + (f"; with the daemon (wall): unchanged {row['daemon_rebuild_unchanged_s']:.2f}s, one added "
               f"{row['daemon_rebuild_one_added_s']:.2f}s, notes fix {row['daemon_rebuild_notes_fix_s']:.2f}s, "
               f"rollout change {row['daemon_rebuild_rollout_s']:.2f}s, validate warm "
               f"{row['daemon_validate_warm_s']:.2f}s" if "daemon_rebuild_unchanged_s" in row else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated release counts")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", help="also measure the code of this git revision, in the same run")
    parser.add_argument("--revision", help="measure this git revision's code instead of the work tree's")
    parser.add_argument("--full-runs", type=int, help="runs of the full builds (theirs and Hugo's); default --runs")
    parser.add_argument("--layouts", default="flat,grouped",
                        help="with flat, grouped is measured at the largest size only")
    parser.add_argument("--no-naive", action="store_true", help="skip the one-git-log-per-file estimate")
    parser.add_argument("--no-hugo", action="store_true", help="skip the HTML pages against Hugo")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    layouts = options.layouts.split(",")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    codes = {"current": code_of(options.revision)}
    if options.baseline:
        codes = {"baseline": code_of(options.baseline), **codes}
    load = os.getloadavg()[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"work folder {WORK}; medians of {options.runs} runs ({options.full_runs or options.runs} of full builds); load average at start {load:.1f}"
          + (f"; baseline = {options.baseline}" if options.baseline else ""), flush=True)
    results: list[dict[str, object]] = []
    comparison = None
    for size in sizes:
        for grouped in (False, True):
            layout = "grouped" if grouped else "flat"
            if layout not in layouts or (grouped and "flat" in layouts and size != max(sizes)):
                continue
            repo = WORK / f"repo-{size}-{'grouped' if grouped else 'flat'}"
            make_registry(repo, size, grouped)
            change_rollout(repo, [version_of(size - 2), version_of(size - 1)])  # a cohort from the start
            naive = {} if options.no_naive else naive_git_log(repo, size, grouped)
            for label, code in codes.items():
                row = measure(repo, size, grouped, options.runs, code, options.full_runs or options.runs)
                row.update(naive, code=label)
                results.append(row)
                print(f"{size:>6} releases {row['layout']:>7} {label:>8}: {_row_text(row)}", flush=True)
            if naive:
                print(f"{size:>6} releases {('grouped' if grouped else 'flat'):>7}: one git log per file "
                      f"{naive['naive_extrapolated_s']:.0f}s extrapolated", flush=True)
            if size == max(sizes) and not grouped and not options.no_hugo:
                comparison = html_vs_hugo(repo, codes, options.full_runs or options.runs)
            shutil.rmtree(repo, ignore_errors=True)
    for label, layout in itertools.product(codes, layouts):
        rows = {row["releases"]: row for row in results if row["layout"] == layout and row["code"] == label}
        if len(rows) >= 2:
            small, large = min(rows), max(rows)
            ratio = rows[large]["full_build_s"] / rows[small]["full_build_s"]
            print(f"{label}, {layout}: full build {large}/{small} ratio: {ratio:.2f} (linear would be "
                  f"{large / small:.0f}); one added at {large}: {rows[large]['rebuild_one_added_s']:.2f}s, "
                  f"peak {rows[large]['peak_mib']} MiB")
    if comparison:
        for label in codes:
            seconds = comparison[f"relreg_html_{label}_s"]
            cpu = comparison[f"relreg_html_{label}_cpu_s"]
            print(f"HTML pages alone ({label}): relreg {comparison[f'relreg_html_{label}_pages']} pages in {seconds:.2f}s "
                  f"(cpu {cpu:.2f}s), hugo {comparison['hugo_pages']} pages in {comparison['hugo_build_s']:.2f}s "
                  f"(cpu {comparison['hugo_cpu_s']:.2f}s); relreg/hugo ratio {seconds / comparison['hugo_build_s']:.2f} "
                  f"(cpu {cpu / comparison['hugo_cpu_s']:.2f})")
        print(f"({comparison['hugo_version']})")
    elif not options.no_hugo and "flat" not in options.layouts.split(","):
        print("hugo: compared on the flat layout only (--layouts flat) - no side-by-side figure")
    elif not options.no_hugo:
        print("hugo: not installed (apt-get install hugo) - no side-by-side figure")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": results, "html_vs_hugo": comparison}, indent=2))
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
