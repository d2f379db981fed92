"""The ``runherald`` command line (click).

The global options (``--broker``, ``--api``, ``--token``, ``--config``, ``-o/--output``,
``--verbose``) go before or after the subcommand; a value given after it wins. Exit codes, as
DESIGN.md says: 0 done, 2 invalid input (usage, validation), 1 could not be done (broker or API
unreachable, server error). An expected failure is one line on stderr: ``runherald CMD: why``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sys
import traceback
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

import click
import yaml
from click.core import ParameterSource

from runherald.cli_doctor import doctor_command
from runherald.cli_keys import keys as keys_group
from runherald.config import CONFIG_ENV, Settings, SettingsWarning, env_name, redact
from runherald.errors import ApiError, ApiUnavailable, BrokerUnavailable, InvalidArgumentError, RunheraldError

DEFAULT_API = "http://127.0.0.1:6066"
OUTPUTS = ("table", "json", "yaml")
API_TIMEOUT = 10.0

T = TypeVar("T")


@dataclass
class CliState:
    """What the global options said, wherever on the command line they stood."""

    broker: str | None = None  # only when given as a flag: the settings read RUNHERALD_BROKER themselves
    api: str = DEFAULT_API
    token: str | None = None
    config: str | None = None
    output: str = "table"
    verbose: bool = False
    given: set[str] = field(default_factory=set)  # the options given on the command line

    def settings(self, **flags: Any) -> Settings:
        """The settings: these flags and --broker, then the environment, the settings file, defaults."""
        return Settings.load(flags={"broker": self.broker, **flags}, config_file=self.config)


class CommandFailed(click.ClickException):
    """An expected failure, shown as one line (``runherald CMD: why``) with the error's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.format_message(), err=True, file=file)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Store a global option in the CliState; a value on the command line beats the environment."""
    name = param.name or ""
    state = ctx.ensure_object(CliState)
    source = ctx.get_parameter_source(name)
    if source is ParameterSource.COMMANDLINE:
        setattr(state, name, value)
        state.given.add(name)
    elif source is ParameterSource.ENVIRONMENT and name not in state.given and name != "broker":
        setattr(state, name, value)


