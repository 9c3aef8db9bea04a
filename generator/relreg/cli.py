"""The `relreg` command line. Commands only parse options and call the stages."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from relreg import __version__
from relreg.cache import work_cache_for
from relreg.report import FORMATS, REPORTERS
from relreg.source import CONFIG_FILE, RegistryNotFound, read_worktree
from relreg.validate import summary, validate_files


class RegistryUsageError(click.UsageError):
    """Bad invocation or a missing registry: exit code 2, a message, no traceback."""


def find_registry(start: Path) -> Path:
    """The registry folder: the current folder if it holds registry.yaml, else registry/ here or above."""
    if (start / CONFIG_FILE).is_file():
        return start
    for folder in (start, *start.parents):
        if (folder / "registry" / CONFIG_FILE).is_file():
            return folder / "registry"
    raise RegistryUsageError(
        f"no registry found: neither {start} nor a parent folder holds registry/{CONFIG_FILE}; "
        "pass --registry DIR or create one with `relreg init DIR`")


def resolve_registry(option: Path | None) -> Path:
    if option is None:
        return find_registry(Path.cwd())
    if not (option / CONFIG_FILE).is_file():
        raise RegistryUsageError(f"--registry {option}: no {CONFIG_FILE} in that folder")
    return option


registry_option = click.option(
    "--registry", "registry_dir", type=click.Path(path_type=Path, file_okay=False),
    help="Registry folder (holding registry.yaml). Default: registry/ in the current folder or a parent.")
format_option = click.option(
    "--format", "output_format", type=click.Choice(FORMATS), default="text", show_default=True,
    help="text for people, github for GitHub Actions annotations, json for tools.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="relreg")
def cli() -> None:
    """relreg keeps firmware releases in git and serves them as static files.

    A registry is a folder of YAML files: registry.yaml, releases/<version>.yaml,
    hardware/<name>.yaml and cohorts/<slug>.yaml. relreg checks them, and builds
    them into a folder of static JSON (shaped like Memfault's Releases API) and
    HTML that any CDN or object store can serve.

    \b
    Typical use:
      relreg validate                 check every file, report every problem
      relreg build --out public       build the static site from the work tree
      relreg build --ref origin/main  build exactly what a commit holds

    Run `relreg COMMAND --help` for the options of each command.
    """


@cli.command()
@registry_option
@format_option
def validate(registry_dir: Path | None, output_format: str) -> None:
    """Check every registry file and report every problem in one run.

    Each file is read as strict YAML (no duplicate keys, anchors, tags or
    ambiguous values), checked against its JSON Schema, and then the whole
    registry is checked against the rules a schema cannot say: file names
    match versions, versions and build ids are unique, deltas start from an
    existing lower release, hardware versions exist, cohorts name releases
    that exist and are not yanked.

    \b
    Each problem is printed as  path:line:col: error: message [rule].
    Exit status: 0 valid, 1 problems found, 2 usage error.
    """
    registry_path = resolve_registry(registry_dir)
    try:
        files = read_worktree(registry_path)
    except RegistryNotFound as error:
        raise RegistryUsageError(str(error)) from None
    cache = work_cache_for(registry_path)
    result = validate_files(files, cache)
    cache.save()
    click.echo(REPORTERS[output_format](result.diagnostics, summary(result)))
    sys.exit(0 if result.ok else 1)


def _register_commands() -> None:
    """Commands that live in modules of their own, one per job."""
    from relreg.cli_device import device, latest
    from relreg.cli_keys import keys, sign
    from relreg.cli_release import check, init, new_release
    from relreg.cli_site import publish, query, serve

    for command in (check, new_release, init, device, latest, keys, sign, publish, serve, query):
        cli.add_command(command)


_register_commands()


def main() -> None:
    cli(prog_name="relreg")


@cli.command()
@registry_option
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("public"), show_default=True,
              help="Output folder. It is replaced as a whole, atomically; unchanged files keep their timestamps.")
@click.option("--ref", metavar="REF",
              help="Build exactly what this commit (branch, tag, sha) holds, read from git objects, not the work tree.")
@click.option("--device-counts", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Fleet snapshot giving count_devices: JSON {\"1.2.3\": 120} or CSV rows version,count.")
@click.option("--base-url", metavar="URL",
              help="Absolute URL the site is served from, overriding site_url in registry.yaml (e.g. for previews).")
@click.option("--signing-key", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Ed25519 private key(s), PEM, to sign device documents and write a TUF repository "
                   "(default: $RELREG_SIGNING_KEY; unsigned without either). See docs/security.md.")
@click.option("--force", is_flag=True,
              help="Rebuild every file even when the inputs match the previous build's.")
@format_option
def build(registry_dir: Path | None, out: Path, ref: str | None, device_counts: Path | None,
          base_url: str | None, signing_key: Path | None, force: bool, output_format: str) -> None:
    """Build the registry into a folder of static JSON and HTML.

    \b
    The output (default public/) holds:
      api/v1/index.json                       entry point: commit, URL templates
      api/v1/releases.json                    every release, newest first, paged
      api/v1/releases/<version>.json          one release, as Memfault's API returns it
      api/v1/releases/<dimension>/<key>.json  releases by version, revision,
                                              hardware_version or build_id
      api/v1/hardware_versions.json, api/v1/cohorts.json
      schemas/                                the input schemas, for editors

    created_date and updated_date come from git history (first-parent, renames
    followed) in one pass, cached by commit. A file that is not committed yet is
    dated by the build time (SOURCE_DATE_EPOCH when set) with a warning. The
    same commit always gives byte-identical files. An invalid registry writes
    nothing and leaves the previous output untouched.
    """
    from relreg.build import BuildOptions, InvalidRegistry, build_site
    from relreg.validate import summary as validation_summary

    registry_path = resolve_registry(registry_dir) if ref is None or registry_dir is not None \
        else find_registry(Path.cwd())
    if base_url is not None and not base_url.endswith("/"):
        base_url += "/"
    def progress(message: str) -> None:
        click.echo(f"relreg: {message}...", err=True)

    try:
        report = build_site(BuildOptions(registry_dir=registry_path, out=out, ref=ref,
                                         device_counts=device_counts, base_url=base_url, force=force,
                                         signing_key=signing_key,
                                         progress=progress if sys.stderr.isatty() else None))
    except InvalidRegistry as error:
        click.echo(REPORTERS[output_format](error.result.diagnostics, validation_summary(error.result)))
        click.echo("build stopped: the registry has errors; the previous output is untouched", err=True)
        sys.exit(1)
    shown = report.warnings if len(report.warnings) <= 10 else report.warnings[:8]
    for warning in shown:
        click.echo(f"warning: {warning}", err=True)
    if len(shown) < len(report.warnings):
        click.echo(f"warning: ... and {len(report.warnings) - len(shown)} more like these", err=True)
    click.echo(report.summary())
