"""``runherald rules test``: the dry run of the alert rules for a run, through the HTTP API.

Registered on the ``rules`` group by runherald.cli. It asks ``POST /api/v1/rules/test`` (scope
``read``) and shows, per rule, whether it matched or which matcher did not hold, and per receiver of a
matching rule whether it would be sent and why, then what each channel would get. Nothing is sent.
"""

from __future__ import annotations

from typing import IO, Any

import click

from runherald.api_client import call_api
from runherald.cli_common import CliState, RunheraldCommand, emit, print_table
from runherald.errors import ApiError, InvalidArgumentError
from runherald.publish import parse_run_file

PATH = "/api/v1/rules/test"


def read_one_run(source: IO[bytes]) -> dict[str, Any]:
    """The one run of a JSON or YAML file; InvalidArgumentError for none or several."""
    runs = parse_run_file(source.read())
    if len(runs) != 1:
        raise InvalidArgumentError(f"{source.name}: expected one run, found {len(runs)}")
    return runs[0]


def decision_rows(answer: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """One row per receiver of a matching rule, one per rule that did not match (the matcher that
    did not hold), one per matching rule without receivers."""
    rows = [("RULE", "MATCHED", "RECEIVER", "DECISION", "REASON")]
    for rule in answer.get("rules", []):
        name = str(rule.get("rule"))
        if not rule.get("matched"):
            rows.append((name, "not matched", "-", "-", f"{rule.get('failed_matcher')} does not hold"))
            continue
        receivers = rule.get("receivers") or []
        if not receivers:
            rows.append((name, "matched", "-", "-", "the rule has no receivers"))
        for receiver in receivers:
            decision = "send" if receiver.get("send") else ("muted" if receiver.get("silence") else "skip")
            reason = str(receiver.get("reason") or "").replace("\n", " ")
            rows.append((name, "matched", str(receiver.get("receiver")), decision, reason))
    return rows


def rendered_lines(answer: dict[str, Any]) -> list[str]:
    """What each receiver of a matching rule would get, as its channel would send it."""
    lines: list[str] = []
    for rule in answer.get("rules", []):
        for receiver in rule.get("receivers") or []:
            rendered = receiver.get("rendered")
            if not rendered:
                continue
            verdict = "would be sent" if receiver.get("send") else "would NOT be sent"
            lines += [
                "",
                f"== {receiver.get('notification')} ({rendered.get('kind')}): {verdict}",
                f"message: {rendered.get('message')}",
                f"severity: {rendered.get('severity')}",
                str(rendered.get("text") or rendered.get("error") or ""),
            ]
    return lines


@click.command(name="test", cls=RunheraldCommand, short_help="dry run of the rules for a run")
@click.option(
    "--run",
    "run_file",
    required=True,
    type=click.File("rb"),
    metavar="RUN.json",
    help="the run to test, as JSON or YAML (one run; - for stdin)",
)
@click.option("--rule", "rule_names", multiple=True, metavar="NAME", help="only this rule (repeatable)")
@click.pass_context
def test(ctx: click.Context, run_file: IO[bytes], rule_names: tuple[str, ...]) -> None:
    """Dry run of the alert rules in force for a run: which rules match (or which matcher does not
    hold), whether each receiver would be sent now (when, condition, silences) and what its channel
    would get. Nothing is sent. Exit 2 for an invalid run or an unknown rule name.
    """
    state = ctx.ensure_object(CliState)
    body: dict[str, Any] = {"run": read_one_run(run_file)}
    if rule_names:
        body["rules"] = list(rule_names)
    try:
        answer = call_api(state.api, state.token, "POST", PATH, body)
    except ApiError as exc:
        if exc.status == 400:
            raise InvalidArgumentError(str(exc)) from exc
        raise

    def table() -> None:
        if not answer.get("rules"):
            click.echo("no alert rules are stored")
            return
        print_table(decision_rows(answer))
        for line in rendered_lines(answer):
            click.echo(line)

    emit(state, answer, table)


COMMANDS: list[click.Command] = [test]
