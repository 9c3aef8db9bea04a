"""relreg's daemon: a process with relreg and its libraries imported that forks one process per command
sent by the `relreg` client (`relreg/launch.py`), which runs it as the client's own process would.

What a served command shares with the daemon is code only: the modules imported, which are those a
fresh process would import (the same interpreter, flags, module search path and start-up environment:
the client's `identity`, compared whole), from files that have not changed since (the sizes and times
of relreg's files and of every module file the daemon loaded, `code_snapshot`, are compared before
each command; the daemon stops taking commands when they differ). The daemon never runs a command
itself, so no command's state reaches another. The one thing it keeps between commands is keyed by
content: after a command that made a registry's model ends well, the daemon makes the releases of that
work cache's documents, between requests, for the next commands to take instead of making them again
(`relreg.registry.warm`: keyed by each file's blob id and the version scheme, so never out of date;
RELREG_DAEMON_WARM releases at most, default 50,000, 0 for none).

Each connection is handed at once to a forked process, so a client that sends nothing holds up no
other. That process reads the request, and serves only a client whose process is of the daemon's
kind (`launch.process_settings`: user and groups, capabilities, namespaces, control group, seccomp);
it takes the client's standard streams (passed with SCM_RIGHTS), folder, environment, umask,
arguments, resource limits, nice value, CPU affinity, OOM score and ignored signals, sends the client
its pid once it can take signals, and ends as the command does. A request it cannot serve it answers
N (the client runs the command itself), or S when relreg's code changed (the client starts a new
daemon; this one finishes the commands it runs and stops). The daemon sends the client the exit
status, or minus the number of the signal that killed the process.
"""

from __future__ import annotations

import array
import atexit
import fcntl
import gc
import importlib
import importlib.util
import json
import marshal
import os
import select
import signal
import socket
import sys
import time
import traceback
from functools import partial
from typing import Any, Iterator

from relreg.launch import identity, process_settings
from relreg.registry import warm  # small: the model and version schemes, which every command loads

# Imported once by the daemon, for every command: relreg's commands and what they load on first use.
PRELOADED = (
    "relreg.cli.main", "relreg.cli.build", "relreg.cli.release", "relreg.build", "relreg.release.check",
    "relreg.registry.validate", "relreg.registry.yamlload", "relreg.site.notes", "relreg.site.pages",
    "relreg.site.write", "relreg.site.api", "relreg.history.gitlog", "relreg.history.deployments",
    "git", "jinja2", "yaml", "ryml", "jsonschema_rs", "orjson", "cmarkgfm", "nh3", "semver",
    "multiprocessing", "concurrent.futures.process",
)
DEFAULT_IDLE_SECONDS = 900
DEFAULT_WARM_RELEASES = 50_000
# Releases made per turn of the loop while warming, so that a request waits for one turn at most.
WARM_SLICE = 500
# How a forked process that served no command ends: the client was not of the daemon's kind, or relreg's
# code changed (the daemon then takes no more commands).
DECLINED = 121
STALE = 122
REQUEST_SECONDS = 10


def _relreg_files() -> list[str]:
    """Every file of the relreg package (code, theme, schemas), found without importing it."""
    spec = importlib.util.find_spec("relreg")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    schemas = os.path.join(os.path.dirname(roots[0]), os.pardir, "schemas") if roots else None
    found = []
    for root in [*roots, *([schemas] if schemas and os.path.isdir(schemas) else [])]:
        for folder, folders, files in os.walk(root):
            folders[:] = sorted(name for name in folders if name != "__pycache__")
            found += [os.path.join(folder, name) for name in sorted(files)]
    return found


def code_snapshot(modules: bool = True) -> tuple[tuple[str, int, int], ...]:
    """The size and modification time (ns) of every file of the relreg package and, with `modules`,
    of every module file loaded in this process (the libraries: an upgrade or an edit in place)."""
    paths = _relreg_files()
    if modules:
        paths += sorted({path for module in list(sys.modules.values())
                         if isinstance(path := getattr(module, "__file__", None), str)})
    found = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            found.append((path, -1, -1))
            continue
        found.append((path, info.st_size, info.st_mtime_ns))
    return tuple(found)