def _check_api(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is not None and not str(value).startswith(("http://", "https://")):
        raise click.BadParameter(f"expected an http:// or https:// URL, got {value!r}", ctx, param)
    _remember(ctx, param, value)


def _global_options() -> list[click.Parameter]:
    """Fresh copies of the global options, for the group and for each command."""
    common: dict[str, Any] = {"expose_value": False, "callback": _remember, "show_envvar": True}
    return [
        click.Option(
            ["--broker"],
            metavar="URL",
            envvar=env_name("broker"),
            help="Kafka bootstrap servers, kafka://host:port  [default: kafka://127.0.0.1:9092]",
            **common,
        ),
        click.Option(
            ["--api"],
            metavar="URL",
            envvar="RUNHERALD_API",
            help=f"runherald's HTTP API  [default: {DEFAULT_API}]",
            **{**common, "callback": _check_api},
        ),
        click.Option(["--token"], envvar="RUNHERALD_TOKEN", help="bearer token for the HTTP API", **common),
        click.Option(
            ["--config"],
            metavar="FILE",
            envvar=CONFIG_ENV,
            type=click.Path(exists=True, dir_okay=False),
            help="settings file: YAML, keys are the setting names (`runherald config show`)",
            **common,
        ),
        click.Option(
            ["-o", "--output"],
            type=click.Choice(OUTPUTS),
            help="output format  [default: table]",
            expose_value=False,
            callback=_remember,
        ),
        click.Option(
            ["-v", "--verbose"],
            is_flag=True,
            help="the worker's full log (dev), Kafka client logs and tracebacks",
            expose_value=False,
            callback=_remember,
        ),
    ]


def _json_alias() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def alias(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(CliState).output = "json"
            ctx.ensure_object(CliState).given.add("output")

    return click.option("--json", is_flag=True, expose_value=False, callback=alias, help="same as -o json")


class RunheraldCommand(click.Command):
    """A command that takes the global options too, and shows runherald's errors as one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_options())

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RunheraldError as exc:
            if ctx.ensure_object(CliState).verbose:
                traceback.print_exc()
            raise CommandFailed(f"{ctx.command_path}: {exc}", exc.exit_code) from exc


class RunheraldGroup(click.Group):
    """A group whose commands and subgroups are RunheraldCommand / RunheraldGroup."""

    command_class = RunheraldCommand
    group_class = type

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_options())


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


def _given(ctx: click.Context, **values: Any) -> dict[str, Any]:
    """The values of these options that were given on the command line (the settings read the rest)."""
    return {
        name: value
        for name, value in values.items()
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    }


def _emit(state: CliState, data: Any, table: Callable[[], None]) -> None:
    """Print data as -o asks: JSON, YAML, or (table) what `table` prints."""
    if state.output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    elif state.output == "yaml":
        click.echo(
            yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True), nl=False
        )
    else:
        table()


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the last column (free text) is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())


def _kafka_client(state: CliState, settings: Settings, work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that talks to the broker: Kafka's own log quiet unless --verbose, its errors
    as BrokerUnavailable."""
    from aiokafka.errors import KafkaError

    from runherald.connect import quiet_kafka_log

    if state.verbose:
        logging.basicConfig(level=logging.INFO)
    try:
        with contextlib.nullcontext() if state.verbose else quiet_kafka_log():
            return asyncio.run(work)
    except (KafkaError, TimeoutError) as exc:
        raise BrokerUnavailable(
            f"the broker at {settings.broker} failed: {exc or type(exc).__name__}"
        ) from exc


def _api_get(state: CliState, path: str) -> Any:
    """GET a JSON document from the API (with --token as a bearer token); ApiUnavailable or ApiError."""
    headers = {"Accept": "application/json"}
    if state.token:
        headers["Authorization"] = f"Bearer {state.token}"
    request = urllib.request.Request(state.api.rstrip("/") + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=API_TIMEOUT) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error")
        except (ValueError, AttributeError):
            message = None
        raise ApiError(message or f"the API answered {exc.code} {exc.reason}", exc.code) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise ApiUnavailable(f"cannot reach the API at {state.api}: {_network_reason(reason)}") from None
    except ValueError as exc:
        raise ApiError(f"the API at {state.api} answered something that is not JSON: {exc}", 200) from None


def _network_reason(reason: Any) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return f"no answer within {API_TIMEOUT:g}s"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    return str(reason)


def _read_runs(source: IO[bytes]) -> list[dict[str, Any]]:
    """Run dicts from a file or stdin: one JSON object, a JSON array, NDJSON, or YAML."""
    from runherald.publish import parse_run_file

    return parse_run_file(source.read())


RUN_FILE = click.argument("file", type=click.File("rb"), default="-", metavar="[FILE|-]")
cli.add_command(keys_group)
cli.add_command(doctor_command(RunheraldCommand))


@cli.command(short_help="embedded broker, a worker and the API, in the foreground")
@click.option("--web-port", type=int, envvar=env_name("web_port"), show_envvar=True, help="HTTP API port")
@click.option("--broker-port", type=int, help="embedded broker port  [default: 9092, or a free one]")
@click.pass_context
def dev(ctx: click.Context, web_port: int | None, broker_port: int | None) -> None:
    """Embedded broker, a worker and the HTTP API, in the foreground.

    With --broker, that Kafka instead of the embedded broker. Ctrl-C stops everything.
    """
    from runherald.worker import run_dev

    state = ctx.ensure_object(CliState)
    settings = state.settings(**_given(ctx, web_port=web_port))
    code = run_dev(
        settings, broker_port=broker_port, external_broker="broker" in state.given, verbose=state.verbose
    )
    ctx.exit(code)


@cli.command(short_help="one pipeline worker against --broker")
@click.option("--web-port", type=int, envvar=env_name("web_port"), show_envvar=True, help="HTTP API port")
@click.pass_context
def worker(ctx: click.Context, web_port: int | None) -> None:
    """One pipeline worker against --broker (one --web-port per worker on a host)."""
    from runherald.worker import run_worker

    state = ctx.ensure_object(CliState)
    settings = state.settings(**_given(ctx, web_port=web_port))
    log_level = "info" if state.verbose and settings.log_level not in {"debug", "info"} else None
    ctx.exit(run_worker(settings, log_level=log_level, banner=state.verbose))


@cli.command(short_help="publish runs: JSON, a JSON array, NDJSON or YAML")
@RUN_FILE
@click.pass_context
def publish(ctx: click.Context, file: IO[bytes]) -> None:
    """Publish run dicts: one JSON object, a JSON array, NDJSON, or YAML; prints each run's key."""
    from runherald.publish import publish as publish_runs
    from runherald.publish import run_key

    state = ctx.ensure_object(CliState)
    runs = _read_runs(file)
    for run in runs:
        run_key(run)  # invalid input is found before the broker is asked
    settings = state.settings()
    keys = _kafka_client(state, settings, publish_runs(runs, settings))
    _emit(state, {"accepted": len(keys), "runs": keys}, lambda: click.echo("\n".join(keys)))


@cli.command(short_help="a run's notification statuses, per state")
@click.argument("run", metavar="PROJECT/UID")
@_json_alias()
@click.pass_context
def status(ctx: click.Context, run: str) -> None:
    """A run's notification statuses, one line per notification and state."""
    if run.count("/") != 1 or not all(run.split("/")):
        raise click.BadParameter(f"expected PROJECT/UID, got {run!r}", ctx, param_hint="PROJECT/UID")
    state = ctx.ensure_object(CliState)
    body = _api_get(state, f"/api/v1/runs/{run}/notifications")

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
        _print_table(rows)

    _emit(state, body, table)


@cli.command(short_help="dry run: what would be sent, and whether")
@RUN_FILE
@click.option("--notification", metavar="NAME", help="only the notification with this name")
@_json_alias()
@click.pass_context
def render(ctx: click.Context, file: IO[bytes], notification: str | None) -> None:
    """Dry run: what each notification of a run would send, and whether. Sends nothing."""
    from runherald.preview import dry_run

    state = ctx.ensure_object(CliState)
    runs = _read_runs(file)
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

    _emit(state, [item.to_dict() for item in previews], table)


@cli.group(name="dead-letter", short_help="list or replay the dead-letter topic")
def dead_letter() -> None:
    """List or replay the dead-letter topic's records."""


@dead_letter.command(name="list")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="only the N most recent records")
@_json_alias()
@click.pass_context
def dead_letter_list(ctx: click.Context, limit: int | None) -> None:
    """One line per record: id, time, stage, source, reason."""
    from runherald.deadletter import read_dead_letters

    state = ctx.ensure_object(CliState)
    settings = state.settings()
    letters = _kafka_client(state, settings, read_dead_letters(settings, limit))
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
        _print_table(rows)

    _emit(state, [letter.to_json() for letter in letters], table)


@dead_letter.command(name="replay")
@click.option("--id", "ids", multiple=True, metavar="ID", help="a record id from `list` (repeatable)")
@click.option("--all", "replay_all", is_flag=True, help="every record that can be replayed")
@click.pass_context
def dead_letter_replay(ctx: click.Context, ids: tuple[str, ...], replay_all: bool) -> None:
    """Re-publish failed deliveries (sent again despite `error`) and dead-lettered runs."""
    from runherald.deadletter import read_dead_letters, replay

    if bool(ids) == replay_all:
        raise click.UsageError("give --id ID (repeatable) or --all", ctx)
    state = ctx.ensure_object(CliState)
    settings = state.settings()
    topic = settings.topic("dead-letter")

    async def read_and_replay() -> tuple[list[str], list[Any]]:
        letters = await read_dead_letters(settings)
        by_id = {letter.id: letter for letter in letters}
        wanted = letters if replay_all else [by_id[i] for i in ids if i in by_id]
        missing = [] if replay_all else [i for i in ids if i not in by_id]
        return missing, await replay(settings, wanted)

    missing, results = _kafka_client(state, settings, read_and_replay())
    report = [{"id": i, "replayed": False, "detail": f"no such record on {topic}"} for i in missing]
    report += [{"id": r.id, "replayed": r.replayed, "detail": r.detail} for r in results]

    def table() -> None:
        for item in report:
            verdict = "replayed" if item["replayed"] else "not replayed"
            click.echo(f"{verdict} {item['id']}: {item['detail']}")
        if not report:
            click.echo(f"{topic}: no records")

    _emit(state, report, table)
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
        _print_table(rows)

    _emit(state, shown, table)


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
