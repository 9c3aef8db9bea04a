"""relreg's daemon: a process with relreg and its libraries imported that forks one process per command
sent by the `relreg` client (`relreg/launch.py`), which runs it as the client's own process would.

What a served command shares with the daemon is code only: the modules imported, which are those a
fresh process would import (the same interpreter, flags, module search path and start-up environment:
the client's `identity`, compared whole), from files that have not changed since (their sizes and
times, `code_snapshot`, are compared before each command; the daemon stops when they differ). The
daemon never runs a command itself, so no command's state reaches another.

The forked process takes the client's standard streams (passed with SCM_RIGHTS), folder,
environment, umask and arguments, sends the client its pid once it can take signals, and ends as a
command does; the daemon, which forked it, sends the client its exit status (or 128 + the signal
that killed it). The client forwards SIGINT, SIGTERM,
SIGHUP and SIGQUIT to it, and a client that dies (SIGKILL) takes it along: its end of the socket is
set to raise SIGIO in the forked process when the client's end closes, and SIGIO's default action
ends a process.
"""

from __future__ import annotations

import array
import atexit
import fcntl
import gc
import importlib
import importlib.util
import marshal
import os
import select
import signal
import socket
import sys
import time
import traceback

from relreg.launch import identity, process_settings

# Imported once by the daemon, for every command: relreg's commands and what they load on first use.
PRELOADED = (
    "relreg.cli.main", "relreg.cli.build", "relreg.cli.release", "relreg.build", "relreg.release.check",
    "relreg.registry.validate", "relreg.registry.yamlload", "relreg.site.notes", "relreg.site.pages",
    "relreg.site.write", "relreg.site.api", "relreg.history.gitlog", "relreg.history.deployments",
    "git", "jinja2", "yaml", "ryml", "jsonschema_rs", "orjson", "cmarkgfm", "nh3", "semver",
    "multiprocessing", "concurrent.futures.process",
)
DEFAULT_IDLE_SECONDS = 900
# The status of a forked process that could not take the client's settings (before it ran anything).
DECLINED = 121


def code_snapshot() -> tuple[tuple[str, int, int], ...]:
    """The size and modification time (ns) of every file of the relreg package (code, theme, schemas)
    and of every folder on the module search path (installing or removing a library changes its
    folder's time), read without importing anything."""
    found: list[tuple[str, int, int]] = []
    spec = importlib.util.find_spec("relreg")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    schemas = os.path.join(os.path.dirname(roots[0]), os.pardir, "schemas") if roots else None
    for root in [*roots, *([schemas] if schemas and os.path.isdir(schemas) else [])]:
        for folder, folders, files in os.walk(root):
            folders[:] = sorted(name for name in folders if name != "__pycache__")
            for name in sorted(files):
                path = os.path.join(folder, name)
                try:
                    info = os.stat(path)
                except OSError:
                    continue
                found.append((path, info.st_size, info.st_mtime_ns))
    for folder in sys.path:
        try:
            info = os.stat(folder or ".")
        except OSError:
            continue
        found.append((folder, info.st_size, info.st_mtime_ns))
    return tuple(found)


class _Daemon:
    """The listening socket, the commands running (forked pid -> the client's connection) and the clock."""

    def __init__(self, path: str, idle_seconds: float) -> None:
        self.path = path
        self.idle_seconds = idle_seconds
        self.identity = identity(os.environ)
        self.snapshot = code_snapshot()
        self.settings = process_settings()
        self.running: dict[int, socket.socket] = {}
        self.last_active = time.monotonic()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A forked command's end wakes the loop at once (SIGCHLD written to this pipe), so the client
        # gets its status without waiting for the next second.
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)

    def bind(self) -> bool:
        """Listen at the path; False when another daemon answers there."""
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(self.path)
        except OSError:
            pass
        else:
            probe.close()
            return False
        finally:
            probe.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.listener.bind(self.path)
        self.listener.listen(16)
        self.inode = os.stat(self.path).st_ino
        return True

    def still_ours(self) -> bool:
        try:
            return os.stat(self.path).st_ino == self.inode
        except OSError:
            return False

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_write)
        signal.signal(signal.SIGCHLD, lambda number, frame: None)
        while True:
            readable, _, _ = select.select([self.listener, self.wake_read], [], [], 1.0)
            try:
                os.read(self.wake_read, 512)
            except BlockingIOError:
                pass
            self.reap()
            if self.listener in readable:
                connection, _ = self.listener.accept()
                self.last_active = time.monotonic()
                if not self.take(connection):
                    return
            elif not self.running and (time.monotonic() - self.last_active > self.idle_seconds
                                       or not self.still_ours()):
                return

    def reap(self) -> None:
        while self.running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection = self.running.pop(pid, None)
            if connection is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
            try:
                connection.sendall(b"X" + code.to_bytes(4, "little", signed=True))
            except OSError:
                pass
            connection.close()
            self.last_active = time.monotonic()

    def take(self, connection: socket.socket) -> bool:
        """Run one client's command in a forked process; False when the daemon must stop (its code changed)."""
        fds: list[int] = []
        try:
            connection.settimeout(10)
            header, ancillary, _, _ = connection.recvmsg(4, socket.CMSG_SPACE(3 * array.array("i").itemsize))
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    received = array.array("i")
                    received.frombytes(data[:len(data) - len(data) % received.itemsize])
                    fds += received
            size = int.from_bytes(header, "little")
            payload = b""
            while len(payload) < size:
                chunk = connection.recv(size - len(payload))
                if not chunk:
                    raise EOFError
                payload += chunk
            ident, argv, cwd, environ, umask, settings = marshal.loads(payload)
            connection.settimeout(None)
        except (OSError, EOFError, ValueError, TypeError):
            _close_all(fds)
            connection.close()
            return True
        if len(fds) != 3 or ident != self.identity or settings[3] != self.settings[3]:
            _close_all(fds)
            _reply_and_close(connection, b"N")  # the client runs the command itself
            return True
        if code_snapshot() != self.snapshot:
            _close_all(fds)
            _reply_and_close(connection, b"S")  # the client starts a daemon of the new code
            return False
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            _close_all([self.wake_read, self.wake_write])
            self.listener.close()
            for other in self.running.values():
                other.close()
            _run_command(connection, fds, argv, cwd, environ, umask, settings)
        _close_all(fds)
        self.running[pid] = connection
        return True

    def close(self) -> None:
        if self.still_ours():
            try:
                os.unlink(self.path)
            except OSError:
                pass
        self.listener.close()


