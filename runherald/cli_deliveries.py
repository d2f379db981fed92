"""``runherald deliveries`` and ``runherald runs``: the ledger in SQL queried across runs, through
GET /api/v1/deliveries and GET /api/v1/runs; both page the same way (`paged`)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import click

from runherald.cli_common import CliState, RunheraldCommand, api_get, emit, json_alias, print_items


def paging_options(command: Any) -> Any:
    """--limit, --cursor and --all, as every paged list takes them."""
    command = click.option("--all", "every", is_flag=True, help="every page, not only the first")(command)
    command = click.option(
        "--cursor", metavar="CURSOR", help="the page after the one that printed this cursor"
    )(command)
    return click.option(
        "--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="items a page"
    )(command)


def paged(
    ctx: click.Context,
    path: str,
    query: Sequence[tuple[str, str]],
    page: tuple[int, str | None, bool],
    table: tuple[str, Sequence[str], Callable[[Any], Sequence[str]]],
) -> None:
    """GET `path` with `query` a page at a time (`page`: limit, cursor, every page or the first), then
    print the items as -o asks: a table (`table`: text when empty, header, row of an item) with the next
    page's cursor on stderr, or ``{"items", "next"}`` as JSON or YAML."""
    state = ctx.ensure_object(CliState)
    limit, cursor, every = page
    items: list[Any] = []
    while True:
        params = [*query, ("limit", str(limit)), *([("cursor", cursor)] if cursor else [])]
        answer = api_get(state, f"{path}?{urllib.parse.urlencode(params)}")
        items.extend(answer.get("items") or [])
        cursor = answer.get("next")
        if not every or not cursor:
            break

    def show() -> None:
        print_items(items, *table)
        if cursor:
            click.echo(f"more: --cursor {cursor}", err=True)

    emit(state, {"items": items, "next": cursor}, show)


def _delivery_row(item: dict[str, Any]) -> list[str]:
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
@paging_options
@json_alias()
@click.pass_context
def deliveries(
    ctx: click.Context, limit: int, cursor: str | None, every: bool, **filters: str | None
) -> None:
    """Deliveries across runs, newest queued first: what failed in the last hour and why
    (--status error --since 1h), what a channel got today (--name NAME --since 1d).

    A page at a time (--limit); the next page's cursor is printed after the table (on stderr), and is
    `next` in -o json/yaml; --all fetches every page."""
    query = [(name, value) for name, value in filters.items() if value]
    header = ["QUEUED", "RUN", "NOTIFICATION", "KIND", "STATE", "STATUS", "ATTEMPTS", "REASON"]
    paged(ctx, "/api/v1/deliveries", query, (limit, cursor, every), ("no deliveries", header, _delivery_row))


def _run_row(item: dict[str, Any]) -> list[str]:
    counts = item.get("notifications") or {}
    return [
        item.get("updated") or "",
        f"{item.get('project')}/{item.get('uid')}",
        item.get("name") or "",
        item.get("state") or "",
        *(str(counts.get(status, 0)) for status in ("sent", "error", "pending", "skipped")),
        item.get("last_update") or "",
    ]


@click.command(cls=RunheraldCommand, short_help="runs across projects, from the ledger in SQL")
@click.option(
    "--project", "projects", multiple=True, metavar="PROJECT", help="only this project's (repeatable)"
)
@click.option(
    "--state", "states", multiple=True, metavar="STATE", help="only runs in this state (repeatable)"
)
@click.option("--since", metavar="TIME", help="recorded at or after: RFC 3339, or a duration back (1h)")
@paging_options
@json_alias()
@click.pass_context
def runs(
    ctx: click.Context,
    projects: tuple[str, ...],
    states: tuple[str, ...],
    since: str | None,
    limit: int,
    cursor: str | None,
    every: bool,
) -> None:
    """Runs the ledger knows, with or without notifications, last recorded first, and their
    notifications counted by status: which runs failed in the last hour (--state error --since 1h).

    A page at a time, as `runherald deliveries`: --limit, --cursor, --all."""
    query = [("project", p) for p in projects] + [("state", s) for s in states]
    query += [("since", since)] if since else []
    header = ["UPDATED", "RUN", "NAME", "STATE", "SENT", "ERROR", "PENDING", "SKIPPED", "LAST_UPDATE"]
    paged(ctx, "/api/v1/runs", query, (limit, cursor, every), ("no runs", header, _run_row))


COMMANDS: list[click.Command] = [deliveries, runs]

__all__ = ["COMMANDS", "deliveries", "paged", "paging_options", "runs"]
