"""The worker's writes to Kafka: records straight to the producer, the ledger's one path to its topic,
and the dead-letter records."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from runherald import ledger, metrics
from runherald.deadletter import dead_letter_value, redacted_delivery, redacted_event
from runherald.delivery import Delivery, OutcomeKind, run_key

log = logging.getLogger("runherald.pipeline")

# Dead-letter reason codes of the dispatch stage (the evaluate stage's are runherald.evaluation's).
MALFORMED_DELIVERY, GAVE_UP, PERMANENT = "malformed_delivery", "gave_up", "permanent"


class Writer:
    """Sends records straight to faust's aiokafka producer, which faust flushes before every commit.

    faust's own send_soon() hands records one at a time to a background task and stalls the sender
    once 100 are waiting; at thousands of records a second that queue is the bottleneck.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.failure: BaseException | None = None
        self._crashing: asyncio.Future[Any] | None = None

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> asyncio.Future[Any]:
        """Queue one record; the future resolves to its RecordMetadata once the broker has it."""
        producer = self.app.producer._ensure_producer()
        future: asyncio.Future[Any] = await producer.send(topic, value=value, key=key, partition=partition)
        future.add_done_callback(self._check)
        return future

    def _check(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            # The source event may already be acknowledged: crash so the worker restarts from the
            # last commit instead of going on with a hole in the ledger.
            log.error("a write to Kafka failed, stopping the worker: %r", exc)
            self.failure = exc
            self._crashing = asyncio.ensure_future(self.app.crash(exc))


class LedgerWriter:
    """The ledger table (one record per run, in memory) and the one path its changes take to the status
    topic, its changelog.

    A change is made to the table first; the run's key is then marked, and appended to the topic with
    the table's value *at the time it is appended*, by one append at a time. So each run's record
    reaches the topic in the order its versions were made. Appending the value a caller held instead
    could put an older version after a newer one: aiokafka's send waits for room when a partition's
    batch is full, and two sends of one key waiting at once may leave in either order; the topic's
    last record (what every other worker and the next owner see) would then be the older one.
    """

    def __init__(self, table: Any, writer: Writer, topic: str) -> None:
        self.table = table
        self._writer = writer
        self._topic = topic
        # The partition of every ledger key, for the keys written here as well as those faust
        # recovers: faust's memory store drops the keys of partitions it no longer owns after each
        # rebalance only for the keys it knows the partition of.
        self.partitions: dict[bytes, int] = table.data._key_partition
        self._marked: dict[bytes, int] = {}  # run key -> partition: changed since its last append
        self._appending: dict[bytes, asyncio.Future[Any]] = {}  # run key -> its last append, until acked
        self._lock = asyncio.Lock()

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.table.data.get(key)
        return value

    def load(self, key: bytes, project: str = "", uid: str = "") -> ledger.Record:
        return ledger.load(self.table.data.get(key), project, uid)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self.table.data.items()))

    def set(self, partition: int, key: bytes, record: ledger.Record) -> None:
        """Change a run's record now; it reaches the topic with the next append of that key."""
        self.table.data[key] = ledger.dump(record)
        self.partitions[key] = partition
        self._marked[key] = partition

    async def put(self, partition: int, key: bytes, record: ledger.Record) -> None:
        """Change a run's record and return once its value is queued on the producer."""
        self.set(partition, key, record)
        async with self._lock:
            if key in self._marked:  # else an append made while we waited carried this change
                await self._append(key, self._marked.pop(key))

    async def flush(self) -> None:
        """Queue every change made so far on the producer."""
        async with self._lock:
            while self._marked:
                # Taken whole (popping a dict from the front one key at a time is quadratic): keys
                # changed again meanwhile are marked anew and go in the next round.
                marked, self._marked = self._marked, {}
                for key, partition in marked.items():
                    await self._append(key, partition)

    @property
    def pending(self) -> int:
        """Runs changed in memory and not yet queued."""
        return len(self._marked)

    async def written(self, key: bytes) -> None:
        """Return once the run's record, as it stood when last queued (see put), is on the status topic."""
        future = self._appending.get(key)
        if future is not None:
            await asyncio.wait([future])  # a failed write crashes the worker (Writer._check)

    async def _append(self, key: bytes, partition: int) -> None:
        value = self.table.data.get(key)
        if value is not None:
            # Records of one run are written by both stages and by retry timers: the partition is
            # given, not taken from faust's current event.
            future = await self._writer.send(self._topic, key, value, partition)
            if isinstance(future, asyncio.Future):  # (a test's writer may hand back none)
                self._appending[key] = future
                future.add_done_callback(lambda done: self._forget_append(key, done))

    def _forget_append(self, key: bytes, done: asyncio.Future[Any]) -> None:
        if self._appending.get(key) is done:
            del self._appending[key]


class DeadLetterWriter:
    """Writes the dead-letter topic's records (their format: ``runherald.deadletter``, with its reader)."""

    def __init__(self, writer: Writer, topic: str) -> None:
        self._writer = writer
        self._topic = topic

    async def run_event(self, message: Any, reason: str, code: str) -> None:
        """A run event that cannot be evaluated (not JSON, not a run, too large…); `code` is the
        InvalidEvent's (runherald.evaluation), the metric's reason label."""
        metrics.EVENTS_DEAD_LETTERED.labels(code).inc()
        log.warning(
            "dead-lettered run event %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason
        )
        source = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
        value = dead_letter_value(
            reason=reason, stage="evaluate", source=source, payload=redacted_event(message.value)
        )
        await self._writer.send(self._topic, message.key, value)

    async def delivery(self, delivery: Delivery, reason: str, outcome: OutcomeKind) -> None:
        """A delivery that failed for good: its budget ran out (the last outcome retryable or deferred),
        or a permanent error."""
        metrics.EVENTS_DEAD_LETTERED.labels(PERMANENT if outcome is OutcomeKind.PERMANENT else GAVE_UP).inc()
        metrics.DELIVERIES.labels(delivery.kind, "error").inc()
        source = {"delivery_id": delivery.id, "name": delivery.name, "state": delivery.state}
        value = dead_letter_value(
            reason=reason, stage="dispatch", source=source, payload=redacted_delivery(delivery)
        )
        await self._writer.send(self._topic, run_key(delivery.project, delivery.uid).encode(), value)

    async def malformed_delivery(self, message: Any, reason: str) -> None:
        """A deliveries-topic record that is not a delivery."""
        metrics.EVENTS_DEAD_LETTERED.labels(MALFORMED_DELIVERY).inc()
        source = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
        await self._writer.send(
            self._topic, message.key, dead_letter_value(reason=reason, stage="dispatch", source=source)
        )
