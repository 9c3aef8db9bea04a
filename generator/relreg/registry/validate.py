"""The validate stage: raw files -> (model, diagnostics).

Every file is parsed strictly and checked against its schema; files that pass
become model objects; then the cross-file rules run over the whole model.
Problems are collected, never raised one at a time, so a single run reports
everything that is wrong.

Checking a file depends only on its bytes, so results are cached by git blob
id (see relreg/history/cache.py) and, for large registries, spread over the machine's cores.
The cross-file rules' findings are cached too, under a key of what the rules read (so a notes fix
reuses them; the rules that read no cohort under a key without the cohort files, so a rollout change
reruns only the cohort rules), and so is the whole verdict on an unchanged set of files (`relreg validate`).
Source positions are only needed to report a problem, so a file is first read
by the fast reader (`yamlload.fast_load`, no positions) and checked by the
compiled schema validator; only a file either of them doubts goes through the
careful reader and the full schema check, which word the diagnostics. Documents
are parsed with positions again, lazily, when a rule asks for one.
"""

from __future__ import annotations

import hashlib
import io
import marshal
import os
import pickle
import select
import signal
import stat
import struct
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol

from relreg.registry import CONFIG_FILE, warm
from relreg.registry.diagnostics import Diagnostic, Severity, sorted_diagnostics
from relreg.registry.gcpause import die_with_parent, gc_paused
from relreg.registry.model import RELEASE_FIELDS, Cohort, HardwareVersion, Registry, RegistryConfig, Release, compact_release
from relreg.registry.rules import COHORT_RULES, RULES_WITHOUT_COHORTS, RuleContext, check_rules
from relreg.registry.schemas import default_schemas
from relreg.registry.source import KIND_FOLDERS, RawFile, RegistryFiles, display_path, git_blob_id
from relreg.registry.versions import VersionError, VersionScheme, scheme_named
from relreg.registry.yamlload import (MAX_DEPTH, MAX_FILE_BYTES, SourceDocument, YamlLoadError, fast_load, nested_within,
                                      parse_yaml)

# Below this many files to check, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 400


