"""`relreg device`: the device side of a built site, for people, scripts and gateways."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

# Exit statuses of `relreg device check --exit-code` (errors are always 1, usage errors 2).
EXIT_UP_TO_DATE = 0
EXIT_UPDATE_AVAILABLE = 10


@click.group("device")
def device() -> None:
    """Ask a built site what a device should install next, as the device would.

    The site is the output of `relreg build`, served over HTTP(S) or read from
    a local folder. See docs/devices.md for the documents and the rules.
    """


@device.command("check")
@click.option("--site", required=True, metavar="URL|DIR",
              help="Root of the built site: an http(s) URL, or a local folder holding it.")
@click.option("--cohort", required=True, help="The device's cohort (slug).")
@click.option("--hardware-version", required=True, help="The device's hardware version.")
@click.option("--software-type", default=None, help="The device's software type, if the registry uses them.")
@click.option("--current-version", required=True, help="The version the device runs (any version, also dev builds).")
@click.option("--serial", required=True, help="The device's serial: decides its place in staged rollouts.")
@click.option("--download", "download_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Download the image into this folder and verify its size and sha256.")
@click.option("--exit-code", "exit_code", is_flag=True,
              help=f"Exit {EXIT_UPDATE_AVAILABLE} when an update is available, {EXIT_UP_TO_DATE} when up to date "
                   "(errors: 1). Without it, both exit 0.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds per HTTP request.")
@click.option("--trust", "trusted", multiple=True, metavar="KEYID=PUBLIC",
              help="Pin a signing key (its id and 64-hex Ed25519 public key, from keys.yaml); repeatable. "
                   "With at least one, every document must carry a valid signature or the check fails.")
@click.option("--min-signed-version", type=int, default=0, show_default=True,
              help="Refuse signed documents older than this version (a device persists the highest it saw).")
def check(site: str, cohort: str, hardware_version: str, software_type: str | None, current_version: str,
          serial: str, download_dir: Path | None, exit_code: bool, timeout: float,
          trusted: tuple[str, ...] = (), min_signed_version: int = 0) -> None:
    """Print what the device should install next, as JSON.

    With an update: the seed's device response (the release with the one image
    to fetch: a delta when there is one from the current version). Otherwise
    {"up_to_date": true, ...}. At most two documents are fetched: the
    precomputed answer for the current version, or, for a version the registry
    does not know, the channel's candidates, decided locally with the same rules.

    \b
    Example:
      relreg device check --site https://firmware.aurora.example/ --cohort beta \\
        --hardware-version pvt --software-type main --current-version 2.1.0 \\
        --serial AT100-000123 --download ./ota
    """
    from relreg.devices.client import ClientError, DeviceClient
    from relreg.devices.update import DeviceIdentity

    trusted_keys = {}
    for pin in trusted:
        keyid, separator, public = pin.partition("=")
        if not separator or not keyid or len(public) != 64:
            raise click.UsageError(f"--trust {pin!r}: expected KEYID=PUBLIC with a 64-hex public key")
        trusted_keys[keyid] = public
    identity = DeviceIdentity(cohort=cohort, hardware_version=hardware_version, current_version=current_version,
                              serial=serial, software_type=software_type)
    try:
        with DeviceClient(site, timeout=timeout, trusted_keys=trusted_keys or None,
                          min_version=min_signed_version) as client:
            result = client.check(identity)
            click.echo(json.dumps(result.document, indent=2, ensure_ascii=False))
            if result.payload is not None and download_dir is not None:
                path = client.download(result.payload, download_dir)
                click.echo(f"downloaded {path} ({result.payload.size} bytes, sha256 verified)", err=True)
    except ClientError as error:
        raise click.ClickException(str(error)) from None
    if exit_code:
        sys.exit(EXIT_UPDATE_AVAILABLE if result.update_available else EXIT_UP_TO_DATE)


def _latest(**options: object) -> None:
    check.callback(**options, exit_code=True)  # type: ignore[misc]


latest = click.Command(
    "latest",
    callback=_latest,
    params=[param for param in check.params if param.name != "exit_code"],
    help=f"""What should this device install next? `device check` with exit codes.

    Same options as `relreg device check`. Exit status: {EXIT_UPDATE_AVAILABLE} when an
    update is available, {EXIT_UP_TO_DATE} when the device is up to date, 1 on an
    error (unreachable site, bad document, artifact that fails its size or sha256
    check), 2 on a usage error.
    """,
)
