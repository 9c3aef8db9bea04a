"""The build: read, validate, date from git, plan, write. Each step is one call.

Git and disk live here and in the modules it calls at the edges; the plan in
the middle is pure.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from typing import TYPE_CHECKING, Mapping, Sequence

import click

from relreg.devices.budget import DEVICE_BUFFER_BYTES, DEVICE_TOKENS, DeviceBudget, document_kind
from relreg.devices.paths import DEVICES
from relreg.history import gitlog
from relreg.history.head import HeadState, hidden_files_problem
from relreg.history.cache import WorkCache, work_cache_for
from relreg.history.deployments import cohort_history
from relreg.history.recency import GitRecency
from relreg.registry.gcpause import gc_paused, return_freed_memory
from relreg.registry.device_counts import FleetSnapshot, read_device_counts
from relreg.registry.diagnostics import Diagnostic
from relreg.registry.schemas import INPUT_SCHEMAS
from relreg.registry.source import RegistryFiles, RegistryNotFound, read_git_tree, read_tracked, read_worktree
from relreg.registry.validate import ValidationResult, validate_files
from relreg.resources import code_digest, schema_dir
from relreg.site.jobs import ReleaseDates, SiteInputs, format_date
from relreg.site.notes import render_missing, render_notes
from relreg.site.pages import compile_templates
from relreg.site.facts_store import KeptFacts, load_facts, save_facts
from relreg.site.plan import plan_sections, plan_site
from relreg.site.published import changes_since, parse_table, published_table, table_text
from relreg.site.serving import serving_files
from relreg.site.spool import SpooledBytes, SpooledText
from relreg.site.template_cache import keep_compiled_templates
from relreg.site.write import (
    PreviousBuild,
    Summarizer,
    WriteStats,
    previous_build,
    served_files,
    write_jobs,
    write_site,
)
from relreg.uptodate import BuildOptions, BuildReport, signing_wanted, up_to_date

if TYPE_CHECKING:
    from relreg.registry.model import Registry, Release
    from relreg.trust.tufrepo import SiteSigning

# From this many releases, the site is rendered and written by one process per core.
PARALLEL_RELEASES = 300


class InvalidRegistry(click.ClickException):
    """The registry has errors; nothing was written."""

    def __init__(self, result: ValidationResult) -> None:
        super().__init__(f"{len(result.errors)} errors in the registry; nothing was written")
        self.result = result


def _read_files(options: BuildOptions, repo, prefix: str | None, cache: WorkCache,
                head: HeadState | None) -> tuple[RegistryFiles, bool]:
    """The registry's files, and whether they are exactly the commit's (read from git's index, which
    `git status` found clean: no uncommitted change to date by the build time)."""
    tracked = head.tracked_files() if options.ref is None and head is not None else None
    if tracked is not None:
        # A clean registry is what git's index says: every file and its blob id in one listing.
        files = read_tracked(options.registry_dir, tracked, cache.holds_document, known=cache)
        del tracked
        if files is not None:
            cache.keep_blob_ids()  # for the next build from a changed work tree
            return files, True
    if options.ref is None:
        problem = hidden_files_problem(options.registry_dir)
        if problem is not None:
            raise click.UsageError(problem)
        return read_worktree(options.registry_dir, known=cache), False
    commit = repo.commit(gitlog.resolve_commit(repo, options.ref))
    return read_git_tree(commit.tree, prefix or "", holds=cache.holds_document), False


def _dates(registry: Registry, git_history: gitlog.History | None, uncommitted: set[str],
           registry_root: str, now: int, warnings: list[str], undated: set[str] | None = None
           ) -> tuple[dict[str, ReleaseDates], dict[str, ReleaseDates]]:
    """The dates of releases and cohorts by version and slug, from git; a file git has no commit of is dated
    `now` (with a warning), and its source path added to `undated` (when given)."""
    strip = f"{registry_root}/" if registry_root not in ("", ".") else ""

    def dates_of(source_path: str) -> ReleaseDates:
        relative = source_path[len(strip):] if source_path.startswith(strip) else source_path
        known = git_history.dates_of(relative) if git_history else None
        if known is None:
            warnings.append(f"{source_path} is not committed: dated {format_date(now)}")
            if undated is not None:
                undated.add(source_path)
            return ReleaseDates(now, now)
        if relative in uncommitted:
            warnings.append(f"{source_path} has uncommitted changes: updated_date is the build time")
            return ReleaseDates(known.created, now)
        return ReleaseDates(known.created, known.updated)

    releases = {r.version: dates_of(r.source_path) for r in registry.releases}
    cohorts = {c.slug: dates_of(c.source_path) for c in registry.cohorts}
    return releases, cohorts


def _release_notes(releases: Sequence[Release], blob_ids: Mapping[str, str], cache: WorkCache) -> list[str]:
    """The cache's key of each release's notes as safe HTML, rendered into the cache if it lacks them. A
    release's notes are known by its file's blob id (`blob_ids`: by the file's path; the notes of a release
    file without one, by their text): a rebuild reads no notes it rendered before."""
    keys = [cache.file_notes_key(blob) if (blob := blob_ids.get(release.source_path)) else
            cache.notes_key(release.notes, release.notes_format) for release in releases]
    render_missing(keys, lambda index: (releases[index].notes, releases[index].notes_format), cache)
    return keys


def _fingerprint(files: RegistryFiles, release_dates: dict[str, ReleaseDates],
                 cohort_dates: dict[str, ReleaseDates], snapshot: FleetSnapshot, commit: str | None,
                 options: BuildOptions) -> str:
    """Everything the output depends on: if it matches the previous build, the output is already right."""
    digest = hashlib.sha256(code_digest())
    for file in files.files:
        digest.update(f"{file.path}\0{file.blob_id}\n".encode())
    digest.update(json.dumps([sorted((k, v.created, v.updated) for k, v in release_dates.items()),
                              sorted((k, v.created, v.updated) for k, v in cohort_dates.items()),
                              sorted(snapshot.counts.items()), snapshot.snapshot_date, commit,
                              options.base_url]).encode())
    return digest.hexdigest()


def _signing(options: BuildOptions, repo, prefix: str | None, commit: str | None, dirty: bool,
             warnings: list[str]) -> "SiteSigning | None":
    """Keys, TUF roots and metadata versions from git; None when no key is given (an unsigned site)."""
    if not signing_wanted(options):
        return None
    from relreg.trust.tufrepo import SiteSigning  # cryptography and TUF load only for signed builds

    return SiteSigning.configure(options, repo, prefix, commit, dirty, warnings)


def _is_device_document(path: str) -> bool:
    """Answers and candidates, not the channel index (api/v1/devices/index.json)."""
    return path.startswith(f"{DEVICES}/") and path.endswith(".json") and path != f"{DEVICES}/index.json"


def _most_tokens(content: bytes) -> int:
    """At least as many as the JSON tokens of `content`: every token but the first follows a '{', '[', ',' or ':'."""
    return 1 + content.count(b",") + content.count(b":") + content.count(b"[") + content.count(b"{")


def _budget_of(files: list[tuple[str, bytes]]) -> dict[str, object]:
    """A job's device documents against a C device with 4 KiB and 256 JSON tokens (kept with the job's record)."""
    budget = DeviceBudget()
    for path, content in files:
        if len(content) <= DEVICE_BUFFER_BYTES and _most_tokens(content) <= DEVICE_TOKENS:
            kind = document_kind(path)
            budget.checked[kind] = budget.checked.get(kind, 0) + 1  # fits: counted without being parsed
        else:
            budget.add(path, content)
    return {"checked": budget.checked, "over": {kind: [list(item) for item in items]
                                                for kind, items in budget.over.items()}}


# The writer hands each job's device documents to _budget_of as it places them, and keeps the result
# with the job: a rebuild checks only the documents of the jobs it runs.
DEVICE_BUDGET = Summarizer(_is_device_document, _budget_of)


def _device_budget_warnings(stats: WriteStats) -> list[str]:
    """Device documents (answers, candidates) a C device with 4 KiB and 256 JSON tokens cannot read."""
    budget = DeviceBudget()
    for notes in stats.notes:
        for kind, count in notes["checked"].items():
            budget.checked[kind] = budget.checked.get(kind, 0) + count
        for kind, items in notes["over"].items():
            budget.over.setdefault(kind, []).extend(tuple(item) for item in items)
    return budget.warnings()


def _unchanged(previous: PreviousBuild, started: float, commit: str | None, warnings: list[str]) -> BuildReport:
    return BuildReport(releases=previous.releases, stats=WriteStats(written=0, unchanged=previous.file_count, removed=0),
                       seconds=time.perf_counter() - started, commit=commit, warnings=warnings)


def build_site(options: BuildOptions, checked: tuple[BuildReport | None, HeadState | None, str | None] | None = None
               ) -> BuildReport:
    """Build the registry into options.out: one call per step, each named by `options.progress`.

    `checked`: what `up_to_date(options)` gave, when the caller asked it already (git is not asked again).
    Raises InvalidRegistry (nothing written), gitlog.HistoryError, click.ClickException for bad
    input or an output folder that cannot be replaced; the previous output is then untouched.
    """
    started = time.perf_counter()
    unchanged, head, source = checked if checked is not None else up_to_date(options)
    if unchanged is not None:
        return unchanged
    # The build makes millions of objects and almost no cycles. A pass of the cycle collector walks
    # all that survived so far (the model, the cache, the history), and one fell at random in the
    # steps between validation and planning: 0.1-0.4 s of a 2 s rebuild. Workers collect their own.
    with gc_paused():
        return _build_site(options, started, head, source)


def _build_site(options: BuildOptions, started: float, head: HeadState | None, source: str | None) -> BuildReport:
    warnings: list[str] = []
    repo = gitlog.open_repository(options.registry_dir)
    if repo is None and options.ref:
        raise gitlog.HistoryError(f"--ref {options.ref}: {options.registry_dir} is not inside a git repository")
    prefix = gitlog.registry_prefix(repo, options.registry_dir) if repo is not None else None

    commit = None
    if repo is not None and head is not None and head.commit is not None:
        # up_to_date asked git these a moment ago (history/head.py): two runs of git fewer.
        gitlog.ensure_full_history(repo, head.shallow)
        commit = head.commit
    elif repo is not None:
        gitlog.ensure_full_history(repo)
        commit = gitlog.resolve_commit(repo, options.ref or "HEAD") if options.ref or repo.head.is_valid() else None
    if head is None or head.commit != commit:
        source, head = None, None  # the repository changed between the two looks: no shortcut for this build
    previous = previous_build(options.out)
    # The history's `git log` runs from here on, while this process reads and validates the files.
    with gitlog.start_history(repo, commit, prefix or "") if repo is not None and commit is not None \
            else contextlib.nullcontext() as pending:
        return _build(options, started, head, source, repo, prefix, commit, previous, pending, warnings)


def _build(options: BuildOptions, started: float, head: HeadState | None, source: str | None, repo, prefix: str | None, commit: str | None,
           previous: PreviousBuild | None, pending: gitlog.PendingHistory | None, warnings: list[str]) -> BuildReport:
    """build_site's steps from reading the files on, with the git history (`pending`) read in the background."""
    cache = work_cache_for(options.registry_dir)
    try:
        files, committed = _read_files(options, repo, prefix, cache, head)
    except RegistryNotFound as error:
        raise click.UsageError(str(error)) from None
    step = options.progress or (lambda message: None)
    step(f"validating {len(files.files)} files")
    # Conflicts are reported at the newer file, as `relreg validate` does (git is read only if there is one).
    result = validate_files(files, cache, recency=GitRecency(options.registry_dir, files.root, options.ref,
                                                             history=pending.result if pending else None))
    if not result.ok:
        cache.save()
        raise InvalidRegistry(result)
    # What follows needs the model, the warnings, and the files' paths and blob ids: not the result's index
    # of every file (at 100,000 releases 17 MB, which the site workers would inherit).
    registry, diagnostics = result.registry, result.diagnostics
    assert registry is not None
    del result
    files = files.without_contents()
    blob_ids = {file.path: file.blob_id for file in files.files}
    return_freed_memory()  # what validation freed (the files' data, made into the model), before the notes are rendered
    snapshot = read_device_counts(options.device_counts) if options.device_counts else FleetSnapshot()
    counts = snapshot.counts
    warnings += snapshot.warnings(release.version for release in registry.releases)

    note_keys = None
    if pending is not None and pending.running():
        step("rendering release notes while git reads the history")  # the wait for git would be idle
        note_keys = _release_notes(registry.releases, blob_ids, cache)

    git_history = None
    uncommitted: set[str] = set()
    if repo is not None:
        if pending is not None:
            step("reading git history")
            git_history = pending.result()
        if options.ref is None and not committed:
            uncommitted = gitlog.uncommitted_paths(repo, prefix or "")
    else:
        warnings.append(f"{options.registry_dir} is not in a git repository: every file is dated by the build time")
    undated: set[str] = set()
    release_dates, cohort_dates = _dates(registry, git_history, uncommitted, files.root, gitlog.build_time(), warnings,
                                         undated)

    fingerprint = _fingerprint(files, release_dates, cohort_dates, snapshot, commit, options)
    signing = _signing(options, repo, prefix, commit, bool(uncommitted), warnings)
    if signing is not None:
        fingerprint = signing.fingerprint(fingerprint)
    if not options.force and previous is not None and previous.fingerprint == fingerprint:
        cache.save(prune=False)
        return _unchanged(previous, started, commit, warnings)
    release_keys = {release.version: blob_ids[release.source_path] for release in registry.releases
                    if release.source_path in blob_ids}
    previous_table = parse_table(previous.published) if previous is not None else {}
    table = published_table(registry.releases, release_dates, release_keys, previous_table,
                            {release.version for release in registry.releases if release.source_path in undated})
    warnings += changes_since(previous_table, table)
    published = table_text(table)
    del table, previous_table  # the text is what the manifest keeps
    work_folder = cache.path.parent if cache.path is not None else None
    if work_folder is not None:
        keep_compiled_templates(work_folder)
    if note_keys is None:
        step("rendering release notes")
        note_keys = _release_notes(registry.releases, blob_ids, cache)
    cache.save()
    # Kept by version, most of them on disk in a large build (site/spool.SpooledText), for the pages and
    # documents that show them: read from the cache one at a time (a cache that cannot give them back,
    # cut short meanwhile, costs a rendering).
    notes_html = SpooledText(folder=work_folder)
    for release, key in zip(registry.releases, note_keys):
        html = cache.rendered_notes(key)
        notes_html[release.version] = html if html is not None else render_notes(release.notes,
                                                                                  release.notes_format)
    # The site is rendered by forked workers that inherit this process's memory:
    # let go of the files' paths, the cache and its notes first.
    del files, cache, note_keys, blob_ids

    step("reading the deployment history of cohorts")
    deployments = cohort_history(repo, git_history) if repo is not None and git_history is not None else {}
    # The dates and the deployments are taken: the history (every file's dates and blob, 50 MB at 100,000
    # releases) is let go of, here and by `pending`, which holds it for the build's whole `with`.
    del git_history
    if pending is not None:
        pending.release()

    schemas_folder = schema_dir()
    facts = load_facts(work_folder) if work_folder is not None else KeptFacts()
    inputs = SiteInputs(
        registry=registry,
        release_dates=release_dates,
        cohort_dates=cohort_dates,
        device_counts=counts,
        device_counts_date=snapshot.snapshot_date,
        commit=commit,
        dirty=bool(uncommitted),
        base_url=options.base_url,
        input_schemas={name: (schemas_folder / name).read_bytes() for name in INPUT_SCHEMAS.values()},
        notes_html=notes_html,
        cohort_history=deployments,
        release_keys=release_keys,
        served_files=served_files(options.out, previous) if not options.force else None,
        facts_cache=facts,
        memo=SpooledBytes,  # the release documents a process encodes, most of them on disk beyond 16 MB
    )
    return_freed_memory()  # what validation freed, before the workers fork and inherit it
    if signing is not None:
        # Signing needs every document at once: the TUF targets list hashes them all.
        step(f"planning the site of {len(registry.releases)} releases")
        planned = signing.sign(plan_site(inputs), inputs.site_url)
        step(f"writing {len(planned)} files")
        stats = write_site(planned, options.out, fingerprint, reuse=not options.force, source=None,
                           releases=len(release_dates), previous=previous, summarizer=DEVICE_BUDGET,
                           published=published)
    else:
        workers = min(os.cpu_count() or 1, 8) if len(registry.releases) >= PARALLEL_RELEASES else 1
        step(f"rendering and writing the site of {len(registry.releases)} releases"
             + (f" in {workers} processes" if workers > 1 else ""))
        stats = write_jobs(plan_sections(inputs), serving_files, options.out, fingerprint, reuse=not options.force,
                           source=source, releases=len(release_dates), workers=workers, previous=previous,
                           summarizer=DEVICE_BUDGET, before_fork=compile_templates, published=published)
    if work_folder is not None:
        save_facts(work_folder, facts, release_keys.values())
    step("checking device documents against a small device's buffer")
    warnings += _device_budget_warnings(stats)
    return BuildReport(releases=len(release_dates), stats=stats, seconds=time.perf_counter() - started,
                       commit=commit, warnings=warnings + [d.message for d in diagnostics
                                                           if not d.is_error and isinstance(d, Diagnostic)])
