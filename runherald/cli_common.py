"""What every `runherald` command shares: the global options and their state, output formats, the
one-line failures, and reaching the broker and the API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import traceback
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar
from urllib.parse import quote

import click
import yaml
from click.core import ParameterSource

from runherald.api_client import DEFAULT_API, call_api
from runherald.config import CONFIG_ENV, Settings, env_name
from runherald.errors import BrokerUnavailable, RunheraldError

OUTPUTS = ("table", "json", "yaml")

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
    quiet: bool = False  # no progress on stderr (runherald.progress)
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


def global_options() -> list[click.Parameter]:
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
            ["-q", "--quiet"],
            is_flag=True,
            help="no progress on stderr (shown only on a terminal; RUNHERALD_PROGRESS=always|never)",
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


def json_alias() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def alias(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(CliState).output = "json"
            ctx.ensure_object(CliState).given.add("output")

    return click.option("--json", is_flag=True, expose_value=False, callback=alias, help="same as -o json")


class RunheraldCommand(click.Command):
    """A command that takes the global options too, and shows runherald's errors as one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(global_options())

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
        self.params.extend(global_options())


def given(ctx: click.Context, **values: Any) -> dict[str, Any]:
    """The values of these options that were given on the command line (the settings read the rest)."""
    return {
        name: value
        for name, value in values.items()
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    }


def emit(state: CliState, data: Any, table: Callable[[], None]) -> None:
    """Print data as -o asks: JSON, YAML, or (table) what `table` prints."""
    if state.output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    elif state.output == "yaml":
        click.echo(
            yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True), nl=False
        )
    else:
        table()


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the last column (free text) is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())


def print_items(
    items: Sequence[Any], empty: str, header: Sequence[str], row: Callable[[Any], Sequence[str]]
) -> None:
    """A table of `items`, one `row` each under `header`; `empty` when there are none."""
    if not items:
        click.echo(empty)
        return
    print_table([header, *(row(item) for item in items)])


def kafka_client(state: CliState, settings: Settings, work: Coroutine[Any, Any, T]) -> T:
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


def api_get(state: CliState, path: str) -> Any:
    """GET a JSON document from the API (with --token as a bearer token); ApiUnavailable or ApiError."""
    return call_api(state.api, state.token, "GET", path)


def named_path(collection: str, name: str) -> str:
    """The API path of one object stored by name: ``/api/v1/{collection}/{name}``, the name quoted."""
    return f"/api/v1/{collection}/{quote(name, safe='')}"


def list_named(ctx: click.Context, collection: str, table: Callable[[Sequence[Any]], None]) -> None:
    """``list`` of objects stored by name: the API's answer, or its ``collection`` list as a table."""
    state = ctx.ensure_object(CliState)
    answer = api_get(state, f"/api/v1/{collection}")
    emit(state, answer, lambda: table(answer.get(collection) or []))


def get_named(ctx: click.Context, collection: str, name: str, shown: Callable[[Any], None]) -> None:
    """``get`` of one object stored by name: the API's answer, or `shown` of it."""
    state = ctx.ensure_object(CliState)
    answer = api_get(state, named_path(collection, name))
    emit(state, answer, lambda: shown(answer))


def delete_named(ctx: click.Context, collection: str, name: str, kind: str) -> None:
    """``delete`` of one object stored by name: the API's answer, or "{kind} {name} deleted"."""
    state = ctx.ensure_object(CliState)
    answer = call_api(state.api, state.token, "DELETE", named_path(collection, name))
    emit(state, answer, lambda: click.echo(f"{kind} {name} deleted"))


def read_runs(source: IO[bytes]) -> list[dict[str, Any]]:
    """Run dicts from a file or stdin: one JSON object, a JSON array, NDJSON, or YAML."""
    from runherald.publish import parse_run_file

    return parse_run_file(source.read())


RUN_FILE = click.argument("file", type=click.File("rb"), default="-", metavar="[FILE|-]")
