"""The release-process commands: `relreg check`, `relreg new-release`, `relreg init`.

Plain click commands, added to the `relreg` group in cli/main.py. They follow
`relreg validate`: --registry and --format, the same reporters, and exit 0
when all is well, 1 on problems, 2 on usage errors.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from relreg.cli.common import RegistryUsageError, format_option, registry_option, resolve_registry
from relreg.registry.report import REPORTERS


@click.command()
@registry_option
@click.option("--base", "base_ref", metavar="REF",
              help="The branch (or tag, or commit) the change is going into, e.g. origin/main. Compared at "
                   "`git merge-base REF HEAD`. A branch name that is not local is also tried as origin/REF. "
                   "Default in GitHub Actions pull requests: origin/$GITHUB_BASE_REF.")
@format_option
def check(registry_dir: Path | None, base_ref: str | None, output_format: str) -> None:
    """Check a change to the registry (a pull request) against its base.

    Runs everything `relreg validate` does on the work tree, then judges the
    change against the registry at the base commit, read from git objects:

    \b
    - a published release keeps its version, revision, min_version,
      must_pass_through and artifacts; notes and extra_info may be corrected,
      and it may be yanked (`yanked: <reason>`) or un-yanked;
    - a published release, hardware version or cohort is never deleted or
      renamed (withdraw a release by yanking it);
    - cohorts name releases that exist, are not yanked and have artifacts
      for the cohort's hardware.

    \b
    Each problem is printed once as  path:line:col: error: message [rule],
    with the reason and the fix. Exit status: 0 fine, 1 problems, 2 usage
    error (not a git repository, unknown base, shallow clone).
    """
    from relreg.release.check import CheckUsageError, run_check

    registry_path = resolve_registry(registry_dir)
    if base_ref is None:
        github_base = os.environ.get("GITHUB_BASE_REF")
        if not github_base:
            raise RegistryUsageError("give the branch the change goes into: --base origin/main")
        base_ref = f"origin/{github_base}"
    try:
        result = run_check(registry_path, base_ref)
    except CheckUsageError as error:
        raise RegistryUsageError(str(error)) from None
    click.echo(REPORTERS[output_format](result.diagnostics, result.summary))
    sys.exit(0 if result.ok else 1)


@click.command("new-release")
@click.argument("version")
@registry_option
@click.option("--artifact", "artifacts", multiple=True, metavar="HW=PATH",
              help="An image of the release, repeatable: HW=PATH, HW/SOFTWARE_TYPE=PATH, or for a delta "
                   "HW:delta:FROM_VERSION=PATH. Size and sha256 are computed from the file.")
@click.option("--elf", multiple=True, metavar="HW=PATH",
              help="The ELF file an artifact was made from; its GNU build id becomes the artifact's build_id. "
                   "Not needed when the artifact is itself an ELF file.")
@click.option("--build-id", "build_ids", multiple=True, metavar="HW=HEX",
              help="Set an artifact's build_id directly. Deltas without one are identified by the SHA-1 of the "
                   "payload.")
@click.option("--revision", metavar="SHA",
              help="Source revision. Default: HEAD of the firmware repository the command runs in (not the "
                   "registry's); --revision '' leaves it out.")
@click.option("--notes-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Release notes: Markdown (.md) or HTML (.html), chosen by the extension.")
@click.option("--min-version", metavar="VERSION",
              help="Lowest version a device may run to install this release directly.")
@click.option("--must-pass-through", is_flag=True,
              help="Devices on lower versions must install this release before any newer one.")
@click.option("--extra-info", multiple=True, metavar="KEY=VALUE",
              help="Add to extra_info, repeatable: KEY=TEXT for text, KEY:=JSON for numbers, booleans, lists, "
                   "objects (build_time_s:=384).")
@click.option("--extra-info-file", type=click.Path(path_type=Path, dir_okay=False),
              help="extra_info from a JSON or YAML object (--extra-info entries override its keys).")
@click.option("--url-template", default="{version}/{filename}", show_default=True,
              help="Artifact url, relative to artifact_base_url or absolute https://. Placeholders: {version}, "
                   "{hardware_version}, {software_type}, {type}, {delta_from}, {filename}, {sha256}.")
@click.option("--dry-run", is_flag=True, help="Print the release file and check it; write nothing.")
@format_option
def new_release(version: str, registry_dir: Path | None, artifacts: tuple[str, ...], elf: tuple[str, ...],
                build_ids: tuple[str, ...], revision: str | None, notes_file: Path | None, min_version: str | None,
                must_pass_through: bool, extra_info: tuple[str, ...], extra_info_file: Path | None,
                url_template: str, dry_run: bool, output_format: str) -> None:
    """Write releases/VERSION.yaml from the files a firmware build produced.

    \b
    Example, in the firmware's CI after the build:
      relreg new-release 1.2.0 --registry ../fw-registry/registry \\
        --artifact evt1=build/evt1.bin --elf evt1=build/evt1.elf \\
        --artifact evt1:delta:1.1.0=build/evt1-from-1.1.0.delta \\
        --notes-file NOTES.md --extra-info ci_system=github-actions

    The file gets a yaml-language-server schema comment, is checked against
    the whole registry, and is written only when the registry with it is
    valid; an existing release is never overwritten. Exit status: 0 written,
    1 refused (invalid result, or the release exists), 2 usage error.
    """
    from relreg.registry.validate import summary
    from relreg.release.newrelease import NewReleaseError, NewReleaseOptions
    from relreg.release.newrelease import new_release as run_new_release

    registry_path = resolve_registry(registry_dir)
    options = NewReleaseOptions(
        registry_dir=registry_path, version=version, artifacts=list(artifacts), elf=list(elf),
        build_ids=list(build_ids), revision=revision, notes_file=notes_file, min_version=min_version,
        must_pass_through=must_pass_through, extra_info=list(extra_info), extra_info_file=extra_info_file,
        url_template=url_template, dry_run=dry_run)
    try:
        result = run_new_release(options)
    except NewReleaseError as error:
        if error.usage:
            raise RegistryUsageError(str(error)) from None
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    validation = result.validation
    if not validation.ok:
        click.echo(REPORTERS[output_format](validation.diagnostics,
                                            f"{summary(validation)}; {result.display_path} not written"))
        sys.exit(1)
    if dry_run:
        click.echo(result.content, nl=False, err=output_format != "text")
    described = ", ".join(sorted({a.slot[0] + (f"/{a.slot[1]}" if a.slot[1] else "")
                                  + (f" delta from {a.slot[3]}" if a.slot[2] == "delta" else "")
                                  for a in result.artifacts}))
    action = "would write" if dry_run else "wrote"
    count = len(result.artifacts)
    click.echo(REPORTERS[output_format](
        validation.diagnostics,
        f"{action} {result.display_path} ({count} artifact{'s' if count != 1 else ''}: {described}); "
        f"{summary(validation)}"))


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False), default=".")
@click.option("--name", default="Firmware", show_default=True, help="Name of the product or registry.")
@click.option("--site-url", default="https://firmware.example.com/", show_default=True,
              help="Absolute URL, ending in '/', where the site will be served.")
@click.option("--artifact-base-url", default="https://downloads.example.com/firmware/", show_default=True,
              help="Absolute URL, ending in '/', that relative artifact urls are resolved against.")
@click.option("--repository-url", metavar="URL",
              help="Link to a firmware commit, with {revision} in it, e.g. "
                   "https://github.com/OWNER/FIRMWARE/commit/{revision}.")
@click.option("--version-scheme", type=click.Choice(["semver", "natural"]), default="semver", show_default=True,
              help="How versions are parsed and ordered.")
@click.option("--hardware", multiple=True, metavar="NAME", help="Create hardware/NAME.yaml, repeatable.")
@click.option("--install-spec", "--relreg-requirement", "install_spec", metavar="REQUIREMENT",
              help="What the workflows and README `pip install` to get relreg, e.g. "
                   "'relreg @ git+https://github.com/OWNER/relreg@v0.1.0'. Default: where this relreg was "
                   "installed from (its git URL and commit, or relreg==X.Y.Z from a package index).")
@click.option("--no-git", is_flag=True, help="Do not run `git init` when the folder is not in a repository.")
def init(directory: Path, name: str, site_url: str, artifact_base_url: str, repository_url: str | None,
         version_scheme: str, hardware: tuple[str, ...], install_spec: str | None, no_git: bool) -> None:
    """Create a new registry repository in DIRECTORY (default: here).

    \b
    Writes:
      registry/registry.yaml                the settings, with comments
      registry/{releases,hardware,cohorts}/ each with a README and an example
      schemas/                              the JSON Schemas, for editors
      .vscode/settings.json                 maps the schemas (YAML extension)
      .github/workflows/check.yml           pull requests: relreg check + site preview
      .github/workflows/publish.yml         main: build and publish (GitHub Pages)
      README.md                             how releases and deployments work here

    The registry is validated before anything is written, and no existing
    file is overwritten. Exit status: 0 created, 1 refused, 2 usage error.
    """
    from relreg.registry.validate import summary
    from relreg.release.init import InitError, InitOptions, default_install_spec, init_registry, next_steps

    options = InitOptions(directory=directory, name=name, site_url=site_url, artifact_base_url=artifact_base_url,
                          repository_url=repository_url, version_scheme=version_scheme, hardware=list(hardware),
                          git=not no_git)
    install_note = None
    if install_spec:
        options.relreg_requirement = install_spec
    else:
        options.relreg_requirement, install_note = default_install_spec()
    try:
        result = init_registry(options)
    except InitError as error:
        raise RegistryUsageError(str(error)) if error.usage else click.ClickException(str(error)) from None
    if not result.validation.ok:
        click.echo(REPORTERS["text"](result.validation.diagnostics,
                                     f"{summary(result.validation)}; nothing written (fix the options)"))
        sys.exit(1)
    where = directory.as_posix()
    for path in result.written:
        click.echo(f"created {where}/{path}" if where != "." else f"created {path}")
    for path in result.kept:
        click.echo(f"kept {where}/{path}, which exists" if where != "." else f"kept {path}, which exists")
    if result.git_initialized:
        click.echo(f"initialized a git repository in {where} (branch main)")
    click.echo(f"the workflows install relreg with: pip install {options.relreg_requirement!r}")
    if install_note:
        click.echo(f"note: {install_note}")
    context = click.get_current_context()
    given = {name for name in ("site_url", "artifact_base_url")
             if context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT}
    click.echo("\n" + next_steps(options, given))