class _Daemon:
    """The listening socket, the commands running (forked pid -> the client's connection) and the clock."""

    def __init__(self, path: str, idle_seconds: float, warm_releases: int = 0) -> None:
        self.path = path
        self.pid = os.getpid()  # what a forked command's parent must be, or the daemon died (_die_with_daemon)
        self.idle_seconds = idle_seconds
        self.warm_releases = warm_releases
        # forked pid -> the read end of its pipe of offers (registry/warm.offer), while it runs
        self.offers: dict[int, int] = {}
        self.warming: tuple[Any, Iterator[str], str] | None = None  # (work cache, blob ids to look at, scheme name)
        self.identity = identity(os.environ)
        self.settings = process_settings()
        self.snapshot: tuple[tuple[str, int, int], ...] = ()
        self.running: dict[int, socket.socket] = {}
        self.stopping = False
        self.last_active = time.monotonic()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A forked process's end wakes the loop at once (SIGCHLD written to this pipe), so the client
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
            return False
        finally:
            probe.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.listener.bind(self.path)
        self.listener.listen(64)
        self.inode = os.stat(self.path).st_ino
        # Its pid beside the socket: `kill $(cat <folder>/*.pid)` stops the daemons and no command
        # (the commands' processes have the daemon's command line, so a pkill -f would end them too).
        temporary = f"{self.path}.pid.{os.getpid()}"
        with open(temporary, "w") as pid_file:
            pid_file.write(f"{os.getpid()}\n")
        os.replace(temporary, f"{self.path}.pid")
        return True

    def still_ours(self) -> bool:
        try:
            return os.stat(self.path).st_ino == self.inode
        except OSError:
            return False

    def stop_listening(self) -> None:
        """Take no more commands (the socket goes, so the next client starts a new daemon); the commands
        running are finished and their clients told how they ended."""
        if not self.stopping:
            self.stopping = True
            if self.still_ours():
                for path in (self.path, f"{self.path}.pid"):
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
            self.listener.close()

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_write)
        signal.signal(signal.SIGCHLD, lambda number, frame: None)
        # Only noted here: the loop stops listening (closing the socket under a poll would break it).
        signal.signal(signal.SIGTERM, lambda number, frame: setattr(self, "terminated", True))
        self.terminated = False
        while not (self.stopping and not self.running):
            poller = select.poll()
            poller.register(self.wake_read, select.POLLIN)
            if not self.stopping:
                poller.register(self.listener.fileno(), select.POLLIN)
            # A client's end closing (it died): its command ends too, stopped or not (SIGIO, the
            # command's own way, cannot reach a process stopped by Ctrl-Z).
            for connection in self.running.values():
                poller.register(connection.fileno(), select.POLLRDHUP)
            events = dict(poller.poll(0 if self.warming is not None else 1000))
            try:
                os.read(self.wake_read, 512)
            except BlockingIOError:
                pass
            if self.terminated:
                self.stop_listening()
            self.reap()
            for pid, connection in list(self.running.items()):
                if events.get(connection.fileno(), 0) & (select.POLLRDHUP | select.POLLHUP):
                    _kill_group(pid)
            if not self.stopping and events.get(self.listener.fileno(), 0) & select.POLLIN:
                try:
                    connection, _ = self.listener.accept()
                except OSError:
                    continue
                self.last_active = time.monotonic()
                self.fork_for(connection)
            elif self.warming is not None:
                self.warm_some()
            elif not self.stopping and not self.running and (
                    time.monotonic() - self.last_active > self.idle_seconds or not self.still_ours()):
                self.stop_listening()

    def reap(self) -> None:
        while self.running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection = self.running.pop(pid, None)
            offers = self.offers.pop(pid, None)
            if connection is None:
                continue
            code = os.waitstatus_to_exitcode(status)  # minus the signal's number for a process it killed
            if code == STALE:
                self.stop_listening()
            try:
                connection.sendall(b"X" + code.to_bytes(4, "little", signed=True))
            except OSError:
                pass  # a client that was told N or S is gone
            connection.close()
            self.last_active = time.monotonic()
            if offers is not None:
                offered = _read_all(offers)
                os.close(offers)
                if code == 0 and offered and not self.stopping:
                    self.start_warming(offered)  # after the client has its status: it waits for none of this

    def fork_for(self, connection: socket.socket) -> None:
        offers_read, offers_write = os.pipe() if self.warm_releases > 0 else (-1, -1)
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            for fd in (self.wake_read, self.wake_write, offers_read, *self.offers.values()):
                if fd >= 0:
                    os.close(fd)
            self.listener.close()
            for other in self.running.values():
                other.close()
            if offers_write >= 0:
                _pass_offers_to(offers_write)
            _serve_connection(self, connection)
        if offers_write >= 0:
            os.close(offers_write)
            os.set_blocking(offers_read, False)
            self.offers[pid] = offers_read
        self.running[pid] = connection

    def start_warming(self, offered: bytes) -> None:
        """Begin making the releases of the work cache the last offer names (see relreg.registry.warm)."""
        from pathlib import Path

        from relreg.history.cache import WorkCache

        self.warming = None
        try:
            cache_file, scheme_name = json.loads(offered.rsplit(b"\n", 2)[-2])  # the last offer
            cache = WorkCache.at(Path(cache_file), mapped=False)  # a file cut short meanwhile: short reads, not SIGBUS
            warm.begin()
            self.warming = (cache, iter(cache.held_blob_ids("release")), scheme_name)
        except Exception:  # noqa: BLE001 - a cache that cannot be read is not warmed; commands make their releases
            warm.forget()

    def warm_some(self) -> None:
        """Make the releases of the next WARM_SLICE files; the warming ends with the files, or at the limit."""
        from itertools import islice

        assert self.warming is not None
        cache, blob_ids, scheme_name = self.warming
        try:
            looked_at = warm.keep(islice(blob_ids, WARM_SLICE), partial(cache.stored_document, "release"),
                                  scheme_name, self.warm_releases)
        except Exception:  # noqa: BLE001 - as in start_warming
            warm.forget()
            self.warming = None
            return
        if looked_at < WARM_SLICE:
            warm.end()
            self.warming = None  # the cache (and its mapped file) goes
        gc.freeze()  # what was made is shared with the forked processes, not walked (and copied) by their collections


