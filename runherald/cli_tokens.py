"""``runherald token create``: a new API token, shown once, and the tokens file line for it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import yaml

from runherald.auth import (
    NAME_PATTERN,
    SCOPES,
    load_tokens_file,
    new_token,
    tokens_file_entry,
    tokens_file_line,
)
from runherald.config import env_name
from runherald.errors import ConfigError

OUTPUTS = ("table", "json", "yaml")


@click.group(short_help="make API tokens (token create)")
def token() -> None:
    """API bearer tokens: the worker keeps only their SHA-256, in its tokens file."""


@token.command(name="create")
@click.option("--name", required=True, metavar="NAME", help="who uses it (shown in the worker's log)")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(SCOPES),
    help="what it may do (repeatable): publish, read, or admin (all of it)",
)
@click.option(
    "--file",
    "tokens_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="also add the line to this tokens file (made if missing; checked before it is written)",
)
@click.option("-o", "--output", type=click.Choice(OUTPUTS), help="output format  [default: table]")
@click.pass_context
def token_create(
    ctx: click.Context, name: str, scopes: tuple[str, ...], tokens_file: Path | None, output: str | None
) -> None:
    """Print a new random token, once, and the line that lets a worker accept it.

    Put the line under `tokens:` in the tokens file the workers read (RUNHERALD_API_TOKENS_FILE),
    or let --file add it, and restart them; give the token to its user (--token or RUNHERALD_TOKEN).
    """
    if not NAME_PATTERN.fullmatch(name):
        raise click.BadParameter(
            "letters, digits, '.', '_', '-' (at most 63), first a letter or digit", ctx, param_hint="--name"
        )
    output = output or getattr(ctx.find_root().obj, "output", "table")
    secret = new_token()
    entry = tokens_file_entry(name, secret, scopes)
    line = tokens_file_line(entry)
    if tokens_file is not None:
        _add_line(ctx, tokens_file, line)
    created = {"token": secret, **entry, "line": line}
    if output == "json":
        click.echo(json.dumps(created, indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump(created, sort_keys=False, default_flow_style=False), nl=False)
    else:
        click.echo(f"token: {secret}")
        click.echo("(shown once: the worker keeps only its SHA-256; the client sends it as --token)")
        if tokens_file is None:
            click.echo(f"add this line under `tokens:` in the tokens file ({env_name('api_tokens_file')}):")
        else:
            click.echo(f"added to {tokens_file} (restart the workers that read it):")
        click.echo(line)


def _add_line(ctx: click.Context, path: Path, line: str) -> None:
    """Append the line to a tokens file, if the result is a valid tokens file (else change nothing)."""
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {path}: {exc.strerror or exc}", ctx, param_hint="--file"
        ) from None
    if not text.strip():
        text = "tokens:\n"
    elif not text.endswith("\n"):
        text += "\n"
    candidate = path.with_name(f".{path.name}.new")
    try:
        candidate.write_text(text + line + "\n", encoding="utf-8")
        load_tokens_file(candidate)
        os.replace(candidate, path)
    except ConfigError as exc:
        message = str(exc).replace(str(candidate), str(path))
        raise click.BadParameter(f"not changed: {message}", ctx, param_hint="--file") from None
    except OSError as exc:
        raise click.BadParameter(
            f"cannot write {path}: {exc.strerror or exc}", ctx, param_hint="--file"
        ) from None
    finally:
        candidate.unlink(missing_ok=True)


__all__ = ["token"]
