"""`relreg keys generate|sign-root` and `relreg sign --refresh`: plain click objects, added to the group in cli/main.py."""

from __future__ import annotations

import time
from pathlib import Path

import click

from relreg.trust.keys import (
    ROLES,
    ROOTS_FOLDER,
    generate,
    key_entry_yaml,
    load_private_keys,
    new_keys_file,
    write_private_key,
)
from relreg.trust.where import ENV_VAR, KEYS_FILE

signing_key_option = click.option(
    "--signing-key", "signing_key", type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help=f"File holding the Ed25519 private key(s), PEM. Default: the {ENV_VAR} environment variable.")


def _now() -> int:
    return int(time.time())


@click.group("keys")
def keys() -> None:
    """Signing keys: generate a key pair, sign the TUF root.

    \b
    Public keys live in the registry (registry/keys.yaml); private keys never do:
    the build reads them from --signing-key FILE or the RELREG_SIGNING_KEY
    environment variable (a CI secret). See docs/security.md.
    """


@keys.command("generate")
@click.option("--private", "private_path", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Where to write the private key (PEM, mode 0600). Never inside the registry; never committed.")
@click.option("--name", default="", help="A label for the key in keys.yaml, e.g. 'ci-2025' or who holds it.")
@click.option("--role", "roles", multiple=True, type=click.Choice(ROLES),
              help="Role(s) the key signs for (repeatable). Default: all of them, for a single online key.")
@click.option("--registry", "registry_dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help=f"Also add the public key to this registry's {KEYS_FILE} (created when missing).")
def generate_command(private_path: Path, name: str, roles: tuple[str, ...], registry_dir: Path | None) -> None:
    """Write a new Ed25519 private key to --private and print its public entry for keys.yaml.

    The private key is written once, readable by you only, and never printed.
    Store it as a CI secret (e.g. RELREG_SIGNING_KEY) and in a safe place; the
    public key and its key id go into the registry's keys.yaml.
    """
    if registry_dir is not None and private_path.resolve().is_relative_to(registry_dir.resolve()):
        raise click.UsageError("--private must not be inside the registry: private keys are never committed")
    key, pem = generate()
    write_private_key(private_path, pem)
    chosen = [role for role in ROLES if role in roles] if roles else list(ROLES)
    entry = key_entry_yaml(key, name or private_path.stem, chosen)
    click.echo(f"wrote the private key to {private_path} (keep it secret; it is not printed)", err=True)
    click.echo(f"key id: {key.keyid}", err=True)
    if registry_dir is not None:
        keys_file = registry_dir / KEYS_FILE
        if keys_file.exists():
            text = keys_file.read_text(encoding="utf-8")
            top_level = [line for line in text.splitlines()
                         if line and not line[0].isspace() and not line.startswith("#")]
            if not top_level or not top_level[-1].startswith("keys:"):
                click.echo(f"add this entry to the keys: list of {keys_file}:", err=True)
                click.echo(entry, nl=False)
                return
            keys_file.write_text(text.rstrip("\n") + "\n" + entry, encoding="utf-8")
        else:
            keys_file.write_text(new_keys_file(entry), encoding="utf-8")
        click.echo(f"added the public key to {keys_file}", err=True)
        return
    click.echo(f"# add to the keys: list of registry/{KEYS_FILE}", err=True)
    click.echo(entry, nl=False)


@keys.command("sign-root")
@click.option("--registry", "registry_dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              default=Path("registry"), show_default=True, help="Registry folder (holding keys.yaml).")
@signing_key_option
@click.option("--expires-days", type=click.IntRange(1, 3650),
              help="Start a new root version that expires this many days from now (to renew the root).")
def sign_root_command(registry_dir: Path, signing_key: Path | None, expires_days: int | None) -> None:
    """Sign the TUF root that keys.yaml asks for into <registry>/roots/<N>.root.json.

    Run it with each root key holder's key (offline if you like) until the
    threshold is met, then commit the file. A new root must be signed by the
    threshold of the previous root's keys and of its own, so that devices can
    follow a key rotation.
    """
    from relreg.trust.tufrepo import sign_root

    loaded = load_private_keys(signing_key)
    if not loaded:
        raise click.UsageError(f"give the root key with --signing-key FILE or {ENV_VAR}")
    target, missing = sign_root(registry_dir, loaded, _now(), expires_days)
    if missing:
        click.echo(f"signed {target}; still missing: {missing}")
    else:
        click.echo(f"signed {target}: complete; commit it ({ROOTS_FOLDER}/{target.name})")


@click.command("sign")
@click.option("--refresh", is_flag=True, required=True,
              help="Re-sign the TUF timestamp of an already built site (required: the only mode).")
@click.option("--out", "site", type=click.Path(path_type=Path, file_okay=False, exists=True),
              default=Path("public"), show_default=True, help="The built, signed site.")
@signing_key_option
@click.option("--expires-days", type=click.IntRange(1, 3650),
              help="Days the new timestamp stays valid. Default: expires_days.timestamp of keys.yaml (7).")
@click.option("--documents", is_flag=True,
              help="Also renew the expiry of the detached document signatures (same version, same documents).")
def sign(refresh: bool, site: Path, signing_key: Path | None, expires_days: int | None, documents: bool) -> None:
    """Re-sign the timestamp of a built site, for a scheduled job.

    An expired timestamp stops every TUF client, so run this on a schedule
    (e.g. daily, with expires_days.timestamp of a week) and upload
    tuf/timestamp.json (and, with --documents, the .sig files). Only the
    timestamp changes: its version grows by one and it expires
    --expires-days from now. Every other file stays byte-identical.
    """
    from relreg.trust.tufrepo import refresh as refresh_site

    if not refresh:
        raise click.UsageError("nothing to do: pass --refresh")
    loaded = load_private_keys(signing_key)
    if not loaded:
        raise click.UsageError(f"give the timestamp key with --signing-key FILE or {ENV_VAR}")
    from relreg.site.write import output_locked

    with output_locked(site):  # never between a build's signatures and its documents
        report = refresh_site(site, loaded, _now(), expires_days, documents)
    extra = f"; renewed {report.documents} document signatures" if documents else ""
    click.echo(f"timestamp version {report.timestamp_version}, expires {report.timestamp_expires:%Y-%m-%dT%H:%M:%SZ}"
               + extra)
