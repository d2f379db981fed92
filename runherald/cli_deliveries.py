"""``runherald deliveries``: the ledger in SQL queried across runs, through GET /api/v1/deliveries."""

from __future__ import annotations

import urllib.parse
from typing import Any

import click

from runherald.cli_common import CliState, RunheraldCommand, api_get, emit, json_alias, print_items


def _row(item: dict[str, Any]) -> list[str]:
    return [
        item.get("queued_at") or "",
        f"{item.get('project')}/{item.get('uid')}",
        item.get("notification") or "",
        item.get("kind") or "",
        item.get("state") or "",
        item.get("status") or "",
        str(item.get("attempt_count", len(item.get("attempts") or []))),
        str(item.get("reason") or "").replace("\n", " "),
    ]


@click.command(cls=RunheraldCommand, short_help="deliveries across runs, from the ledger in SQL")
@click.option("--project", metavar="PROJECT", help="only this project's")
@click.option("--uid", metavar="UID", help="only this run's")
@click.option("--name", metavar="NAME", help="only this notification's (a rule's: RULE/RECEIVER)")
@click.option("--kind", metavar="KIND", help="only this kind's: slack, mail, webhook, ...")
@click.option("--status", type=click.Choice(["pending", "sent", "error", "skipped"]), help="only this status")
@click.option("--since", metavar="TIME", help="queued at or after: RFC 3339, or a duration back (1h)")
@click.option("--until", metavar="TIME", help="queued before: RFC 3339, or a duration back (10m)")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="items a page")
@click.option("--cursor", metavar="CURSOR", help="the page after the one that printed this cursor")
@click.option("--all", "every", is_flag=True, help="every page, not only the first")
@json_alias()
@click.pass_context
def deliveries(
    ctx: click.Context, limit: int, cursor: str | None, every: bool, **filters: str | None
) -> None:
    """Deliveries across runs, newest queued first: what failed in the last hour and why
    (--status error --since 1h), what a channel got today (--name NAME --since 1d).

    A page at a time (--limit); the next page's cursor is printed after the table (on stderr), and is
    `next` in -o json/yaml; --all fetches every page."""
    state = ctx.ensure_object(CliState)
    query = {name: value for name, value in filters.items() if value}
    items: list[Any] = []
    while True:
        params = {**query, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        page = api_get(state, "/api/v1/deliveries?" + urllib.parse.urlencode(params))
        items.extend(page.get("items") or [])
        cursor = page.get("next")
        if not every or not cursor:
            break
    answer = {"items": items, "next": cursor}

    def table() -> None:
        header = ["QUEUED", "RUN", "NOTIFICATION", "KIND", "STATE", "STATUS", "ATTEMPTS", "REASON"]
        print_items(items, "no deliveries", header, _row)
        if cursor:
            click.echo(f"more: --cursor {cursor}", err=True)

    emit(state, answer, table)


COMMANDS: list[click.Command] = [deliveries]

__all__ = ["COMMANDS", "deliveries"]
