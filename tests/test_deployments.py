"""Deployments as fleets run them, replayed commit by commit in a real git repository.

A registry goes through holds per hardware, the release of a hold, a gate added
to a published release, a move of one release into a group folder, a commit
that changes only a file's mode, and a move of the whole registry folder. After
every commit the site is built, and every device decision (from the built
answer documents), every release and cohort date and the deployment history
are asserted.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from git import GitCommandError
import pytest
from conftest import run_relreg
from git_helpers import commit_all, git, init_repo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relreg.devices.paths import answer_path
from relreg.history import gitlog
from relreg.history.recency import GitRecency

REGISTRY_YAML = """name: Replay
site_url: https://fw.example.test/
artifact_base_url: https://dl.example.test/fw/
"""


def release(version: str, digit: str, *, gate: str = "") -> str:
    images = "".join(
        f"""  - hardware_version: {board}
    build_id: "{digit * 39}{index}"
    url: {version}/{board}.bin
    size: 1000
    sha256: "{digit * 63}{index}"
""" for index, board in enumerate(("a", "b")))
    return f'version: "{version}"\n{gate}artifacts:\n{images}'


def cohort(*activations: str) -> str:
    return "slug: prod\nname: Production\nhardware_versions: [a, b]\nreleases:\n" + "".join(activations)


def activation(version: str, hardware: str | None = None) -> str:
    text = f'  - version: "{version}"\n'
    return text + (f"    hardware_versions: [{hardware}]\n" if hardware else "")


def offered(site: Path, board: str, current: str) -> str | None:
    """What every device of board `board` on `current` is offered (the answers here have no staged rollouts)."""
    answer = json.loads((site / answer_path("prod", board, None, current)).read_text())["data"]
    if not answer["offers"]:
        return None
    [offer] = answer["offers"]
    assert offer["staged"] is False
    return f"{offer['release']['version']} ({offer['release']['reason']})"


def dates(site: Path) -> dict[str, tuple[str, str]]:
    data = json.loads((site / "api/v1/releases.json").read_text())["data"]
    result = {r["version"]: (r["created_date"][:10], r["updated_date"][:10]) for r in data}
    [prod] = json.loads((site / "api/v1/cohorts.json").read_text())["data"]
    result["cohort prod"] = (prod["created_date"][:10], prod["updated_date"][:10])
    return result


def history(site: Path) -> list[str]:
    """The change column of the cohort page's deployment history, newest first."""
    page = (site / "cohorts/prod/index.html").read_text()
    table = page.split('id="history"', 1)[1]
    return [cell.split("</ul>")[0].replace("</li><li>", "; ").removeprefix("<li>").removesuffix("</li>")
            for cell in table.split('<ul class="plain">')[1:]]


def build(repo: Path, folder: str, out: Path) -> Path:
    result = run_relreg("build", "--registry", repo / folder, "--out", out)
    assert result.exit_code == 0, result.output
    return out


