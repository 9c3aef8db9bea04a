"""The `relreg` command: the group, assembled from one module per command group."""

from __future__ import annotations

import importlib

import click

from relreg import __version__

# Each command's module, imported only when the command runs (or help lists it): `relreg build`
# with nothing to rebuild takes a fraction of a second, and importing every command's modules
# (YAML, Jinja2, GitPython, cryptography, httpx) would take more than that.
COMMANDS = {
    "validate": "relreg.cli.build", "build": "relreg.cli.build",
    "check": "relreg.cli.release", "new-release": "relreg.cli.release", "init": "relreg.cli.release",
    "device": "relreg.cli.device", "latest": "relreg.cli.device",
    "keys": "relreg.cli.keys", "sign": "relreg.cli.keys",
    "publish": "relreg.cli.service", "serve": "relreg.cli.service", "query": "relreg.cli.service",
}


class _LazyGroup(click.Group):
    """A group whose commands are imported from COMMANDS by name, when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command = getattr(importlib.import_module(module), cmd_name.replace("-", "_"))
        assert isinstance(command, click.Command) and command.name == cmd_name, cmd_name
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    from relreg.history.gitconfig import pin_git_config

    pin_git_config()  # the same commit gives the same site whatever the builder's git config


def main() -> None:
    """The console script `relreg` and `python -m relreg`."""
    try:
        cli(prog_name="relreg")
    except KeyboardInterrupt:  # before click's own handling starts, or while a command imports
        click.echo("relreg: interrupted", err=True)
        raise SystemExit(130) from None
