"""`relreg new-release`: write releases/<version>.yaml from the files a firmware build produced.

For the CI job that has just built the firmware: it measures each artifact
(size, sha256), takes the GNU build id from the ELF file (pyelftools), fills
in the revision from the firmware repository it runs in, and writes the
release file only when the registry with it validates. It never overwrites a
release: published releases are immutable.

Artifact specs name the artifact's slot: `HW`, `HW/SOFTWARE_TYPE`, and for a
delta `HW:delta:FROM` or `HW/SOFTWARE_TYPE:delta:FROM`; `--elf` and
`--build-id` use the same spec to say which artifact they belong to.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relreg.history.cache import work_cache_for
from relreg.registry.source import RawFile, RegistryFiles, git_blob_id, read_worktree
from relreg.registry.validate import ValidationResult, validate_files
from relreg.registry.yamlload import MAX_FILE_BYTES, YamlLoadError, parse_yaml

DEFAULT_URL_TEMPLATE = "{version}/{filename}"
URL_FIELDS = ("version", "hardware_version", "software_type", "type", "delta_from", "filename", "sha256")
SCHEMA_COMMENT = "# yaml-language-server: $schema="
NOTES_FORMATS = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}

_SEGMENT = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?"
_VERSION = r"(?!.*\.\.)[0-9][0-9A-Za-z.+-]{0,63}"
_SPEC = re.compile(rf"^(?P<hw>{_SEGMENT})(?:/(?P<sw>{_SEGMENT}))?(?::(?P<delta>delta):(?P<from>{_VERSION}))?$")
_VERSION_RE = re.compile(rf"^{_VERSION}$")
_BUILD_ID = re.compile(r"^[0-9a-f]{8,64}$")


class NewReleaseError(Exception):
    """The command cannot run as asked (bad spec, missing file, existing release): nothing is written."""

    def __init__(self, message: str, *, usage: bool = True) -> None:
        super().__init__(message)
        self.usage = usage  # True: exit 2 (usage); False: exit 1 (the registry refuses it)


Slot = tuple[str, str | None, str, str | None]  # hardware_version, software_type, type, delta_from


def parse_slot(spec: str, option: str) -> Slot:
    match = _SPEC.match(spec)
    if not match:
        raise NewReleaseError(
            f"{option} {spec!r}: expected HW, HW/SOFTWARE_TYPE or HW[/SOFTWARE_TYPE]:delta:FROM_VERSION "
            "(e.g. evt1, evt1/bootloader, evt1:delta:1.1.0)")
    return (match["hw"], match["sw"], "delta" if match["delta"] else "full", match["from"])


def _split_assignment(text: str, option: str, what: str) -> tuple[str, str]:
    spec, separator, value = text.partition("=")
    if not separator or not spec or not value:
        raise NewReleaseError(f"{option} {text!r}: expected SPEC={what}")
    return spec, value


def describe_slot(slot: Slot) -> str:
    hardware, software, kind, source = slot
    text = hardware + (f"/{software}" if software else "")
    return text + (f":delta:{source}" if kind == "delta" else "")


@dataclass(frozen=True)
class ArtifactInput:
    slot: Slot
    path: Path
    size: int
    sha256: str
    sha1: str
    is_elf: bool


def measure(path: Path, option: str) -> tuple[int, str, str, bool]:
    """(size, sha256, sha1, starts like an ELF file) of a file, read once in chunks."""
    if not path.is_file():
        raise NewReleaseError(f"{option}: {path} is not a file")
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()
    size = 0
    head = b""
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            if not head:
                head = chunk[:4]
            sha256.update(chunk)
            sha1.update(chunk)
            size += len(chunk)
    if size == 0:
        raise NewReleaseError(f"{option}: {path} is empty")
    return size, sha256.hexdigest(), sha1.hexdigest(), head == b"\x7fELF"


def gnu_build_id(path: Path) -> str:
    """The GNU build id (NT_GNU_BUILD_ID note) of an ELF file, as lowercase hex."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import NoteSection

    try:
        with path.open("rb") as stream:
            elf = ELFFile(stream)
            containers: list[Any] = [s for s in elf.iter_sections() if isinstance(s, NoteSection)]
            containers += [s for s in elf.iter_segments() if s["p_type"] == "PT_NOTE"]
            for container in containers:
                for note in container.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID" and note["n_name"] == "GNU":
                        return str(note["n_desc"]).lower()
    except (ELFError, OSError, ValueError) as error:
        raise NewReleaseError(f"--elf {path}: not a readable ELF file ({error})") from None
    raise NewReleaseError(f"--elf {path}: the ELF file has no GNU build id note; link the firmware with "
                          "-Wl,--build-id (or pass --build-id HW=HEX)")


