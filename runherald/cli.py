"""The ``runherald`` command line (click).

The global options (``--broker``, ``--api``, ``--token``, ``--config``, ``-o/--output``,
``--verbose``) go before or after the subcommand; a value given after it wins. Exit codes, as
DESIGN.md says: 0 done, 2 invalid input (usage, validation), 1 could not be done (broker or API
unreachable, server error). An expected failure is one line on stderr: ``runherald CMD: why``.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Sequence
from typing import IO, Any

import click

from runherald.cli_common import (
    RUN_FILE,
    CliState,
    RunheraldCommand,
    RunheraldGroup,
    api_get,
    emit,
    given,
    json_alias,
    kafka_client,
    print_table,
    read_runs,
)
from runherald.cli_deliveries import COMMANDS as DELIVERY_COMMANDS
from runherald.cli_doctor import doctor_command
from runherald.cli_integrations import COMMANDS as INTEGRATION_COMMANDS
from runherald.cli_keys import keys as keys_group
from runherald.cli_rule_test import COMMANDS as RULE_TEST_COMMANDS
from runherald.cli_rules import COMMANDS as RULE_COMMANDS
from runherald.cli_rules import rules as rules_group
from runherald.cli_silences import COMMANDS as SILENCE_COMMANDS
from runherald.cli_subscribe import COMMANDS as SUBSCRIBE_COMMANDS
from runherald.cli_subscriptions import COMMANDS as SUBSCRIPTION_COMMANDS
from runherald.cli_tokens import token
from runherald.config import SettingsWarning, env_name, redact
from runherald.errors import InvalidArgumentError
from runherald.progress import Progress, Waiting


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: IO[str] | None = None,
    line: str | None = None,
) -> None:
    if issubclass(category, SettingsWarning):
        click.echo(f"runherald: warning: {message}", err=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@click.group(name="runherald", cls=RunheraldGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="runherald", prog_name="runherald")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Run-state notifications on Kafka: evaluate, send, record.

    Every setting is also a RUNHERALD_* environment variable or a key of the settings file
    (`runherald config show` lists them). Shell completion (bash):
    eval "$(_RUNHERALD_COMPLETE=bash_source runherald)"
    """
    ctx.ensure_object(CliState)
    ctx.with_resource(warnings.catch_warnings())
    warnings.simplefilter("default", SettingsWarning)
    warnings.showwarning = _show_warning


cli.add_command(keys_group)
cli.add_command(token)
cli.add_command(doctor_command(RunheraldCommand))
for _command in [
    *RULE_COMMANDS,
    *SILENCE_COMMANDS,
    *SUBSCRIPTION_COMMANDS,
    *INTEGRATION_COMMANDS,
    *SUBSCRIBE_COMMANDS,
    *DELIVERY_COMMANDS,
]:
    cli.add_command(_command)
for _command in RULE_TEST_COMMANDS:
    rules_group.add_command(_command)


def run_source_options(command: Any) -> Any:
    """--run-topics and --run-topic-pattern (runherald.run_sources), on `worker` and `dev`."""
    command = click.option(
        "--run-topic-pattern",
        metavar="REGEX",
        help="also read runs from every topic whose whole name matches, topics created later included",
    )(command)
    return click.option(
        "--run-topics",
        metavar="A,B",
        help="also read runs from these topics: run dicts, MLRun webhook bodies, CloudEvents, generic",
    )(command)


@cli.command(short_help="embedded broker, a worker and the API, in the foreground")
@click.option("--web-port", type=int, envvar=env_name("web_port"), show_envvar=True, help="HTTP API port")
@click.option("--broker-port", type=int, help="embedded broker port  [default: 9092, or a free one]")
@run_source_options
@click.pass_context
def dev(ctx: click.Context, web_port: int | None, broker_port: int | None, **sources: str | None) -> None:
    """Embedded broker, a worker and the HTTP API, in the foreground.

    With --broker, that Kafka instead of the embedded broker. Ctrl-C stops everything.
    """
    from runherald.worker import run_dev

    state = ctx.ensure_object(CliState)
    settings = state.settings(**given(ctx, web_port=web_port, **sources))
    code = run_dev(
        settings, broker_port=broker_port, external_broker="broker" in state.given, verbose=state.verbose
    )
    ctx.exit(code)


