"""Transitions: outcomes ──► history ──► transitions ──► the run's owner ──► deliveries.

When a rule in force names a transition, evaluate also writes each terminal run event as a small record
(project, name, uid, state, last_update, its offset on the runs topic) to the outcomes topic, keyed
``"{project}/{name}"``: every run of one name reaches the one worker that owns that key. `HistoryStage`
keeps each name's last terminal states (a table whose changelog is the compacted history topic), places
the event by last_update (``runherald.transitions.insert``) and writes each transition it decides to the
transitions topic, keyed by the run key of the run that made it: that topic is co-partitioned with the
runs topic, so `TransitionStage` on the worker owning the run reads the run back from the runs topic and
records and sends the rules' deliveries, its ledger record written by that worker alone.

A transition reaches the broker before the history that says it was decided: a crash in between decides
it again, and the ledger (its delivery id is stable) keeps it from being sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from faust.types import TP

from runherald.config import Settings
from runherald.delivery import run_key
from runherald.evaluation import InvalidEvent, parse_event
from runherald.rule_index import AlertConfig
from runherald.transition_evaluation import (
    evaluate_transitions,
    history_key,
    outcome_record,
    transition_record,
)
from runherald.transitions import insert

from .evaluate import Emit
from .writers import LedgerWriter, Writer

log = logging.getLogger("runherald.transitions")

READ_TRIES = 3  # reads of a run event before its transition is given up

# (run dict, its runs-topic record) -> None: writes the run's outcome when it is terminal
RecordOutcome = Callable[[dict[str, Any], Any], Awaitable[None]]


def outcome_writer(writer: Writer, topic: str) -> RecordOutcome:
    """What the evaluate stage calls for every run event while a rule in force names a transition."""

    async def record_outcome(run: dict[str, Any], message: Any) -> None:
        arrived = message.timestamp / 1000 if message.timestamp and message.timestamp > 0 else 0.0
        outcome = outcome_record(run, (message.partition, message.offset), arrived)
        if outcome is not None:
            key = history_key(outcome["project"], outcome["name"]).encode()
            await writer.send(topic, key, orjson.dumps(outcome))

    return record_outcome


class HistoryStage:
    """Each run name's history of terminal states; decides the transitions each outcome makes."""

    def __init__(
        self,
        *,
        app: Any,
        table: Any,
        writer: Writer,
        history_topic: str,
        transitions_topic: str,
        lock: asyncio.Lock,
    ) -> None:
        self._app = app
        self.table = table
        self._writer = writer
        self._history_topic = history_topic
        self._transitions_topic = transitions_topic
        self._lock = lock
        # faust's memory store drops a revoked partition's keys only for the keys it knows the partition of.
        self.partitions: dict[bytes, int] = table.data._key_partition

    def history(self, key: bytes) -> list[dict[str, Any]]:
        raw = self.table.data.get(key)
        return list(orjson.loads(raw).get("entries") or []) if raw else []

    async def handle(self, tp: TP, records: list[Any]) -> None:
        async with self._lock:
            epoch = self._app.read_epoch
            changed: dict[bytes, int] = {}
            written: list[asyncio.Future[Any]] = []
            for message in records:
                if not message.key:
                    continue  # not written by evaluate: every outcome is keyed by its project and name
                try:
                    outcome = orjson.loads(message.value)
                    project, name = str(outcome["project"]), str(outcome["name"])
                    placed = insert(self.history(message.key), outcome)
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    log.warning(
                        "ignored outcome %s[%s]@%s: %r", message.topic, message.partition, message.offset, exc
                    )
                    continue
                if placed is None:
                    continue  # seen already, or older than all the history keeps
                entries, fired = placed
                self.table.data[message.key] = orjson.dumps({"entries": entries})
                self.partitions[message.key] = message.partition
                changed[message.key] = message.partition
                for decided in fired:
                    value = orjson.dumps(transition_record(project, name, decided))
                    key = run_key(project, decided.entry["uid"]).encode()
                    written.append(await self._writer.send(self._transitions_topic, key, value))
                    log.info(
                        "%s/%s run %s: %s", project, name, decided.entry["uid"], ", ".join(decided.labels)
                    )
            if written:
                await asyncio.gather(*written)
            for key, partition in changed.items():
                await self._writer.send(self._history_topic, key, self.table.data[key], partition)
            self._app.ack_offsets(tp, [message.offset for message in records], epoch)


class TransitionStage:
    """Records and sends the deliveries of the rules whose ``when`` names a run's transition."""

    def __init__(
        self,
        *,
        app: Any,
        settings: Settings,
        ledger: LedgerWriter,
        emit: Emit,
        fetch_run: Callable[[int, int], Awaitable[bytes]],
        lock: asyncio.Lock,
        alerts: Callable[[], AlertConfig | None],
    ) -> None:
        self._app = app
        self._settings = settings
        self._ledger = ledger
        self._emit = emit
        self._fetch_run = fetch_run
        self._lock = lock
        self._alerts = alerts

    async def handle(self, tp: TP, records: list[Any]) -> None:
        epoch = self._app.read_epoch
        for message in records:
            await self._transition(message)
        await self._ledger.flush()
        self._app.ack_offsets(tp, [message.offset for message in records], epoch)

    async def _transition(self, message: Any) -> None:
        alerts = self._alerts()
        if alerts is None or not alerts.uses_transitions:
            return
        try:
            item = orjson.loads(message.value)
            partition, offset = (int(part) for part in item["source"])
            labels = [str(label) for label in item["transitions"]]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning(
                "ignored transition %s[%s]@%s: %r", message.topic, message.partition, message.offset, exc
            )
            return
        run = await self._read_run(partition, offset, item)
        if run is None:
            return
        meta = run["metadata"]
        key = run_key(meta["project"], meta["uid"]).encode()
        async with self._lock:
            result = evaluate_transitions(
                run,
                labels,
                previous=item.get("previous") or {},
                record=self._ledger.load(key, meta["project"], meta["uid"]),
                source=(partition, offset),
                settings=self._settings,
                alerts=alerts,
            )
            if result.record is not None:
                self._ledger.set(partition, key, result.record)
            for delivery in result.deliveries:
                await self._emit(delivery, partition)

    async def _read_run(self, partition: int, offset: int, item: dict[str, Any]) -> dict[str, Any] | None:
        where = f"runs[{partition}]@{offset}"
        for attempt in range(READ_TRIES):
            try:
                return parse_event(await self._fetch_run(partition, offset), self._settings.max_event_bytes)
            except (LookupError, InvalidEvent) as exc:
                log.warning(
                    "transitions %s of %s not sent: its run event (%s) %s",
                    item.get("transitions"),
                    item.get("uid"),
                    where,
                    exc,
                )
                return None
            except Exception as exc:  # a timeout or a broker error: try again before giving up
                if attempt == READ_TRIES - 1:
                    log.warning("transitions of %s not sent: %s not read (%r)", item.get("uid"), where, exc)
                    return None
                await asyncio.sleep(min(5.0, 0.5 * 2**attempt))
        return None
