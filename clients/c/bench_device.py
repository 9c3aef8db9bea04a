"""`make bench-device`: the C client's budgets on a device, measured.

1. Code size of the library without crypto (crypto sits behind `rr_crypto`), compiled by Debian's
   arm-none-eabi-gcc at -Os -mcpu=cortex-m4 -mthumb (`make -C clients/c budgets`): flash is the
   object's .text, .rodata and .data. Budget: 12 KiB.
2. Peak stack of every entry point: the frames of `-fstack-usage`, summed along the deepest call
   chain of the call graph GCC writes (`-fcallgraph-info=su`). Budget: 2 KiB. Calls through
   `rr_crypto` (the platform's SHA-256 and Ed25519) and libc's mem*/str* are not included.
3. Documents against a device with a 4 KiB buffer and 256 jsmn tokens: every device document of the
   example registry (registry/) and of a 10,000-release synthetic registry (benchmarks/synth.py),
   built by `relreg build`, measured by the C parser itself (`relreg-device-c --measure`).

Usage: python clients/c/bench_device.py [--releases 10000] [--json]
Functions are importable (tests/test_c_client.py checks the budgets with them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

C_DIR = Path(__file__).resolve().parent
REPO = C_DIR.parent.parent
BUILD = C_DIR / "build"
FLASH_BUDGET = 12 * 1024
STACK_BUDGET = 2 * 1024
BUFFER = 4096
TOKENS = 256
ENTRY_POINTS = ("rr_parse", "rr_decide_answer", "rr_decide_candidates", "rr_verify_signature", "rr_verified_check",
                "rr_image_begin", "rr_image_update", "rr_image_finish", "rr_version_compare", "rr_version_check",
                "rr_bucket", "rr_string_copy", "rr_object_get", "rr_skip", "rr_hex_decode", "rr_status_name")


def flash_bytes(size_file: Path = BUILD / "arm" / "size.txt") -> dict[str, int]:
    """Flash of the ARM object by kind, from `arm-none-eabi-size -A`."""
    totals = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for line in size_file.read_text().splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        name = parts[0]
        for kind in totals:
            if name == f".{kind}" or name.startswith(f".{kind}."):
                totals[kind] += int(parts[1])
    totals["flash"] = totals["text"] + totals["rodata"] + totals["data"]
    return totals


def stack_peaks(ci_file: Path = BUILD / "arm" / "relreg_client.ci") -> dict[str, dict[str, object]]:
    """{entry point: {"bytes": peak, "chain": [functions]}} from GCC's call graph with stack usage."""
    frames: dict[str, int] = {}
    dynamic: set[str] = set()
    names: dict[str, str] = {}
    calls: dict[str, list[str]] = {}
    for line in ci_file.read_text().splitlines():
        node = re.match(r'node: \{ title: "([^"]+)" label: "([^\\"]+)\\n[^"]*?(\d+) bytes \((\w+)', line)
        if node:
            title, name, size, kind = node.groups()
            frames[title] = int(size)
            names[title] = name
            if kind != "static":
                dynamic.add(title)
            continue
        other = re.match(r'node: \{ title: "([^"]+)" label: "([^\\"]+)', line)
        if other:
            names.setdefault(other.group(1), other.group(2))
            continue
        edge = re.match(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', line)
        if edge:
            calls.setdefault(edge.group(1), []).append(edge.group(2))
    assert not dynamic, f"functions with dynamic stack: {sorted(dynamic)}"
    memo: dict[str, tuple[int, list[str]]] = {}

    def peak(title: str, path: tuple[str, ...] = ()) -> tuple[int, list[str]]:
        if title in path:
            raise AssertionError(f"recursion through {title}")
        if title not in memo:
            best = (0, [])
            for callee in set(calls.get(title, ())):
                candidate = peak(callee, path + (title,))
                if candidate[0] > best[0]:
                    best = candidate
            memo[title] = (frames.get(title, 0) + best[0], [names.get(title, title), *best[1]])
        return memo[title]

    result = {}
    for title, name in names.items():
        if name in ENTRY_POINTS:
            total, chain = peak(title)
            result[name] = {"bytes": total, "chain": chain}
    return result


def measure_documents(site: Path, harness: Path) -> dict[str, object]:
    """Bytes and jsmn tokens of every device document (answers, candidates, index) and signature."""
    files = sorted(p for p in (site / "api/v1/devices").rglob("*") if p.is_file())
    listing = "".join(f"{p}\n" for p in files)
    out = subprocess.run([str(harness), "--measure"], input=listing, capture_output=True, text=True, check=True)
    kinds: dict[str, list[tuple[int, int, str]]] = {}
    for path, line in zip(files, out.stdout.splitlines()):
        size, tokens, status = line.split()
        name = path.name
        kind = ("signature" if name.endswith(".sig") else "candidates" if name == "candidates.json"
                else "index" if name == "index.json" else "answer")
        kinds.setdefault(kind, []).append((int(size), int(tokens), str(path.relative_to(site))))
    summary: dict[str, object] = {}
    for kind, items in sorted(kinds.items()):
        largest = max(items)
        most_tokens = max(items, key=lambda item: item[1])
        fits = [i for i in items if i[0] <= BUFFER and (kind == "signature" or i[1] <= TOKENS)]
        summary[kind] = {"count": len(items), "max_bytes": largest[0], "max_bytes_path": largest[2],
                         "max_tokens": most_tokens[1], "median_bytes": sorted(i[0] for i in items)[len(items) // 2],
                         "fit": len(fits)}
    return summary


def per_item_cost(site: Path, harness: Path) -> dict[str, float]:
    """Bytes and tokens a candidate adds to candidates.json, by least squares over the site's channels."""
    points = []
    paths = sorted((site / "api/v1/devices").glob("*/*/*/candidates.json"))
    out = subprocess.run([str(harness), "--measure"], input="".join(f"{p}\n" for p in paths), capture_output=True,
                         text=True, check=True)
    for path, line in zip(paths, out.stdout.splitlines()):
        size, tokens, _ = line.split()
        data = json.loads(path.read_bytes())["data"]
        artifacts = sum(len(c["artifacts"]) for c in data["candidates"])
        points.append((len(data["candidates"]), artifacts, int(size), int(tokens)))
    with_items = [p for p in points if p[0]]
    if not with_items:
        return {}
    per_candidate_bytes = max((p[2] - min(q[2] for q in points)) / p[0] for p in with_items)
    per_candidate_tokens = max((p[3] - min(q[3] for q in points)) / p[0] for p in with_items)
    base_bytes = min(q[2] for q in points)
    base_tokens = min(q[3] for q in points)
    return {"base_bytes": base_bytes, "per_candidate_bytes": round(per_candidate_bytes, 1),
            "base_tokens": base_tokens, "per_candidate_tokens": round(per_candidate_tokens, 1),
            "candidates_that_fit": min(math.floor((BUFFER - base_bytes) / per_candidate_bytes),
                                       math.floor((TOKENS - base_tokens) / per_candidate_tokens))}


def add_cohorts(repo: Path, registry: Path, releases: int) -> None:
    """Cohorts for the synthetic registry (it has none): `recent` deploys the 6 newest releases, the newest
    at 25 % (as tests/device_helpers.synthetic_inputs); `kept` never drops an activation: the 40 newest."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from synth import version_of

    (registry / "cohorts").mkdir(exist_ok=True)
    for slug, count in (("recent", 6), ("kept", 40)):
        lines = [f"slug: {slug}", f"name: {slug.title()}", "releases:"]
        for k in range(count):
            percent = 25 if k == 0 else 100
            lines.append(f'  - version: "{version_of(releases - 1 - k)}"\n    rollout_percent: {percent}')
        (registry / "cohorts" / f"{slug}.yaml").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "b@example.test",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "b@example.test"}
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", "cohorts"], check=True, env=env)


def build_site(registry_dir: Path, out: Path) -> None:
    subprocess.run([sys.executable, "-m", "relreg", "build", "--registry", str(registry_dir), "--out", str(out)],
                   check=True, capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=10_000, help="releases of the synthetic registry")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    options = parser.parse_args()
    harness = BUILD / "relreg-device-c"
    subprocess.run(["make", "-s", "-C", str(C_DIR), "budgets", str(harness.relative_to(C_DIR))], check=True)
    figures: dict[str, object] = {"flash": flash_bytes(), "stack": stack_peaks()}
    with tempfile.TemporaryDirectory(prefix="relreg-bench-device-") as temporary:
        work = Path(temporary)
        build_site(REPO / "registry", work / "example")
        figures["example"] = measure_documents(work / "example", harness)
        figures["example_candidates_cost"] = per_item_cost(work / "example", harness)
        sys.path.insert(0, str(REPO / "benchmarks"))
        from synth import make_registry

        repo = work / "synth"
        registry = make_registry(repo, options.releases)
        add_cohorts(repo, registry, options.releases)
        build_site(registry, work / "synth-site")
        figures[f"synthetic_{options.releases}"] = measure_documents(work / "synth-site", harness)
    if options.json:
        print(json.dumps(figures, indent=2))
        return
    flash = figures["flash"]
    print(f"flash (Cortex-M4, -Os, without crypto): {flash['flash']} bytes "  # type: ignore[index]
          f"(text {flash['text']}, rodata {flash['rodata']}, data {flash['data']}, bss {flash['bss']}); "  # type: ignore[index]
          f"budget {FLASH_BUDGET}")
    for name, peak in sorted(figures["stack"].items(), key=lambda item: -item[1]["bytes"]):  # type: ignore[union-attr]
        print(f"stack {name:22} {peak['bytes']:5} bytes  ({' > '.join(peak['chain'])})")
    for site in ("example", f"synthetic_{options.releases}"):
        for kind, row in figures[site].items():  # type: ignore[union-attr]
            print(f"{site:16} {kind:10} {row['count']:7} documents, largest {row['max_bytes']:6} bytes, "
                  f"most tokens {row['max_tokens']:4}, median {row['median_bytes']:5} bytes, "
                  f"{row['fit']}/{row['count']} fit {BUFFER} bytes + {TOKENS} tokens "
                  f"(largest: {row['max_bytes_path']})")
    print(f"candidates.json cost: {figures['example_candidates_cost']}")


if __name__ == "__main__":
    main()
