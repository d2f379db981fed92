"""Every worker's copy of the alert configuration: the compacted rules topic, followed from its start.

No consumer group: each worker reads every partition of the rules topic from the beginning and keeps the
latest value of each key (``"{type}/{name}"``; an empty value deletes it), so a change written by any
worker is in force on every worker as soon as its follower reads it (within a fetch wait). The evaluate
stage waits for `ready` (the topic read up to where it ended when the worker started) before its first
run event, so a restart never evaluates with fewer rules than were stored.

Inhibitions (``inhibition/...``, see ``runherald.inhibition``) are records of the same topic, written by
the evaluate stage when a rule that inhibits others fires: in force here at once, on the other workers
within a fetch wait. They change the configuration's `Inhibitions` in place, without rebuilding the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from runherald.alerting import Receiver, Rule
from runherald.config import Settings
from runherald.inhibition import KEY_PREFIX, Inhibition, Inhibitions
from runherald.kafka_clients import client_kwargs
from runherald.rule_index import AlertConfig, parse_inhibition, parse_record
from runherald.silences import Silence
from runherald.subscriptions import Subscription

log = logging.getLogger("runherald.rules")

Send = Callable[[str, bytes, bytes | None], Awaitable["asyncio.Future[Any]"]]  # (topic, key, value)

FOLLOW_WAIT_MS = 100  # the longest a fetch waits for new records: changes apply within about this
RETRY_AFTER = 1.0  # seconds before the follower tries again after a broker error
APPLIED_TIMEOUT = 10.0  # how long a write waits to be read back before it is reported as not yet in force
SWEEP_EVERY = 60.0  # seconds between looks for expired inhibitions to tombstone


class NotInForce(Exception):
    """A write the broker took, not read back by this worker in time: it will be, but is not yet."""


class AlertStore:
    """The latest value of every key of the rules topic, and the AlertConfig they make."""

    def __init__(self, settings: Settings, topic: str, send: Send | None = None) -> None:
        self._settings = settings
        self.topic = topic
        self._send = send
        self._objects: dict[str, Receiver | Rule | Silence | Subscription] = {}
        self._values: dict[str, dict[str, Any]] = {}
        self.inhibitions = Inhibitions()  # shared with every config built here
        self._config = AlertConfig(inhibitions=self.inhibitions)
        self._swept = 0.0
        self._dirty = False
        self._positions: dict[int, int] = {}  # partition -> next offset to read
        self._changed = asyncio.Condition()
        self.ready = asyncio.Event()
        self.loaded_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    # -- what the pipeline and the API read --------------------------------------------------------

    @property
    def config(self) -> AlertConfig:
        """The configuration in force now (rebuilt, without re-parsing, after each change)."""
        if self._dirty:
            self._config = AlertConfig.from_objects(self._objects.values())
            self._config.inhibitions = self.inhibitions
            self._dirty = False
        return self._config

    def value(self, key: str) -> dict[str, Any] | None:
        """The stored dict of one object (``"rule/NAME"``), as written."""
        return self._values.get(key)

    def values(self, kind: str) -> dict[str, dict[str, Any]]:
        """Every stored object of one type (``rule``, ``receiver``, ``silence``), by name."""
        prefix = kind + "/"
        found = sorted(self._values.items())
        return {key[len(prefix) :]: value for key, value in found if key.startswith(prefix)}

    # -- writes --------------------------------------------------------------------------------------

    async def put(self, key: str, value: dict[str, Any] | None) -> None:
        """Write one object (None deletes it) and wait until this worker has read it back, so what the
        caller applied is in force here when this returns (and on the others within a fetch wait)."""
        if self._send is None:
            raise RuntimeError("this AlertStore has no producer")
        raw = None if value is None else orjson.dumps(value)
        future = await self._send(self.topic, key.encode(), raw)
        metadata = await future
        await self.wait_for(metadata.partition, metadata.offset)

    async def inhibit(self, inhibitions: list[Inhibition]) -> None:
        """Put inhibitions in force here at once, and write them for the other workers (not waiting for
        them to be read back). A renewal that would not lengthen the stored one noticeably is not
        written: a rule firing for many runs at once writes its inhibition once."""
        if self._send is None:
            raise RuntimeError("this AlertStore has no producer")
        for inhibition in inhibitions:
            key = inhibition.key
            current = self.inhibitions.get(key)
            slack = min(1.0, (inhibition.until - inhibition.started) / 10)
            if current is not None and current.until >= inhibition.until - slack:
                continue
            self.inhibitions.put(key, inhibition)
            await self._send(self.topic, key.encode(), orjson.dumps(inhibition.to_record()))
        now = time.time()
        if now - self._swept >= SWEEP_EVERY:
            await self.sweep_inhibitions(now)

    async def sweep_inhibitions(self, now: float) -> None:
        """Tombstone the inhibitions long expired (any worker may: see runherald.inhibition)."""
        assert self._send is not None
        self._swept = now
        for key in self.inhibitions.deletable(now):
            self.inhibitions.put(key, None)
            await self._send(self.topic, key.encode(), None)

    async def wait_for(self, partition: int, offset: int, timeout: float = APPLIED_TIMEOUT) -> None:
        """Wait until the record at `offset` of `partition` has been read."""

        def read() -> bool:
            return self._positions.get(partition, 0) > offset

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(read), timeout)
            except TimeoutError:
                raise NotInForce(f"written, but not read back within {timeout:g}s") from None

    # -- following the topic ----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _follow(self) -> None:
        while True:
            try:
                await self._read_forever()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "reading the rules topic %s failed (%r); trying again in %gs",
                    self.topic,
                    exc,
                    RETRY_AFTER,
                )
                if self._consumer is not None:
                    consumer, self._consumer = self._consumer, None
                    try:
                        await consumer.stop()
                    except Exception:
                        pass
                await asyncio.sleep(RETRY_AFTER)

    async def _read_forever(self) -> None:
        consumer = AIOKafkaConsumer(
            **client_kwargs(self._settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=min(FOLLOW_WAIT_MS, self._settings.fetch_max_wait_ms or FOLLOW_WAIT_MS),
        )
        self._consumer = consumer
        await consumer.start()
        partitions = await self._partitions(consumer)
        tps = [TopicPartition(self.topic, partition) for partition in partitions]
        consumer.assign(tps)
        for tp in tps:  # resume where this store got to (after a broker error), else from the start
            consumer.seek(tp, self._positions.get(tp.partition, 0))
        ends = {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
        self._check_ready(ends)
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            if batches:
                async with self._changed:
                    for tp, messages in batches.items():
                        for message in messages:
                            self._apply(message.key, message.value)
                        self._positions[tp.partition] = messages[-1].offset + 1
                    self._changed.notify_all()
            else:
                for tp in tps:  # an empty or compacted-away tail still counts as read
                    position = await consumer.position(tp)
                    self._positions[tp.partition] = max(self._positions.get(tp.partition, 0), position)
            if not self.ready.is_set():
                self._check_ready(ends)

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[int]:
        deadline = time.monotonic() + 30
        while True:
            found = consumer.partitions_for_topic(self.topic)
            if found is None:
                await consumer._client.force_metadata_update()  # the topic may be created just now
                found = consumer.partitions_for_topic(self.topic)
            if found:
                return sorted(found)
            if time.monotonic() > deadline:
                raise LookupError(f"topic {self.topic} does not exist")
            await asyncio.sleep(0.2)

    def _check_ready(self, ends: dict[int, int]) -> None:
        if all(self._positions.get(partition, 0) >= end for partition, end in ends.items()):
            self.ready.set()
            self.loaded_at = time.time()
            config = self.config
            log.info(
                "alert configuration loaded: %d rules, %d receivers, %d silences",
                len(config.rules),
                len(config.receivers),
                len(config.silences),
            )

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if not key:
            return
        name = key.decode(errors="replace")
        if name.startswith(KEY_PREFIX):
            self._apply_inhibition(name, value)
            return
        if value is None:
            self._values.pop(name, None)
            self._objects.pop(name, None)
            self._dirty = True
            return
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError:
            log.warning("rules topic: ignored the record %r: not JSON", name)
            return
        if not isinstance(data, dict):
            log.warning("rules topic: ignored the record %r: not an object", name)
            return
        parsed = parse_record(name, data)
        if parsed is None or isinstance(parsed, Inhibition):  # logged; what it replaced goes too
            self._values.pop(name, None)
            self._objects.pop(name, None)
        else:
            self._values[name] = data
            self._objects[name] = parsed
        self._dirty = True

    def _apply_inhibition(self, key: str, value: bytes | None) -> None:
        try:
            data = None if value is None else orjson.loads(value)
        except orjson.JSONDecodeError:
            data = "not JSON"
        if value is None:
            self.inhibitions.put(key, None)
        elif isinstance(data, dict):
            inhibition = parse_inhibition(key, data)
            if inhibition is not None:
                self.inhibitions.put(key, inhibition)
        else:
            log.warning("rules topic: ignored the record %r: not a JSON object", key)


__all__ = ["AlertStore", "NotInForce"]
