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
from relreg.history.deployments import read_cohort_history
from relreg.history.head import hidden_files_problem
from relreg.registry.diagnostics import Diagnostic, sorted_diagnostics
from relreg.registry.model import Cohort, HardwareVersion, RegistryConfig, Release
from relreg.registry.source import CONFIG_FILE, RegistryFiles, RegistryNotFound, read_git_tree, read_worktree
from relreg.registry.validate import SourceDocuments, check_file, stored_form, validate_files
from relreg.trust.keys_check import registry_keys_diagnostics
from relreg.registry.versions import VersionError, scheme_named
from relreg.release.policy import Snapshot, changes, check_policy
from relreg.history.recency import DeferredRecency, changed_recency


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
            data = stored_form(file.kind, data)
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
            releases.append(Release.from_compact(data, scheme, file.path))
        except VersionError:
            continue
    hardware = [HardwareVersion.from_dict(data, file.path) for file, data in loaded["hardware"]]
    cohorts = [Cohort.from_dict(data, file.path) for file, data in loaded["cohort"]]
    return Snapshot.of(files.root, config, releases, hardware, cohorts, list(files.files),
                       documents if documents is not None else SourceDocuments(files))


def _registry_folders(repo: git.Repo, commit: str) -> list[str]:
    """Folders of a commit that hold a registry.yaml and a releases/ folder with files: its published registries."""
    names = repo.git.ls_tree("-r", "--name-only", "-z", commit, stdout_as_string=False).split(b"\0")
    paths = {name.decode("utf-8", errors="surrogateescape") for name in names if name}
    folders = []
    for path in sorted(paths):
        if path == CONFIG_FILE or path.endswith("/" + CONFIG_FILE):
            folder = path[:-len(CONFIG_FILE)].rstrip("/")
            releases = f"{folder}/releases/" if folder else "releases/"
            if any(other.startswith(releases) for other in paths):
                folders.append(folder)
    return folders


def locate_base_registry(repo: git.Repo, base: BaseCommit, prefix: str, head_files: RegistryFiles) -> str | None:
    """The folder the registry had at the base commit; None when the base has no published registry.

    In order: follow committed moves of the registry folder back from HEAD to
    the base (registry_locations); the same folder as now; else, for a move
    not committed yet, the one registry of the base that shares the most
    files with the work tree (same path in the registry and same content,
    or the same release, hardware or cohort name); else the one registry of
    the base that the work tree no longer has (replaced by this one). A base
    that has registries with releases, none of which can be told to be this
    one, is an error: "nothing is published" would let any change through.
    """
    tree = repo.commit(base.merge_base).tree
    config = f"{prefix}/{CONFIG_FILE}" if prefix else CONFIG_FILE

    def has_registry(folder: str) -> bool:
        try:
            tree / (f"{folder}/{CONFIG_FILE}" if folder else CONFIG_FILE)  # type: ignore[operator]
            return True
        except KeyError:
            return False

    try:
        repo.commit("HEAD").tree / config  # type: ignore[operator]
        committed = True
    except KeyError:
        committed = False
    if committed:
        oldest = gitlog.registry_locations(repo, repo.head.commit.hexsha, prefix, since=base.merge_base)[0][0]
        if has_registry(oldest):
            return oldest
    if has_registry(prefix):
        return prefix
    folders = _registry_folders(repo, base.merge_base)
    if not folders:
        return None
    head_blobs = {(file.registry_path, file.blob_id) for file in head_files.files}
    head_names = {(file.kind, file.stem) for file in head_files.files if file.kind != "registry"}
    scores = []
    for folder in folders:
        files = read_git_tree(tree, folder, holds=_any_blob).files  # paths, names and blob ids: no bytes read
        score = sum(1 for file in files if (file.registry_path, file.blob_id) in head_blobs) \
            + sum(1 for file in files if (file.kind, file.stem) in head_names)
        scores.append((score, folder))
    scores.sort(reverse=True)
    if scores[0][0] > 0 and (len(scores) == 1 or scores[1][0] < scores[0][0]):
        return scores[0][1]
    top = Path(repo.working_tree_dir or ".")
    gone = [folder for _, folder in scores if not (top / folder / CONFIG_FILE).is_file()]
    if scores[0][0] == 0 and len(gone) == 1:
        return gone[0]  # the base's registry was replaced by this one: compared, its items count as deleted
    listed = ", ".join(f"{folder or '.'}/" for _, folder in scores)
    raise CheckUsageError(
        f"--base {base.ref}: {base.describe()} has no registry at {prefix or '.'}/, and relreg cannot tell which of "
        f"its registries ({listed}) this one was: "
        + ("none shares a file or a release, hardware or cohort name with it. "
           if scores[0][0] == 0 else "more than one shares as much with it. ")
        + "Commit the move of the registry folder (git mv) on its own, so that its history can be followed, "
          "and run the check again.")


