"""``runherald keys``: make and rotate the key pairs that seal secret_params (see runherald.sealing).

Private keys are written to files with mode 0600 and never printed unless no file is named; a file is
never overwritten by ``create``, and ``rotate`` replaces its file in one rename.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any

import click

from runherald.sealing import (
    PRIVATE_KEYS_ENV,
    PUBLIC_KEY_ENV,
    SealKeyError,
    generate_key_pair,
    key_id,
    parse_private_keys,
    public_key_text,
)


class KeysFailed(click.ClickException):
    """One line on stderr, exit 2 (the input cannot work), as every runherald command."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"runherald keys: {self.format_message()}", err=True, file=file)


def _write_private(path: Path, text: str, *, replace: bool) -> None:
    """Write a private key file with mode 0600 from its first byte; in one rename when replacing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".keys-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("ascii"))
        os.close(fd)
        if replace:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)
            except FileExistsError:
                raise KeysFailed(
                    f"{path} exists: not overwritten (`runherald keys rotate` adds a key to it)"
                ) from None
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def _write_public(path: Path | None, public: str) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(public + "\n", encoding="ascii")


@click.group(name="keys", short_help="make and rotate the keys that seal secret_params")
def keys() -> None:
    """Make and rotate the key pairs that seal secret_params.

    Publishers seal with the public key (RUNHERALD_SEAL_PUBLIC_KEY[_FILE]); workers open with the
    private keys (RUNHERALD_SEAL_PRIVATE_KEYS[_FILE], newest first).
    """


@keys.command(name="create")
@click.option(
    "--private-keys-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the private key here (mode 0600; an existing file is not overwritten)",
)
@click.option(
    "--public-key-file", type=click.Path(dir_okay=False, path_type=Path), help="write the public key here"
)
def create(private_keys_file: Path | None, public_key_file: Path | None) -> None:
    """A new key pair: the private key to a file (or printed, with no file), the public key printed."""
    private, public = generate_key_pair()
    if private_keys_file is not None:
        _write_private(
            private_keys_file, f"# runherald seal private keys, newest first\n{private}\n", replace=False
        )
        click.echo(f"runherald keys: private key written to {private_keys_file} (mode 0600)", err=True)
    else:
        click.echo(f"{PRIVATE_KEYS_ENV}={private}")
    _write_public(public_key_file, public)
    click.echo(f"{PUBLIC_KEY_ENV}={public}")


@keys.command(name="rotate")
@click.option(
    "--private-keys-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the workers' private keys file: a new key goes first, the old ones stay",
)
@click.option(
    "--public-key-file", type=click.Path(dir_okay=False, path_type=Path), help="write the new public key here"
)
def rotate(private_keys_file: Path, public_key_file: Path | None) -> None:
    """Add a new private key first in the file (the old ones stay, to open what was sealed for them)."""
    source = f"{private_keys_file}"
    try:
        old_text = private_keys_file.read_text(encoding="ascii")
        old_keys = parse_private_keys(old_text, source)
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysFailed(f"cannot read {private_keys_file}: {type(exc).__name__}") from None
    except SealKeyError as exc:
        raise KeysFailed(str(exc)) from None
    private, public = generate_key_pair()
    body = "\n".join(line for line in old_text.splitlines() if not line.startswith("# runherald seal"))
    _write_private(
        private_keys_file,
        f"# runherald seal private keys, newest first\n{private}\n{body.strip()}\n",
        replace=True,
    )
    _write_public(public_key_file, public)
    kept = ", ".join(key_id(key.public_key()) for key in old_keys)
    new_id = key_id(parse_private_keys(private, "the new key")[0].public_key())
    click.echo(f"runherald keys: added key {new_id} first in {private_keys_file}; kept {kept}", err=True)
    click.echo(f"{PUBLIC_KEY_ENV}={public}")


@keys.command(name="public")
@click.option(
    "--private-keys-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the workers' private keys file",
)
def public(private_keys_file: Path) -> None:
    """The public key of the newest private key in a file: what publishers seal with."""
    try:
        newest = parse_private_keys(private_keys_file.read_text(encoding="ascii"), str(private_keys_file))[0]
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysFailed(f"cannot read {private_keys_file}: {type(exc).__name__}") from None
    except SealKeyError as exc:
        raise KeysFailed(str(exc)) from None
    click.echo(f"{PUBLIC_KEY_ENV}={public_key_text(newest.public_key())}")


__all__ = ["keys"]