# Each step: what the commit does, and then what devices are offered
# {(board, current version): offer}, the dates {version: (created, updated)} and
# the newest entry of the deployment history.
STEPS = [
    ("2024-01-01", "first release", {("a", "1.0.0"): None, ("b", "1.0.0"): None},
     {"1.0.0": ("2024-01-01", "2024-01-01"), "cohort prod": ("2024-01-01", "2024-01-01")},
     "added 1.0.0 at 100\u00a0%"),
    ("2024-02-01", "1.1.0 to a only: held back on b",
     {("a", "1.0.0"): "1.1.0 (latest)", ("b", "1.0.0"): None, ("a", "1.1.0"): None,
      ("b", "1.1.0"): None},  # a b device already on 1.1.0 stays there: never a downgrade
     {"1.0.0": ("2024-01-01", "2024-01-01"), "1.1.0": ("2024-02-01", "2024-02-01"),
      "cohort prod": ("2024-01-01", "2024-02-01")},
     "added 1.1.0 at 100\u00a0%; 1.1.0 held back on b"),
    ("2024-03-01", "1.1.0 released to b, 1.2.0 held back on b",
     {("a", "1.0.0"): "1.2.0 (latest)", ("b", "1.0.0"): "1.1.0 (latest)", ("a", "1.1.0"): "1.2.0 (latest)",
      ("b", "1.1.0"): None, ("b", "1.2.0"): None},
     {"1.1.0": ("2024-02-01", "2024-02-01"), "1.2.0": ("2024-03-01", "2024-03-01"),
      "cohort prod": ("2024-01-01", "2024-03-01")},
     "1.1.0 released to b; added 1.2.0 at 100\u00a0%; 1.2.0 held back on b"),
    ("2024-04-01", "a late gate: 1.1.0 becomes must-pass-through",
     {("a", "1.0.0"): "1.1.0 (must_pass_through)", ("b", "1.0.0"): "1.1.0 (latest)",
      ("a", "1.1.0"): "1.2.0 (latest)", ("b", "1.1.0"): None},
     {"1.1.0": ("2024-02-01", "2024-04-01"), "1.2.0": ("2024-03-01", "2024-03-01"),
      "cohort prod": ("2024-01-01", "2024-03-01")},
     "1.1.0 released to b; added 1.2.0 at 100\u00a0%; 1.2.0 held back on b"),
    ("2024-05-01", "1.1.0 moved into releases/1.1/ and 1.0.0's mode changed: no content changes",
     {("a", "1.0.0"): "1.1.0 (must_pass_through)", ("b", "1.0.0"): "1.1.0 (latest)"},
     {"1.0.0": ("2024-01-01", "2024-01-01"), "1.1.0": ("2024-02-01", "2024-04-01"),
      "1.2.0": ("2024-03-01", "2024-03-01"), "cohort prod": ("2024-01-01", "2024-03-01")},
     "1.1.0 released to b; added 1.2.0 at 100\u00a0%; 1.2.0 held back on b"),
    ("2024-06-01", "git mv registry fw/registry",
     {("a", "1.0.0"): "1.1.0 (must_pass_through)", ("b", "1.0.0"): "1.1.0 (latest)", ("b", "1.1.0"): None},
     {"1.0.0": ("2024-01-01", "2024-01-01"), "1.1.0": ("2024-02-01", "2024-04-01"),
      "1.2.0": ("2024-03-01", "2024-03-01"), "cohort prod": ("2024-01-01", "2024-03-01")},
     "1.1.0 released to b; added 1.2.0 at 100\u00a0%; 1.2.0 held back on b"),
    ("2024-07-01", "1.2.0 released to b",
     {("a", "1.0.0"): "1.1.0 (must_pass_through)", ("b", "1.0.0"): "1.1.0 (must_pass_through)",
      ("b", "1.1.0"): "1.2.0 (latest)", ("b", "1.2.0"): None},
     {"1.2.0": ("2024-03-01", "2024-03-01"), "cohort prod": ("2024-01-01", "2024-07-01")},
     "1.2.0 released to b"),
]


def _apply(repo: Path, step: int) -> str:
    """Make the files of step `step`; returns the registry folder relative to the repository."""
    registry = repo / ("fw/registry" if step >= 5 else "registry")
    releases = registry / "releases"
    if step == 0:
        for folder in ("releases", "hardware", "cohorts"):
            (registry / folder).mkdir(parents=True)
        (registry / "registry.yaml").write_text(REGISTRY_YAML)
        for board in ("a", "b"):
            (registry / "hardware" / f"{board}.yaml").write_text(f"name: {board}\n")
        (releases / "1.0.0.yaml").write_text(release("1.0.0", "1"))
        (registry / "cohorts/prod.yaml").write_text(cohort(activation("1.0.0")))
    elif step == 1:
        (releases / "1.1.0.yaml").write_text(release("1.1.0", "2"))
        (registry / "cohorts/prod.yaml").write_text(cohort(activation("1.0.0"), activation("1.1.0", "a")))
    elif step == 2:
        (releases / "1.2.0.yaml").write_text(release("1.2.0", "3"))
        (registry / "cohorts/prod.yaml").write_text(
            cohort(activation("1.0.0"), activation("1.1.0"), activation("1.2.0", "a")))
    elif step == 3:
        (releases / "1.1.0.yaml").write_text(release("1.1.0", "2", gate="must_pass_through: true\n"))
    elif step == 4:
        (releases / "1.1").mkdir()
        git(repo, "mv", "registry/releases/1.1.0.yaml", "registry/releases/1.1/1.1.0.yaml")
        os.chmod(releases / "1.0.0.yaml", 0o755)
    elif step == 5:
        (repo / "fw").mkdir()
        git(repo, "mv", "registry", "fw/registry")
    elif step == 6:
        (registry / "cohorts/prod.yaml").write_text(
            cohort(activation("1.0.0"), activation("1.1.0"), activation("1.2.0")))
    return registry.relative_to(repo).as_posix()


