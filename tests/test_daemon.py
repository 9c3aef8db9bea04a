"""relreg's daemon (relreg/daemon.py) and its client (relreg/launch.py), with real processes.

A command the daemon runs must be the command run in its own process: the same exit status, output
and files. The daemon must stop serving when relreg's code changes, interrupts must reach the command,
and a client killed outright must take its command along. Each test has a daemon of its own (its own
socket folder), stopped at the end; RELREG_DAEMON=require makes a command fail rather than run
outside the daemon.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest
from conftest import BASE_REGISTRY
from git_helpers import commit_all, committed_registry, numbered_release

from relreg.launch import daemon_wanted, identity, socket_path

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the daemon is Linux only")
PACKAGE = Path(__file__).resolve().parents[1] / "generator" / "relreg"


def _daemons(folder: str) -> list[int]:
    """The pids of the daemons whose socket is in `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"relreg.daemon" in command and folder.encode() in command:
                found.append(int(entry.name))
    return found


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _state(pid: int) -> str:
    """The process's state letter in /proc (R, S, T stopped, Z ended), or "gone"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _gone(pid: int) -> bool:
    return _state(pid) in ("gone", "Z")


def _tree_states(*pids: int) -> str:
    """Each process of these pids' trees: pid, state, kernel wait channel and command line (what a hang
    leaves to diagnose it by)."""
    lines, todo = [], list(pids)
    while todo:
        pid = todo.pop(0)
        try:
            wchan = ",".join(Path(f"/proc/{pid}/task/{task}/wchan").read_text()
                             for task in sorted(os.listdir(f"/proc/{pid}/task"), key=int))
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        lines.append(f"{pid} {_state(pid)} {wchan} {argv[:120]}")
        todo += _children(pid)
    return "\n".join(lines)


def _wait_until(condition, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def runtime() -> Iterator[dict[str, str]]:
    """An environment whose daemon is this test's own (its socket in a fresh short folder), stopped after."""
    folder = tempfile.mkdtemp(prefix="rd", dir="/tmp")
    environ = {**os.environ, "XDG_RUNTIME_DIR": folder, "RELREG_DAEMON": "require", "RELREG_DAEMON_IDLE": "120"}
    environ.pop("CI", None)
    yield environ
    for pid in _daemons(folder):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    assert _wait_until(lambda: not _daemons(folder)), "a daemon did not stop on SIGTERM"
    shutil.rmtree(folder, ignore_errors=True)


def _relreg(environ: dict[str, str], *args: str | Path, cwd: Path | None = None, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relreg", *map(str, args)], env=environ, cwd=cwd,
                          capture_output=True, text=True, timeout=300, **popen)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _same_but_seconds(text: str) -> str:
    return re.sub(r"\bin [0-9.]+s\b", "in Ns", re.sub(r'"seconds": [0-9.]+', '"seconds": N', text))


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A git repository holding the base registry, committed."""
    return committed_registry(tmp_path / "repo", BASE_REGISTRY)


def _broken(registry: Path) -> None:
    release = next((registry / "releases").glob("*.yaml"))
    release.write_text(release.read_text() + "version: again\nsize: [\n")


# (what to do to the registry first, the command): each run in the daemon and in a process of its own.
CASES = [
    (None, ("validate",)),
    (None, ("validate", "--format", "json")),
    (_broken, ("validate",)),
    (_broken, ("validate", "--format", "json")),
    (None, ("build", "--out", "{out}")),
    (_broken, ("build", "--out", "{out}")),
    (None, ("build", "--out", "{out}", "--base-url", "\udcff")),
    (None, ("validate", "--no-such-option")),
    (None, ("check", "--base", "HEAD")),
]


@pytest.mark.parametrize(("change", "command"), CASES, ids=[" ".join(c) + (" broken" if f else "") for f, c in CASES])
def test_a_command_in_the_daemon_is_the_command_in_its_own_process(
        runtime: dict[str, str], repository: Path, tmp_path: Path, change, command: tuple[str, ...]) -> None:
    registry = repository / "registry"
    if change is not None:
        change(registry)
    results = {}
    for mode in ("0", "require"):
        out = tmp_path / f"out-{mode}"
        args = [argument.format(out=out) for argument in command]
        first = _relreg({**runtime, "RELREG_DAEMON": mode}, *args, cwd=registry)
        again = _relreg({**runtime, "RELREG_DAEMON": mode}, *args, cwd=registry)  # a rebuild, for build
        results[mode] = [(run.returncode, run.stdout, _same_but_seconds(run.stderr)) for run in (first, again)]
        results[mode] = [(code, _same_but_seconds(stdout), stderr) for code, stdout, stderr in results[mode]]
        results[mode].append(_tree(out) if out.exists() else None)
    assert results["require"] == results["0"]
    assert _daemons(runtime["XDG_RUNTIME_DIR"]), "no daemon ran the commands"


def test_the_daemon_runs_in_the_clients_folder_environment_and_umask(runtime: dict[str, str], repository: Path,
                                                                     tmp_path: Path) -> None:
    """A first build makes the output folder as the umask allows; the environment's git settings hold."""
    registry = repository / "registry"
    for mode, umask in (("0", 0o027), ("require", 0o027), ("require", 0o002)):
        out = tmp_path / f"out-{mode}-{umask:o}"
        run = _relreg({**runtime, "RELREG_DAEMON": mode}, "build", "--out", out, cwd=registry,
                      preexec_fn=lambda mask=umask: os.umask(mask))
        assert run.returncode == 0, run.stderr
        assert (out.stat().st_mode & 0o777) == 0o777 & ~umask
    # Not a repository there: the same message as run here.
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(BASE_REGISTRY, elsewhere)
    dated = {**runtime, "SOURCE_DATE_EPOCH": "1700000000"}  # read by the command: the client's, not the daemon's
    served = _relreg(dated, "build", "--out", tmp_path / "x", cwd=elsewhere)
    here = _relreg({**dated, "RELREG_DAEMON": "0"}, "build", "--out", tmp_path / "y", cwd=elsewhere)
    assert (served.returncode, _same_but_seconds(served.stdout), served.stderr) == \
        (here.returncode, _same_but_seconds(here.stdout), here.stderr)
    assert "not in a git repository" in served.stderr and "2023-11-14T22:13:20" in served.stderr


@pytest.mark.parametrize("changed", ["relreg/site/theme/templates/base.html", "relreg/build.py", "semver/version.py"])
def test_a_change_to_relregs_code_stops_the_daemon(runtime: dict[str, str], tmp_path: Path, changed: str) -> None:
    """A copy of the package and of a library it loads on PYTHONPATH (its own identity, so its own
    daemon): touching one of their files makes the next command run in a new daemon, and the old one stop."""
    import semver

    copy = tmp_path / "code"
    shutil.copytree(PACKAGE, copy / "relreg", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(PACKAGE.parents[1] / "schemas", tmp_path / "schemas")  # where a source checkout has them
    shutil.copytree(Path(semver.__file__).parent, copy / "semver", ignore=shutil.ignore_patterns("__pycache__"))
    environ = {**runtime, "PYTHONPATH": str(copy)}
    folder = runtime["XDG_RUNTIME_DIR"]
    assert _relreg(environ, "validate", "--registry", BASE_REGISTRY).returncode == 0
    first = _daemons(folder)
    assert len(first) == 1
    assert _relreg(environ, "validate", "--registry", BASE_REGISTRY).returncode == 0
    assert _daemons(folder) == first, "the second command did not run in the same daemon"
    touched = copy / changed
    assert touched.is_file()
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert _relreg(environ, "validate", "--registry", BASE_REGISTRY).returncode == 0
    assert _wait_until(lambda: first[0] not in _daemons(folder)), "the daemon kept serving changed code"
    now = _daemons(folder)
    assert len(now) == 1 and now != first


@pytest.fixture
def large(repository: Path) -> Path:
    """The registry with 1,600 releases more, committed: its build, even served by a daemon that keeps its
    releases (about a second here), runs long enough to be interrupted."""
    registry = repository / "registry"
    for index in range(1600):
        (registry / "releases" / f"2.{index // 100}.{index % 100}.yaml").write_text(numbered_release(index))
    commit_all(repository, "releases", "2024-02-01T10:00:00+00:00")
    return registry


def _build_in_background(runtime: dict[str, str], registry: Path, out: Path, **popen) -> tuple[subprocess.Popen, int]:
    """A `relreg build` client started in the registry's folder, and the pid of its command's process."""
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    client = subprocess.Popen([sys.executable, "-m", "relreg", "build", "--out", str(out)], env=runtime,
                              cwd=registry, **popen)
    return client, _command_of(runtime)


_SEEN_COMMANDS: set[int] = set()


def _command_of(runtime: dict[str, str]) -> int:
    """The pid of the process the daemon forked for the command just started: a child of the daemon that
    is running and was not given before (an earlier command's may not be reaped yet)."""
    found: list[int] = []

    def running() -> bool:
        daemons = _daemons(runtime["XDG_RUNTIME_DIR"])
        found[:] = [child for daemon in daemons for child in _children(daemon)
                    if child not in _SEEN_COMMANDS and not _gone(child)]
        return len(found) == 1

    assert _wait_until(running, 60), f"the daemon forked no process for the command ({found})"
    _SEEN_COMMANDS.add(found[0])
    return found[0]


@pytest.mark.parametrize("delay", [0.0, 0.4])
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_client_reaches_the_command(runtime: dict[str, str], large: Path, tmp_path: Path,
                                                    number: int, delay: float) -> None:
    """Sent as soon as the command's process is forked (before the client knows its pid: a signal
    lost there lets the build finish) or later."""
    assert _relreg(runtime, "validate", cwd=large).returncode == 0  # the daemon is up
    out = tmp_path / "out"
    for _ in range(3 if delay == 0 else 1):
        client = subprocess.Popen([sys.executable, "-m", "relreg", "build", "--out", str(out)], env=runtime,
                                  cwd=large, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        command = _command_of(runtime)
        time.sleep(delay)
        client.send_signal(number)
        try:
            _, stderr = client.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            states = _tree_states(client.pid, command)
            os.killpg(command, signal.SIGKILL)
            client.kill()
            pytest.fail(f"the client did not end:\n{states}")
        assert _wait_until(lambda: _gone(command))
        if number == signal.SIGINT:  # as in a process of its own: before click runs the command, or in it
            # (Like a terminal's Ctrl-C, it reaches the site workers too: one being forked at that moment
            # may print an "Exception ignored" traceback, in a process of its own as here.)
            assert (client.returncode, stderr.splitlines()[-1:]) in ((130, ["relreg: interrupted"]),
                                                                     (1, ["Aborted!"])), stderr
        else:  # killed by it, as Python's default action for SIGTERM ends a process of its own
            assert client.returncode == -signal.SIGTERM, stderr
        assert not out.exists()  # a first build, stopped: nothing is served
    rebuilt = _relreg(runtime, "build", "--out", out, cwd=large)
    assert rebuilt.returncode == 0, rebuilt.stderr


def test_a_killed_client_takes_its_command_and_workers_along(runtime: dict[str, str], large: Path,
                                                             tmp_path: Path) -> None:
    assert _relreg(runtime, "validate", cwd=large).returncode == 0
    out = tmp_path / "out"
    fresh = tmp_path / "fresh"
    assert _relreg({**runtime, "RELREG_DAEMON": "0"}, "build", "--out", fresh, cwd=large).returncode == 0
    client = subprocess.Popen([sys.executable, "-m", "relreg", "build", "--out", str(out)], env=runtime, cwd=large,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    command = _command_of(runtime)
    assert _wait_until(lambda: len(_children(command)) >= 2 or client.poll() is not None, 60)
    workers = _children(command)
    client.kill()
    client.wait()
    assert _wait_until(lambda: _gone(command)), "the command outlived its client"
    assert _wait_until(lambda: all(_gone(worker) for worker in workers)), "a site worker outlived the command"
    rebuilt = _relreg(runtime, "build", "--out", out, cwd=large)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert _tree(out) == _tree(fresh)


def test_commands_at_once_each_get_their_own_process(runtime: dict[str, str], repository: Path,
                                                     tmp_path: Path) -> None:
    registry = repository / "registry"
    assert _relreg(runtime, "validate", cwd=registry).returncode == 0
    clients = [subprocess.Popen([sys.executable, "-m", "relreg", "build", "--out", str(tmp_path / f"out{n}")],
                                env=runtime, cwd=registry, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for n in range(4)]
    for client in clients:
        _, stderr = client.communicate(timeout=120)
        assert client.returncode == 0, stderr.decode()
    trees = [_tree(tmp_path / f"out{n}") for n in range(4)]
    assert all(tree == trees[0] for tree in trees) and trees[0]


IDENTITY_CASES = [
    ({"PYTHONPATH": "/x"}, True), ({"LC_ALL": "C"}, True), ({"LANG": "de_DE.UTF-8"}, True), ({"PATH": "/bin"}, True),
    ({"GIT_PYTHON_GIT_EXECUTABLE": "/usr/bin/git"}, True), ({"TZ": "UTC"}, True), ({"PYTHONHASHSEED": "1"}, True),
    ({"HOME": "/elsewhere"}, False), ({"RELREG_REGISTRY": "r"}, False), ({"GIT_DIR": "/x/.git"}, False),
    ({"TERM": "dumb"}, False), ({"CI": "true"}, False),
]


@pytest.mark.parametrize("option", [("importtime", True), ("dev", True)])
def test_identity_holds_the_interpreters_x_options_and_warnings(monkeypatch: pytest.MonkeyPatch, option) -> None:
    base = identity({"PATH": "/usr/bin"})
    monkeypatch.setitem(sys._xoptions, *option)
    assert identity({"PATH": "/usr/bin"}) != base
    monkeypatch.delitem(sys._xoptions, option[0])
    monkeypatch.setattr(sys, "warnoptions", [*sys.warnoptions, "error"])
    assert identity({"PATH": "/usr/bin"}) != base


@pytest.mark.parametrize(("change", "differs"), IDENTITY_CASES, ids=[next(iter(c)) for c, _ in IDENTITY_CASES])
def test_identity_holds_what_python_and_the_imports_read(change: dict[str, str], differs: bool) -> None:
    """Variables read as Python starts or libraries are imported make another daemon; others are passed
    to the command and make none."""
    base = {"PATH": "/usr/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    assert (identity(base) != identity({**base, **change})) is differs


WANTED_CASES = [
    ({"RELREG_DAEMON": "1"}, ["relreg", "build"], True), ({"RELREG_DAEMON": "on"}, ["relreg", "validate"], True),
    ({"RELREG_DAEMON": "require"}, ["relreg", "check"], True), ({"RELREG_DAEMON": "1"}, ["relreg", "serve"], False),
    ({"RELREG_DAEMON": "1"}, ["relreg"], False), ({"RELREG_DAEMON": "1"}, ["relreg", "--version"], False),
    ({}, ["relreg", "build"], False), ({"RELREG_DAEMON": "0"}, ["relreg", "build"], False),
    ({"RELREG_DAEMON": "off"}, ["relreg", "build"], False), ({"RELREG_DAEMON": "maybe"}, ["relreg", "build"], False),
]


@pytest.mark.parametrize(("environ", "argv", "wanted"), WANTED_CASES)
def test_which_commands_go_to_the_daemon(environ: dict[str, str], argv: list[str], wanted: bool) -> None:
    assert daemon_wanted(environ, argv) is (wanted and sys.platform.startswith("linux"))


def test_require_fails_clearly_when_no_daemon_can_start(runtime: dict[str, str], tmp_path: Path) -> None:
    """A socket folder that another user could enter is not used: the command says so and fails."""
    folder = Path(runtime["XDG_RUNTIME_DIR"]) / "relreg"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    environ = {**runtime, "RELREG_DAEMON": "require"}
    run = subprocess.run([sys.executable, "-m", "relreg", "validate", "--registry", str(BASE_REGISTRY)], env=environ,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "no daemon could run this command" in run.stderr
    assert _relreg({**environ, "RELREG_DAEMON": "1"}, "validate", "--registry", BASE_REGISTRY).returncode == 0


@pytest.mark.parametrize(("runtime_folder", "expected"), [
    ("/run/user/1000", "/run/user/1000/relreg/"), ("", f"/tmp/relreg-{os.getuid()}/"),
    ("/run/" + "x" * 90, f"/tmp/relreg-{os.getuid()}/"),  # too long for a socket's path
])
def test_the_socket_is_in_the_runtime_folder_when_its_path_fits(monkeypatch: pytest.MonkeyPatch, runtime_folder: str,
                                                                expected: str) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime_folder)
    path = socket_path(identity({"PATH": "/usr/bin"}))
    assert path.startswith(expected) and path.endswith(".sock") and len(path.encode()) < 108


def test_the_command_has_the_clients_limits_nice_value_and_cpus(runtime: dict[str, str], large: Path,
                                                                 tmp_path: Path) -> None:
    """A fresh process would inherit them from the client, not from the daemon that forks it."""
    import resource

    assert _relreg(runtime, "validate", cwd=large).returncode == 0  # the daemon is up, with this process's settings
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    cpu = min(os.sched_getaffinity(0))

    def settings() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 777), hard))
        os.nice(3)
        os.sched_setaffinity(0, {cpu})

    client, command = _build_in_background(runtime, large, tmp_path / "out", preexec_fn=settings)
    seen: list[object] = []

    def settled() -> bool:  # the forked process takes them once it has read the request
        try:
            seen[:] = [Path(f"/proc/{command}/limits").read_text(),
                       int(Path(f"/proc/{command}/stat").read_text().rsplit(")", 1)[1].split()[16]),
                       os.sched_getaffinity(command)]
        except OSError:
            return False
        return seen[2] == {cpu}

    assert _wait_until(settled, 30), "the command's process never took the client's CPUs"
    limits, niceness, cpus = seen
    _, stderr = client.communicate(timeout=120)
    assert client.returncode == 0, stderr.decode()
    assert re.search(rf"Max open files\s+{min(soft, 777)}\s", limits), limits  # type: ignore[arg-type]
    assert niceness == os.getpriority(os.PRIO_PROCESS, 0) + 3


def test_a_client_in_another_control_group_runs_its_command_itself(runtime: dict[str, str], repository: Path,
                                                                   tmp_path: Path) -> None:
    """The daemon says no at once (its forked process would be in the daemon's group, under its limits):
    the client runs the command, or with RELREG_DAEMON=require fails without waiting for a daemon."""
    group = Path("/sys/fs/cgroup/pids") / f"relreg-test-{os.getpid()}"
    try:
        group.mkdir()
    except OSError as error:
        pytest.skip(f"cannot make a control group here: {error}")
    try:
        registry = repository / "registry"
        assert _relreg(runtime, "validate", cwd=registry).returncode == 0  # the daemon is up, in this group

        def elsewhere() -> None:
            (group / "cgroup.procs").write_text(str(os.getpid()))

        alone = _relreg({**runtime, "RELREG_DAEMON": "1"}, "build", "--out", tmp_path / "out", cwd=registry,
                        preexec_fn=elsewhere)
        assert alone.returncode == 0, alone.stderr
        required = subprocess.run([sys.executable, "-m", "relreg", "validate"], env=runtime, cwd=registry,
                                  capture_output=True, text=True, preexec_fn=elsewhere, timeout=20)
        assert required.returncode == 2 and "another control group" in required.stderr
    finally:
        _wait_until(lambda: not (group / "cgroup.procs").read_text().strip(), 10)
        group.rmdir()


@pytest.mark.parametrize("number", [signal.SIGHUP, signal.SIGINT])
def test_a_signal_the_client_ignores_is_ignored_by_the_command(runtime: dict[str, str], large: Path, tmp_path: Path,
                                                               number: int) -> None:
    """As under nohup or `trap '' INT`: a process of its own inherits the ignored signal."""
    assert _relreg(runtime, "validate", cwd=large).returncode == 0
    client = subprocess.Popen([sys.executable, "-m", "relreg", "build", "--out", str(tmp_path / "out")], env=runtime,
                              cwd=large, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              preexec_fn=lambda: signal.signal(number, signal.SIG_IGN))
    command = _command_of(runtime)
    time.sleep(0.3)
    client.send_signal(number)
    _, stderr = client.communicate(timeout=120)
    assert client.returncode == 0, stderr.decode()
    assert _gone(command) and (tmp_path / "out" / "index.html").is_file()


def test_ctrl_z_stops_the_command_with_its_client(runtime: dict[str, str], large: Path, tmp_path: Path) -> None:
    assert _relreg(runtime, "validate", cwd=large).returncode == 0
    client, command = _build_in_background(runtime, large, tmp_path / "out")
    time.sleep(0.3)
    client.send_signal(signal.SIGTSTP)

    stopped = _wait_until(lambda: all(_state(pid) == "T" or _gone(pid) for pid in (command, client.pid)), 20)
    was = (_state(command), _state(client.pid))
    client.send_signal(signal.SIGCONT)
    _, stderr = client.communicate(timeout=120)
    assert stopped and (was == ("T", "T") or _gone(command)), was  # gone (or Z): it had finished first
    assert client.returncode == 0, stderr.decode()


def test_a_stopping_daemon_finishes_the_commands_it_runs(runtime: dict[str, str], large: Path,
                                                         tmp_path: Path) -> None:
    """SIGTERM to the daemon (or a change of code) while a build runs: the build ends and its client
    gets its real status; the daemon then stops."""
    assert _relreg(runtime, "validate", cwd=large).returncode == 0
    daemon, = _daemons(runtime["XDG_RUNTIME_DIR"])
    client = subprocess.Popen([sys.executable, "-m", "relreg", "build", "--out", str(tmp_path / "out")], env=runtime,
                              cwd=large, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _command_of(runtime)
    os.kill(daemon, signal.SIGTERM)
    _, stderr = client.communicate(timeout=120)
    assert client.returncode == 0, stderr.decode()
    assert (tmp_path / "out" / "index.html").is_file()
    assert _wait_until(lambda: _gone(daemon))


def test_a_connection_that_sends_nothing_holds_up_no_other(runtime: dict[str, str], repository: Path) -> None:
    import socket

    registry = repository / "registry"
    assert _relreg(runtime, "validate", cwd=registry).returncode == 0
    daemon, = _daemons(runtime["XDG_RUNTIME_DIR"])
    sockets = list((Path(runtime["XDG_RUNTIME_DIR"]) / "relreg").glob("*.sock"))
    assert len(sockets) == 1  # the one daemon's socket
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(str(sockets[0]))
    try:
        # The daemon waits up to 10 s for a request: a command behind the silent one must not.
        served = subprocess.run([sys.executable, "-m", "relreg", "validate"], env=runtime, cwd=registry,
                                capture_output=True, text=True, timeout=8)
        assert served.returncode == 0, served.stderr
    finally:
        silent.close()


def test_closed_streams_and_a_deleted_folder_as_in_a_process_of_its_own(runtime: dict[str, str],
                                                                         repository: Path, tmp_path: Path) -> None:
    registry = repository / "registry"
    assert _relreg(runtime, "validate", cwd=registry).returncode == 0
    gone = tmp_path / "gone"
    gone.mkdir()
    cases = [("stdout closed", registry, lambda: os.close(1), ("validate",)),
             ("stderr closed", registry, lambda: os.close(2), ("build", "--out", str(tmp_path / "o"))),
             ("folder deleted", gone, lambda: os.rmdir(gone), ("validate",))]
    for label, folder, prepare, args in cases:
        results = []
        for mode in ("0", "1"):  # with the daemon on, such a command runs in its own process
            if label == "folder deleted":
                gone.mkdir(exist_ok=True)
            run = subprocess.run([sys.executable, "-m", "relreg", *args], env={**runtime, "RELREG_DAEMON": mode},
                                 cwd=folder, capture_output=label != "stdout closed" and label != "stderr closed",
                                 text=True, preexec_fn=prepare, timeout=120)
            results.append((run.returncode, run.stderr))
        assert results[0] == results[1], label


def test_python_m_relreg_writing_into_its_folder_keeps_its_daemon(runtime: dict[str, str], repository: Path) -> None:
    """`python -m relreg` has its folder on the module path: a build writing there is no change of code."""
    assert _relreg(runtime, "validate", "--registry", "registry", cwd=repository).returncode == 0
    first = _daemons(runtime["XDG_RUNTIME_DIR"])
    for run in range(2):
        built = _relreg(runtime, "build", "--registry", "registry", "--out", "public", cwd=repository)
        assert built.returncode == 0, built.stderr
        (repository / f"scratch-{run}.txt").write_text(str(time.time()))
    assert _daemons(runtime["XDG_RUNTIME_DIR"]) == first


def test_a_command_killed_outright_kills_its_client_the_same_way(runtime: dict[str, str], large: Path,
                                                                  tmp_path: Path) -> None:
    """SIGKILL to the command's process (as the OOM killer sends it): its caller sees -9, as of a process
    of its own."""
    assert _relreg(runtime, "validate", cwd=large).returncode == 0
    client, command = _build_in_background(runtime, large, tmp_path / "out")
    time.sleep(0.3)
    os.kill(command, signal.SIGKILL)
    client.communicate(timeout=60)
    assert client.returncode == -signal.SIGKILL


def test_a_client_killed_while_stopped_takes_its_stopped_command_along(runtime: dict[str, str], large: Path,
                                                                       tmp_path: Path) -> None:
    """Ctrl-Z, then kill -9 %1: the stopped command cannot act on SIGIO; the daemon ends it."""
    assert _relreg(runtime, "validate", cwd=large).returncode == 0
    client, command = _build_in_background(runtime, large, tmp_path / "out", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    client.send_signal(signal.SIGTSTP)

    assert _wait_until(lambda: _state(command) == "T" or _gone(command), 20)
    client.kill()
    client.wait()
    assert _wait_until(lambda: _gone(command)), "a stopped command outlived its client"


def test_the_command_takes_the_clients_ignored_and_blocked_signals(runtime: dict[str, str], large: Path,
                                                                   tmp_path: Path) -> None:
    def read_mask(pid: int, field: str) -> int:
        line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith(field))
        return int(line.split()[1], 16)

    def settings() -> None:
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})

    assert _relreg(runtime, "validate", cwd=large).returncode == 0
    client, command = _build_in_background(runtime, large, tmp_path / "out", stdout=subprocess.DEVNULL, preexec_fn=settings)
    seen: list[int] = []

    def taken() -> bool:
        try:
            seen[:] = [read_mask(command, "SigIgn:"), read_mask(command, "SigBlk:")]
        except (OSError, StopIteration):
            return False
        return bool(seen[1] & (1 << (signal.SIGUSR2 - 1)))

    assert _wait_until(taken, 30), "the command never blocked what its client blocks"
    _, stderr = client.communicate(timeout=120)
    assert client.returncode == 0, stderr.decode()
    assert seen[0] & (1 << (signal.SIGUSR1 - 1)), "SIGUSR1 is not ignored in the command"


def test_clients_at_once_with_no_daemon_start_one_and_its_pid_file_stops_it(runtime: dict[str, str],
                                                                             repository: Path) -> None:
    registry = repository / "registry"
    clients = [subprocess.Popen([sys.executable, "-m", "relreg", "validate"], env=runtime, cwd=registry,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(5)]
    for client in clients:
        _, stderr = client.communicate(timeout=120)
        assert client.returncode == 0, stderr.decode()
    folder = Path(runtime["XDG_RUNTIME_DIR"]) / "relreg"
    daemons = _daemons(runtime["XDG_RUNTIME_DIR"])
    assert len(daemons) == 1, "more than one daemon was started"
    assert not list(folder.glob("*.starting"))
    pid_files = list(folder.glob("*.pid"))
    assert [int(path.read_text()) for path in pid_files] == daemons
    os.kill(daemons[0], signal.SIGTERM)
    assert _wait_until(lambda: not _daemons(runtime["XDG_RUNTIME_DIR"]))
    assert not list(folder.iterdir())  # socket and pid file gone


def test_rebuilds_from_releases_the_daemon_kept_are_those_of_a_process_of_its_own(runtime: dict[str, str],
                                                                                    tmp_path: Path) -> None:
    # After each served command the daemon makes the releases of its work cache (registry/warm.py), which
    # the next rebuild takes; its output must be what a process of its own makes.
    results = {}
    for mode in ("0", "require"):
        repo = committed_registry(tmp_path / f"repo-{mode}", BASE_REGISTRY)
        registry, out = repo / "registry", tmp_path / f"out-{mode}"
        environ = {**runtime, "RELREG_DAEMON": mode}
        runs = [_relreg(environ, "build", "--out", out, cwd=registry)]
        for step, date in enumerate(["2024-02-01T10:00:00+00:00", "2024-03-01T10:00:00+00:00"]):
            release = sorted((registry / "releases").glob("*.yaml"))[step]
            release.write_text(release.read_text().replace("notes:", f"# fix {step}\nnotes:", 1))
            commit_all(repo, f"fix {step}", date)
            time.sleep(1)  # the daemon makes its releases between commands
            runs.append(_relreg(environ, "build", "--out", out, cwd=registry))
            runs.append(_relreg(environ, "validate", "--format", "json", cwd=registry))
        results[mode] = ([(run.returncode, _same_but_seconds(run.stdout), _same_but_seconds(run.stderr))
                          for run in runs], _tree(out))
    assert all(code == 0 for code, _, _ in results["0"][0])
    assert results["require"] == results["0"]


_PROBE = '''import os
if os.environ.get("WARM_PROBE_LOG"):
    from relreg.registry import warm

    def _logged(kept):
        def kept_logged(blob_id, scheme):
            found = kept(blob_id, scheme)
            with open(os.environ["WARM_PROBE_LOG"], "a") as log:
                log.write("taken\\n" if found is not None else "made\\n")
            return found
        return kept_logged

    warm.kept = _logged(warm.kept)
'''


def test_kept_releases_are_taken_unless_the_client_sets_relreg_daemon_warm_to_0(runtime: dict[str, str],
                                                                                  repository: Path,
                                                                                  tmp_path: Path) -> None:
    probe, log = tmp_path / "probe", tmp_path / "lookups.log"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(_PROBE)  # logs each lookup of a kept release, in every process
    environ = {**runtime, "PYTHONPATH": str(probe), "WARM_PROBE_LOG": str(log)}
    registry = repository / "registry"
    release = sorted((registry / "releases").glob("*.yaml"))[0]
    taken = []
    for step, warm_releases in enumerate([None, "0", None]):
        if step:
            release.write_text(release.read_text() + f"# {step}\n")
            time.sleep(1)  # the daemon makes its releases between commands
        log.unlink(missing_ok=True)
        run = _relreg({**environ, **({"RELREG_DAEMON_WARM": warm_releases} if warm_releases else {})},
                      "build", "--out", tmp_path / "out", cwd=registry)
        assert run.returncode == 0, run.stderr
        taken.append(log.read_text().count("taken") if log.exists() else 0)
    # The first build started the daemon, which then kept its releases; the
    # second, whose client said 0, took none; the third took the unchanged ones.
    assert taken[:2] == [0, 0]
    assert taken[2] >= 1
