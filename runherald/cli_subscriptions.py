"""``runherald subscriptions``: add, list, get and delete webhook subscriptions, through the HTTP API.

A new subscription is checked here first (the API's own check), so a bad URL, matcher or state exits 2
with its path without a request; what only the API can refuse (a name already taken) exits 2 too.
"""

from __future__ import annotations

from typing import Any

import click

from runherald.api_client import ApiProblems, call_api
from runherald.cli_common import (
    CliState,
    RunheraldGroup,
    api_get,
    delete_named,
    emit,
    get_named,
    json_alias,
    print_items,
    print_table,
)
from runherald.errors import ApiError, InvalidArgumentError
from runherald.subscriptions import parse_subscription

PATH = "/api/v1/subscriptions"
COLUMNS = ("NAME", "URL", "MATCHERS", "STATES", "SIGNED")


class InvalidSubscription(InvalidArgumentError):
    """A subscription refused, here or by the API: a summary line, then one problem a line."""


def _describe(item: dict[str, Any]) -> list[tuple[str, str]]:
    secret = item.get("secret")
    return [
        ("NAME:", str(item.get("name", ""))),
        ("URL:", str(item.get("url", ""))),
        ("MATCHERS:", " ".join(item.get("matchers") or []) or "(every run)"),
        ("STATES:", ", ".join(item.get("states") or []) or "(every state)"),
        ("SIGNED:", "no" if secret is None else "yes (secret sealed)"),
    ]


def _row(item: dict[str, Any]) -> tuple[str, ...]:
    described = dict(_describe(item))
    return (item["name"], item["url"], *(described[k] for k in ("MATCHERS:", "STATES:", "SIGNED:")))


@click.group(cls=RunheraldGroup, short_help="webhook subscriptions: add, list, get, delete")
def subscriptions() -> None:
    """Webhook subscriptions: every state change of the runs a subscription matches is POSTed to its
    URL as a CloudEvent (type io.runherald.run.state), signed with Standard Webhooks when it has a
    secret, with delivery ids, retries and the ledger as notifications."""


@subscriptions.command(name="add")
@click.option("--name", metavar="NAME", help="its name  [default: generated and printed]")
@click.option("--url", metavar="URL", required=True, help="where each state change is POSTed")
@click.option("--matcher", "matchers", metavar="MATCHER", multiple=True, help="e.g. 'project=\"alpha\"'")
@click.option(
    "--state", "states", metavar="STATE", multiple=True, help="a run state it wants  [default: every]"
)
@click.option("--secret", metavar="SECRET", help="Standard Webhooks signing secret (whsec_... or any text)")
@json_alias()
@click.pass_context
def subscriptions_add(
    ctx: click.Context,
    name: str | None,
    url: str,
    matchers: tuple[str, ...],
    states: tuple[str, ...],
    secret: str | None,
) -> None:
    """Add a webhook subscription and print its name. MATCHER is Alertmanager's syntax over a run's
    fields (project, name, uid, state, iteration, labels.<key>); none: every run."""
    state = ctx.ensure_object(CliState)
    body: dict[str, Any] = {"url": url, "matchers": list(matchers), "states": list(states)}
    if name is not None:
        body["name"] = name
    if secret is not None:
        body["secret"] = secret
    _, problems = parse_subscription({"name": name or "new", **body}, f"subscriptions.{name or 'new'}")
    if problems:
        count = len(problems)
        summary = f"the subscription has {count} problem{'s' if count != 1 else ''}; nothing was added"
        raise InvalidSubscription("\n".join([summary, *(str(problem) for problem in problems)]))
    try:
        created = call_api(state.api, state.token, "POST", PATH, body)
    except ApiProblems as exc:
        raise InvalidSubscription(str(exc)) from None
    except ApiError as exc:
        if exc.status == 409:
            raise InvalidSubscription(str(exc)) from None
        raise
    emit(state, created, lambda: click.echo(created["name"]))


@subscriptions.command(name="list")
@json_alias()
@click.pass_context
def subscriptions_list(ctx: click.Context) -> None:
    """The webhook subscriptions, by name (secrets never shown)."""
    state = ctx.ensure_object(CliState)
    found = api_get(state, PATH)["subscriptions"]

    emit(state, found, lambda: print_items(found, "no subscriptions", COLUMNS, _row))


@subscriptions.command(name="get")
@click.argument("name")
@json_alias()
@click.pass_context
def subscriptions_get(ctx: click.Context, name: str) -> None:
    """One webhook subscription."""
    get_named(ctx, "subscriptions", name, lambda item: print_table(_describe(item)))


@subscriptions.command(name="delete")
@click.argument("name")
@json_alias()
@click.pass_context
def subscriptions_delete(ctx: click.Context, name: str) -> None:
    """Delete a webhook subscription: nothing more is sent to it (deliveries already queued still go)."""
    delete_named(ctx, "subscriptions", name, "subscription")


COMMANDS: list[click.Command] = [subscriptions]