def test_replay_of_holds_gates_and_moves(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    git(repo, "config", "core.fileMode", "true")
    out = tmp_path / "public"  # one output folder and the repository's cache, as on a CI runner
    previous_dates: dict[str, tuple[str, str]] = {}
    for step, (day, message, decisions, expected_dates, newest_history) in enumerate(STEPS):
        folder = _apply(repo, step)
        commit_all(repo, message, f"{day}T12:00:00+00:00")
        site = build(repo, folder, out)
        for (board, current), answer in decisions.items():
            assert offered(site, board, current) == answer, (step, message, board, current)
        got = dates(site)
        for version, pair in expected_dates.items():
            assert got[version] == pair, (step, message, version)
        if step in (4, 5):  # a move or a mode change: nothing is re-dated
            assert got == previous_dates, message
        previous_dates = got
        assert history(site)[0] == newest_history, (step, message)
        # A fresh build (no cache, new output) of the same commit gives the same site.
        shutil.rmtree(repo / ".git" / "relreg", ignore_errors=True)
        fresh = build(repo, folder, tmp_path / f"fresh-{step}")
        assert dates(fresh) == got and history(fresh) == history(site)

    assert history(site) == [
        "1.2.0 released to b",
        "1.1.0 released to b; added 1.2.0 at 100\u00a0%; 1.2.0 held back on b",
        "added 1.1.0 at 100\u00a0%; 1.1.0 held back on b",
        "added 1.0.0 at 100\u00a0%",
    ]  # the gate, the group move, the mode change and the folder move changed no cohort content


def test_cohorts_json_release_and_cohort_pages_show_holds(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    for step in range(3):
        folder = _apply(repo, step)
        commit_all(repo, f"step {step}", f"2024-0{step + 1}-01T12:00:00+00:00")
    site = build(repo, folder, tmp_path / "public")
    [prod] = json.loads((site / "api/v1/cohorts.json").read_text())["data"]
    assert prod["releases"] == [
        {"version": "1.0.0", "rollout_percent": 100.0, "hardware_versions": None},
        {"version": "1.1.0", "rollout_percent": 100.0, "hardware_versions": None},
        {"version": "1.2.0", "rollout_percent": 100.0, "hardware_versions": ["a"]},
    ]
    assert "(100\u00a0%; held back on b in prod)" in (site / "releases/1.2.0/index.html").read_text()
    assert "held back" not in (site / "releases/1.1.0/index.html").read_text()
    page = (site / "cohorts/prod/index.html").read_text()
    assert '<td>a <span class="muted">(held back on b)</span></td>' in page
    assert "<td>a, b</td>" in page


@pytest.mark.parametrize("move", ["whole registry", "one release into a group folder"])
def test_moves_change_no_date_and_no_history(tmp_path: Path, move: str) -> None:
    repo = init_repo(tmp_path / "repo")
    for step in range(4):
        _apply(repo, step)
        commit_all(repo, f"step {step}", f"2024-0{step + 1}-01T12:00:00+00:00")
    before = build(repo, "registry", tmp_path / "before")
    folder = "registry"
    if move == "whole registry":
        (repo / "fw").mkdir()
        git(repo, "mv", "registry", "fw/registry")
        folder = "fw/registry"
    else:
        (repo / "registry/releases/1.2").mkdir()
        git(repo, "mv", "registry/releases/1.2.0.yaml", "registry/releases/1.2/1.2.0.yaml")
    commit_all(repo, f"move {move}", "2024-06-01T12:00:00+00:00")
    after = build(repo, folder, tmp_path / "after")
    assert dates(after) == dates(before)
    assert history(after) == history(before)
    assert "2024-06-01" not in (after / "feed.xml").read_text()


CONTROLS = bytes(code for code in range(1, 0x20) if code != 0x0A) + b"\x7f"  # every C0 but NUL and LF, and DEL


@pytest.mark.parametrize("field", ["subject", "body", "author", "email"])
def test_no_byte_of_a_commit_breaks_the_history(tmp_path: Path, field: str) -> None:
    """Commits made byte by byte (git hash-object --literally): controls, 0x1E/0x1F, invalid UTF-8, 10 KiB."""
    repo = init_repo(tmp_path / "repo")
    for step in range(2):
        _apply(repo, step)
        commit_all(repo, f"step {step}", f"2024-0{step + 1}-01T12:00:00+00:00")
    site = build(repo, "registry", tmp_path / "warm")  # a cached history, then the hostile commits on top
    hostile = b"<b>" + CONTROLS + b"\xff\xfe\xc3(" + b"&" + b"x" * 10240
    for number, content in enumerate((activation("1.0.0"), activation("1.0.0") + activation("1.1.0"))):
        (repo / "registry/cohorts/prod.yaml").write_text(cohort(content))
        git(repo, "add", "-A")
        tree = git(repo, "write-tree")
        parent = git(repo, "rev-parse", "HEAD")
        name = hostile.replace(b"<", b"").replace(b">", b"") if field == "author" else b"Release Bot"
        email = hostile.replace(b"<", b"").replace(b">", b"") if field == "email" else b"bot@example.test"
        subject = hostile if field == "subject" else f"change {number}".encode()
        body = b"\n\n" + hostile + b"\n" if field == "body" else b"\n"
        stamp = f"{1717243200 + number * 86400} +0000".encode()
        raw = (b"tree " + tree.encode() + b"\nparent " + parent.encode() + b"\nauthor " + name + b" <" + email
               + b"> " + stamp + b"\ncommitter Release Bot <bot@example.test> " + stamp + b"\n\n" + subject + body)
        (tmp_path / "commit").write_bytes(raw)
        commit = git(repo, "hash-object", "-t", "commit", "-w", "--literally", str(tmp_path / "commit"))
        git(repo, "update-ref", "HEAD", commit)
    git(repo, "reset", "-q", "--hard")

    for out in (tmp_path / "warm", tmp_path / "cold"):
        site = build(repo, "registry", out)
        page = (site / "cohorts/prod/index.html").read_text()
        assert all(chr(code) not in page for code in CONTROLS if code not in b"\t\r")
        rows = history(site)
        assert rows[:2] == ["added 1.1.0 at 100\u00a0%", "removed 1.1.0"]
        if field == "subject":
            assert "&lt;b&gt;\\x01\\x02" in page and "\\x1e\\x1f" in page and "\ufffd\ufffd\ufffd(&amp;xxx" in page
        elif field == "author":
            assert "b\\x01\\x02" in page and "\\x1e\\x1f\\x7f\ufffd" in page
        else:  # a body or an e-mail address is never published
            assert "\\x1e" not in page and "change 1" in page
        assert ">Release Bot<" in page or field == "author"
        shutil.rmtree(repo / ".git" / "relreg")


# --- a property: dates follow each release through any series of edits and moves -----------------


OPERATIONS = st.lists(st.tuples(st.sampled_from(["edit", "group", "ungroup", "move registry", "chmod", "empty"]),
                                st.sampled_from(["1.0.0", "1.1.0"])), min_size=1, max_size=7)
FOLDERS = ["registry", "fw/registry", "firmware/relreg"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(OPERATIONS)
def test_dates_follow_releases_through_any_edits_and_moves(tmp_path_factory: pytest.TempPathFactory,
                                                           operations: list[tuple[str, str]]) -> None:
    """Cached (incremental) and fresh history reads both equal the obvious oracle after every commit."""
    repo = init_repo(tmp_path_factory.mktemp("history") / "repo")
    for step in range(2):
        _apply(repo, step)
        commit_all(repo, f"step {step}", f"2024-0{step + 1}-01T12:00:00+00:00")
    folder, grouped = "registry", set()
    created = {"1.0.0": 1704110400, "1.1.0": 1706788800}
    updated = dict(created)
    for day, (operation, version) in enumerate(operations, start=1):
        seconds = 1717243200 + day * 86400
        path = repo / folder / "releases" / (f"{version[:3]}/" if version in grouped else "") / f"{version}.yaml"
        if operation == "edit":
            path.write_text(path.read_text() + f"notes: edit {day}\n" if "notes" not in path.read_text()
                            else path.read_text().replace("notes: edit", f"notes: edit {day} after"))
            updated[version] = seconds
        elif operation == "group" and version not in grouped:
            (path.parent / version[:3]).mkdir(exist_ok=True)
            git(repo, "mv", str(path), str(path.parent / version[:3] / path.name))
            grouped.add(version)
        elif operation == "ungroup" and version in grouped:
            git(repo, "mv", str(path), str(path.parent.parent / path.name))
            grouped.discard(version)
        elif operation == "move registry":
            target = FOLDERS[(FOLDERS.index(folder) + 1) % len(FOLDERS)]
            (repo / target).parent.mkdir(parents=True, exist_ok=True)
            git(repo, "mv", folder, target)
            folder = target
        elif operation == "chmod":
            os.chmod(path, 0o755 if not os.access(path, os.X_OK) else 0o644)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "--allow-empty", "-m", f"{operation} {version}",
            date=f"@{seconds} +0000")
        head = git(repo, "rev-parse", "HEAD")
        with_cache = gitlog.read_history(gitlog.open_repository(repo), head, folder)
        fresh = gitlog.read_history(gitlog.open_repository(repo), head, folder, use_cache=False)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(gitlog, "SPLIT_COMMITS", 1)  # this short history read by several runs of git
            split = gitlog.read_history(gitlog.open_repository(repo), head, folder, use_cache=False, parts=3)
        assert _fields(split) == _fields(fresh)
        for history in (with_cache, fresh):
            got = {v: (history.dates_of(f"releases/{v}.yaml").created, history.dates_of(f"releases/{v}.yaml").updated)
                   for v in created}
            assert got == {v: (created[v], updated[v]) for v in created}, (operations[:day], history is fresh)
            assert [c.subject for c in history.cohort_changes["cohorts/prod.yaml"]] == ["step 0", "step 1"]


def _fields(history: gitlog.History) -> tuple:
    return (history.commit, history.dates, history.commits_walked, history.cohort_changes, history.blobs,
            history.present)


def _branchy_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """main: A - B - M - C, where M merges side branch S1 - S2 (forked at A): commit ids by name."""
    repo = init_repo(tmp_path / "repo")
    (repo / "registry" / "releases").mkdir(parents=True)
    (repo / "registry" / "registry.yaml").write_text("name: x\n")
    ids = {}

    def commit(name: str, date: str) -> None:
        (repo / "registry" / "releases" / f"{name}.yaml").write_text(f"version: {name}\n")
        ids[name] = commit_all(repo, name, date)

    commit("A", "2024-01-01T00:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "side")
    commit("S1", "2024-01-02T00:00:00+00:00")
    commit("S2", "2024-01-03T00:00:00+00:00")
    git(repo, "checkout", "-q", "main")
    commit("B", "2024-01-04T00:00:00+00:00")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge side", "side", date="2024-01-05T00:00:00+00:00")
    ids["M"] = git(repo, "rev-parse", "HEAD")
    commit("C", "2024-01-06T00:00:00+00:00")
    return repo, ids


# (cached commit, commit built) -> may the cached history be extended by the commits between?
FIRST_PARENT_CASES = [
    ("A", "C", True), ("B", "C", True), ("M", "C", True), ("B", "M", True),
    ("S1", "C", False), ("S2", "C", False), ("S2", "M", False),  # on the merged branch only
    ("C", "B", False), ("C", "C", False),  # newer than, or the same as, the commit built
]


@pytest.mark.parametrize(("cached", "built", "extends"), FIRST_PARENT_CASES)
def test_a_cached_history_is_extended_only_from_its_own_first_parent_line(
        tmp_path: Path, cached: str, built: str, extends: bool) -> None:
    repo, ids = _branchy_repo(tmp_path)
    handle = gitlog.open_repository(repo)
    assert gitlog._follows_on_first_parent(handle, ids[cached], ids[built]) is extends

    gitlog.read_history(handle, ids[cached], "registry")  # leaves its cache behind
    with_cache = gitlog.read_history(handle, ids[built], "registry")
    fresh = gitlog.read_history(handle, ids[built], "registry", use_cache=False)
    assert (with_cache.commit, with_cache.dates, with_cache.present) == (fresh.commit, fresh.dates, fresh.present)
    if cached == built:
        assert with_cache.commits_walked == 0  # read from the cache as it is
    elif extends:
        assert 0 < with_cache.commits_walked < fresh.commits_walked  # only the commits after the cached one
    else:
        assert with_cache.commits_walked == fresh.commits_walked  # the whole history again


@pytest.mark.parametrize("parts", [2, 3, 5, 9])
@pytest.mark.parametrize("built", ["B", "M", "C"])
def test_a_history_read_in_parts_equals_one_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  parts: int, built: str) -> None:
    """Split among several runs of git (at commits of the first-parent line), the history is the same."""
    repo, ids = _branchy_repo(tmp_path)
    handle = gitlog.open_repository(repo)
    single = gitlog.read_history(handle, ids[built], "registry", use_cache=False, parts=1)
    monkeypatch.setattr(gitlog, "SPLIT_COMMITS", 1)
    ranges = gitlog._split(handle, None, ids[built], parts)
    line = git(repo, "rev-list", "--first-parent", "--reverse", ids[built]).split()
    assert len(ranges) == min(parts, len(line))
    walked = [git(repo, "rev-list", "--first-parent", "--reverse", f"{a}..{b}" if a else b).split() for a, b in ranges]
    assert sum(walked, []) == line  # consecutive, without gap or overlap
    assert _fields(gitlog.read_history(handle, ids[built], "registry", use_cache=False, parts=parts)) == _fields(single)
    # An incremental read (from a cached commit) split as well: the same, but for the commits it walked.
    gitlog.read_history(handle, ids["A"], "registry", parts=1)
    incremental = gitlog.read_history(handle, ids[built], "registry", parts=parts)
    assert incremental.commits_walked == len(line) - 1
    assert _fields(incremental)[3:] + _fields(incremental)[:2] == _fields(single)[3:] + _fields(single)[:2]


def test_a_pending_history_stops_its_git_when_closed_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, ids = _branchy_repo(tmp_path)
    monkeypatch.setattr(gitlog, "SPLIT_COMMITS", 1)
    pending = gitlog.start_history(gitlog.open_repository(repo), ids["C"], "registry", use_cache=False, parts=2)
    runs = list(pending._runs)
    assert len(runs) == 2
    pending.close()
    assert all(run.process.returncode is not None and run.output.closed for run in runs)
    assert not pending.running()


def test_a_released_history_is_let_go_of_and_cannot_be_read_again(tmp_path: Path) -> None:
    """A build releases the history it read once the dates are taken (PendingHistory.release): the pending
    object no longer holds it, and asking for it again is an error, not a history read anew or empty."""
    import gc
    import weakref

    repo, ids = _branchy_repo(tmp_path)
    with gitlog.start_history(gitlog.open_repository(repo), ids["C"], "registry", use_cache=False) as pending:
        history = pending.result()
        assert history.dates_of("releases/A.yaml") is not None
        held = weakref.ref(history)
        del history
        pending.release()
        gc.collect()
        assert held() is None, "the released history is still held"
        with pytest.raises(RuntimeError, match="after release"):
            pending.result()


def test_a_failing_git_log_is_an_error_each_time_it_is_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, ids = _branchy_repo(tmp_path)
    monkeypatch.setattr(gitlog, "_git_log_command", lambda revisions, prefix: ["log", "--no-such-option"])
    with gitlog.start_history(gitlog.open_repository(repo), ids["C"], "registry", use_cache=False) as pending:
        for _ in range(2):
            with pytest.raises(GitCommandError, match="no-such-option"):
                pending.result()


def test_recency_from_a_given_history_equals_recency_read_by_itself(tmp_path: Path) -> None:
    """`relreg build` hands validation the history it started; the newer file of a conflict is the same."""
    repo, ids = _branchy_repo(tmp_path)
    (repo / "registry" / "releases" / "D.yaml").write_text("version: D\n")  # untracked: newest of all
    handle = gitlog.open_repository(repo)
    given = gitlog.start_history(handle, ids["C"], "registry")
    own = dict(GitRecency(repo / "registry", "registry"))
    assert own == dict(GitRecency(repo / "registry", "registry", history=given.result))
    assert set(own) == {"registry/registry.yaml", *(f"registry/releases/{name}.yaml" for name in "A B C S1 S2".split())}
