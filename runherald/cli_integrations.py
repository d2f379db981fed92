"""``runherald integrations list|get|delete``: named integrations (inbound webhooks), through the HTTP API.

They are created and changed with the configuration document (``integrations:``, `runherald rules apply
-f FILE`) or ``PUT /api/v1/integrations/{name}``; a secret is never shown (sealed, or REDACTED).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from runherald.cli_common import RunheraldGroup, delete_named, get_named, list_named, print_items


def _auth_text(auth: Any) -> str:
    """The auth kind, and for a secret whether it is a reference, sealed or REDACTED (never a value)."""
    if not isinstance(auth, Mapping) or not auth:
        return "-"
    kind, value = next(iter(auth.items()))
    if kind == "token_sha256":
        return f"{kind} {str(value)[:12]}..."
    if isinstance(value, Mapping):
        return f"{kind} ({'sealed' if 'sealed' in value else 'secret ' + str(value.get('secret'))})"
    return f"{kind} ({value})"  # a ${VAR} reference, or REDACTED


def _row(item: Mapping[str, Any]) -> tuple[str, ...]:
    adapter, project = str(item.get("adapter") or ""), str(item.get("project") or "-")
    return (item["name"], adapter, project, _auth_text(item.get("auth")))


def _table(items: Sequence[Mapping[str, Any]]) -> None:
    print_items(items, "no integrations", ("NAME", "ADAPTER", "PROJECT", "AUTH"), _row)


@click.group(cls=RunheraldGroup, short_help="inbound webhooks: list, get, delete")
def integrations() -> None:
    """Named integrations: each is an inbound webhook, POST /api/v1/integrations/NAME, with its own
    adapter, default project and authentication (see the README, "Integrations"). Define them under
    `integrations:` in the configuration document and apply it with `runherald rules apply -f FILE`."""


@integrations.command(
    name="list", short_help="every integration: adapter, project, auth (secrets never shown)"
)
@click.pass_context
def integrations_list(ctx: click.Context) -> None:
    """Every stored integration. -o yaml prints a document `rules apply -f` takes back (secrets sealed)."""
    list_named(ctx, "integrations", _table)


@integrations.command(name="get", short_help="one integration")
@click.argument("name")
@click.pass_context
def integrations_get(ctx: click.Context, name: str) -> None:
    """One stored integration, by name (its secret never shown)."""
    get_named(ctx, "integrations", name, lambda answer: _table([answer]))


@integrations.command(name="delete", short_help="delete one integration")
@click.argument("name")
@click.pass_context
def integrations_delete(ctx: click.Context, name: str) -> None:
    """Delete one integration: its webhook answers 404 from then on."""
    delete_named(ctx, "integrations", name, "integration")


COMMANDS: list[click.Command] = [integrations]
