"""Publish run dicts (or RunObjects) to the runs topic, keyed ``"{project}/{uid}"``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import orjson
import yaml
from aiokafka import AIOKafkaProducer

from runherald.admission import InvalidRuns, Problem, check_runs
from runherald.config import Settings
from runherald.delivery import run_key as delivery_key
from runherald.errors import PublishError
from runherald.kafka_clients import start_producer
from runherald.rules import as_dict
from runherald.sealing import seal_run
from runherald.topics import ensure_topics

__all__ = [
    "InvalidRuns",
    "Problem",
    "PublishError",
    "Publisher",
    "is_list_input",
    "parse_run_file",
    "parse_runs",
    "prepare_runs",
    "publish",
    "publish_sync",
    "run_key",
    "to_run_dict",
    "validate_runs",
]


def to_run_dict(run: Any) -> dict[str, Any]:
    """A run dict from a dict or any object with ``to_dict()`` (such as runherald.model.RunObject)."""
    if isinstance(run, dict):
        return run
    try:
        return dict(as_dict(run))
    except TypeError:
        raise PublishError(f"expected a run dict or RunObject, got {type(run).__name__}") from None


def run_key(run: dict[str, Any]) -> str:
    """``"{project}/{uid}"`` of a run dict, or PublishError saying what is missing."""
    meta = run.get("metadata")
    if not isinstance(meta, dict):
        raise PublishError("run has no metadata object")
    missing = [name for name in ("project", "uid") if not isinstance(meta.get(name), str) or not meta[name]]
    if missing:
        raise PublishError(f"run metadata lacks {' and '.join(missing)}")
    return delivery_key(meta["project"], meta["uid"])


class Publisher:
    """An async producer for the runs topic; use as ``async with Publisher(settings) as p``."""

    def __init__(
        self, settings: Settings | None = None, *, create_topics: bool = True, idempotent: bool | None = None
    ) -> None:
        """`idempotent`: as a worker decided for its cluster; None tries the idempotent producer first
        (unless RUNHERALD_KAFKA_IDEMPOTENCE=off) and falls back to a plain one where the broker refuses it."""
        self.settings = settings or Settings.from_env()
        self._create_topics = create_topics
        self._idempotent = idempotent
        self._producer: AIOKafkaProducer | None = None
        self.idempotent = False  # whether the started producer is

    async def start(self) -> None:
        if self._create_topics:
            await ensure_topics(self.settings)
        # acks=all; BrokerUnavailable within seconds, not a hang
        self._producer, self.idempotent = await start_producer(
            self.settings, idempotent=self._idempotent, linger_ms=1
        )

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def publish(self, run: Any) -> str:
        """Publish one run and wait for the broker to accept it; returns its key."""
        return (await self.publish_many([run], as_list=False))[0]

    async def publish_many(self, runs: Iterable[Any], *, as_list: bool = True) -> list[str]:
        """Publish runs (validated first: nothing is sent if one has a problem, InvalidRuns lists them
        all, paths prefixed ``[i].`` when `as_list`) and wait for all acks.

        Literal secret_params values are sealed first (runherald.sealing): no secret reaches the topic.
        """
        if self._producer is None:
            raise RuntimeError("Publisher is not started")
        prepared = prepare_runs(runs, as_list=as_list, slack_fallback=bool(self.settings.slack_webhook))
        return await self.send_prepared(prepared)

    async def send_prepared(self, prepared: list[tuple[str, bytes]]) -> list[str]:
        """Send what prepare_runs made and wait for all acks; returns the keys."""
        if self._producer is None:
            raise RuntimeError("Publisher is not started")
        topic = self.settings.topic("runs")
        futures = [await self._producer.send(topic, value=value, key=key.encode()) for key, value in prepared]
        if futures:
            await asyncio.gather(*futures)
        return [key for key, _ in prepared]


def prepare_runs(
    runs: Iterable[Any], *, as_list: bool | None = None, slack_fallback: bool = False
) -> list[tuple[str, bytes]]:
    """(key, value) of each run, validated and with its literal secret_params sealed; PublishError
    (InvalidRuns: every problem of every run, see runherald.admission) or SealKeyError (no public key
    to seal with) before anything is sent."""
    run_dicts = [to_run_dict(run) for run in runs]
    check_runs(run_dicts, as_list=as_list, slack_fallback=slack_fallback)
    return [(run_key(run_dict), orjson.dumps(seal_run(run_dict))) for run_dict in run_dicts]


def validate_runs(runs: Any, settings: Settings | None = None, *, as_list: bool | None = None) -> None:
    """Raise InvalidRuns (a PublishError) listing every problem of one run or a list of runs; what
    `publish` checks before it connects, without sealing or sending anything."""
    settings = settings or Settings.from_env()
    listed = isinstance(runs, list) if as_list is None else as_list
    run_dicts = [to_run_dict(run) for run in (runs if isinstance(runs, list) else [runs])]
    check_runs(run_dicts, as_list=listed, slack_fallback=bool(settings.slack_webhook))


async def publish(runs: Any, settings: Settings | None = None) -> list[str]:
    """Publish one run or a list of runs with a short-lived producer (validated and sealed before it
    connects: InvalidRuns, with every problem, and nothing sent if one run has a problem)."""
    settings = settings or Settings.from_env()
    prepared = prepare_runs(
        runs if isinstance(runs, list) else [runs],
        as_list=isinstance(runs, list),
        slack_fallback=bool(settings.slack_webhook),
    )
    async with Publisher(settings) as publisher:
        return await publisher.send_prepared(prepared)


def publish_sync(runs: Any, settings: Settings | None = None) -> list[str]:
    """publish() for code without an event loop."""
    return asyncio.run(publish(runs, settings))


def is_list_input(text: str | bytes) -> bool:
    """Whether run input is a list of runs (a JSON array, YAML list) rather than one run, for the
    ``[i].`` prefix of problem paths; NDJSON and YAML documents count as a list when there are several."""
    data = (text.encode() if isinstance(text, str) else text).lstrip()
    return data[:1] == b"[" or data[:2] == b"- "


def parse_runs(text: str | bytes) -> list[dict[str, Any]]:
    """Run dicts from one JSON object, a JSON array, or NDJSON (one object per line)."""
    data = text.encode() if isinstance(text, str) else text
    stripped = data.strip()
    if not stripped:
        raise PublishError("no input: expected a JSON object, a JSON array or NDJSON")
    try:
        value = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        runs = []
        for number, line in enumerate(stripped.splitlines(), 1):
            if not line.strip():
                continue
            try:
                runs.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise PublishError(f"line {number} is not JSON: {exc}") from None
        value = runs
    items = value if isinstance(value, list) else [value]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise PublishError(f"item {i} is a {type(item).__name__}, not a run object")
    return items


class _RunFileLoader(yaml.SafeLoader):
    """YAML as JSON would read it: timestamps stay text (a run's last_update is a string)."""


_RunFileLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_run_file(text: str | bytes) -> list[dict[str, Any]]:
    """Run dicts from a file: what parse_runs reads (JSON object, array, NDJSON), or YAML documents
    (such as RunObject.to_yaml() writes; one run, or a list of runs, per document)."""
    data = text.encode() if isinstance(text, str) else text
    if data.lstrip()[:1] in (b"{", b"[", b""):
        return parse_runs(data)
    try:
        documents = [doc for doc in yaml.load_all(data, Loader=_RunFileLoader) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PublishError(f"not JSON, NDJSON or YAML: {where}{problem}") from None
    items = [item for doc in documents for item in (doc if isinstance(doc, list) else [doc])]
    if not items:
        raise PublishError("no input: expected a JSON object, a JSON array, NDJSON or YAML")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise PublishError(f"item {i} is a {type(item).__name__}, not a run object")
    return items