def _warm_limit(environ: "os._Environ[str] | dict[str, str]") -> int:
    """RELREG_DAEMON_WARM: how many releases the daemon keeps (DEFAULT_WARM_RELEASES when unset or not a
    number); a command whose client sets 0 takes none and offers none, whatever its daemon keeps."""
    try:
        return max(0, int(environ.get("RELREG_DAEMON_WARM", DEFAULT_WARM_RELEASES)))
    except ValueError:
        return DEFAULT_WARM_RELEASES


def _pass_offers_to(fd: int) -> None:
    """In the forked process: the command's offers (relreg.registry.warm.offer) go to the daemon, each a line."""
    def send(cache_file: str, scheme_name: str) -> None:
        message = json.dumps([cache_file, scheme_name]).encode() + b"\n"  # ASCII, one line: \n is escaped
        if len(message) <= select.PIPE_BUF:
            try:
                os.write(fd, message)  # at most PIPE_BUF bytes: written whole, or not at all
            except OSError:
                pass
    os.set_blocking(fd, False)
    warm.on_offer = send


def _read_all(fd: int) -> bytes:
    """What a non-blocking pipe holds now."""
    parts = []
    while True:
        try:
            part = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            break
        if not part:
            break
        parts.append(part)
    return b"".join(parts)


