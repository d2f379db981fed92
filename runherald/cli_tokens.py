"""``runherald token create``: a new API token, shown once, and the tokens file line for it."""

from __future__ import annotations

import json

import click
import yaml

from runherald.auth import NAME_PATTERN, SCOPES, new_token, tokens_file_entry, tokens_file_line
from runherald.config import env_name

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
@click.option("-o", "--output", type=click.Choice(OUTPUTS), help="output format  [default: table]")
@click.pass_context
def token_create(ctx: click.Context, name: str, scopes: tuple[str, ...], output: str | None) -> None:
    """Print a new random token, once, and the line that lets a worker accept it.

    Put the line under `tokens:` in the tokens file the workers read (RUNHERALD_API_TOKENS_FILE)
    and restart them; give the token to its user (--token or RUNHERALD_TOKEN).
    """
    if not NAME_PATTERN.fullmatch(name):
        raise click.BadParameter(
            "letters, digits, '.', '_', '-' (at most 63), first a letter or digit", ctx, param_hint="--name"
        )
    output = output or getattr(ctx.find_root().obj, "output", "table")
    secret = new_token()
    entry = tokens_file_entry(name, secret, scopes)
    line = tokens_file_line(entry)
    created = {"token": secret, **entry, "line": line}
    if output == "json":
        click.echo(json.dumps(created, indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump(created, sort_keys=False, default_flow_style=False), nl=False)
    else:
        click.echo(f"token: {secret}")
        click.echo("(shown once: the worker keeps only its SHA-256; the client sends it as --token)")
        click.echo(f"add this line under `tokens:` in the tokens file ({env_name('api_tokens_file')}):")
        click.echo(line)


__all__ = ["token"]
