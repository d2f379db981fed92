"""One shared reader of the runs topic per worker, feeding every live subscriber (``GET /api/v1/subscribe``).

The shared reader is a plain consumer (no consumer group: it takes no partition from the pipeline) assigned
every partition of the runs topic. It starts with the first subscriber, not with the worker: a worker
nobody subscribes to pays nothing for it (no fetches, no decoding of every run). It reads from "now" (the
true end of each partition then) and keeps running once started.

A subscriber has its own position on every partition (the next offset it has seen to), a filter and a
bounded list of encoded events waiting for its writer; its cursor (``id:``) is those positions
(``runherald.sse.encode_cursor``). The shared reader offers it every record at or after its position, never
awaits it, and drops it when the list is full: the stream then ends with a comment and the client resumes
with Last-Event-ID. Writers are woken at most every WAKE_INTERVAL: under load, a few writes a second per
client carry several events each. One write per event per client (10,000 a second for a hundred clients
at 100 runs/s) took the pipeline's p99 from 42 to 921 ms in `runherald bench --only sse`; every 50 ms,
30 to 52 ms; every 100 ms, 29 to 34 ms (events reach clients with a p99 of 127 ms).

A subscriber that starts in the past (a cursor, or ``since``) reads with a consumer of its own (waiting on
its own writer: only it is slowed by a slow client) until its position on every partition has reached the
shared reader's; it then joins in the same step, with no await between the check and the join, so
nothing is missed. The shared reader skips what such a subscriber already had: no gaps, no duplicates.

``since`` starts each partition at ``offsets_for_times`` and skips every record older than it by its
timestamp. The embedded broker (Tansu) does not answer ListOffsets by timestamp (it says offset 0 for any
time), so there it is a scan from the beginning, filtered by record timestamp; on Kafka it is a seek.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from runherald.config import Settings
from runherald.delivery import run_key
from runherald.events import InvalidEvent, parse_event
from runherald.kafka_clients import client_kwargs
from runherald.live import RunFilter
from runherald.rules import redact_run
from runherald.sse import encode_cursor, encode_event

from .kafka import true_end_offsets

log = logging.getLogger("runherald.subscribe")

BATCH = 500  # records a reader hands on per fetch
WAKE_INTERVAL = 0.1  # seconds: the writers of live streams are woken at most this often (see _wake_all)
TOO_SLOW = "disconnected: this client fell too far behind; reconnect with Last-Event-ID to resume"
STOPPING = "the worker is stopping; reconnect with Last-Event-ID to resume"
READER_FAILED = "this worker could not read the runs topic; reconnect with Last-Event-ID to resume"


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """A valid run event of the runs topic: the run (for filters) and its data as subscribers see it."""

    run: dict[str, Any]
    data: bytes  # the run dict as JSON, secret_params redacted


def feed_event(key: bytes | None, value: bytes | None, max_bytes: int) -> FeedEvent | None:
    """The event a runs-topic record shows subscribers; None for an invalid record or one published under
    another key (the evaluate stage re-keys it: its copy under the run's own key follows)."""
    try:
        run = parse_event(value, max_bytes)
    except InvalidEvent:
        return None
    meta = run["metadata"]
    if key != run_key(meta["project"], meta["uid"]).encode():
        return None
    return FeedEvent(run, orjson.dumps(redact_run(run, parsed_json=True)))


class Subscriber:
    """One client's stream: its filter, positions and the encoded events waiting for its writer."""

    def __init__(
        self, run_filter: RunFilter, positions: dict[int, int], limit: int, not_before_ms: int = 0
    ) -> None:
        self.filter = run_filter
        self.positions = positions  # partition -> next offset this subscriber has seen to
        self.not_before_ms = not_before_ms  # `since`: older records are skipped
        self.limit = limit  # events that may wait for the writer
        self.frames: list[bytes] = []  # encoded events waiting for the writer
        self.ended = ""  # why the stream must end once what waits is written (too slow, stopping)
        self.ready = asyncio.Event()  # set when there is something to write, or the end: the writer waits
        self.drained = asyncio.Event()  # set when the writer takes what waits: its own reader waits
        self.reader: asyncio.Task[None] | None = None  # its own reader while it catches up
        self.writing = False  # its writer is in a write (a client that does not read keeps it there)

    def end(self, why: str) -> None:
        if not self.ended:
            self.ended = why
            self.ready.set()
            self.drained.set()  # its own reader, if waiting, stops

    def push(self, frame: bytes) -> bool:
        """Add a frame for the writer (woken later, by `wake`). False, too slow, when `limit` frames wait
        while the writer is stuck in a write (the client does not read); a writer that only has not run
        yet is woken instead (it runs at the reader's next turn)."""
        if len(self.frames) >= self.limit:
            if self.writing:
                return False
            self.ready.set()
        self.frames.append(frame)
        return True

    def wake(self) -> None:
        if self.frames:
            self.ready.set()

    def waiting(self) -> bytes:
        """Every frame waiting, taken at once (empty when none): the writer sends them in one write."""
        taken = b"".join(self.frames)
        self.frames.clear()
        self.drained.set()
        return taken

    def frame(self, partition: int, offset: int, timestamp: int, event: FeedEvent | None) -> bytes | None:
        """Advance past one record; its encoded event when this subscriber is to get it."""
        if offset < self.positions.get(partition, 0):
            return None  # it had this one already (from its own reader)
        self.positions[partition] = offset + 1
        if event is None or timestamp < self.not_before_ms or not self.filter.matches(event.run):
            return None
        return encode_event(event.data, cursor=encode_cursor(self.positions))


class RunFeed:
    """The worker's shared reader of the runs topic and its subscribers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topic("runs")
        self.positions: dict[int, int] = {}  # the shared reader's: partition -> next offset
        self._subscribers: set[Subscriber] = set()  # joined: fed by the shared reader
        self._catching_up: set[Subscriber] = set()  # reading with their own reader still
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._stopped = False
        self._waking: asyncio.TimerHandle | None = None  # the writers' next wake-up, when one is due
        self._woken = 0.0  # loop time of the last one

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def subscribe(
        self, run_filter: RunFilter, *, cursor: dict[int, int] | None = None, since: float | None = None
    ) -> Subscriber:
        """A new subscriber from now, from a cursor's positions, or from `since` (epoch seconds)."""
        await self._start()
        limit = self.settings.subscribe_queue
        if cursor is None and since is None:
            subscriber = Subscriber(run_filter, dict(self.positions), limit)
            self._subscribers.add(subscriber)
            return subscriber
        not_before = int(since * 1000) if since is not None else 0
        subscriber = Subscriber(run_filter, {}, limit, not_before)
        subscriber.positions = await self._start_positions(cursor, not_before)
        self._catching_up.add(subscriber)
        subscriber.reader = asyncio.create_task(self._catch_up(subscriber))
        subscriber.reader.add_done_callback(_log_failure)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """The client is gone: stop feeding it (and its own reader, if it has one still)."""
        self._subscribers.discard(subscriber)
        self._catching_up.discard(subscriber)
        subscriber.end("unsubscribed")
        if subscriber.reader is not None:
            subscriber.reader.cancel()

    async def stop(self) -> None:
        self._stopped = True
        for subscriber in [*self._subscribers, *self._catching_up]:
            subscriber.end(STOPPING)
            if subscriber.reader is not None:
                subscriber.reader.cancel()
        self._subscribers.clear()
        self._catching_up.clear()
        if self._waking is not None:
            self._waking.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    # -- the shared reader ------------------------------------------------------------------------------

    async def _start(self) -> None:
        async with self._starting:
            if self._consumer is not None:
                return
            if self._stopped:
                raise RuntimeError("the worker is stopping")
            consumer = self._new_consumer()
            await consumer.start()
            try:
                partitions = await self._partitions(consumer)
                consumer.assign(partitions)
                ends = await true_end_offsets(
                    client_kwargs(self.settings), await consumer.end_offsets(partitions)
                )
            except BaseException:
                await consumer.stop()
                raise
            for tp, end in ends.items():
                consumer.seek(tp, end)
                self.positions[tp.partition] = end
            self._consumer = consumer
            self._task = asyncio.create_task(self._follow(consumer))
            self._task.add_done_callback(_log_failure)
            log.info("live subscriptions: reading %s from %s", self.topic, self.positions)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        try:
            await self._read(consumer)
        except Exception as exc:
            # Every stream ends (its client resumes from its cursor) and the next subscriber starts a
            # new reader: no client waits for ever on one that is gone.
            log.error("live subscriptions: the shared reader of %s failed: %r", self.topic, exc)
            for subscriber in [*self._subscribers, *self._catching_up]:
                self.unsubscribe(subscriber)
                subscriber.ended = READER_FAILED
            self._consumer, self.positions = None, {}
            await consumer.stop()

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        max_bytes = self.settings.max_event_bytes
        loop = asyncio.get_running_loop()
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
            for tp, messages in batches.items():
                partition = tp.partition
                for message in messages:
                    if self._subscribers:
                        event = feed_event(message.key, message.value, max_bytes)
                        self._offer(partition, message.offset, message.timestamp, event)
                    self.positions[partition] = message.offset + 1  # with the offer: no await between
                await asyncio.sleep(0)  # the pipeline and the API get a turn between partitions
            if batches and self._waking is None:
                delay = max(0.0, self._woken + WAKE_INTERVAL - loop.time())
                self._waking = loop.call_later(delay, self._wake_all)

    def _wake_all(self) -> None:
        """Wake the writers of every subscriber with frames waiting: at most once a WAKE_INTERVAL, so
        that under load each client gets a few writes a second of several events, not one per event."""
        self._waking = None
        self._woken = asyncio.get_running_loop().time()
        for subscriber in self._subscribers:
            subscriber.wake()

    def _offer(self, partition: int, offset: int, timestamp: int, event: FeedEvent | None) -> None:
        """Hand one record to every joined subscriber (before the reader's positions pass it); one whose
        frames are `limit` already is dropped."""
        shared: bytes | None = None  # the frame of every subscriber in step with the reader
        for subscriber in list(self._subscribers):
            if subscriber.positions == self.positions and not subscriber.not_before_ms:
                # The usual case: in step with the reader, so its cursor is the reader's.
                subscriber.positions[partition] = offset + 1
                if event is None or not subscriber.filter.matches(event.run):
                    continue
                if shared is None:
                    shared = encode_event(event.data, cursor=encode_cursor(subscriber.positions))
                frame: bytes | None = shared
            else:
                frame = subscriber.frame(partition, offset, timestamp, event)
            if frame is None:
                continue
            if not subscriber.push(frame):
                self._subscribers.discard(subscriber)
                subscriber.end(TOO_SLOW)

    # -- a subscriber's own reader, until it joins ------------------------------------------------------

    async def _start_positions(self, cursor: dict[int, int] | None, not_before_ms: int) -> dict[int, int]:
        """Where a subscriber's own reader starts: the cursor's offsets, or the first at `since`."""
        partitions = list(self.positions)
        if cursor is not None:
            # A partition the cursor does not name (the topic grew) starts at its beginning.
            return {partition: cursor.get(partition, 0) for partition in partitions}
        consumer = self._new_consumer()
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, partition) for partition in partitions]
            found = await consumer.offsets_for_times(dict.fromkeys(tps, not_before_ms))
        except KafkaError as exc:  # a broker without ListOffsets by time: scan, by record timestamp
            log.info("live subscriptions: offsets by time unavailable (%r): reading from the beginning", exc)
            return dict.fromkeys(partitions, 0)
        finally:
            await consumer.stop()
        # None: no record at or after it, so none before the shared reader's position either.
        return {
            tp.partition: (self.positions[tp.partition] if at is None else at.offset)
            for tp, at in found.items()
        }

    async def _catch_up(self, subscriber: Subscriber) -> None:
        """Read for one subscriber from its positions until the shared reader's, then join it."""
        try:
            await self._read_until_joined(subscriber)
        except Exception as exc:
            log.error("live subscriptions: a subscriber's own reader failed: %r", exc)
            self.unsubscribe(subscriber)
            subscriber.ended = READER_FAILED

    async def _read_until_joined(self, subscriber: Subscriber) -> None:
        consumer = self._new_consumer()
        await consumer.start()
        try:
            tps = {partition: TopicPartition(self.topic, partition) for partition in self.positions}
            consumer.assign(list(tps.values()))
            for partition, tp in tps.items():
                consumer.seek(tp, subscriber.positions.get(partition, 0))
            max_bytes = self.settings.max_event_bytes
            while not subscriber.ended:
                if self._join(subscriber):
                    return
                batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
                for tp, messages in batches.items():
                    for message in messages:
                        event = feed_event(message.key, message.value, max_bytes)
                        frame = subscriber.frame(tp.partition, message.offset, message.timestamp, event)
                        if frame is None:
                            continue
                        while len(subscriber.frames) >= subscriber.limit and not subscriber.ended:
                            subscriber.wake()
                            subscriber.drained.clear()
                            await subscriber.drained.wait()  # a slow client slows only this reader
                        subscriber.frames.append(frame)
                    subscriber.wake()
                    # Past records the log no longer has (or offsets without records): the reader's
                    # position is where this subscriber has seen to.
                    position = await consumer.position(tp)
                    if position > subscriber.positions.get(tp.partition, 0):
                        subscriber.positions[tp.partition] = position
        finally:
            await consumer.stop()

    def _join(self, subscriber: Subscriber) -> bool:
        """Join the shared reader if this subscriber has reached it on every partition (no await here)."""
        if self._stopped:
            subscriber.end(STOPPING)
            return True
        if any(subscriber.positions.get(partition, 0) < at for partition, at in self.positions.items()):
            return False
        self._catching_up.discard(subscriber)
        self._subscribers.add(subscriber)
        return True

    # -- plumbing ---------------------------------------------------------------------------------------

    def _new_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **client_kwargs(self.settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a cursor older than the log starts at what it still has
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
        )

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        for _ in range(20):
            found = consumer.partitions_for_topic(self.topic)
            if not found:
                await consumer._client.force_metadata_update()
                found = consumer.partitions_for_topic(self.topic)
            if found:
                return [TopicPartition(self.topic, partition) for partition in sorted(found)]
            await asyncio.sleep(0.5)
        raise RuntimeError(f"topic {self.topic} has no partitions")


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("live subscriptions: a reader failed: %r", task.exception())
