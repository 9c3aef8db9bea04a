"""What every command shares: finding the registry, the --registry and --format options, usage errors."""

from __future__ import annotations

from pathlib import Path

import click

from relreg.history.head import tracked_registry_folders
from relreg.registry import CONFIG_FILE
from relreg.registry.report import FORMATS


class RegistryUsageError(click.UsageError):
    """Bad invocation or a missing registry: exit code 2, a message, no traceback."""


def find_registry(start: Path) -> Path:
    """The registry folder: the current folder if it holds registry.yaml, else registry/ here or above, else
    the one folder of the git repository around `start` whose registry.yaml git tracks (a registry moved
    with `git mv registry fw` is still found; the folder found is named on stderr).

    Raises RegistryUsageError when there is none, or when the repository tracks several (naming them)."""
    if (start / CONFIG_FILE).is_file():
        return start
    for folder in (start, *start.parents):
        if (folder / "registry" / CONFIG_FILE).is_file():
            return folder / "registry"
    tracked = tracked_registry_folders(start)
    if len(tracked) == 1:
        click.echo(f"relreg: using the registry in {_shown(tracked[0])} (the one {CONFIG_FILE} git tracks here); "
                   f"pass --registry to name it", err=True)
        return tracked[0]
    if tracked:
        raise RegistryUsageError(
            f"no registry here, and this repository holds {len(tracked)}: "
            + ", ".join(_shown(folder) for folder in tracked) + "; pass --registry DIR")
    raise RegistryUsageError(
        f"no registry found: neither {start} nor a parent folder holds registry/{CONFIG_FILE}; "
        "pass --registry DIR or create one with `relreg init DIR`")


def resolve_registry(option: Path | None) -> Path:
    if option is None:
        return find_registry(Path.cwd())
    if not (option / CONFIG_FILE).is_file():
        start = option if option.is_dir() else Path.cwd()
        if option.is_dir() and option.resolve() in tracked_registry_folders(start, on_disk=False):
            raise RegistryUsageError(
                f"--registry {option}: its {CONFIG_FILE} is in git but not in the work tree (a sparse checkout or "
                f"--skip-worktree?): check it out, or build the commit itself with --ref HEAD")
        tracked = tracked_registry_folders(start)
        moved = f"; git tracks one in {_shown(tracked[0])} (moved? name that folder, and in the workflows " \
                f"RELREG_REGISTRY)" if len(tracked) == 1 else ""
        raise RegistryUsageError(f"--registry {option}: no {CONFIG_FILE} in that folder{moved}")
    return option


def _shown(folder: Path) -> str:
    """`folder` relative to the current folder when it is below it, else as it is."""
    try:
        return str(folder.relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(folder)


registry_option = click.option(
    "--registry", "registry_dir", type=click.Path(path_type=Path, file_okay=False),
    help="Registry folder (holding registry.yaml). Default: the current folder or registry/ in it or a parent, "
         "else the one registry.yaml git tracks in the repository.")
format_option = click.option(
    "--format", "output_format", type=click.Choice(FORMATS), default="text", show_default=True,
    help="text for people, github for GitHub Actions annotations, json for tools.")