def _reply_and_close(connection: socket.socket, reply: bytes) -> None:
    try:
        connection.sendall(reply + bytes(4))
    except OSError:
        pass
    connection.close()


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _take_settings(settings: tuple[object, ...]) -> bool:
    """Take the client's resource limits, nice value and CPU affinity (launch.process_settings); False
    when one cannot be taken (a limit above the daemon's hard one, a higher priority than the daemon's)."""
    import resource

    limits, niceness, cpus, _ = settings
    try:
        for number, soft, hard in limits:  # type: ignore[attr-defined]
            if resource.getrlimit(number) != (soft, hard):
                resource.setrlimit(number, (soft, hard))
        if os.getpriority(os.PRIO_PROCESS, 0) != niceness:
            os.setpriority(os.PRIO_PROCESS, 0, niceness)  # type: ignore[arg-type]
        if tuple(sorted(os.sched_getaffinity(0))) != cpus:
            os.sched_setaffinity(0, cpus)  # type: ignore[arg-type]
    except (OSError, ValueError):
        return False
    return True


def _run_command(connection: socket.socket, fds: list[int], argv: list[str], cwd: bytes,
                 environ: dict[bytes, bytes], umask: int, settings: tuple[object, ...]) -> None:
    """In the forked process: become the client's process and run its command; never returns. A process
    that cannot take the client's settings ends before it tells the client its pid: the client then
    runs the command itself."""
    code = 1
    if not _take_settings(settings):
        os._exit(DECLINED)
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        _close_all(fds)
        for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # Only now may the client forward signals: one that came between the fork and here was lost
        # (Python clears them in a forked process) or met the daemon's handlers.
        connection.sendall(b"P" + os.getpid().to_bytes(4, "little"))
        # The client's end closing (it died) raises SIGIO here, whose default action ends this process.
        fcntl.fcntl(connection.fileno(), fcntl.F_SETOWN, os.getpid())
        fcntl.fcntl(connection.fileno(), fcntl.F_SETFL, fcntl.fcntl(connection.fileno(), fcntl.F_GETFL) | os.O_ASYNC)
        os.environb.clear()
        os.environb.update(environ)
        os.umask(umask)
        sys.argv = list(argv)
        # The streams were made for the daemon's /dev/null: line-buffered output to a terminal, as Python
        # starts it there.
        for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
            if stream is not None:
                stream.reconfigure(line_buffering=stream is sys.stderr or os.isatty(fd))
        os.chdir(cwd)
        gc.enable()
        from relreg.cli.main import main

        try:
            main()
            code = 0
        except SystemExit as exit:
            code = _exit_code(exit.code)
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                code = code or 120  # as Python's own exit when its output cannot be flushed
    except KeyboardInterrupt:  # before the command's own handling starts, as relreg.cli.main says it
        code = 130
        _say(b"relreg: interrupted\n")
    except BaseException:  # noqa: BLE001 - as Python's own top level: print it, status 1
        code = 1
        try:
            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
    os._exit(code)


def _say(message: bytes) -> None:
    try:
        sys.stderr.flush()
        os.write(2, message)
    except (OSError, ValueError):
        pass


def _exit_code(code: object) -> int:
    """The status Python gives a SystemExit(code): None 0, an int itself, anything else printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except (OSError, ValueError):
        pass
    return 1


def serve(path: str) -> None:
    """Run the daemon at socket `path` until RELREG_DAEMON_IDLE seconds (default 900) pass without a
    command, its code changes, another daemon takes the path, or it gets SIGTERM."""
    try:
        idle = float(os.environ.get("RELREG_DAEMON_IDLE", DEFAULT_IDLE_SECONDS))
    except ValueError:
        idle = DEFAULT_IDLE_SECONDS
    daemon = _Daemon(path, idle)
    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if code_snapshot() != daemon.snapshot or not daemon.bind():
        return
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(0))
    gc.collect()
    gc.freeze()  # forked commands then share the imported modules' pages instead of copying them as they collect
    try:
        daemon.serve()
    finally:
        daemon.close()


if __name__ == "__main__":  # pragma: no cover - started by relreg.launch with the client's module path
    serve(sys.argv[1])
