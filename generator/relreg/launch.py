"""The `relreg` command's entry point. With RELREG_DAEMON=1, `build`, `validate` and `check` run in
relreg's daemon when one is up for this Python and this code, else in this process.

A rebuild at 10,000 releases spends about a third of a second importing relreg and its libraries
(Jinja2, GitPython, PyYAML, ...) before it reads a file, a third of what a notes fix costs. The
daemon (`relreg/daemon.py`) has them imported and forks one process per command, which runs the
command as this process would: the same arguments, folder, environment, umask, standard streams
(passed over a Unix socket), resource limits, nice value, CPUs and ignored signals, from a fresh
start but for the imports. Bazel's and Gradle's clients work this way. The first command starts the
daemon and runs in its own process; the daemon stops after RELREG_DAEMON_IDLE seconds (default
900) without a command, and once relreg's code or a library it loaded changes.

It is opt-in, for the edit-and-rebuild loop: a forked process is not a process of the client's own in
every respect (its session and parent are the daemon's; it is a process of the daemon's user,
capabilities, namespaces and control group, so a client whose own differ is not served).
RELREG_DAEMON=1 (or on, yes, true) uses it; RELREG_DAEMON=require runs the command in a daemon or
fails (exit 2), starting one and waiting for it if need be. Linux only.

This module is the client. It imports only what Python starts with and `socket`: it runs before
every command.
"""

from __future__ import annotations

import os
import sys

# The commands whose start-up the daemon saves: they read a registry and may run at every edit.
SERVED_COMMANDS = frozenset({"build", "validate", "check"})
PROTOCOL = 2
# RELREG_DAEMON=require (tests, benchmarks): the command must run in a daemon, started and waited for.
REQUIRE_WAIT_SECONDS = 30.0
_ON = frozenset({"1", "on", "yes", "true", "require"})
# Environment variables read as Python starts or as relreg's libraries are imported (stdio encodings,
# the module search path, GitPython's git): a daemon serves only commands run with the same.
_IDENTITY_PREFIXES = ("PYTHON", "LC_", "GIT_PYTHON")
_IDENTITY_NAMES = frozenset({"LANG", "LANGUAGE", "PATH", "TZ"})
# A Unix socket's path holds at most 107 bytes on Linux (sun_path).
_SOCKET_PATH_BYTES = 108
# /proc/self/status lines that say what a process may do: a forked process keeps the daemon's.
_PRIVILEGE_LINES = (b"Uid:", b"Gid:", b"Groups:", b"CapInh:", b"CapPrm:", b"CapEff:", b"CapBnd:", b"CapAmb:",
                    b"NoNewPrivs:", b"Seccomp:", b"Seccomp_filters:")


def daemon_wanted(environ: dict[str, str] | os._Environ[str], argv: list[str]) -> bool:
    """Whether this command (`argv`, as sys.argv) runs in the daemon: RELREG_DAEMON on or require,
    Linux, and one of SERVED_COMMANDS."""
    if len(argv) < 2 or argv[1] not in SERVED_COMMANDS or not sys.platform.startswith("linux"):
        return False
    return environ.get("RELREG_DAEMON", "").strip().lower() in _ON


def identity(environ: dict[str, str] | os._Environ[str]) -> tuple[object, ...]:
    """What a process must share with the daemon for the daemon to run its command: the interpreter,
    its flags and options (-X, -W), the module search path and the environment variables read as
    Python starts and relreg's libraries are imported. Made of what marshal writes."""
    variables = tuple(sorted((name, value) for name, value in environ.items()
                             if name.startswith(_IDENTITY_PREFIXES) or name in _IDENTITY_NAMES))
    options = tuple(sorted((str(key), str(value)) for key, value in sys._xoptions.items()))
    return (PROTOCOL, sys.executable, sys.version, tuple(sys.flags), tuple(sys.warnoptions), options,
            tuple(sys.path), variables)


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


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:
        return b""


def process_settings(ignored: tuple[int, ...] = (), blocked: tuple[int, ...] = ()
                     ) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """(what must match, what is taken): what a process gets from the one that starts it, beside its
    streams, folder, environment and umask, and a forked one would have from the daemon instead.

    Must match: user and groups, capabilities, no_new_privs and seccomp, namespaces, control group
    (a process cannot take another's). Taken: resource limits (ulimit), nice value, CPU affinity,
    OOM score adjustment, `ignored`, the signals this process ignores, and `blocked`, those it blocks."""
    import resource

    status = _read("/proc/self/status").splitlines()
    privileges = tuple(line for line in status if line.startswith(_PRIVILEGE_LINES))
    try:
        namespaces = tuple((name, os.readlink(f"/proc/self/ns/{name}")) for name in sorted(os.listdir("/proc/self/ns")))
    except OSError:
        namespaces = ()
    must_match = (privileges, namespaces, _read("/proc/self/cgroup"))
    limits = tuple((number, *resource.getrlimit(number)) for number in sorted(
        getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")))
    oom_score = _read("/proc/self/oom_score_adj").strip() or None
    taken = (limits, os.getpriority(os.PRIO_PROCESS, 0), tuple(sorted(os.sched_getaffinity(0))), oom_score,
             ignored, blocked)
    return must_match, taken


def run_on_daemon(argv: list[str], *, wait: float = 0.0) -> int | None:
    """Run the command `argv` in the daemon and give its exit status, or None when it runs here: no
    daemon for this process's identity answers (one is then started for the next command), the
    daemon cannot serve this process, or a standard stream or the folder is gone. With `wait`
    (seconds), a daemon that is not up is started and waited for, that long at most."""
    import socket
    import time

    try:
        for fd in (0, 1, 2):
            os.fstat(fd)  # a closed one would be taken by the socket and passed on as the stream
        os.getcwdb()
    except OSError:
        return None
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
            status = _served(connection, ident, argv)
        except _DaemonLost:
            os.write(2, b"relreg: the daemon running this command stopped before it ended (RELREG_DAEMON=0 "
                        b"runs commands without it)\n")
            return 1
    if status is not None and status < 0:  # killed by a signal: end the same way
        import signal

        try:
            signal.signal(-status, signal.SIG_DFL)  # SIGKILL's cannot be set, nor needs to be
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), -status)
        return 128 - status  # a signal whose default action does not end a process
    return status