@cli.command(short_help="one pipeline worker against --broker")
@click.option("--web-port", type=int, envvar=env_name("web_port"), show_envvar=True, help="HTTP API port")
@run_source_options
@click.pass_context
def worker(ctx: click.Context, web_port: int | None, **sources: str | None) -> None:
    """One pipeline worker against --broker (one --web-port per worker on a host)."""
    from runherald.worker import run_worker

    state = ctx.ensure_object(CliState)
    settings = state.settings(**given(ctx, web_port=web_port, **sources))
    log_level = "info" if state.verbose and settings.log_level not in {"debug", "info"} else None
    ctx.exit(run_worker(settings, log_level=log_level, banner=state.verbose))


@cli.command(short_help="publish runs: JSON, a JSON array, NDJSON or YAML")
@RUN_FILE
@click.pass_context
def publish(ctx: click.Context, file: IO[bytes]) -> None:
    """Publish run dicts: one JSON object, a JSON array, NDJSON, or YAML; prints each run's key."""
    from runherald.publish import is_list_input, parse_run_file, validate_runs
    from runherald.publish import publish as publish_runs

    state, data = ctx.ensure_object(CliState), file.read()
    runs, settings = parse_run_file(data), state.settings()
    validate_runs(runs, settings, as_list=len(runs) > 1 or is_list_input(data))  # before the broker is asked
    keys = kafka_client(state, settings, publish_runs(runs, settings))
    emit(state, {"accepted": len(keys), "runs": keys}, lambda: click.echo("\n".join(keys)))


@cli.command(short_help="a run's notification statuses, per state")
@click.argument("run", metavar="PROJECT/UID")
@json_alias()
@click.pass_context
def status(ctx: click.Context, run: str) -> None:
    """A run's notification statuses, one line per notification and state."""
    if run.count("/") != 1 or not all(run.split("/")):
        raise click.BadParameter(f"expected PROJECT/UID, got {run!r}", ctx, param_hint="PROJECT/UID")
    state = ctx.ensure_object(CliState)
    body = api_get(state, f"/api/v1/runs/{run}/notifications")

    def table() -> None:
        if not body:
            click.echo(f"{run}: no notifications recorded")
            return
        rows = [("NAME", "STATE", "STATUS", "ATTEMPTS", "SENT_TIME", "REASON")]
        for name, item in sorted(body.items()):
            for run_state, per_state in sorted(item.get("states", {}).items()):
                rows.append(
                    (
                        name or '""',
                        run_state,
                        per_state.get("status") or "",
                        str(per_state.get("attempts", 0)),
                        per_state.get("sent_time") or "",
                        (per_state.get("reason") or "").replace("\n", " "),
                    )
                )
        print_table(rows)

    emit(state, body, table)


@cli.command(short_help="dry run: what would be sent, and whether")
@RUN_FILE
@click.option("--notification", metavar="NAME", help="only the notification with this name")
@json_alias()
@click.pass_context
def render(ctx: click.Context, file: IO[bytes], notification: str | None) -> None:
    """Dry run: what each notification of a run would send, and whether. Sends nothing."""
    from runherald.preview import dry_run

    state = ctx.ensure_object(CliState)
    runs = read_runs(file)
    settings = state.settings()
    previews = [item for run in runs for item in dry_run(run, settings, notification)]
    if notification and not previews:
        raise InvalidArgumentError(f"no notification named {notification!r}")

    def table() -> None:
        for item in previews:
            click.echo(item.text())
            click.echo()
        if not previews:
            click.echo("no notifications in the run")

    emit(state, [item.to_dict() for item in previews], table)


@cli.group(name="dead-letter", short_help="list or replay the dead-letter topic")
def dead_letter() -> None:
    """List or replay the dead-letter topic's records."""


