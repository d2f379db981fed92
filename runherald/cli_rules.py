"""``runherald rules``, ``runherald receivers`` and ``runherald check-config``: the alert configuration,
through the HTTP API (so its tokens and scopes apply), and checked offline.

``rules apply -f FILE`` checks the whole file here first (every problem with its path, exit 2, nothing
sent), then ``PUT /api/v1/config``, where it is checked again against what is stored (a rule may name a
receiver stored before) and applied receivers first. ``check-config FILE`` is the offline check alone,
as ``amtool check-config`` is: a receiver the file names but does not define is only a warning there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import IO, Any

import click

from runherald.admission import Problem
from runherald.alerting import Document, InvalidConfig, check_document, load_text
from runherald.api_client import call_api
from runherald.cli_common import (
    CliState,
    CommandFailed,
    RunheraldCommand,
    RunheraldGroup,
    delete_named,
    emit,
    get_named,
    list_named,
    print_items,
    print_table,
)
from runherald.progress import Progress, Waiting
from runherald.transitions import parse_when

CONFIG_FILE = click.File("rb")


def _source(file: IO[bytes]) -> str:
    name = getattr(file, "name", None)
    return name if isinstance(name, str) and name != "<stdin>" else "stdin"


def _load(file: IO[bytes]) -> Any:
    """The document of a file (YAML or JSON), or InvalidConfig saying where it does not parse."""
    return load_text(file.read(), source=_source(file))


def _objects(document: Any) -> int:
    """How many receivers, rules, integrations and subscriptions a document holds (for progress)."""
    if not isinstance(document, Mapping):
        return 0
    sections = (document.get(key) for key in ("receivers", "rules", "integrations", "subscriptions"))
    return sum(len(section) for section in sections if isinstance(section, list | Mapping))


def _as_json(document: Any) -> Any:
    """The document as the API takes it: JSON (YAML's dates and times as their text)."""
    return json.loads(json.dumps(document, default=str))


def _warn(warnings: Sequence[Problem]) -> None:
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


def _joined(values: Any) -> str:
    return ", ".join(str(value) for value in values or ()) or "-"


def _when_text(when: Any) -> list[str]:
    """A rule's when for a table: states, then transitions (state_changed(completed>error))."""
    states, transitions, problems = parse_when(when, "when")
    return [*states, *(str(transition) for transition in transitions)] if not problems else list(when or ())


@click.group(cls=RunheraldGroup, short_help="alert rules: apply, list, get, delete, test")
def rules() -> None:
    """Alert rules, configured once for every run (see the README, "Alert rules").

    A rule's matchers (Alertmanager syntax, e.g. project=~"prod-.*") select runs; each of its receivers
    gets a notification named RULE/RECEIVER, with MLRun's when, condition, severity and message.
    """


@click.group(cls=RunheraldGroup, short_help="receivers of alert rules: list, get, delete")
def receivers() -> None:
    """Receivers: destinations defined once, named by rules and by runs' own notifications."""


@rules.command(name="apply", short_help="apply a configuration file: receivers, then rules")
@click.option(
    "-f",
    "--filename",
    "file",
    required=True,
    type=CONFIG_FILE,
    metavar="FILE",
    help="the configuration document, YAML or JSON (- for stdin)",
)
@click.option(
    "--prune",
    is_flag=True,
    help="delete the rules, receivers, integrations and subscriptions the file no longer holds",
)
@click.option("--dry-run", is_flag=True, help="say what would change, change nothing")
@click.pass_context
def rules_apply(ctx: click.Context, file: IO[bytes], prune: bool, dry_run: bool) -> None:
    """Apply a configuration document (receivers, rules, integrations, subscriptions) through the API,
    idempotently.

    The whole file is checked first, here (every problem with its path; exit 2, nothing applied), then
    again by the worker against what is stored. Receivers are written before the rules that name them.
    """
    state = ctx.ensure_object(CliState)
    document = _load(file)
    size = _objects(document)
    with Waiting(f"checking {size} objects", quiet=state.quiet):
        check_document(document).raise_problems()
    body = {"document": _as_json(document), "prune": prune, "dry_run": dry_run}
    with Progress("applied", size, quiet=state.quiet) as progress:
        # One request, applied whole by the worker: no count until it answers, the seconds meanwhile.
        with Waiting(f"applying {size} objects through {state.api}", quiet=state.quiet):
            answer = call_api(state.api, state.token, "PUT", "/api/v1/config", body)
        progress.update(size)
    _warn([Problem(str(w.get("path") or ""), str(w.get("message"))) for w in answer.get("warnings") or []])

    def table() -> None:
        changes = answer.get("changes") or []
        if not changes:
            click.echo("the file holds no receivers, rules, integrations or subscriptions; nothing changed")
            return
        action = "WOULD" if answer.get("dry_run") else "ACTION"
        print_table([("TYPE", "NAME", action), *((c["type"], c["name"], c["action"]) for c in changes)])
        if answer.get("dry_run"):
            click.echo("(dry run: nothing was changed)")

    emit(state, answer, table)


def _rules_table(items: Sequence[Mapping[str, Any]]) -> None:
    print_items(
        items,
        "no rules",
        ("NAME", "MATCHERS", "WHEN", "RECEIVERS"),
        lambda rule: (
            rule["name"],
            _joined(rule.get("matchers")),
            _joined(_when_text(rule.get("when"))),
            _joined(rule.get("receivers")),
        ),
    )


def _receivers_table(items: Sequence[Mapping[str, Any]]) -> None:
    print_items(
        items,
        "no receivers",
        ("NAME", "KIND", "PARAMS", "SECRET_PARAMS"),
        lambda receiver: (
            receiver["name"],
            receiver.get("kind") or "",
            _joined(sorted(receiver.get("params") or {})),
            _joined(sorted(receiver.get("secret_params") or {})),
        ),
    )


def _details(item: Mapping[str, Any]) -> None:
    """One object as FIELD VALUE lines (lists joined, mappings as key=value)."""
    rows = [("FIELD", "VALUE")]
    for key, value in item.items():
        if isinstance(value, Mapping):
            shown = _joined(f"{k}={v}" for k, v in sorted(value.items()))
        elif isinstance(value, list):
            shown = _joined(value)
        else:
            shown = str(value)
        rows.append((key, shown.replace("\n", " ")))
    print_table(rows)


@rules.command(name="list", short_help="every rule: matchers, when, receivers")
@click.pass_context
def rules_list(ctx: click.Context) -> None:
    """Every stored rule. -o yaml prints a document `rules apply -f` takes back."""
    list_named(ctx, "rules", _rules_table)


@rules.command(name="get", short_help="one rule")
@click.argument("name")
@click.pass_context
def rules_get(ctx: click.Context, name: str) -> None:
    """One stored rule, by name."""
    get_named(ctx, "rules", name, _details)


@rules.command(name="delete", short_help="delete one rule")
@click.argument("name")
@click.pass_context
def rules_delete(ctx: click.Context, name: str) -> None:
    """Delete one rule: runs evaluated from now on are not notified by it."""
    delete_named(ctx, "rules", name, "rule")


@receivers.command(name="list", short_help="every receiver: kind, params (secrets never shown)")
@click.pass_context
def receivers_list(ctx: click.Context) -> None:
    """Every stored receiver; literal secret values are never shown (references are)."""
    list_named(ctx, "receivers", _receivers_table)


@receivers.command(name="get", short_help="one receiver")
@click.argument("name")
@click.pass_context
def receivers_get(ctx: click.Context, name: str) -> None:
    """One stored receiver, by name (literal secret values never shown)."""
    get_named(ctx, "receivers", name, _details)


@receivers.command(name="delete", short_help="delete one receiver no rule names")
@click.argument("name")
@click.pass_context
def receivers_delete(ctx: click.Context, name: str) -> None:
    """Delete one receiver; refused while a stored rule names it."""
    delete_named(ctx, "receivers", name, "receiver")


def _summary(document: Document) -> str:
    receivers_count, rules_count = len(document.receivers), len(document.rules)
    summary = (
        f"{receivers_count} receiver{'s' if receivers_count != 1 else ''}, "
        f"{rules_count} rule{'s' if rules_count != 1 else ''}"
    )
    for count, kind in (
        (len(document.integrations), "integration"),
        (len(document.subscriptions), "subscription"),
    ):
        summary += f", {count} {kind}{'s' if count != 1 else ''}" if count else ""
    return summary + ": OK"


@click.command(name="check-config", cls=RunheraldCommand, short_help="check a configuration file, offline")
@click.argument("file", type=CONFIG_FILE, metavar="FILE|-")
@click.pass_context
def check_config(ctx: click.Context, file: IO[bytes]) -> None:
    """Check a configuration document offline, like `amtool check-config`: every problem with its path
    (exit 2), warnings (a receiver the file names but does not define: it must exist when applied),
    else a summary line. Nothing is sent anywhere."""
    state = ctx.ensure_object(CliState)
    document = check_document(_load(file))
    if state.output != "table":
        answer = {
            "ok": not document.problems,
            "receivers": [receiver.name for receiver in document.receivers],
            "rules": [rule.name for rule in document.rules],
            "integrations": [integration.name for integration in document.integrations],
            "subscriptions": [subscription.name for subscription in document.subscriptions],
            "problems": [problem.as_dict() for problem in document.problems],
            "warnings": [warning.as_dict() for warning in document.warnings],
        }
        emit(state, answer, lambda: None)
        if document.problems:
            ctx.exit(InvalidConfig.exit_code)
        return
    _warn(document.warnings)
    if document.problems:
        count = len(document.problems)
        said = f"{ctx.command_path}: {_source(file)} has {count} problem{'s' if count != 1 else ''}"
        raise CommandFailed("\n".join([said, *(str(problem) for problem in document.problems)]), 2)
    click.echo(_summary(document))


COMMANDS: list[click.Command] = [rules, receivers, check_config]
