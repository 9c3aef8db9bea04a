"""What every command shares: finding the registry, the --registry and --format options, usage errors."""

from __future__ import annotations

from pathlib import Path

import click

from relreg.registry import CONFIG_FILE
from relreg.registry.report import FORMATS


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
