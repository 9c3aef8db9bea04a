"""Is the output already the build of this commit? The check every build starts with.

When the registry is exactly a commit (a clean work tree, or `--ref`), the output depends only on
that commit, the options and relreg's own code: their digest, the source key, is kept in the
manifest's first line. A rebuild whose source key matches stops here, after three git calls,
without reading, validating or dating a single file. This module and what it imports load in a
few hundredths of a second (no YAML, Jinja2 or GitPython), since on that path start-up is most of
the time.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from relreg.history.head import HeadState, read_head
from relreg.resources import code_digest
from relreg.site.manifest import WriteStats, read_header
from relreg.trust.where import ENV_VAR, KEYS_FILE


@dataclass(frozen=True)
class BuildOptions:
    registry_dir: Path
    out: Path
    ref: str | None = None
    device_counts: Path | None = None
    base_url: str | None = None
    force: bool = False  # rebuild even when the inputs match the previous build
    progress: Callable[[str], None] | None = None  # told each step of a long build, e.g. for a terminal
    signing_key: Path | None = None  # Ed25519 private key(s), PEM; None: RELREG_SIGNING_KEY, else unsigned


@dataclass
class BuildReport:
    releases: int
    stats: WriteStats
    seconds: float
    commit: str | None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"built {self.releases} releases: {self.stats.written} files written, "
                f"{self.stats.unchanged} unchanged, {self.stats.removed} removed "
                f"in {self.seconds:.2f}s")


def signing_wanted(options: BuildOptions) -> bool:
    """A key is given (option, environment or the registry's keys file): the build signs."""
    return bool(options.signing_key or os.environ.get(ENV_VAR) or (options.registry_dir / KEYS_FILE).exists())


def source_key(options: BuildOptions, head: HeadState | None) -> str | None:
    """What the output depends on when the registry is exactly a commit: the commit, the options, the code.

    None when it does not apply: no commit, a shallow clone (the full build refuses it), uncommitted
    registry changes, or signing (signed documents expire, so a signed site is rebuilt).
    """
    if head is None or head.commit is None or head.shallow or not head.clean or signing_wanted(options):
        return None
    try:
        counts = options.device_counts.read_bytes() if options.device_counts else b""
    except OSError:
        return None  # the full build reports it
    digest = hashlib.sha256(code_digest())
    digest.update(json.dumps([head.commit, head.prefix, options.base_url, hashlib.sha256(counts).hexdigest()]).encode())
    return digest.hexdigest()


def up_to_date(options: BuildOptions) -> tuple[BuildReport | None, HeadState | None, str | None]:
    """(a report when the output already is this build, else None; the git state; the source key).

    The state and key are handed on to the full build, so git is asked once.
    """
    started = time.perf_counter()
    head = read_head(options.registry_dir, options.ref)
    source = source_key(options, head)
    if source is None or options.force:
        return None, head, source
    header = read_header(options.out)
    if header is None or header.get("source") != source:
        return None, head, source
    report = BuildReport(releases=header["releases"], stats=WriteStats(0, header["files"], 0),
                         seconds=time.perf_counter() - started, commit=head.commit if head else None)
    return report, head, source
