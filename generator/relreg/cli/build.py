"""`relreg validate` and `relreg build`: from the registry's files to a checked model and a site."""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from relreg.cli.common import RegistryUsageError, find_registry, format_option, registry_option, resolve_registry
from relreg.registry.report import REPORTERS

if TYPE_CHECKING:
    from relreg.uptodate import BuildReport


@click.command()
@registry_option
@format_option
def validate(registry_dir: Path | None, output_format: str) -> None:
    """Check every registry file and report every problem in one run.

    Each file is read as strict YAML (no duplicate keys, anchors, tags or
    ambiguous values), checked against its JSON Schema, and then the whole
    registry is checked against the rules a schema cannot say: file names
    match versions, versions and build ids are unique, deltas start from an
    existing lower release, hardware versions exist, cohorts name releases
    that exist and are not yanked.

    \b
    Each problem is printed as  path:line:col: error: message [rule].
    Exit status: 0 valid, 1 problems found, 2 usage error.
    """
    from relreg.history.cache import work_cache_for
    from relreg.history.head import hidden_files_problem, read_head
    from relreg.history.recency import GitRecency
    from relreg.registry import CONFIG_FILE
    from relreg.registry.gcpause import gc_paused
    from relreg.registry.source import RegistryNotFound, read_tracked, read_worktree
    from relreg.registry.validate import start_early_check, summary, validate_files
    from relreg.trust.keys_check import registry_keys_diagnostics

    registry_path = resolve_registry(registry_dir)
    with gc_paused():  # the whole command builds objects without cycles, and exits
        cache = work_cache_for(registry_path)
        # A cold run: workers start checking the files while this process asks git and reads them.
        early = start_early_check(registry_path, cache) if (registry_path / CONFIG_FILE).is_file() else None
        try:
            # A clean registry is what git's index says (as a build reads it): the files are then read
            # only by the processes that check them, not all first by this one.
            head = read_head(registry_path)
            tracked = head.tracked_files() if head is not None else None
            files = read_tracked(registry_path, tracked, cache.holds_document, known=cache) \
                if tracked is not None else None
            del tracked
            if files is None:
                problem = hidden_files_problem(registry_path)
                if problem is not None:
                    raise RegistryUsageError(problem)
                files = read_worktree(registry_path, known=cache)
            # A conflict between two files is reported at the newer one (git history; uncommitted files newest).
            recency = GitRecency(registry_path, files.root)
        except BaseException as error:
            if early is not None:
                early.close()
            if isinstance(error, RegistryNotFound):
                raise RegistryUsageError(str(error)) from None
            raise
        result = validate_files(files, cache, recency=recency, model=False, early=early)
        result.diagnostics.extend(registry_keys_diagnostics(registry_path, files.root))
        cache.save(keep_notes=True)  # the next build's, though validation renders none
        click.echo(REPORTERS[output_format](result.diagnostics, summary(result)))
        _exit(0 if result.ok else 1)


def _print_report(report: "BuildReport", output_format: str) -> None:
    """A successful build's report: warnings on standard error (the first ones), then the summary line,
    or with --format json one JSON object on standard output (what `validate --format json` gives, with
    the build's figures and every warning)."""
    shown = report.warnings if len(report.warnings) <= 10 else report.warnings[:8]
    for warning in shown:
        click.echo(f"warning: {warning}", err=True)
    if len(shown) < len(report.warnings):
        click.echo(f"warning: ... and {len(report.warnings) - len(shown)} more like these", err=True)
    if output_format != "json":
        click.echo(report.summary())
        return
    click.echo(json.dumps({
        "ok": True, "summary": report.summary(), "error_count": 0, "warning_count": len(report.warnings),
        "diagnostics": [], "warnings": report.warnings,
        "build": {"releases": report.releases, "written": report.stats.written,
                  "unchanged": report.stats.unchanged, "removed": report.stats.removed,
                  "seconds": round(report.seconds, 3), "commit": report.commit},
    }, indent=2, sort_keys=True))


def _ends_the_process() -> bool:
    """Whether the command runs in the relreg process itself (its own standard output, not one a caller
    such as click's test runner put in place), which `_exit` ends at once."""
    return sys.stdout is sys.__stdout__ and sys.stderr is sys.__stderr__


def _exit(status: int) -> None:
    """End the command with `status`. In the relreg process itself (`_ends_the_process`), once the
    output is written, without freeing every object of the run one by one and collecting them first:
    a fifth of a second for 10,000 releases, spent on memory the operating system takes back at once."""
    if _ends_the_process():
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # the output could not be written: let the usual exit say so
        else:
            os._exit(status)
    sys.exit(status)


@click.command()
@registry_option
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("public"), show_default=True,
              help="Output folder. It is replaced as a whole, atomically; unchanged files keep their timestamps.")
