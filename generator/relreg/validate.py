"""The validate stage: raw files -> (model, diagnostics).

Every file is parsed strictly and checked against its schema; files that pass
become model objects; then the cross-file rules run over the whole model.
Problems are collected, never raised one at a time, so a single run reports
everything that is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field


from relreg.diagnostics import Diagnostic, sorted_diagnostics
from relreg.model import Cohort, HardwareVersion, Registry, RegistryConfig, Release
from relreg.rules import RuleContext, check_rules
from relreg.schemas import SchemaSet, default_schemas
from relreg.source import RawFile, RegistryFiles
from relreg.versions import VersionError, scheme_named
from relreg.yamlload import SourceDocument, YamlLoadError, parse_yaml


@dataclass
class ValidationResult:
    registry: Registry | None  # None when the registry is not valid
    diagnostics: list[Diagnostic]
    files_checked: int
    documents: dict[str, SourceDocument] = field(default_factory=dict, repr=False)

    @property
    def errors(self) -> list[Diagnostic]:
        return [diagnostic for diagnostic in self.diagnostics if diagnostic.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class DocumentCache:
    """Parsed, schema-checked documents keyed by git blob id, reused across runs."""

    entries: dict[tuple[str, str], tuple[SourceDocument | None, list[Diagnostic]]] = field(default_factory=dict)


def _load(file: RawFile, schemas: SchemaSet, cache: DocumentCache | None
          ) -> tuple[SourceDocument | None, list[Diagnostic]]:
    key = (file.kind, file.blob_id)
    if cache is not None and key in cache.entries:
        doc, diagnostics = cache.entries[key]
        if doc is None or doc.path == file.path:
            return doc, diagnostics
    try:
        doc = parse_yaml(file.content, file.path)
    except YamlLoadError as error:
        result: tuple[SourceDocument | None, list[Diagnostic]] = (None, [Diagnostic(
            file.path, error.position.line, error.position.column, error.message, error.rule)])
    else:
        result = (doc, schemas.check(file.kind, doc))
    if cache is not None and result[0] is not None:
        cache.entries[key] = result
    return result


def validate_files(files: RegistryFiles, schemas: SchemaSet | None = None,
                   cache: DocumentCache | None = None) -> ValidationResult:
    schemas = schemas or default_schemas()
    diagnostics: list[Diagnostic] = list(files.problems)
    documents: dict[str, SourceDocument] = {}
    valid: dict[str, list[SourceDocument]] = {"registry": [], "release": [], "hardware": [], "cohort": []}
    for file in files.files:
        doc, problems = _load(file, schemas, cache)
        diagnostics.extend(problems)
        if doc is not None:
            documents[file.path] = doc
            if not problems:
                valid[file.kind].append(doc)

    registry = None
    if valid["registry"]:
        registry = _build_model(valid, diagnostics)
        if registry is not None:
            loaded = {item.source_path for item in (*registry.releases, *registry.hardware)}
            diagnostics.extend(check_rules(RuleContext(
                registry, documents,
                unloaded_versions=files.names_not_loaded("release", loaded),
                unloaded_hardware=files.names_not_loaded("hardware", loaded))))
    ordered = sorted_diagnostics(diagnostics)
    ok = registry is not None and not any(d.is_error for d in ordered)
    return ValidationResult(registry if ok else None, ordered, len(files.files), documents)


def _build_model(valid: dict[str, list[SourceDocument]], diagnostics: list[Diagnostic]) -> Registry | None:
    config_doc = valid["registry"][0]
    config = RegistryConfig.from_dict(config_doc.data)
    try:
        scheme = scheme_named(config.version_scheme)
    except VersionError as error:
        position = config_doc.position(("version_scheme",))
        diagnostics.append(Diagnostic(config_doc.path, position.line, position.column, str(error), "version-scheme"))
        return None
    releases: list[Release] = []
    for doc in valid["release"]:
        try:
            releases.append(Release.from_dict(doc.data, scheme, doc.path))
        except VersionError as error:
            position = doc.position(("version",))
            diagnostics.append(Diagnostic(doc.path, position.line, position.column, str(error), "version-scheme"))
    hardware = [HardwareVersion.from_dict(doc.data, doc.path) for doc in valid["hardware"]]
    cohorts = [Cohort.from_dict(doc.data, doc.path) for doc in valid["cohort"]]
    return Registry(
        config=config,
        scheme=scheme,
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
    assert registry is not None
    return (f"registry is valid: {len(registry.releases)} releases, {len(registry.hardware)} hardware versions, "
            f"{len(registry.cohorts)} cohorts ({result.files_checked} files"
            + (f", {warnings} warnings)" if warnings else ")"))