class _DaemonLost(Exception):
    """The daemon's connection closed after it had started the command, before it sent the status."""


class _Stopping(Exception):
    """The daemon stops (its code changed) or closed the connection before it started the command."""


# Forwarded to the command's process once its pid is known (kept until then), unless ignored here.
_FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


def _served(connection, ident: tuple[object, ...], argv: list[str]) -> int | None:
    import array
    import marshal
    import signal
    import socket

    command: list[int] = []
    pending: list[int] = []

    def send(number: int) -> None:
        # A terminal sends Ctrl-C, Ctrl-\\ and Ctrl-Z to the whole foreground group (the command's git
        # and site workers too): to the command's group; SIGTERM and SIGHUP to the process, as kill does.
        try:
            if number in (signal.SIGINT, signal.SIGQUIT, signal.SIGSTOP, signal.SIGCONT):
                os.killpg(command[0], number)
            else:
                os.kill(command[0], number)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(command[0], number)  # its group not made yet
            except ProcessLookupError:
                pass

    def forward(number: int, frame: object) -> None:
        if command:
            send(number)
        else:
            pending.append(number)

    def stop(number: int, frame: object) -> None:  # Ctrl-Z: the command stops with this process
        if command:
            send(signal.SIGSTOP)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)
        signal.signal(signal.SIGTSTP, stop)  # continued
        if command:
            send(signal.SIGCONT)

    ignored = tuple(sorted(int(number) for number in signal.valid_signals()
                           if number not in (signal.SIGPIPE, signal.SIGXFSZ)  # Python ignores them itself
                           and _ignored(signal, number)))
    previous = {}
    for number in [getattr(signal, name) for name in _FORWARDED] + [signal.SIGTSTP]:
        if number not in ignored:
            previous[number] = signal.signal(number, stop if number == signal.SIGTSTP else forward)
    blocked = tuple(sorted(int(number) for number in signal.pthread_sigmask(signal.SIG_BLOCK, [])))
    umask = os.umask(0)
    os.umask(umask)
    request = marshal.dumps((ident, argv, os.getcwdb(), dict(os.environb), umask,
                             process_settings(ignored, blocked)))
    fds = array.array("i", (0, 1, 2))
    try:
        connection.sendmsg([len(request).to_bytes(4, "little")], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        connection.sendall(request)
        reply = _exactly(connection, 5)
    except (OSError, EOFError):
        reply = b""
    if reply[:1] != b"P":
        # N: the daemon cannot serve this process (another user, namespace or control group, or a
        # setting it cannot take); S or nothing: it stops (its code changed).
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


def _ignored(signal, number: int) -> bool:
    try:
        return signal.getsignal(number) == signal.SIG_IGN
    except (OSError, ValueError):
        return False


def _exactly(connection, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _start_daemon(path: str) -> bool:
    """Start a daemon for this process's identity, detached (its own session, no standard streams),
    for the next command; False when the socket's folder is not private or Python could not start."""
    if not private_folder(path):
        return False
    # One start at a time: clients that find no daemon at once (a script's parallel builds) would each
    # start one, and all but one would import relreg for nothing. The daemon removes the mark.
    starting = f"{path}.starting"
    try:
        os.close(os.open(starting, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        try:
            import time

            if time.time() - os.stat(starting).st_mtime < REQUIRE_WAIT_SECONDS:
                return True  # one is starting
            os.unlink(starting)  # left by a start that failed
            os.close(os.open(starting, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except OSError:
            return True
    except OSError:
        return False
    import subprocess

    code = "import sys; sys.path[:] = sys.argv[2:]; from relreg.daemon import serve; serve(sys.argv[1])"
    arguments = [sys.executable, *subprocess._args_from_interpreter_flags(), "-c", code, path, *sys.path]
    try:
        null = os.open(os.devnull, os.O_RDWR)
        try:
            # posix_spawn keeps no child object to wait for (Popen's would warn when collected); the
            # daemon is reparented once this process ends.
            os.posix_spawn(sys.executable, arguments, os.environ, setsid=True,
                           file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                                         (os.POSIX_SPAWN_DUP2, null, 2)])
        finally:
            os.close(null)
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
            try:
                os.write(2, b"relreg: RELREG_DAEMON=require, and no daemon could run this command (none could be "
                            b"started, or this process is in another control group or namespace, or has "
                            b"settings the daemon cannot take)\n")
            except OSError:
                pass  # no standard error to say it on: the status says it
            raise SystemExit(2)
        if status is not None:
            raise SystemExit(status)
    from relreg.cli.main import main as run_here

    run_here()
