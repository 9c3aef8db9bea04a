"""`relreg check`: validate the work tree, then judge it against a base commit's registry.

This is the git edge of the pull-request policy (policy.py is the pure core):
it resolves the base, reads the base's registry files from git objects (never
a checkout), loads both sides as far as they load, and runs the policy.

The base is compared at `git merge-base BASE HEAD`, not at BASE itself, so
the comparison is the pull request's own change in every CI situation: a
merge commit of the pull request into its base (GitHub's refs/pull/N/merge),
a rebased branch, or a branch that is behind its base (releases published on
the base since the branch started are not "deleted" by it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git

from relreg.history import gitlog
from relreg.history.cache import WorkCache, work_cache_for
from relreg.registry.diagnostics import Diagnostic, sorted_diagnostics
from relreg.registry.model import Cohort, HardwareVersion, RegistryConfig, Release
from relreg.registry.source import RegistryFiles, RegistryNotFound, read_git_tree, read_worktree
from relreg.registry.validate import SourceDocuments, check_file, validate_files
from relreg.registry.versions import VersionError, scheme_named
from relreg.release.policy import Snapshot, changes, check_policy
from relreg.release.recency import changed_recency


class CheckUsageError(Exception):
    """The check cannot run as asked (no repository, unknown base, shallow clone): exit 2."""


@dataclass(frozen=True)
class BaseCommit:
    ref: str  # as given
    resolved_ref: str  # the ref that resolved (may be origin/<ref>)
    tip: str  # the commit the ref names
    merge_base: str  # the commit compared against

    def describe(self) -> str:
        is_sha = len(self.resolved_ref) >= 4 and self.tip.startswith(self.resolved_ref.lower()) \
            and all(c in "0123456789abcdefABCDEF" for c in self.resolved_ref)
        named = self.tip[:12] if is_sha else self.resolved_ref
        if self.merge_base == self.tip:
            return named if named == self.tip[:12] else f"{named} ({self.tip[:12]})"
        return f"merge-base of {named} and HEAD ({self.merge_base[:12]})"


@dataclass
class CheckResult:
    diagnostics: list[Diagnostic]
    summary: str

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


def _rev_parse(repo: git.Repo, ref: str) -> str | None:
    try:
        return repo.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}").strip() or None
    except git.GitCommandError:
        return None


def _is_shallow(repo: git.Repo) -> bool:
    return repo.git.rev_parse("--is-shallow-repository").strip() == "true"


def resolve_base(repo: git.Repo, ref: str) -> BaseCommit:
    """The commit to compare HEAD's registry with: the merge-base of `ref` and HEAD.

    A plain branch name that is not a local branch is also looked up as
    origin/<name>, which is what a CI checkout of a pull request has.
    """
    head = _rev_parse(repo, "HEAD")
    if head is None:
        raise CheckUsageError("HEAD has no commit yet: commit the registry first, then check against a base")
    tried = [ref]
    tip = _rev_parse(repo, ref)
    resolved = ref
    if tip is None and not ref.startswith(("origin/", "refs/")):
        tried.append(f"origin/{ref}")
        tip = _rev_parse(repo, f"origin/{ref}")
        resolved = f"origin/{ref}"
    if tip is None:
        hint = (" This is a shallow clone: fetch the base branch and full history "
                "(actions/checkout with fetch-depth: 0, or `git fetch --unshallow origin`).") if _is_shallow(repo) \
            else " Fetch it first (git fetch origin), or name a branch, tag or commit that exists here."
        raise CheckUsageError(f"--base {ref}: not a commit in this repository (tried {', '.join(tried)}).{hint}")
    try:
        merge_base = repo.git.merge_base(tip, head).strip()
    except git.GitCommandError:
        if _is_shallow(repo):
            raise CheckUsageError(
                f"--base {ref}: HEAD and {resolved} have no common commit in this shallow clone. Fetch full "
                "history (actions/checkout with fetch-depth: 0, or `git fetch --unshallow origin`).") from None
        raise CheckUsageError(f"--base {ref}: HEAD and {resolved} share no history, so there is no base to "
                              "compare with") from None
    return BaseCommit(ref=ref, resolved_ref=resolved, tip=tip, merge_base=merge_base)


def load_snapshot(files: RegistryFiles, cache: WorkCache, documents: Any = None) -> Snapshot:
    """The model of every file that loads on its own (schema-valid), even when the registry as a whole does not."""
    loaded: dict[str, list[tuple[Any, Any]]] = {"registry": [], "release": [], "hardware": [], "cohort": []}
    for file in files.files:
        data = cache.document(file.kind, file.blob_id)
        if data is None:
            data, problems = check_file(file.kind, file.path, file.content)
            if data is None or problems:
                continue
            cache.store_document(file.kind, file.blob_id, data)
        loaded[file.kind].append((file, data))
    config = RegistryConfig.from_dict(loaded["registry"][0][1]) if loaded["registry"] else None
    try:
        scheme = scheme_named(config.version_scheme if config else "semver")
    except VersionError:
        scheme = scheme_named("semver")
    releases: list[Release] = []
    for file, data in loaded["release"]:
        try:
            releases.append(Release.from_dict(data, scheme, file.path))
        except VersionError:
            continue
    hardware = [HardwareVersion.from_dict(data, file.path) for file, data in loaded["hardware"]]
    cohorts = [Cohort.from_dict(data, file.path) for file, data in loaded["cohort"]]
    return Snapshot.of(files.root, config, releases, hardware, cohorts, list(files.files),
                       documents if documents is not None else SourceDocuments(files))


def run_check(registry_dir: Path, base_ref: str) -> CheckResult:
    """Validate the registry in the work tree and check it against the registry at the base."""
    repo = gitlog.open_repository(registry_dir)
    if repo is None:
        raise CheckUsageError(f"{registry_dir} is not inside a git repository: `relreg check` compares the "
                              "work tree with a base commit (use `relreg validate` outside git)")
    try:
        return _check(repo, registry_dir, base_ref)
    finally:
        repo.close()  # ends the git processes GitPython keeps for reading objects


def _check(repo: git.Repo, registry_dir: Path, base_ref: str) -> CheckResult:
    base = resolve_base(repo, base_ref)
    try:
        head_files = read_worktree(registry_dir)
    except RegistryNotFound as error:
        raise CheckUsageError(str(error)) from None
    prefix = gitlog.registry_prefix(repo, registry_dir)
    cache = work_cache_for(registry_dir)
    try:
        base_files: RegistryFiles | None = read_git_tree(repo.commit(base.merge_base).tree, prefix)
    except RegistryNotFound:
        base_files = None
    # A conflict is reported at the file the change adds or modifies, which is in the pull request's diff.
    result = validate_files(head_files, cache, recency=changed_recency(head_files, base_files))
    diagnostics = list(result.diagnostics)
    if base_files is None:
        note = f"{base.describe()} has no registry yet: nothing is published, so nothing to protect"
    else:
        head = load_snapshot(head_files, cache, result.documents)
        published = load_snapshot(base_files, cache)
        diagnostics += check_policy(published, head)
        note = f"against {base.describe()}: {changes(published, head).describe()}"
        if published.config is None:
            note += " (the base's registry.yaml does not load; its settings were not compared)"
    cache.save()
    diagnostics = sorted_diagnostics(diagnostics)
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    warning_text = f"{warnings} warning{'s' if warnings != 1 else ''}"
    if result.ok and not errors:
        registry = result.registry
        assert registry is not None
        files = f"{result.files_checked} files" + (f", {warning_text}" if warnings else "")
        text = (f"registry is valid: {len(registry.releases)} releases, {len(registry.hardware)} hardware versions, "
                f"{len(registry.cohorts)} cohorts ({files}); {note}")
    else:
        text = f"{errors} error{'s' if errors != 1 else ''}, {warning_text} in {result.files_checked} files; {note}"
    return CheckResult(diagnostics, text)