@dead_letter.command(name="list")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="only the N most recent records")
@json_alias()
@click.pass_context
def dead_letter_list(ctx: click.Context, limit: int | None) -> None:
    """One line per record: id, time, stage, source, reason."""
    from runherald.deadletter import read_dead_letters

    state = ctx.ensure_object(CliState)
    settings = state.settings()
    letters = kafka_client(state, settings, read_dead_letters(settings, limit))
    topic = settings.topic("dead-letter")

    def table() -> None:
        if not letters:
            click.echo(f"{topic}: no records")
            return
        rows = [("ID", "TIME", "STAGE", "SOURCE", "REASON")]
        for letter in letters:
            source = " ".join(f"{key}={value}" for key, value in sorted(letter.source.items()))
            if letter.key:
                source = f"{letter.key} {source}".strip()
            rows.append((letter.id, letter.time, letter.stage, source, letter.reason.replace("\n", " ")))
        print_table(rows)

    emit(state, [letter.to_json() for letter in letters], table)


@dead_letter.command(name="replay")
@click.option("--id", "ids", multiple=True, metavar="ID", help="a record id from `list` (repeatable)")
@click.option("--all", "replay_all", is_flag=True, help="every record that can be replayed")
@click.pass_context
def dead_letter_replay(ctx: click.Context, ids: tuple[str, ...], replay_all: bool) -> None:
    """Re-publish failed deliveries (sent again despite `error`) and dead-lettered runs."""
    from runherald.deadletter import chosen, read_dead_letters, replay, replay_report

    if bool(ids) == replay_all:
        raise click.UsageError("give --id ID (repeatable) or --all", ctx)
    state = ctx.ensure_object(CliState)
    settings = state.settings()
    topic = settings.topic("dead-letter")

    async def read_and_replay() -> list[dict[str, Any]]:
        with Waiting(f"reading {topic}", quiet=state.quiet):
            letters = await read_dead_letters(settings)
        wanted, unknown = chosen(letters, None if replay_all else ids)
        with Progress("replayed", len(wanted), quiet=state.quiet) as progress:
            return replay_report(settings, unknown, await replay(settings, wanted, progress.update))

    report = kafka_client(state, settings, read_and_replay())

    def table() -> None:
        for item in report:
            verdict = "replayed" if item["replayed"] else "not replayed"
            click.echo(f"{verdict} {item['id']}: {item['detail']}")
        if not report:
            click.echo(f"{topic}: no records")

    emit(state, report, table)
    if not all(item["replayed"] for item in report):
        ctx.exit(1)


@cli.group(short_help="the effective settings (config show)")
def config() -> None:
    """The effective settings."""


@config.command(name="show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Each setting's value (secrets redacted) and where it came from: default, file, env NAME, flag."""
    state = ctx.ensure_object(CliState)
    settings = state.settings()
    shown = {
        name: {
            "value": redact(name, getattr(settings, name)),
            "source": settings.source_of(name),
            "env": env_name(name),
        }
        for name in type(settings).model_fields
    }

    def table() -> None:
        rows = [("SETTING", "VALUE", "ENV", "SOURCE")]
        for name, item in shown.items():
            value = item["value"]
            text = json.dumps(value) if isinstance(value, bool) or value == "" else str(value)
            rows.append((name, text, item["env"], item["source"]))
        print_table(rows)

    emit(state, shown, table)


@cli.command(
    cls=click.Command,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    short_help="benchmark the pipeline on the embedded broker (see `runherald bench --help`)",
)
@click.argument("bench_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def bench(ctx: click.Context, bench_args: tuple[str, ...]) -> None:
    """The pipeline benchmark: its options are `runherald bench --help`'s."""
    from runherald.benchmarks.pipeline import main as bench_main

    ctx.exit(bench_main(list(bench_args)))


def main(argv: Sequence[str] | None = None) -> int:
    """`runherald`: run the command line on argv (default sys.argv[1:]); returns the exit code."""
    try:
        args = list(sys.argv[1:] if argv is None else argv)
        result = cli.main(args=args, prog_name="runherald", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