@click.option("--ref", metavar="REF",
              help="Build exactly what this commit (branch, tag, sha) holds, read from git objects, not the work tree.")
@click.option("--device-counts", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Fleet snapshot giving count_devices: JSON {\"1.2.3\": 120} (or {\"snapshot_date\": "
                   "\"YYYY-MM-DD\", \"counts\": {...}}) or CSV rows version,count (header "
                   "version,count[,snapshot_date] optional).")
@click.option("--base-url", metavar="URL",
              help="Absolute URL the site is served from, overriding site_url in registry.yaml (e.g. for previews).")
@click.option("--signing-key", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Ed25519 private key(s), PEM, to sign device documents and write a TUF repository "
                   "(default: $RELREG_SIGNING_KEY; unsigned without either). See docs/security.md.")
@click.option("--force", is_flag=True,
              help="Rebuild every file even when the inputs match the previous build's.")
@format_option
def build(registry_dir: Path | None, out: Path, ref: str | None, device_counts: Path | None,
          base_url: str | None, signing_key: Path | None, force: bool, output_format: str) -> None:
    """Build the registry into a folder of static JSON and HTML.

    \b
    The output (default public/) holds:
      api/v1/index.json                       entry point: commit, URL templates
      api/v1/releases.json                    every release, newest first, paged
      api/v1/releases/<version>.json          one release, as Memfault's API returns it
      api/v1/releases/<dimension>/<key>.json  releases by version, revision,
                                              hardware_version or build_id
      api/v1/hardware_versions.json, api/v1/cohorts.json
      schemas/                                the input schemas, for editors

    created_date and updated_date come from git history (first-parent, renames
    followed) in one pass, cached by commit. A file that is not committed yet is
    dated by the build time (SOURCE_DATE_EPOCH when set) with a warning. The
    same commit always gives byte-identical files. An invalid registry writes
    nothing and leaves the previous output untouched.
    """
    from relreg.uptodate import BuildOptions, up_to_date

    if ref is not None and registry_dir is not None and registry_dir.is_dir():
        registry_path = registry_dir  # read from the commit: its registry.yaml need not be in the work tree
    else:
        registry_path = resolve_registry(registry_dir) if ref is None or registry_dir is not None \
            else find_registry(Path.cwd())
    if base_url is not None:
        try:
            base_url.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8 on the command line (Python keeps them as surrogates)
            raise click.BadParameter("not UTF-8 text: give the URL as UTF-8 (or percent-encoded)",
                                     param_hint="--base-url") from None
        if not base_url.endswith("/"):
            base_url += "/"
    if out.resolve() == registry_path.resolve() or registry_path.resolve() in out.resolve().parents:
        raise RegistryUsageError(f"--out {out} is inside the registry {registry_path}: its files would be read "
                                 "as registry files; write the site outside the registry folder")

    def progress(message: str) -> None:
        click.echo(f"relreg: {message}...", err=True)

    options = BuildOptions(registry_dir=registry_path, out=out, ref=ref, device_counts=device_counts,
                           base_url=base_url, force=force, signing_key=signing_key,
                           progress=progress if sys.stderr.isatty() else None)
    checked = up_to_date(options)
    report = checked[0]
    if report is not None:  # nothing changed since the last build of this output: nothing else to load
        _print_report(report, output_format)
        return

    from relreg.build import InvalidRegistry, build_site
    from relreg.registry.validate import summary as validation_summary

    if _ends_the_process():
        # The build pauses the cycle collector; resumed after it, its first pass would walk the whole
        # model on the way out (0.07 s at 10,000 releases) for memory the process gives back at once.
        gc.disable()
    try:
        report = build_site(options, checked)
    except InvalidRegistry as error:
        click.echo(REPORTERS[output_format](error.result.diagnostics, validation_summary(error.result)))
        click.echo("build stopped: the registry has errors; the previous output is untouched", err=True)
        sys.exit(1)
    except RuntimeError as error:
        # BrokenProcessPool, a RuntimeError, from the site's worker processes: its module is loaded only by a
        # build that forked them (importing it here would cost every rebuild, the unchanged one too, 30 ms).
        pool = sys.modules.get("concurrent.futures.process")
        if pool is None or not isinstance(error, pool.BrokenProcessPool):
            raise
        click.echo("build stopped: a worker process was killed (out of memory? see dmesg); "
                   "the previous output is untouched", err=True)
        sys.exit(1)
    except OSError as error:  # a full disk, a folder that may not be written: the swap is all or nothing
        where = f" ({error.filename})" if error.filename else ""
        click.echo(f"build stopped: {error.strerror or error}{where}; the output folder holds a whole site, "
                   "the previous one unless the error came after the swap", err=True)
        sys.exit(1)
    _print_report(report, output_format)
    _exit(0)  # the site is swapped in and the caches saved: nothing is left to free one object at a time
