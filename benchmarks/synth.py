"""Synthetic registries with real git history, made fast with `git fast-import`.

Each release is its own commit (dated one hour after the previous one), with 5
hardware versions, a full and a delta artifact per hardware version, and 1-2
KiB of Markdown notes, so the benchmark measures what a long-lived registry
costs, not what a single commit costs.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

HARDWARE = ("evt1", "dvt1", "dvt2", "pvt", "pvt-b")
START = 1_600_000_000

REGISTRY_YAML = """name: Benchmark Device
site_url: https://fw.bench.test/
artifact_base_url: https://dl.bench.test/fw/
repository_url: https://git.bench.test/fw/commit/{revision}
"""


def version_of(index: int) -> str:
    return f"{index // 1000 + 1}.{index // 10 % 100}.{index % 10}"


def _hex(*parts: object, length: int = 64) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:length]


def release_yaml(index: int) -> str:
    version = version_of(index)
    notes = "\n".join(f"- Fixed issue #{index * 10 + line}: the scheduler no longer drops work item {line} "
                      f"when the radio wakes during a flash erase." for line in range(12))
    lines = [f'version: "{version}"', f"revision: {_hex('rev', index, length=40)}",
             "notes: |", f"  ## Release {version}", "", *[f"  {line}" for line in notes.splitlines()],
             "extra_info:", "  ci_system: bench", f"  build_time_s: {300 + index % 97}", "artifacts:"]
    for hardware in HARDWARE:
        lines += [f"  - hardware_version: {hardware}", f"    build_id: {_hex('b', index, hardware, length=40)}",
                  f"    url: {version}/{hardware}.bin", f"    size: {400000 + index}",
                  f"    sha256: {_hex('s', index, hardware)}"]
        if index > 0:
            lines += [f"  - hardware_version: {hardware}", "    type: delta",
                      f'    delta_from: "{version_of(index - 1)}"',
                      f"    build_id: {_hex('d', index, hardware, length=40)}",
                      f"    url: {version}/{hardware}-delta.bin", f"    size: {40000 + index}",
                      f"    sha256: {_hex('ds', index, hardware)}"]
    return "\n".join(lines) + "\n"


def release_path(index: int, grouped: bool) -> str:
    version = version_of(index)
    if grouped:
        # Two levels, so that no folder holds more than 100 entries: a commit then writes small trees,
        # where a flat folder of 100,000 files makes every commit write a 5 MB tree.
        major, minor, _ = version.split(".")
        return f"registry/releases/{major}/{major}.{minor}/{version}.yaml"
    return f"registry/releases/{version}.yaml"


def _blob(path: str, content: str) -> bytes:
    data = content.encode()
    return f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n"


def _commit(mark: int, seconds: int, message: str, files: list[bytes]) -> bytes:
    msg = message.encode()
    head = (f"commit refs/heads/main\nmark :{mark}\n"
            f"committer Bench <bench@example.test> {seconds} +0000\ndata {len(msg)}\n").encode() + msg + b"\n"
    if mark > 1:
        head += f"from :{mark - 1}\n".encode()
    return head + b"".join(files) + b"\n"


def make_registry(repo: Path, releases: int, grouped: bool = False) -> Path:
    """A git repository holding `releases` releases, one commit each; returns the registry folder."""
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    stream = [_commit(1, START, "registry", [_blob("registry/registry.yaml", REGISTRY_YAML)] +
                      [_blob(f"registry/hardware/{h}.yaml", f"name: {h}\ndescription: Board {h}\n")
                       for h in HARDWARE])]
    for index in range(releases):
        stream.append(_commit(index + 2, START + 3600 * (index + 1), f"release {version_of(index)}",
                              [_blob(release_path(index, grouped), release_yaml(index))]))
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=b"".join(stream), check=True)
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "main"], check=True)
    return repo / "registry"


def add_release(repo: Path, releases: int, grouped: bool = False) -> None:
    """Commit one more release on top of a registry made by make_registry."""
    path = repo / release_path(releases, grouped)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(release_yaml(releases))
    env_date = str(START + 3600 * (releases + 1))
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=Bench", "-c", "user.email=b@example.test",
                    "commit", "-q", "-m", f"release {version_of(releases)}"], check=True,
                   env={"GIT_AUTHOR_DATE": f"@{env_date} +0000", "GIT_COMMITTER_DATE": f"@{env_date} +0000",
                        "PATH": "/usr/bin:/bin"})