def _serve_connection(daemon: _Daemon, connection: socket.socket) -> None:
    """In the forked process: read the request, and run the command or say why not; never returns."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    fds: list[int] = []
    try:
        connection.settimeout(REQUEST_SECONDS)
        header, ancillary, _, _ = connection.recvmsg(4, socket.CMSG_SPACE(3 * array.array("i").itemsize))
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(data[:len(data) - len(data) % received.itemsize])
                fds += received
        size = int.from_bytes(header, "little")
        payload = bytearray()
        while len(payload) < size:
            chunk = connection.recv(min(size - len(payload), 1 << 20))
            if not chunk:
                raise EOFError
            payload += chunk
        ident, argv, cwd, environ, umask, settings = marshal.loads(payload)
        connection.settimeout(None)
    except (OSError, EOFError, ValueError, TypeError):
        os._exit(DECLINED)
    if len(fds) != 3 or ident != daemon.identity or settings[0] != daemon.settings[0]:
        _reply(connection, b"N")  # not a process of the daemon's kind: the client runs the command itself
        os._exit(DECLINED)
    if code_snapshot() != daemon.snapshot:
        _reply(connection, b"S")  # relreg's code changed: the client starts a daemon of the new code
        os._exit(STALE)
    if not _take_settings(settings[1]):
        _reply(connection, b"N")
        os._exit(DECLINED)
    _run_command(connection, fds, argv, cwd, environ, umask, daemon.pid)


def _kill_group(pid: int) -> None:
    """SIGKILL to a command's process group (its site workers, its git) and to the process itself, in
    case it had not made its group yet."""
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        try:
            kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _reply(connection: socket.socket, reply: bytes) -> None:
    try:
        connection.sendall(reply + bytes(4))
    except OSError:
        pass


def _take_settings(taken: tuple[object, ...]) -> bool:
    """Take the client's resource limits, nice value, CPU affinity, OOM score and ignored signals
    (launch.process_settings); False when one cannot be taken (a limit above the daemon's hard one, a
    higher priority or lower OOM score than the daemon's, without the privilege)."""
    import resource

    limits, niceness, cpus, oom_score, ignored, blocked = taken
    try:
        for number, soft, hard in limits:  # type: ignore[attr-defined]
            if resource.getrlimit(number) != (soft, hard):
                resource.setrlimit(number, (soft, hard))
        if os.getpriority(os.PRIO_PROCESS, 0) != niceness:
            os.setpriority(os.PRIO_PROCESS, 0, niceness)  # type: ignore[arg-type]
        if tuple(sorted(os.sched_getaffinity(0))) != cpus:
            os.sched_setaffinity(0, cpus)  # type: ignore[arg-type]
        if oom_score is not None:
            with open("/proc/self/oom_score_adj", "r+b") as score:
                if score.read().strip() != oom_score:
                    score.seek(0)
                    score.write(oom_score)  # type: ignore[arg-type]
    except (OSError, ValueError):
        return False
    # As in a process the client started: what it ignores is ignored (nohup, trap '' INT), the rest
    # as Python sets it up (SIGINT raises KeyboardInterrupt unless ignored; SIGPIPE and SIGXFSZ ignored),
    # and what it blocks is blocked.
    for number in signal.valid_signals():
        if number in (signal.SIGKILL, signal.SIGSTOP):
            continue
        if number in ignored or number in (signal.SIGPIPE, signal.SIGXFSZ):  # type: ignore[operator]
            handler = signal.SIG_IGN
        elif number == signal.SIGINT:
            handler = signal.default_int_handler
        else:
            handler = signal.SIG_DFL
        try:
            signal.signal(number, handler)
        except (OSError, ValueError):
            pass  # those the C library keeps for itself
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # type: ignore[arg-type]
    return True


def _die_with_daemon(daemon_pid: int) -> None:
    """A command whose daemon is killed cannot report how it ended: it ends too (PR_SET_PDEATHSIG)."""
    from relreg.registry.gcpause import linux_libc

    prctl = getattr(linux_libc(), "prctl", None)
    if prctl is not None:
        prctl(1, signal.SIGKILL)
    if os.getppid() != daemon_pid:
        os._exit(1)


def _run_command(connection: socket.socket, fds: list[int], argv: list[str], cwd: bytes,
                 environ: dict[bytes, bytes], umask: int, daemon_pid: int) -> None:
    """In the forked process: become the client's process and run its command; never returns."""
    code = 1
    try:
        _die_with_daemon(daemon_pid)  # its pid as the daemon knew it: a daemon dead by now left this one to pid 1 or a subreaper
        os.setpgid(0, 0)  # its own process group, as the daemon's group is not the client's
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        # The client forwards signals from here on: one it sent earlier would have been lost (Python
        # clears pending signals in a forked process) or met the daemon's handlers.
        connection.sendall(b"P" + os.getpid().to_bytes(4, "little"))
        # The client's end closing (it died) raises SIGIO here, whose default action ends this process.
        fcntl.fcntl(connection.fileno(), fcntl.F_SETOWN, os.getpid())
        fcntl.fcntl(connection.fileno(), fcntl.F_SETFL, fcntl.fcntl(connection.fileno(), fcntl.F_GETFL) | os.O_ASYNC)
        os.environb.clear()
        os.environb.update(environ)
        if _warm_limit(os.environ) == 0:  # the client wants no kept releases: none taken, none offered
            warm.forget()
            warm.on_offer = None
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
        _finish_as_python_does()
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


def _finish_as_python_does() -> None:
    """What Python runs as it exits, in its order: the threading module's exit hooks and the joining of
    threads (concurrent.futures tells its worker processes to stop there), then the atexit functions
    (multiprocessing joins its children). The atexit functions alone wait forever for site workers
    that a Ctrl-C left without that word."""
    import threading

    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()


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
    command, its code changes, another daemon takes the path, or it gets SIGTERM; the commands running
    then are finished first."""
    os.chdir("/")
    try:
        idle = float(os.environ.get("RELREG_DAEMON_IDLE", DEFAULT_IDLE_SECONDS))
    except ValueError:
        idle = DEFAULT_IDLE_SECONDS
    daemon = _Daemon(path, idle, _warm_limit(os.environ))
    before = code_snapshot(modules=False)
    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    daemon.snapshot = code_snapshot()
    try:
        if code_snapshot(modules=False) != before or not daemon.bind():
            return  # relreg changed while it was imported, or another daemon serves this identity
    finally:
        try:
            os.unlink(f"{path}.starting")  # launch._start_daemon's mark: the next client may start one again
        except OSError:
            pass
    gc.collect()
    gc.freeze()  # forked processes then share the imported modules' pages instead of copying them as they collect
    try:
        daemon.serve()
    finally:
        daemon.close()


if __name__ == "__main__":  # pragma: no cover - started by relreg.launch with the client's module path
    serve(sys.argv[1])
