"""The `relreg` command's entry point: `build`, `validate` and `check` run in relreg's daemon when one is
up for this Python and this code, else in this process.

A rebuild at 10,000 releases spends about a third of a second importing relreg and its libraries
(Jinja2, GitPython, PyYAML, ...) before it reads a file, a third of what a notes fix costs. The
daemon (`relreg/daemon.py`) has them imported and forks one process per command, which runs the
command as this process would: the same arguments, folder, environment, umask and standard streams
(passed over a Unix socket), from a fresh start but for the imports. Bazel's and Gradle's clients
work this way. The first command starts the daemon and runs in its own process; the daemon stops
after RELREG_DAEMON_IDLE seconds (default 900) without a command, and at once when relreg's code or
the installed libraries change.

RELREG_DAEMON=0 runs every command in its own process, as does CI=true (a CI runner keeps no
processes between jobs); RELREG_DAEMON=1 uses the daemon in CI too; RELREG_DAEMON=require runs the
command in a daemon or fails (exit 2), starting one and waiting for it if need be. Linux only.

This module is the client. It imports only what Python starts with and `socket`: it runs before
every command.
"""

from __future__ import annotations

import os
import sys

# The commands whose start-up the daemon saves: they read a registry and may run at every edit.
SERVED_COMMANDS = frozenset({"build", "validate", "check"})
PROTOCOL = 1
# RELREG_DAEMON=require (tests, benchmarks): the command must run in a daemon, started and waited for.
REQUIRE_WAIT_SECONDS = 30.0
_OFF = frozenset({"0", "off", "no", "false"})
# Environment variables read as Python starts or as relreg's libraries are imported (stdio encodings,
# the module search path, GitPython's git): a daemon serves only commands run with the same.
_IDENTITY_PREFIXES = ("PYTHON", "LC_", "GIT_PYTHON")
_IDENTITY_NAMES = frozenset({"LANG", "LANGUAGE", "PATH", "TZ"})
# A Unix socket's path holds at most 107 bytes on Linux (sun_path).
_SOCKET_PATH_BYTES = 108


def daemon_wanted(environ: dict[str, str] | os._Environ[str], argv: list[str]) -> bool:
    """Whether this command (`argv`, as sys.argv) may run in the daemon: RELREG_DAEMON not off, not
    in CI unless RELREG_DAEMON asks for it, Linux, and one of SERVED_COMMANDS."""
    if len(argv) < 2 or argv[1] not in SERVED_COMMANDS or not sys.platform.startswith("linux"):
        return False
    setting = environ.get("RELREG_DAEMON", "").strip().lower()
    if setting in _OFF:
        return False
    if not setting and environ.get("CI", "").strip().lower() not in ("", *_OFF):
        return False
    return True


def identity(environ: dict[str, str] | os._Environ[str]) -> tuple[object, ...]:
    """What a process must share with the daemon for the daemon to run its command: the interpreter,
    its flags, the module search path and the environment variables read as Python starts and
    relreg's libraries are imported. Made of what marshal writes."""
    variables = tuple(sorted((name, value) for name, value in environ.items()
                             if name.startswith(_IDENTITY_PREFIXES) or name in _IDENTITY_NAMES))
    return (PROTOCOL, sys.executable, sys.version, tuple(sys.flags), tuple(sys.path), variables)


def socket_path(ident: tuple[object, ...]) -> str:
    """The daemon's socket for `ident`: in a folder only this user may enter ($XDG_RUNTIME_DIR/relreg,
    or /tmp/relreg-<uid> without it or when that path is too long for a socket), named by a checksum
    of the identity (the daemon compares the whole of it)."""
    import marshal
    import zlib

    name = f"daemon-{zlib.crc32(marshal.dumps(ident)) & 0xFFFFFFFF:08x}.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        path = os.path.join(runtime, "relreg", name)
        if len(os.fsencode(path)) < _SOCKET_PATH_BYTES:
            return path
    return os.path.join("/tmp", f"relreg-{os.getuid()}", name)


