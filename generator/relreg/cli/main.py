"""The `relreg` command: the group, assembled from one module per command group."""

from __future__ import annotations

import click

from relreg import __version__
from relreg.cli.build import build, validate
from relreg.cli.device import device, latest
from relreg.cli.keys import keys, sign
from relreg.cli.release import check, init, new_release
from relreg.cli.service import publish, query, serve


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


for command in (validate, build, check, new_release, init, device, latest, keys, sign, publish, serve, query):
    cli.add_command(command)


def main() -> None:
    """The console script `relreg` and `python -m relreg`."""
    cli(prog_name="relreg")