def parse_extra_info(assignments: list[str], file: Path | None) -> dict[str, Any]:
    """--extra-info-file (JSON or YAML object) first, then KEY=TEXT or KEY:=JSON assignments over it."""
    extra: dict[str, Any] = {}
    if file is not None:
        if not file.is_file():
            raise NewReleaseError(f"--extra-info-file: {file} is not a file")
        raw = file.read_bytes()
        if file.suffix.lower() == ".json":
            try:
                data = _strict_json(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as error:
                raise NewReleaseError(f"--extra-info-file {file}: not valid JSON ({error})") from None
        elif file.suffix.lower() in (".yaml", ".yml"):
            try:
                data = parse_yaml(raw, str(file)).data
            except YamlLoadError as error:
                raise NewReleaseError(f"--extra-info-file {file}:{error.position.line}:{error.position.column}: "
                                      f"{error.message}") from None
        else:
            raise NewReleaseError(f"--extra-info-file {file}: use a .json, .yaml or .yml file")
        if not isinstance(data, dict):
            raise NewReleaseError(f"--extra-info-file {file}: the top level must be an object of KEY: VALUE")
        extra.update(data)
    for assignment in assignments:
        key, separator, value = assignment.partition("=")
        if not separator or not key.rstrip(":"):
            raise NewReleaseError(f"--extra-info {assignment!r}: expected KEY=TEXT or KEY:=JSON")
        if key.endswith(":"):  # KEY:=JSON gives a number, boolean, list or object
            key = key[:-1]
            try:
                value = _strict_json(value)
            except ValueError as error:
                raise NewReleaseError(f"--extra-info {assignment!r}: the value after := must be JSON "
                                      f"({error})") from None
        extra[key] = value
    return extra


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond the range of a JSON number (a 64-bit float reads it as infinity)")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise ValueError(f"the key {json.dumps(twice)} is given twice in one object")
    return result


def _strict_json(text: str) -> Any:
    """JSON as the registry can hold it: no NaN or Infinity, no number beyond a 64-bit float, no key
    given twice in an object, no text that is not Unicode (a lone surrogate escape such as \\ud800).
    Raises ValueError saying which."""
    value = json.loads(text, parse_constant=_no_constant, parse_float=_finite, object_pairs_hook=_unique_keys)
    if _has_lone_surrogate(value):
        raise ValueError("a string holds a lone surrogate escape (\\ud800-\\udfff), which is not a character")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(key) or _has_lone_surrogate(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def read_notes(file: Path) -> tuple[str, str]:
    """(text, notes_format) of a notes file; the format comes from the extension."""
    notes_format = NOTES_FORMATS.get(file.suffix.lower())
    if notes_format is None:
        raise NewReleaseError(f"--notes-file {file}: use a Markdown (.md) or HTML (.html) file")
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise NewReleaseError(f"--notes-file {file}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise NewReleaseError(f"--notes-file {file}: not UTF-8 text") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Only the ends: whitespace inside is the author's (two trailing spaces are a Markdown hard break).
    text = text.lstrip("\n").rstrip()
    return (text + "\n" if text else ""), notes_format


def firmware_revision(registry_dir: Path, start: Path) -> tuple[str | None, str | None]:
    """(commit, note): HEAD of the git repository holding `start`, unless it is the registry's own repository."""
    from relreg.history.gitlog import open_repository

    repo = open_repository(start)
    if repo is None or not repo.head.is_valid():
        return None, None
    top = Path(repo.working_tree_dir or start).resolve()
    registry_repo = open_repository(registry_dir)
    if registry_repo is not None and Path(registry_repo.working_tree_dir or registry_dir).resolve() == top:
        return None, (f"revision left out: {start} is the registry's own repository, not the firmware's "
                      "(run in the firmware repository or pass --revision)")
    commit = repo.head.commit.hexsha
    note = f"revision {commit} (HEAD of {top})"
    if repo.is_dirty(untracked_files=False):
        note += "; that work tree has uncommitted changes, so the build may not match the commit"
    return commit, note


# --- YAML output -----------------------------------------------------------------------------

_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9._/-]*\Z")  # \Z: "$" also matches before a final line break
_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
# Versions and hex ids are always quoted, as in the example registry: "1.10" or "12345678" stay text.
_ALWAYS_QUOTED = {"version", "min_version", "revision", "delta_from", "build_id", "sha256"}


def _escape(character: str) -> str:
    code = ord(character)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _json_text(value: Any) -> str:
    """JSON text, which YAML reads as a flow value; characters YAML would not keep as they are are escaped.

    Floats always carry a '.' before an exponent (1.0e+20, not 1e+20), which
    YAML 1.1 readers need to see a number: relreg refuses the other form.
    """
    if isinstance(value, float):
        text = repr(value)
        mantissa, exponent, power = text.partition("e")
        return f"{mantissa}.0e{power}" if exponent and "." not in mantissa else text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_json_text(key)}: {_json_text(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_json_text(item) for item in value) + "]"
    return "".join(c if c.isprintable() else _escape(c) for c in json.dumps(value, ensure_ascii=False))


def yaml_scalar(value: Any, *, quote: bool = False) -> str:
    if isinstance(value, str) and not quote and _PLAIN.match(value) and value.lower() not in _WORDS:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return _json_text(value)


def _yaml_key(key: str) -> str:
    return yaml_scalar(key) if _PLAIN.match(key) and "/" not in key else _json_text(key)


def _block_text(text: str, indent: str) -> str | None:
    """`text` as a literal block scalar, or None when one cannot carry it exactly."""
    if "\n" not in text.rstrip("\n") or not text.endswith("\n") or text.endswith("\n\n"):
        return None
    lines = text[:-1].split("\n")
    for line in lines:
        if not all(c.isprintable() for c in line) or line[: len(line) - len(line.lstrip(" \t"))].count("\t"):
            return None
    header = "|2" if lines[0].startswith(" ") else "|"
    return header + "\n" + "\n".join(indent + line if line else "" for line in lines)


def release_yaml(data: dict[str, Any], schema_target: str | None) -> str:
    out: list[str] = [f"{SCHEMA_COMMENT}{schema_target}"] if schema_target else []
    for key, value in data.items():
        if key == "notes" and isinstance(value, str) and (block := _block_text(value, "  ")) is not None:
            out.append(f"notes: {block}")
        elif key == "extra_info":
            out.append("extra_info:")
            out.extend(f"  {_yaml_key(k)}: {yaml_scalar(v, quote=True)}" for k, v in value.items())
        elif key == "artifacts":
            out.append("artifacts:")
            for artifact in value:
                for index, (name, item) in enumerate(artifact.items()):
                    prefix = "  - " if index == 0 else "    "
                    out.append(f"{prefix}{name}: {yaml_scalar(item, quote=name in _ALWAYS_QUOTED)}")
        else:
            out.append(f"{key}: {yaml_scalar(value, quote=key in _ALWAYS_QUOTED)}")
    return "\n".join(out) + "\n"


def schema_target(registry_dir: Path, config: dict[str, Any] | None) -> str | None:
    """What the new file's yaml-language-server comment points at.

    The schemas folder beside the registry (as `relreg init` lays out and this
    repository has), else what the registry's other release files use, else
    the schemas the built site publishes.
    """
    releases = registry_dir / "releases"
    local = registry_dir.parent / "schemas" / "release.schema.json"
    if local.is_file():
        return Path(os.path.relpath(local, releases)).as_posix()
    if releases.is_dir():
        for existing in sorted(releases.glob("*.yaml")):
            try:
                first = existing.read_text(encoding="utf-8").split("\n", 1)[0]
            except (OSError, UnicodeDecodeError):
                continue
            if first.startswith(SCHEMA_COMMENT):
                return first[len(SCHEMA_COMMENT):].strip()
    site_url = (config or {}).get("site_url")
    return f"{site_url}schemas/release.schema.json" if isinstance(site_url, str) else None


# --- the command -----------------------------------------------------------------------------

@dataclass
class NewReleaseOptions:
    registry_dir: Path
    version: str
    artifacts: list[str]
    elf: list[str] = field(default_factory=list)
    build_ids: list[str] = field(default_factory=list)
    revision: str | None = None  # None: the firmware repository's HEAD, when run in one; "": none
    notes_file: Path | None = None
    min_version: str | None = None
    must_pass_through: bool = False
    extra_info: list[str] = field(default_factory=list)
    extra_info_file: Path | None = None
    url_template: str = DEFAULT_URL_TEMPLATE
    dry_run: bool = False
    cwd: Path | None = None


@dataclass
class NewReleaseResult:
    path: Path  # where the release file is (or would be) written
    display_path: str
    content: str
    validation: ValidationResult
    written: bool
    notes: list[str]  # things the user should know (where the revision came from, ...)
    artifacts: list[ArtifactInput]


def _artifact_inputs(options: NewReleaseOptions) -> list[ArtifactInput]:
    if not options.artifacts:
        raise NewReleaseError("give at least one --artifact HW=PATH")
    inputs: list[ArtifactInput] = []
    seen: set[Slot] = set()
    for text in options.artifacts:
        spec, path_text = _split_assignment(text, "--artifact", "PATH")
        slot = parse_slot(spec, "--artifact")
        if slot in seen:
            raise NewReleaseError(f"--artifact {describe_slot(slot)} is given twice")
        seen.add(slot)
        path = Path(path_text)
        inputs.append(ArtifactInput(slot, path, *measure(path, f"--artifact {spec}")))
    return inputs


def _build_ids(options: NewReleaseOptions, inputs: list[ArtifactInput]) -> dict[Slot, str]:
    slots = {item.slot for item in inputs}
    explicit: dict[Slot, str] = {}
    for option, values in (("--build-id", options.build_ids), ("--elf", options.elf)):
        for text in values:
            spec, value = _split_assignment(text, option, "HEX" if option == "--build-id" else "PATH")
            slot = parse_slot(spec, option)
            if slot not in slots:
                raise NewReleaseError(f"{option} {spec}: there is no --artifact {describe_slot(slot)}")
            if slot in explicit:
                raise NewReleaseError(f"the build id of {describe_slot(slot)} is given twice "
                                      "(--build-id and --elf, or twice the same)")
            if option == "--build-id":
                value = value.lower().removeprefix("0x")
                if not _BUILD_ID.match(value):
                    raise NewReleaseError(f"--build-id {text!r}: expected 8 to 64 hex digits")
                explicit[slot] = value
            else:
                explicit[slot] = gnu_build_id(Path(value))
    build_ids: dict[Slot, str] = {}
    for item in inputs:
        if item.slot in explicit:
            build_ids[item.slot] = explicit[item.slot]
        elif item.is_elf:
            build_ids[item.slot] = gnu_build_id(item.path)
        elif item.slot[2] == "delta":
            build_ids[item.slot] = item.sha1  # a delta payload is identified by its own bytes
        else:
            hw = describe_slot(item.slot)
            raise NewReleaseError(f"--artifact {hw}: no build id; pass --elf {hw}=PATH to the firmware's ELF file "
                                  f"(its GNU build id is used) or --build-id {hw}=HEX")
    return build_ids


def _url(template: str, version: str, item: ArtifactInput) -> str:
    hardware, software, kind, source = item.slot
    values = {"version": version, "hardware_version": hardware, "software_type": software or "",
              "type": kind, "delta_from": source or "", "filename": item.path.name, "sha256": item.sha256}
    try:
        return template.format_map(values)
    except (KeyError, IndexError, ValueError) as error:
        raise NewReleaseError(f"--url-template {template!r}: {error} is not a placeholder; use "
                              + ", ".join("{" + name + "}" for name in URL_FIELDS)) from None


def compose(options: NewReleaseOptions, inputs: list[ArtifactInput], build_ids: dict[Slot, str],
            revision: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {"version": options.version}
    if options.min_version:
        data["min_version"] = options.min_version
    if revision:
        data["revision"] = revision
    if options.notes_file is not None:
        text, notes_format = read_notes(options.notes_file)
        data["notes_format"] = notes_format
        data["notes"] = text
    extra = parse_extra_info(options.extra_info, options.extra_info_file)
    if extra:
        data["extra_info"] = extra
    if options.must_pass_through:
        data["must_pass_through"] = True
    artifacts = []
    urls: dict[str, Slot] = {}
    for item in inputs:
        hardware, software, kind, source = item.slot
        url = _url(options.url_template, options.version, item)
        if url in urls:
            raise NewReleaseError(f"artifacts {describe_slot(urls[url])} and {describe_slot(item.slot)} would both "
                                  f"be at url {url}; use --url-template with {{hardware_version}} "
                                  "(e.g. \"{version}/{hardware_version}/{filename}\") or rename the files")
        urls[url] = item.slot
        artifact: dict[str, Any] = {"hardware_version": hardware}
        if software:
            artifact["software_type"] = software
        if kind == "delta":
            artifact["type"] = "delta"
            artifact["delta_from"] = source
        artifact.update(build_id=build_ids[item.slot], url=url, size=item.size, sha256=item.sha256)
        artifacts.append(artifact)
    data["artifacts"] = artifacts
    return data


def _write_new(path: Path, content: bytes) -> None:
    """Write `content` to `path` atomically, failing if `path` exists (never overwrite a release)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".new-release-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        try:
            os.link(temporary, path)  # fails if the file exists, unlike a rename
        except FileExistsError:
            raise NewReleaseError(f"{path} exists: a release is never overwritten", usage=False) from None
        except OSError:  # a file system without hard links
            with path.open("xb") as stream:
                stream.write(content)
    finally:
        Path(temporary).unlink(missing_ok=True)


def new_release(options: NewReleaseOptions) -> NewReleaseResult:
    """Compose, validate against the whole registry, and (unless invalid or a dry run) write the release."""
    registry_dir = options.registry_dir
    version = options.version
    if not _VERSION_RE.match(version):
        raise NewReleaseError(f"version {version!r} is not a version: it starts with a digit and uses only digits, "
                              "letters, '.', '+' and '-' (e.g. 1.4.2 or 2.0.0-rc.1)")
    files = read_worktree(registry_dir)
    target = registry_dir / "releases" / f"{version}.yaml"
    existing = [file.path for file in files.of_kind("release") if file.stem == version]
    if target.exists() or existing:
        shown = existing[0] if existing else str(target)
        raise NewReleaseError(f"release {version} exists already ({shown}): a release is never overwritten; "
                              "publish a new version instead", usage=False)
    inputs = _artifact_inputs(options)
    build_ids = _build_ids(options, inputs)
    notes: list[str] = []
    revision = options.revision
    if revision is None:
        revision, note = firmware_revision(registry_dir, options.cwd or Path.cwd())
        if note:
            notes.append(note)
    data = compose(options, inputs, build_ids, revision or None)

    config_file = next((f for f in files.files if f.kind == "registry"), None)
    try:
        config = parse_yaml(config_file.content, config_file.path).data if config_file else None
    except YamlLoadError:
        config = None
    text = release_yaml(data, schema_target(registry_dir, config))
    content = text.encode("utf-8")
    registry_path = f"releases/{version}.yaml"
    display = f"{files.root}/{registry_path}" if files.root not in ("", ".") else registry_path
    try:
        read_back = parse_yaml(content, display).data
    except YamlLoadError as error:  # e.g. notes over the size limit, extra_info nested too deep
        hint = "; shorten the notes (--notes-file) or extra_info" if len(content) > MAX_FILE_BYTES else ""
        raise NewReleaseError(f"{display} as composed would not be a valid registry file: {error.message} "
                              f"(line {error.position.line}, column {error.position.column}){hint}",
                              usage=False) from None
    if read_back != data:  # the writer must say exactly what was meant
        raise AssertionError(f"release YAML does not read back as written:\n{text}")

    new_file = RawFile("release", display, registry_path, content, git_blob_id(content))
    combined = RegistryFiles(root=files.root, files=files.files + (new_file,), problems=files.problems,
                             refused=files.refused)
    cache = work_cache_for(registry_dir)
    # The new file is the newest: a conflict with a published release is reported at it.
    recency = {file.path: 0 for file in files.files} | {display: 1}
    validation = validate_files(combined, cache, recency=recency)
    written = False
    if validation.ok and not options.dry_run:
        _write_new(target, content)
        cache.save()
        written = True
    return NewReleaseResult(target, display, text, validation, written, notes, inputs)