@dataclass
class ValidationResult:
    registry: Registry | None  # None when the registry is not valid
    diagnostics: list[Diagnostic]
    files_checked: int
    # Parsed on demand for diagnostics; `documents.clear()` lets go of them and of the files' bytes.
    documents: dict[str, SourceDocument] = field(default_factory=dict, repr=False)
    # (releases, hardware versions, cohorts) of a valid registry whose model was not built (model=False)
    counts: tuple[int, int, int] | None = None

    @property
    def errors(self) -> list[Diagnostic]:
        return [diagnostic for diagnostic in self.diagnostics if diagnostic.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors


class SourceDocuments(dict):
    """Documents with positions by display path, parsed on first use."""

    def __init__(self, files: RegistryFiles) -> None:
        super().__init__()
        self._files = {file.path: file for file in files.files}

    def __missing__(self, path: str) -> SourceDocument:
        document = parse_yaml(self._files[path].content, path)
        self[path] = document
        return document

    def clear(self) -> None:
        """Drop the parsed documents and the bytes held for them (a later lookup reads the file from disk)."""
        super().clear()
        self._files = {path: file.without_content() for path, file in self._files.items()}


def check_file(kind: str, path: str, content: bytes) -> tuple[Any | None, list[Diagnostic]]:
    """Strict YAML and schema check of one file: (data, problems). Runs in worker processes too."""
    try:
        document = parse_yaml(content, path)
    except YamlLoadError as error:
        return None, [Diagnostic(path, problem.position.line, problem.position.column, problem.message, problem.rule)
                      for problem in error.problems]
    return document.data, default_schemas().check(kind, document)


def quick_check_file(kind: str, path: str, content: bytes) -> tuple[Any | None, list[Diagnostic]]:
    """The same answer as `check_file`, fast for the files that are plainly fine."""
    data = fast_load(content)
    # extra_info is the one part a schema lets nest freely: deeper than the careful reader allows,
    # the careful reader decides (and refuses it at its line).
    if data is not None and default_schemas().fast_validators[kind].is_valid(data) \
            and ("extra_info" not in data or nested_within(data["extra_info"], MAX_DEPTH - 1)):
        return data, []
    return check_file(kind, path, content)


def stored_form(kind: str, data: Any) -> Any:
    """A schema-valid file's data in the form the work cache keeps and the model is made of: a release's
    compact form (model.compact_release: about a third of the memory of its parsed data, and made into a
    Release with no call per artifact), any other kind's data as it is."""
    return compact_release(data) if kind == "release" else data


def _checked(kind: str, path: str, content: bytes) -> tuple[Any | None, list[Diagnostic]]:
    """`quick_check_file`, with a valid file's data in its stored form."""
    data, problems = quick_check_file(kind, path, content)
    if data is not None and not problems and kind == "release":
        data = compact_release(data)
    return data, problems


@contextmanager
def _native_stderr_silenced():
    """rapidyaml prints its parse errors to fd 2 before raising; the careful reader words them instead."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# Files per chunk: small enough that the processes finish within a chunk of each other on a shared
# machine, large enough that taking one costs nothing.
CHUNK_FILES = 100
# What checking a file gives when its bytes are not those its blob id names (see _check_here).
_CHANGED = "changed"


def _check_here(file: RawFile) -> Any:
    """(data, problems, None) of one file, or _CHANGED. A file not held (known by its blob id, from its
    status or git's index) is read now, by the process that checks it: if its bytes are not those the
    blob id names, it changed after its status was taken, and is not checked."""
    content = file.held_content
    if content is None:
        content = file.content
        if git_blob_id(content) != file.blob_id:
            return _CHANGED
    return (*_checked(file.kind, file.path, content), None)


def _check_chunk(files: list[RawFile], chunk: int) -> list[Any]:
    return [_check_here(file) for file in files[chunk * CHUNK_FILES:(chunk + 1) * CHUNK_FILES]]


def _with_marshalled(item: Any) -> Any:
    """A result of _check_here with a valid file's data marshalled, as the cache keeps it: done while the
    workers check on, not after."""
    if item is not _CHANGED and item[0] is not None and not item[1]:
        return item[0], item[1], marshal.dumps(item[0])
    return item


def _sent(item: Any) -> Any:
    """A worker's result for the pipe: a valid file's data marshalled (compact, quick to load, and what
    the cache keeps), a changed file as None, anything else as (data, problems)."""
    if item is _CHANGED:
        return None
    return marshal.dumps(item[0]) if item[0] is not None and not item[1] else item[:2]


def _received(item: Any) -> Any:
    if item is None:
        return _CHANGED
    if item.__class__ is bytes:
        return marshal.loads(item), [], item
    return (*item, None)


_HEADER = struct.Struct("<Q")


class _Workers:
    """Forked processes that take numbered chunks of work from a pipe of chunk numbers, with this
    process, until none is left, and send each chunk's results through a pipe of their own as soon as
    it is done.

    A read of 4 bytes from a pipe is atomic, so each number goes to one process, with no lock that a
    killed process could keep. A worker that dies (the OOM killer) closes its pipe: the chunks it took
    but did not send stay None in `results`, for this process to do. Workers die with this process
    (die_with_parent), and `close` ends them when this process gives up early.
    """

    def __init__(self, chunks: int, work: Callable[[int], list[Any]], processes: int) -> None:
        self.chunks = chunks
        self.results: list[list[Any] | None] = [None] * chunks
        self.children: list[int] = []
        self.inboxes: list[_Inbox] = []
        self.tokens, tokens_write = os.pipe()
        try:
            _widen(tokens_write, chunks * 4)
            numbers = memoryview(b"".join(chunk.to_bytes(4, "little") for chunk in range(chunks)))
            while numbers:
                numbers = numbers[os.write(tokens_write, numbers):]
        finally:
            os.close(tokens_write)  # when all are taken, a read finds the end of the pipe
        try:
            for _ in range(processes):
                self._fork(work)
        except BaseException:
            self.close()
            raise

    def _fork(self, work: Callable[[int], list[Any]]) -> None:
        results_read, results_write = os.pipe()
        try:
            _widen(results_write)
            parent = os.getpid()
            pid = os.fork()
        except BaseException:
            os.close(results_read)
            os.close(results_write)
            raise
        if pid == 0:  # the worker: never returns
            status = 1
            try:
                os.close(results_read)
                for inbox in self.inboxes:
                    os.close(inbox.fd)
                self._work(work, results_write, parent)
                status = 0
            finally:
                os._exit(status)
        self.children.append(pid)
        os.close(results_write)
        self.inboxes.append(_Inbox(results_read))

    def take(self) -> int | None:
        """The number of the next chunk nobody took, or None when all are taken."""
        try:
            taken = os.read(self.tokens, 4)
        except OSError:  # closed: this process is done with the workers
            return None
        return int.from_bytes(taken, "little") if len(taken) == 4 else None

    def _work(self, work: Callable[[int], list[Any]], results: int, parent: int) -> None:
        die_with_parent(parent)
        out = io.FileIO(results, "wb")
        with _native_stderr_silenced():
            while (chunk := self.take()) is not None:
                message = pickle.dumps((chunk, work(chunk)), protocol=pickle.HIGHEST_PROTOCOL)
                view = memoryview(_HEADER.pack(len(message)) + message)
                while view:
                    view = view[out.write(view):]
        out.close()

    def receive(self, wait: bool) -> list[int]:
        """The chunks whose results came in since (into `results`); `wait`: all of them, until every
        worker has closed its pipe (sent all it took, or died)."""
        received: list[int] = []
        open_inboxes = [inbox for inbox in self.inboxes if inbox.open]
        while open_inboxes:
            fds = [inbox.fd for inbox in open_inboxes]
            readable = select.select(fds, [], [], None if wait else 0)[0]
            if not readable:
                break
            for inbox in open_inboxes:
                if inbox.fd in readable:
                    chunk = inbox.receive(self.results)
                    if chunk is not None:
                        received.append(chunk)
            open_inboxes = [inbox for inbox in open_inboxes if inbox.open]
        return received

    def close(self) -> None:
        """Let go of the pipes, and end and reap the workers (killed if still at work: this process failed)."""
        if self.tokens >= 0:
            os.close(self.tokens)
            self.tokens = -1
        for inbox in self.inboxes:
            if inbox.open:
                inbox.stream.close()
                inbox.open = False
        for pid in self.children:
            try:
                if os.waitpid(pid, os.WNOHANG) == (0, 0):
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.children = []


class _Inbox:
    """One worker's pipe of results, each a header (length) and a pickled (chunk, results)."""

    def __init__(self, fd: int) -> None:
        self.stream = io.FileIO(fd, "rb")
        self.fd = fd
        self.open = True

    def _exactly(self, size: int) -> bytearray | None:
        buffer = bytearray(size)
        view = memoryview(buffer)
        while view:
            got = self.stream.readinto(view)
            if not got:
                return None
            view = view[got:]
        return buffer

    def receive(self, results: list[Any]) -> int | None:
        """Read one message into `results` and give its chunk; at the end of the stream (the worker
        exited), close and give None."""
        header = self._exactly(_HEADER.size)
        message = self._exactly(_HEADER.unpack(header)[0]) if header is not None else None
        if message is None:
            self.stream.close()
            self.open = False
            return None
        chunk, items = pickle.loads(message)
        results[chunk] = items
        return chunk


def _worker_processes(files: int) -> int:
    """How many processes to fork for checking `files` files (this one checks too): 0 when too few files."""
    workers = min(os.cpu_count() or 1, 8)
    if files < PARALLEL_THRESHOLD or workers < 2 or not hasattr(os, "fork"):
        return 0
    return workers - 1


# Given each file's result as it comes (its index in the files checked, and the result): the caller
# keeps what it needs of it, so the results of a large registry are never held all at once.
_Done = Callable[[int, Any], None]


def _check_all(files: list[RawFile], done: _Done, early: EarlyCheck | None = None) -> None:
    """Check every file: `done(index, result)` once for each, in no set order, with (data in its stored form,
    problems, the data marshalled when a worker sent it so) or _CHANGED.

    Every process, this one included, takes chunks of files until none is left, so that all finish
    together whatever else runs on the machine; this one loads what the workers sent between its own
    chunks. With `early`, the workers began before the files were read (see EarlyCheck).
    """
    if early is not None and early.workers is not None:
        early.check(files, done)
        return
    processes = _worker_processes(len(files))
    if not processes:
        with _native_stderr_silenced():
            for index, file in enumerate(files):
                done(index, _check_here(file))
        return
    workers = _Workers(-(-len(files) // CHUNK_FILES), lambda chunk: [_sent(item) for item in _check_chunk(files, chunk)],
                       processes)
    given = [False] * workers.chunks

    def give(chunk: int, items: list[Any], convert: Callable[[Any], Any]) -> None:
        given[chunk] = True
        for offset, item in enumerate(items):
            done(chunk * CHUNK_FILES + offset, convert(item))

    def received(chunk: int) -> None:
        items = workers.results[chunk]
        workers.results[chunk] = None  # let go of it once given
        give(chunk, items, _received)  # type: ignore[arg-type]

    try:
        with _native_stderr_silenced():
            while (chunk := workers.take()) is not None:
                give(chunk, _check_chunk(files, chunk), _with_marshalled)
                for chunk in workers.receive(wait=False):  # loaded while the workers check on
                    received(chunk)
            for chunk in workers.receive(wait=True):
                received(chunk)
            for chunk in range(workers.chunks):
                if not given[chunk]:  # taken by a worker that died before sending it
                    give(chunk, _check_chunk(files, chunk), _same)
    finally:
        workers.close()


def _same(item: Any) -> Any:
    return item


class EarlyCheck:
    """The files of a registry folder, checked by worker processes that start before the caller reads
    the folder (read_worktree): a cold `relreg validate` then uses the other cores while this process
    reads every file and looks them up in the cache. Give it to `validate_files`, or `close` it.

    A worker lists the folder's .yaml files on its own, reads each (a regular file of at most
    MAX_FILE_BYTES), and checks it as a file of its folder's kind unless the cache holds its document.
    Its result for a file is taken only when it was of the same path, kind and blob id (the same bytes)
    as the file the caller read; any other file is checked by this process.
    """

    def __init__(self, registry_dir: Path, cache: DocumentCache | None = None, display_base: Path | None = None) -> None:
        self.top = os.path.abspath(registry_dir)
        self.root = display_path(registry_dir, display_base or Path.cwd())
        self.cache = cache if cache is not None else _NoCache()
        self.paths = _yaml_paths(self.top)
        processes = _worker_processes(len(self.paths))
        self.workers = _Workers(-(-len(self.paths) // CHUNK_FILES), self._check_listed, processes) \
            if processes else None

    def _check_listed(self, chunk: int) -> list[tuple[str, str, str, str, Any]]:
        """(registry path, shown path, kind, blob id, result as sent) of the chunk's files (in a worker)."""
        checked = []
        for registry_path in self.paths[chunk * CHUNK_FILES:(chunk + 1) * CHUNK_FILES]:
            kind = "registry" if registry_path == CONFIG_FILE else KIND_FOLDERS[registry_path.partition("/")[0]]
            content = _regular_file_bytes(os.path.join(self.top, registry_path))
            if content is None:
                continue
            blob_id = git_blob_id(content)
            if self.cache.document(kind, blob_id) is not None:
                continue
            shown = f"{self.root}/{registry_path}" if self.root not in ("", ".") else registry_path
            checked.append((registry_path, shown, kind, blob_id, _sent((*_checked(kind, shown, content), None))))
        return checked

    def check(self, files: list[RawFile], done: _Done) -> None:
        """_check_all for `files` (read by the caller since): the workers' results taken where they are of
        the same bytes."""
        workers = self.workers
        assert workers is not None
        if not files:  # every document came from the cache
            self.close()
            return
        where = {file.registry_path: index for index, file in enumerate(files)}
        given = [False] * len(files)

        def give(index: int, result: Any) -> None:
            given[index] = True
            done(index, result)

        def take(chunk: int) -> None:
            results = workers.results[chunk]
            workers.results[chunk] = None  # let go of it once given
            for registry_path, shown, kind, blob_id, item in results:  # type: ignore[union-attr]
                index = where.get(registry_path)
                if index is not None:
                    file = files[index]
                    if file.blob_id == blob_id and file.kind == kind and file.path == shown:
                        give(index, _received(item))

        try:
            with _native_stderr_silenced():
                while (chunk := workers.take()) is not None:
                    for registry_path in self.paths[chunk * CHUNK_FILES:(chunk + 1) * CHUNK_FILES]:
                        index = where.get(registry_path)
                        if index is not None:
                            give(index, _with_marshalled(_check_here(files[index])))
                    for received in workers.receive(wait=False):
                        take(received)
                for received in workers.receive(wait=True):
                    take(received)
                for index, file in enumerate(files):
                    if not given[index]:  # not listed, of other bytes, or of a chunk a killed worker took
                        done(index, _check_here(file))
        finally:
            self.close()

    def close(self) -> None:
        """End the workers (killed if still at work) and let go of their pipes."""
        if self.workers is not None:
            self.workers.close()
            self.workers = None


def _yaml_paths(top: str) -> list[str]:
    """registry.yaml and the .yaml files under the kinds' folders, as paths relative to `top`, in the
    order read_worktree reads them (which only matters for how soon both get to each)."""
    paths = [CONFIG_FILE]
    for folder in KIND_FOLDERS:
        for directory, folders, names in os.walk(os.path.join(top, folder)):
            folders.sort()
            relative = os.path.relpath(directory, top).replace(os.sep, "/")
            paths.extend(f"{relative}/{name}" for name in sorted(names) if name.endswith(".yaml"))
    return paths


def _regular_file_bytes(path: str) -> bytes | None:
    """The bytes of a regular file of at most MAX_FILE_BYTES; None for anything else (a link, a fifo,
    a folder, a file gone), which the caller's own reading judges."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_FILE_BYTES:
            return None
        with io.FileIO(descriptor, "rb", closefd=False) as stream:
            return stream.readall()
    except OSError:
        return None
    finally:
        os.close(descriptor)


def start_early_check(registry_dir: Path, cache: DocumentCache) -> EarlyCheck | None:
    """An EarlyCheck of `registry_dir` when `cache` holds no verdict (a cold run checks every file: a warm one,
    given the verdict or a few changed files, would only be slowed by workers reading every file)."""
    if cache.fact(_VERDICT_ENTRY) is not None:
        return None
    early = EarlyCheck(registry_dir, cache)
    return early if early.workers is not None else None


def _widen(fd: int, size: int = 1 << 20) -> None:
    """Make a pipe hold `size` bytes (Linux; the kernel's limit for others is 1 MiB): a worker then
    writes its results without waiting for this process to read them."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, min(max(size, 65536), 1 << 20))
    except (ImportError, AttributeError, OSError):
        pass


class DocumentCache(Protocol):
    """Parsed, schema-valid documents by (kind, git blob id): relreg.history.cache.WorkCache, or none.

    `fact`/`facts`/`store_fact`: small byte strings by key (see `_rules_keys`), kept as documents are;
    `keep_documents`: keep every document and fact, used by this run or not (a run that read none).
    """

    def document(self, kind: str, blob_id: str) -> Any | None: ...

    def store_document(self, kind: str, blob_id: str, data: Any, marshalled: bytes | None = None) -> None: ...

    def fact(self, key: str) -> bytes | None: ...

    def facts(self, keys: list[str]) -> list[bytes | None]: ...

    def store_fact(self, key: str, value: bytes) -> None: ...

    def keep_documents(self) -> None: ...

    def document_digest(self, kind: str, blob_id: str) -> bytes | None: ...


class _NoCache:
    def document_digest(self, kind: str, blob_id: str) -> bytes | None:
        return None

    def document(self, kind: str, blob_id: str) -> Any | None:
        return None

    def store_document(self, kind: str, blob_id: str, data: Any, marshalled: bytes | None = None) -> None:
        pass

    def fact(self, key: str) -> bytes | None:
        return None

    def facts(self, keys: list[str]) -> list[bytes | None]:
        return [None] * len(keys)

    def store_fact(self, key: str, value: bytes) -> None:
        pass

    def keep_documents(self) -> None:
        pass


# Fields no rule reads (tests/test_validate_incremental.py checks it): a change to them (a notes fix)
# leaves the rules' findings as they were, so they are left out of the key those findings are cached under.
NOT_READ_BY_RULES: dict[str, tuple[str, ...]] = {
    "release": ("notes", "notes_format", "extra_info", "must_pass_through"),
    "hardware": ("description",),
    "cohort": ("description",),
}
# The cache entries of the findings of the rules that read no cohort, and of those that do.
_RULES_ENTRY = "rules"
_COHORT_RULES_ENTRY = "cohort-rules"


def _rule_facts(kind: str, data: Any) -> bytes:
    """A digest of what the rules can read of one file's data (a release's as a Release or its compact
    form): equal data give equal digests (repr of JSON-like data is canonical, types and key order included)."""
    if kind == "release":
        compact = data.compact() if data.__class__ is Release else data
        return hashlib.sha1(repr(tuple(compact[index] for index in _RELEASE_RULE_FIELDS))
                            .encode("utf-8", "surrogatepass")).digest()
    left_out = NOT_READ_BY_RULES.get(kind, ())
    if any(name in data for name in left_out):
        data = {name: value for name, value in data.items() if name not in left_out}
    return hashlib.sha1(repr(data).encode("utf-8", "surrogatepass")).digest()


# The places in a release's compact form of what the rules read: its fields but those left out, and the artifacts.
_RELEASE_RULE_FIELDS = (*(index for index, (name, _) in enumerate(RELEASE_FIELDS)
                          if name not in NOT_READ_BY_RULES["release"]), len(RELEASE_FIELDS))


class _WatchedRecency(Mapping[str, int]):
    """The caller's recency, noting whether a rule looked at it (the findings then depend on it too)."""

    def __init__(self, recency: Mapping[str, int]) -> None:
        self._recency = recency
        self.read = False

    def __getitem__(self, path: str) -> int:
        self.read = True
        return self._recency[path]

    def get(self, path: str, default: Any = None) -> Any:
        self.read = True
        return self._recency.get(path, default)

    def __contains__(self, path: object) -> bool:
        self.read = True
        return path in self._recency

    def __iter__(self) -> Iterator[str]:
        self.read = True
        return iter(self._recency)

    def __len__(self) -> int:
        self.read = True
        return len(self._recency)


def _rules_keys(valid: dict[str, list[tuple[RawFile, Any]]], unloaded: tuple[frozenset[str], frozenset[str]],
                cache: DocumentCache) -> tuple[bytes, bytes]:
    """What the rules' findings are a function of, but for source positions and recency: each valid
    file's path and `_rule_facts` (kept by blob id, so an unchanged file is not looked at again) and
    the names of the files that did not load. Two keys: without the cohort files (for
    RULES_WITHOUT_COHORTS), and with them (COHORT_RULES, which read the rest too).

    Files are taken in order of path: `valid` lists the files from the cache before those checked in
    this run, an order that changes from run to run."""
    digest = hashlib.sha1(repr((sorted(unloaded[0]), sorted(unloaded[1]))).encode("utf-8", "surrogatepass"))
    keys = []
    for kinds in (("registry", "release", "hardware"), ("cohort",)):
        for kind in kinds:
            ordered = sorted(valid[kind], key=lambda item: item[0].path)
            names = [f"facts:{kind}:{file.blob_id}" for file, _ in ordered]
            facts = cache.facts(names)
            for index, found in enumerate(facts):
                if found is None:
                    facts[index] = _rule_facts(kind, ordered[index][1])
                    cache.store_fact(names[index], facts[index])
            # Each file's facts are 20 bytes: the paths, one a line, and the facts in their order say it all.
            digest.update(b"%s\0%s\0%s" % (kind.encode(), "\n".join([file.path for file, _ in ordered])
                                             .encode("utf-8", "surrogatepass"), b"".join(facts)))
        keys.append(digest.digest())  # the cohorts' key extends the other's
    return keys[0], keys[1]


def _stored_under(cache: DocumentCache, entry: str, key: bytes, items: int) -> tuple[Any, ...] | None:
    """The `items` values after the key in the marshalled tuple kept as `entry`, when its key is `key`;
    else (none kept, another key, unreadable or of another shape) None."""
    stored = cache.fact(entry)
    if stored is None:
        return None
    try:
        stored_key, *rest = marshal.loads(stored)
    except (EOFError, ValueError, TypeError):
        return None
    return tuple(rest) if stored_key == key and len(rest) == items else None


def _cached_findings(cache: DocumentCache, entry: str, key: bytes,
                     blob_ids: dict[str, str]) -> list[Diagnostic] | None:
    """The rules' findings stored as `entry` under `key`, when every file they point into has the same
    bytes (and so the same positions) as then; else None."""
    stored = _stored_under(cache, entry, key, 2)
    if stored is None:
        return None
    findings, where = stored
    if any(blob_ids.get(path) != blob_id for path, blob_id in where.items()):
        return None
    return [Diagnostic(path, line, column, message, rule, Severity(severity))
            for path, line, column, message, rule, severity in findings]


def _store_findings(cache: DocumentCache, entry: str, key: bytes, findings: list[Diagnostic],
                    blob_ids: dict[str, str]) -> None:
    rows = [(d.path, d.line, d.column, d.message, d.rule, d.severity.value) for d in findings]
    cache.store_fact(entry, marshal.dumps((key, rows, {d.path: blob_ids[d.path] for d in findings})))


def validate_files(files: RegistryFiles, cache: DocumentCache | None = None,
                   recency: Mapping[str, int] | None = None, *, model: bool = True,
                   early: EarlyCheck | None = None) -> ValidationResult:
    """Check every file and the rules across them: (model when valid, every diagnostic, sorted).

    `recency` (display path -> larger is newer; a file not in it is newest)
    decides where a conflict between two files is reported: at the newer one,
    naming the older. The caller gives it (git history, the files a pull
    request changes); it is only read when a conflict or a version order needs it.

    `model=False`: the caller needs the diagnostics only (`relreg validate`): when the cache holds
    the verdict on exactly these files (paths and blob ids), it is given without reading a document,
    with `registry` None and `counts` set when valid.

    `early`: workers started on these files before they were read (start_early_check); closed here.
    """
    try:
        with gc_paused():
            return _validate_files(files, cache if cache is not None else _NoCache(), recency, model, early)
    finally:
        if early is not None:
            early.close()


_VERDICT_ENTRY = "verdict"


def _verdict_key(files: RegistryFiles) -> bytes:
    """What a whole validation is a function of, but for recency: every file's kind, path and blob id,
    and what reading the files found."""
    digest = hashlib.sha1("\0".join([f"{file.kind}\0{file.path}\0{file.blob_id}" for file in files.files])
                          .encode("utf-8", "surrogatepass"))
    digest.update(repr((sorted(files.problems), sorted(files.refused))).encode("utf-8", "surrogatepass"))
    return digest.digest()


def _cached_verdict(cache: DocumentCache, key: bytes) -> tuple[list[Diagnostic], tuple[int, int, int] | None] | None:
    stored = _stored_under(cache, _VERDICT_ENTRY, key, 2)
    if stored is None:
        return None
    rows, counts = stored
    return ([Diagnostic(path, line, column, message, rule, Severity(severity))
             for path, line, column, message, rule, severity in rows], counts)


def _validate_files(files: RegistryFiles, cache: DocumentCache,
                    recency: Mapping[str, int] | None, model: bool, early: EarlyCheck | None) -> ValidationResult:
    verdict_key = _verdict_key(files)
    if not model:
        verdict = _cached_verdict(cache, verdict_key)
        if verdict is not None:
            cache.keep_documents()  # the next build reads them
            diagnostics, counts = verdict
            return ValidationResult(None, diagnostics, len(files.files), SourceDocuments(files), counts)
    diagnostics: list[Diagnostic] = list(files.problems)
    documents = SourceDocuments(files)
    # Each valid file as (file, its data in stored form), a release as (file, Release) once the config's
    # version scheme is known: a release is made as its data arrives, which is then let go of, so the
    # data of every file and the model are never held side by side.
    valid: dict[str, list[tuple[RawFile, Any]]] = {"registry": [], "release": [], "hardware": [], "cohort": []}
    parts = _ModelParts(documents, diagnostics)

    def take(file: RawFile, data: Any) -> None:
        if file.kind == "release":
            data = parts.release(file, data)
        elif file.kind == "registry":
            parts.configure(file, data)
        valid[file.kind].append((file, data))

    def checked(file: RawFile, result: Any) -> None:
        if result is _CHANGED:
            # Changed since its status was taken: its blob id (a cache key, and the key of its
            # pages) no longer names these bytes. Refused, so that nothing is built or cached from it.
            diagnostics.append(Diagnostic(file.path, 1, 1, "file changed while relreg was reading the registry: "
                                          "run the command again", "file-changed"))
            return
        data, problems, marshalled = result
        diagnostics.extend(problems)
        if data is not None and not problems:
            if marshalled is None:
                cache.store_document(file.kind, file.blob_id, data)
            else:
                cache.store_document(file.kind, file.blob_id, data, marshalled=marshalled)
            take(file, data)

    to_check = []
    cached = 0
    # The config first: its version scheme makes the releases. Checked here when not cached (one small file).
    for file in sorted(files.files, key=lambda file: file.kind != "registry"):
        kept = warm.kept(file.blob_id, parts.scheme) if file.kind == "release" and parts.scheme is not None else None
        if kept is not None and kept[0] == cache.document_digest("release", file.blob_id):
            # Made already by relreg's daemon, of the same bytes as the document the cache holds (registry/warm.py).
            cached += 1
            valid["release"].append((file, kept[1].at_path(file.path)))
            continue
        data = cache.document(file.kind, file.blob_id)
        if data is not None:
            cached += 1
            take(file, data)
        elif file.kind == "registry":
            with _native_stderr_silenced():
                checked(file, _check_here(file))
        else:
            to_check.append(file)  # a file known by its status is read by the process that checks it
    _check_all(to_check, lambda index, result: checked(to_check[index], result), early)

    registry = None
    recency_read = False
    if valid["registry"]:
        registry = parts.registry(valid)
        if registry is not None:
            cache_file = getattr(cache, "path", None)
            if cache_file is not None:
                warm.offer(str(cache_file), registry.scheme.name)
            loaded = {item.source_path for item in (*registry.releases, *registry.hardware)}
            unloaded = (files.names_not_loaded("release", loaded), files.names_not_loaded("hardware", loaded))
            findings, recency_read = _check_rules(registry, documents, valid, unloaded, recency, cache,
                                                  warm=cached > 0)
            diagnostics.extend(findings)
    ordered = sorted_diagnostics(diagnostics)
    ok = registry is not None and not any(d.is_error for d in ordered)
    if not recency_read and not any(d.rule == "file-changed" for d in ordered):
        counts = (len(registry.releases), len(registry.hardware), len(registry.cohorts)) if ok and registry else None
        rows = [(d.path, d.line, d.column, d.message, d.rule, d.severity.value) for d in ordered]
        verdict = marshal.dumps((verdict_key, rows, counts))
        if cache.fact(_VERDICT_ENTRY) != verdict:  # an unchanged registry leaves the cache unwritten
            cache.store_fact(_VERDICT_ENTRY, verdict)
    return ValidationResult(registry if ok else None, ordered, len(files.files), documents)


def _check_rules(registry: Registry, documents: SourceDocuments, valid: dict[str, list[tuple[RawFile, Any]]],
                 unloaded: tuple[frozenset[str], frozenset[str]], recency: Mapping[str, int] | None,
                 cache: DocumentCache, warm: bool) -> tuple[list[Diagnostic], bool]:
    """The cross-file rules' findings, from the cache when what they read is as it was, and whether
    they looked at recency.

    The rules that read no cohort and those that do are cached apart: a rollout change (a cohort file
    edited) reruns only the second. A cold run (no document came from the cache) neither looks for
    nor keeps findings: computing each file's facts would cost it time for no gain. Findings that
    looked at recency are not kept.
    """
    blob_ids = {file.path: file.blob_id for files in valid.values() for file, _ in files}
    keys = _rules_keys(valid, unloaded, cache) if warm else (b"", b"")
    findings: list[Diagnostic] = []
    recency_read = False
    for rules, entry, key in ((RULES_WITHOUT_COHORTS, _RULES_ENTRY, keys[0]), (COHORT_RULES, _COHORT_RULES_ENTRY, keys[1])):
        cached = _cached_findings(cache, entry, key, blob_ids) if warm else None
        if cached is not None:
            findings += cached
            continue
        watched = _WatchedRecency(recency if recency is not None else {})
        found = check_rules(RuleContext(registry, documents, unloaded_versions=unloaded[0],
                                        unloaded_hardware=unloaded[1], recency=watched), rules)
        if warm and not watched.read:
            _store_findings(cache, entry, key, found, blob_ids)
        findings += found
        recency_read = recency_read or watched.read
    return findings, recency_read


class _ModelParts:
    """The model made as the files' data arrive: the config (given first: its version scheme makes the
    releases), then each release as its data comes."""

    def __init__(self, documents: SourceDocuments, diagnostics: list[Diagnostic]) -> None:
        self.documents = documents
        self.diagnostics = diagnostics
        self.config: RegistryConfig | None = None
        self.scheme: VersionScheme | None = None

    def configure(self, file: RawFile, data: dict[str, Any]) -> None:
        self.config = RegistryConfig.from_dict(data)
        try:
            self.scheme = scheme_named(self.config.version_scheme)
        except VersionError as error:
            position = self.documents[file.path].position(("version_scheme",))
            self.diagnostics.append(Diagnostic(file.path, position.line, position.column, str(error), "version-scheme"))

    def release(self, file: RawFile, compact: tuple[Any, ...]) -> Release | tuple[Any, ...]:
        """The release of a file's compact form; the form itself when there is no version scheme (no
        model is made), or when its version does not parse (reported)."""
        if self.scheme is None:
            return compact
        try:
            return Release.from_compact(compact, self.scheme, file.path)
        except VersionError as error:
            position = self.documents[file.path].position(("version",))
            self.diagnostics.append(Diagnostic(file.path, position.line, position.column, str(error), "version-scheme"))
            return compact

    def registry(self, valid: dict[str, list[tuple[RawFile, Any]]]) -> Registry | None:
        """The model of the valid files, or None when the version scheme is unknown."""
        if self.config is None or self.scheme is None:
            return None
        releases = [data for _, data in valid["release"] if data.__class__ is Release]
        hardware = [HardwareVersion.from_dict(data, file.path) for file, data in valid["hardware"]]
        cohorts = [Cohort.from_dict(data, file.path) for file, data in valid["cohort"]]
        return Registry(
            config=self.config,
            scheme=self.scheme,
            releases=tuple(sorted(releases, key=lambda r: (r.parsed_version.key, r.source_path))),
            hardware=tuple(sorted(hardware, key=lambda h: (h.name, h.source_path))),
            cohorts=tuple(sorted(cohorts, key=lambda c: (c.slug, c.source_path))),
        )


def summary(result: ValidationResult) -> str:
    errors = len(result.errors)
    warnings = len(result.diagnostics) - errors
    if errors:
        return f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''} " \
               f"in {result.files_checked} files"
    registry = result.registry
    if registry is not None:
        releases, hardware, cohorts = len(registry.releases), len(registry.hardware), len(registry.cohorts)
    else:
        assert result.counts is not None
        releases, hardware, cohorts = result.counts
    return (f"registry is valid: {releases} releases, {hardware} hardware versions, "
            f"{cohorts} cohorts ({result.files_checked} files"
            + (f", {warnings} warnings)" if warnings else ")"))
