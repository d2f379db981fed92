"""``runherald silence``: add, list, get and expire silences, through the HTTP API.

A new silence is checked here first (the same check the API makes), so a bad matcher, duration or
missing comment exits 2 with its path without a request; what only the API can refuse exits 2 too.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Sequence
from typing import Any

import click

from runherald.alerting import NAME, InvalidConfig
from runherald.api_client import call_api
from runherald.cli_common import CliState, RunheraldGroup, api_get, emit, json_alias, print_table
from runherald.errors import ApiError, InvalidArgumentError
from runherald.silences import parse_silence

ANONYMOUS = "anonymous"


def default_author() -> str:
    """The USER environment variable if it is a valid name, else "anonymous"."""
    user = os.environ.get("USER", "")
    return user if NAME.match(user) else ANONYMOUS


class InvalidSilence(InvalidArgumentError):
    """A silence refused, here or by the API: a summary line, then one problem a line."""


def _refused(lines: Sequence[str]) -> InvalidSilence:
    count = len(lines)
    summary = f"the silence has {count} problem{'s' if count != 1 else ''}; nothing was added"
    return InvalidSilence("\n".join([summary, *lines]))


def _problem_lines(problems: Any) -> list[str]:
    lines = []
    for problem in problems or []:
        if isinstance(problem, dict):
            path, message = problem.get("path", ""), problem.get("message", "")
            lines.append(f"{path}: {message}" if path else str(message))
        else:
            lines.append(str(problem))
    return lines


def _silence_path(silence_id: str) -> str:
    return "/api/v1/silences/" + urllib.parse.quote(silence_id, safe="")


def _matchers(silence: dict[str, Any]) -> str:
    return " ".join(silence.get("matchers") or [])


@click.group(cls=RunheraldGroup, short_help="silences: add, list, get, expire")
def silence() -> None:
    """Silences mute the deliveries they match, for a while: a run's own notifications and rules'
    alike. A muted delivery is recorded `skipped`, its reason naming the silence."""


@silence.command(name="add")
@click.argument("matchers", nargs=-1, metavar="MATCHER...")
@click.option("--duration", metavar="DURATION", help="how long it lasts: 30m, 2h, 1d, 1h30m")
@click.option("--comment", metavar="TEXT", help="why (required)")
@click.option("--author", metavar="NAME", help="who  [default: $USER, else anonymous]")
@click.option("--start", metavar="TIME", help="when it starts, ISO 8601  [default: now]")
@json_alias()
@click.pass_context
def silence_add(
    ctx: click.Context,
    matchers: tuple[str, ...],
    duration: str | None,
    comment: str | None,
    author: str | None,
    start: str | None,
) -> None:
    """Add a silence and print its id. MATCHER is Alertmanager's syntax over a run's fields
    (project, name, uid, state, iteration, labels.<key>) and a delivery's (notification, receiver),
    e.g. 'project="alpha"' 'labels.team=~"vision|nlp"' 'notification="prod-failures/ml-oncall"'."""
    state = ctx.ensure_object(CliState)
    body: dict[str, Any] = {
        "matchers": list(matchers),
        "comment": comment or "",
        "author": default_author() if author is None else author,
    }
    if duration is not None:
        body["duration"] = duration
    if start is not None:
        body["starts_at"] = start
    try:
        parse_silence(body)  # the API's own check, before any request
    except InvalidConfig as exc:
        raise _refused([str(problem) for problem in exc.problems]) from None
    try:
        created = call_api(state.api, state.token, "POST", "/api/v1/silences", body)
    except ApiError as exc:
        if exc.status != 400:
            raise
        lines = _problem_lines(getattr(exc, "problems", None))
        raise (_refused(lines) if lines else InvalidSilence(str(exc))) from None
    emit(state, created, lambda: click.echo(created["id"]))


@silence.command(name="list")
@click.option("--expired", is_flag=True, help="the expired silences (of the last 5 days) instead")
@json_alias()
@click.pass_context
def silence_list(ctx: click.Context, expired: bool) -> None:
    """The silences in force or to come, ending first listed first; --expired: those that ended."""
    state = ctx.ensure_object(CliState)
    silences = api_get(state, "/api/v1/silences" + ("?expired=true" if expired else ""))["silences"]

    def table() -> None:
        if not silences:
            click.echo("no expired silences" if expired else "no silences")
            return
        rows = [("ID", "STATE", "ENDS", "MATCHERS", "AUTHOR", "COMMENT")]
        for item in silences:
            rows.append(
                (
                    item["id"],
                    item.get("state", ""),
                    item.get("ends_at", ""),
                    _matchers(item),
                    item.get("author", ""),
                    str(item.get("comment", "")).replace("\n", " "),
                )
            )
        print_table(rows)

    emit(state, silences, table)


@silence.command(name="get")
@click.argument("silence_id", metavar="ID")
@json_alias()
@click.pass_context
def silence_get(ctx: click.Context, silence_id: str) -> None:
    """One silence: its matchers, times, author, comment and state."""
    state = ctx.ensure_object(CliState)
    item = api_get(state, _silence_path(silence_id))

    def table() -> None:
        fields = ("id", "state", "starts_at", "ends_at", "created_at", "author", "comment")
        rows = [(f"{name.upper()}:", str(item.get(name, ""))) for name in fields]
        rows.insert(2, ("MATCHERS:", _matchers(item)))
        print_table(rows)

    emit(state, item, table)


@silence.command(name="expire")
@click.argument("silence_id", metavar="ID")
@json_alias()
@click.pass_context
def silence_expire(ctx: click.Context, silence_id: str) -> None:
    """End a silence now (it stays listed under --expired for 5 days)."""
    state = ctx.ensure_object(CliState)
    item = call_api(state.api, state.token, "DELETE", _silence_path(silence_id))

    def table() -> None:
        if item.get("already_expired"):
            click.echo(f"silence {item['id']} was already expired (at {item.get('ends_at')})")
        else:
            click.echo(f"silence {item['id']} expired")

    emit(state, item, table)


COMMANDS: list[click.Command] = [silence]
