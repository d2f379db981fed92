"""``runherald subscribe``: print run state changes as they happen, from the API's live stream (SSE).

Each change is one line: ``-o table`` (default) time, project/uid, name, state; ``-o json`` the run dict.
It runs until Ctrl-C (exit 0). A stream the server ends, or a connection that breaks once streaming, is
resumed from the last event (Last-Event-ID): nothing is printed twice or missed. Flags are checked before
anything is sent (exit 2); an API that cannot be reached at the start exits 1.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import click
import orjson

from runherald.cli_common import CliState, RunheraldCommand, json_alias
from runherald.errors import ApiError, ApiUnavailable, InvalidArgumentError
from runherald.live import parse_query
from runherald.sse import SubscribeRefused, subscribe

SUBSCRIBE_PATH = "/api/v1/subscribe"


class InvalidSubscription(InvalidArgumentError):
    """A flag of `runherald subscribe` that the API would refuse."""


def query_of(
    project: str | None, states: tuple[str, ...], labels: tuple[str, ...], since: str | None
) -> list[tuple[str, str]]:
    """The stream's query, checked here as the API checks it (InvalidSubscription, exit 2)."""
    query = [("project", project)] if project else []
    query += [("state", state) for state in states]
    query += [("label", label) for label in labels]
    query += [("since", since)] if since else []
    _, _, problems = parse_query(query, time.time())
    if problems:
        flags = {"project": "--project", "state": "--state", "label": "--label", "since": "--since"}
        raise InvalidSubscription("\n".join(f"{flags.get(p.path, p.path)}: {p.message}" for p in problems))
    return query


def table_line(run: dict[str, Any]) -> str:
    """One change as a line: when (the run's last_update, else now), project/uid, name, state."""
    meta, status = run.get("metadata") or {}, run.get("status") or {}
    when = status.get("last_update") or datetime.now(UTC).isoformat(timespec="seconds")
    key = f"{meta.get('project', '')}/{meta.get('uid', '')}"
    return f"{when}  {key}  {meta.get('name', '')}  {status.get('state', '')}"


async def follow(state: CliState, query: list[tuple[str, str]]) -> None:
    """Print every event until cancelled; ApiUnavailable / ApiError when the API cannot serve it."""
    headers = {"Authorization": f"Bearer {state.token}"} if state.token else {}
    url = state.api.rstrip("/") + SUBSCRIBE_PATH
    as_json = state.output == "json"
    async with aiohttp.ClientSession() as session:
        try:
            async for event in subscribe(session, url, params=query, headers=headers, retry_first=False):
                if event.event != "run":
                    continue
                run = event.json()
                line = orjson.dumps(run).decode() if as_json else table_line(run)
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        except SubscribeRefused as exc:
            if exc.status == 400:
                raise InvalidSubscription(str(exc)) from None
            raise ApiError(
                f"the API at {state.api} refused the stream ({exc.status}): {exc}", exc.status
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiUnavailable(
                f"cannot reach the API at {state.api}: {exc or type(exc).__name__}"
            ) from None


@click.command(name="subscribe", cls=RunheraldCommand, short_help="print run state changes as they happen")
@click.option("--project", metavar="GLOB", help="only projects matching this shell glob (ml-*)")
@click.option("--state", "states", multiple=True, metavar="STATE", help="only these states (repeatable)")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="only runs with all these labels")
@click.option("--since", metavar="TIME", help="start in the past: RFC 3339 or a duration back (10m, 2h)")
@json_alias()
@click.pass_context
def subscribe_command(
    ctx: click.Context,
    project: str | None,
    states: tuple[str, ...],
    labels: tuple[str, ...],
    since: str | None,
) -> None:
    """Print run state changes as they happen, until Ctrl-C.

    One line per change: time, project/uid, name, state (-o json: the run dict, one a line, secrets
    redacted). Reads the API's live stream (GET /api/v1/subscribe, `read` scope)."""
    state = ctx.ensure_object(CliState)
    if state.output not in ("table", "json"):
        raise InvalidSubscription(f"-o {state.output}: subscribe prints table or json")
    query = query_of(project, states, labels, since)
    try:
        asyncio.run(follow(state, query))
    except KeyboardInterrupt:
        pass


COMMANDS: list[click.Command] = [subscribe_command]