def _any_blob(kind: str, blob_id: str) -> bool:
    return True


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


def _former_deployments(repo: git.Repo, base_commit: str, base_prefix: str | None, published: Snapshot,
                        head: Snapshot) -> dict[str, set[str]]:
    """{version: slugs of the cohorts that deployed it} from the git history up to `base_commit`, for the
    releases the change yanks that no cohort of the base deploys (a rollout withdrawn earlier): the
    devices that installed them then are still on them. Read only when there is such a release (the
    history walk is cached by commit); empty when git cannot say."""
    deployed = {activation.version for cohort in published.cohorts.values() for activation in cohort.releases}
    quiet = {version for version, release in head.releases.items() if release.is_yanked and version not in deployed
             and version in published.releases and not published.releases[version].is_yanked}
    if not quiet or base_prefix is None:
        return {}
    try:
        history = read_cohort_history(repo, base_commit, base_prefix)
    except (git.GitCommandError, ValueError, OSError):
        return {}
    found: dict[str, set[str]] = {}
    for slug, changes_of_cohort in history.items():
        for change in changes_of_cohort:
            for activation in change.releases or ():
                if activation.version in quiet:
                    found.setdefault(activation.version, set()).add(slug)
    return found


def _check(repo: git.Repo, registry_dir: Path, base_ref: str) -> CheckResult:
    base = resolve_base(repo, base_ref)
    problem = hidden_files_problem(registry_dir)
    if problem is not None:
        raise CheckUsageError(problem)
    try:
        head_files = read_worktree(registry_dir)
    except RegistryNotFound as error:
        raise CheckUsageError(str(error)) from None
    prefix = gitlog.registry_prefix(repo, registry_dir)
    cache = work_cache_for(registry_dir)
    base_prefix = locate_base_registry(repo, base, prefix, head_files)
    base_tree = repo.commit(base.merge_base).tree
    # The base is read once the work tree's files are validated (on the first look at recency, or after):
    # its files with the same bytes as a file of the work tree are then cached, and taken by blob id.
    base_read: list[RegistryFiles | None] = []

    def base_files_now() -> RegistryFiles | None:
        if not base_read:
            base_read.append(read_git_tree(base_tree, base_prefix, holds=cache.holds_document)
                             if base_prefix is not None else None)
        return base_read[0]

    # A conflict is reported at the file the change adds or modifies, which is in the pull request's diff.
    result = validate_files(head_files, cache, recency=DeferredRecency(
        lambda: changed_recency(head_files, base_files_now())))
    base_files = base_files_now()
    diagnostics = list(result.diagnostics) + registry_keys_diagnostics(registry_dir, head_files.root)
    if base_files is None:
        note = f"{base.describe()} has no registry yet: nothing is published, so nothing to protect"
    else:
        if base_prefix != prefix:
            moved = f"{base_prefix or '.'}/ at the base, {prefix or '.'}/ now"
            note_moved = f" (the registry moved: {moved})"
        else:
            note_moved = ""
        head = load_snapshot(head_files, cache, result.documents)
        published = load_snapshot(base_files, cache)
        diagnostics += check_policy(published, head, _former_deployments(repo, base.merge_base, base_prefix,
                                                                          published, head))
        note = f"against {base.describe()}{note_moved}: {changes(published, head).describe()}"
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