def private_folder(path: str) -> bool:
    """Make the folder of `path` if need be; True when it is a real folder of this user's that only
    this user may enter (a socket elsewhere could be another user's)."""
    import stat

    folder = os.path.dirname(path)
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def process_settings() -> tuple[object, ...]:
    """What a process inherits from the one that starts it beside its streams, folder, environment and
    umask, and a forked one would take from the daemon instead: resource limits (ulimit), nice value,
    CPU affinity, control group. The daemon's forked process takes the first three; a client in
    another control group (systemd-run, a container's limits) is not served."""
    import resource

    limits = tuple((number, *resource.getrlimit(number)) for number in sorted(
        getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")))
    try:
        with open("/proc/self/cgroup", "rb") as cgroup:
            group = cgroup.read()
    except OSError:
        group = b""
    return (limits, os.getpriority(os.PRIO_PROCESS, 0), tuple(sorted(os.sched_getaffinity(0))), group)


def run_on_daemon(argv: list[str], *, wait: float = 0.0) -> int | None:
    """Run the command `argv` in the daemon and give its exit status, or None when no daemon for this
    process's identity answers (one is then started for the next command) or the daemon declines it
    (its code changed: it stops). With `wait` (seconds), a daemon that is not up is started and waited
    for, that long at most."""
    import socket
    import time

    ident = identity(os.environ)
    path = socket_path(ident)
    deadline = time.monotonic() + wait
    started = False
    while True:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(path)
        except OSError:
            connection.close()
            if not started:
                if not _start_daemon(path):
                    return None
                started = True
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
            continue
        try:
            return _run_connected(connection, ident, argv)
        except _Stopping:
            if time.monotonic() >= deadline:
                return None
            started = False  # that daemon stops (its code changed) or stopped: start another
            time.sleep(0.05)


def _run_connected(connection, ident: tuple[object, ...], argv: list[str]) -> int | None:
    with connection:
        try:
            return _served(connection, ident, argv)
        except _DaemonLost:
            os.write(2, b"relreg: the daemon running this command stopped before it ended (RELREG_DAEMON=0 "
                        b"runs commands without it)\n")
            return 1


class _DaemonLost(Exception):
    """The daemon's connection closed after it had started the command, before it sent the status."""


class _Stopping(Exception):
    """The daemon stops (its code changed) or closed the connection before it started the command."""


def _served(connection, ident: tuple[object, ...], argv: list[str]) -> int | None:
    import array
    import marshal
    import signal
    import socket

    # From here on, SIGINT (Ctrl-C), SIGTERM, SIGHUP and SIGQUIT are the command's: forwarded to the
    # process the daemon forks for it, or kept until its pid is known.
    command: list[int] = []
    pending: list[int] = []

    def forward(number: int, frame: object) -> None:
        if not command:
            pending.append(number)
            return
        try:
            os.kill(command[0], number)
        except ProcessLookupError:
            pass

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    previous = {number: signal.signal(number, forward) for number in forwarded}
    umask = os.umask(0)
    os.umask(umask)
    request = marshal.dumps((ident, argv, os.getcwdb(), dict(os.environb), umask, process_settings()))
    fds = array.array("i", (0, 1, 2))
    try:
        connection.sendmsg([len(request).to_bytes(4, "little")], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        connection.sendall(request)
        reply = _exactly(connection, 5)
    except (OSError, EOFError):
        reply = b""
    if reply[:1] != b"P":
        # Declined: N, not this process's kind of daemon (another control group); X, the forked
        # process could not take this one's settings; S or nothing, the daemon stops.
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in pending:  # as if they came now, to this process
            os.kill(os.getpid(), number)
        if reply[:1] in (b"N", b"X"):
            return None
        raise _Stopping
    command.append(int.from_bytes(reply[1:], "little"))
    for number in pending:
        forward(number, None)
    try:
        reply = _exactly(connection, 5)
    except (OSError, EOFError):
        raise _DaemonLost from None
    if reply[:1] != b"X":
        raise _DaemonLost
    return int.from_bytes(reply[1:], "little", signed=True)


def _exactly(connection, size: int) -> bytes:
    data = b""
    while len(data) < size:
        try:
            chunk = connection.recv(size - len(data))
        except InterruptedError:  # pragma: no cover - Python retries recv itself (PEP 475)
            continue
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _start_daemon(path: str) -> bool:
    """Start a daemon for this process's identity, detached (its own session, no standard streams),
    for the next command; False when the socket's folder is not private or Python could not start."""
    if not private_folder(path):
        return False
    import subprocess

    code = ("import sys; sys.path[:] = sys.argv[2:]; from relreg.daemon import serve; serve(sys.argv[1])")
    try:
        subprocess.Popen([sys.executable, *subprocess._args_from_interpreter_flags(), "-c", code, path, *sys.path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         cwd="/", start_new_session=True, close_fds=True)
    except OSError:
        return False
    return True


def main() -> None:
    """The console script `relreg` and `python -m relreg`."""
    if daemon_wanted(os.environ, sys.argv):
        required = os.environ.get("RELREG_DAEMON", "").strip().lower() == "require"
        try:
            status = run_on_daemon(sys.argv, wait=REQUIRE_WAIT_SECONDS if required else 0.0)
        except KeyboardInterrupt:  # before the command started: as relreg.cli.main says it
            os.write(2, b"relreg: interrupted\n")
            raise SystemExit(130) from None
        if status is None and required:
            os.write(2, b"relreg: RELREG_DAEMON=require, and no daemon could run this command (none could be "
                        b"started, or this process is in another control group or has settings it cannot take)\n")
            raise SystemExit(2)
        if status is not None:
            raise SystemExit(status)
    from relreg.cli.main import main as run_here

    run_here()
