"""The faust app: topics, the ledger table and the two stages, wired to the pure core and the notifiers.

runs ──► evaluate ──► deliveries ──► dispatch ──► Slack / SMTP / HTTP
              └──────────► status (the ledger) ◄───────┘
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from runherald import metrics
from runherald.breaker import CircuitBreakers
from runherald.config import Settings
from runherald.delivery import Delivery, DeliveryOutcome, OutcomeKind
from runherald.retry import RetryPolicy
from runherald.sealing import seal_run
from runherald.secrets import redact_secret_params
from runherald.topics import COMPACTED

from . import ledger
from .dispatch import Dispatcher
from .evaluate import InvalidEvent, evaluate_event, parse_event, run_key
from .kafka import App

log = logging.getLogger("runherald.pipeline")

YIELD_EVERY = 200  # records handled before a batch gives the event loop a turn
LEDGER_WRITE_DELAY = 0.25  # seconds: how long the evaluate stage's ledger changes may wait (see below)


def dead_letter_value(*, reason: str, stage: str, source: dict[str, Any], payload: Any = None) -> bytes:
    """A dead-letter record: why, where from, and the payload with secrets redacted."""
    record: dict[str, Any] = {
        "reason": reason,
        "stage": stage,
        "source": source,
        "time": ledger.utc_now_iso(),
    }
    if payload is not None:
        record["payload"] = payload
    return orjson.dumps(record)


def _redacted_payload(raw: bytes | None) -> Any:
    """What of a bad event may go to the dead-letter topic: the JSON with secrets redacted, or a digest."""
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    digest = {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    if not isinstance(value, dict):
        return digest
    try:
        # Literal secrets go; sealed values and references stay, so the record can be replayed.
        notifications = (value.get("spec") or {}).get("notifications")
        if isinstance(notifications, list):
            value["spec"]["notifications"] = [
                redact_secret_params(n) if isinstance(n, dict) else n for n in notifications
            ]
        return value
    except Exception:  # a shape we cannot walk: keep nothing that might be secret
        return digest


def _scratch_dir() -> str:
    """faust wants a data directory even for memory tables: a temporary one, removed at exit."""
    path = tempfile.mkdtemp(prefix="runherald-")
    atexit.register(shutil.rmtree, path, True)
    return path


def _notifier_lookup(settings: Settings) -> Callable[[str], Any]:
    from runherald.notifiers import NotifierSettings, get_notifier

    notifier_settings = NotifierSettings.from_settings(settings)
    cache: dict[str, Any] = {}

    def lookup(kind: str) -> Any:
        if kind not in cache:
            cache[kind] = get_notifier(kind, notifier_settings)
        return cache[kind]

    return lookup


# How often the worker's fetches include the deliveries topic. Evaluate starts each delivery's send
# at once; reading it back only acknowledges it (and picks up deliveries other workers or a replay
# wrote), so it need not ride along in every fetch: that halves the partitions per fetch.
DELIVERIES_FETCH_EVERY = 0.25


def _observe(delivery: Delivery, outcome: DeliveryOutcome, _took: float) -> None:
    metrics.DELIVERIES.labels(delivery.kind, outcome.kind.value).inc()
    if outcome.kind is OutcomeKind.SENT and delivery.created_at:
        metrics.DELIVERY_LATENCY.labels(delivery.kind).observe(max(0.0, time.time() - delivery.created_at))


class Writer:
    """Sends records straight to faust's aiokafka producer, which faust flushes before every commit.

    faust's own send_soon() hands records one at a time to a background task and stalls the sender
    once 100 are waiting; at thousands of records a second that queue is the bottleneck.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self.failure: BaseException | None = None
        self._crashing: asyncio.Future[Any] | None = None

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> asyncio.Future[Any]:
        """Queue one record; the future resolves to its RecordMetadata once the broker has it."""
        producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
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


class OffsetFetcher:
    """Reads single records back by (partition, offset): a delivery for its retry, a run for the API."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned: set[TopicPartition] = set()
        self._lock = asyncio.Lock()

    async def fetch(self, partition: int, offset: int) -> bytes:
        async with self._lock:
            if self._consumer is None:
                self._assigned = set()
                self._consumer = AIOKafkaConsumer(
                    bootstrap_servers=self.settings.bootstrap_servers,
                    enable_auto_commit=False,
                    fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
                    # One record is wanted: the broker still returns the whole batch holding it, but
                    # not the megabyte after it. Measured on the embedded broker: 20 ms and 7 ms of
                    # CPU per read with the defaults, 2.7 ms and 1.2 ms with these.
                    fetch_max_bytes=1,
                    max_partition_fetch_bytes=1,
                )
                await self._consumer.start()
            tp = TopicPartition(self.topic, partition)
            if tp not in self._assigned:
                # Assigning replaces the consumer's subscription (and aiokafka logs it at INFO): once
                # per partition, not on every read. Every partition stays paused between reads.
                self._assigned.add(tp)
                self._consumer.assign(sorted(self._assigned))
                self._consumer.pause(*self._assigned)
            self._consumer.seek(tp, offset)
            self._consumer.resume(tp)
            try:
                message = await asyncio.wait_for(self._consumer.getone(tp), timeout=30)
            finally:
                self._consumer.pause(tp)  # no background fetching between reads
            return message.value or b""

    async def fetch_delivery(self, partition: int, offset: int) -> Delivery:
        return Delivery.from_record(orjson.loads(await self.fetch(partition, offset)))

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


@dataclass
class Pipeline:
    """One worker's faust app and the objects the API and CLI reach into."""

    settings: Settings
    app: App
    dispatcher: Dispatcher
    ledger_table: Any
    run_fetcher: OffsetFetcher


def create_pipeline(settings: Settings, notifier_for: Callable[[str], Any] | None = None) -> Pipeline:
    """Build the faust app for these settings (nothing connects until the app starts)."""
    app = App(
        settings.group_id,
        broker=settings.broker,
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        table_standby_replicas=0,
        stream_wait_empty=False,
        datadir=_scratch_dir(),
        producer_linger_ms=settings.producer_linger_ms,
        # No leader election topic: nothing here runs on the leader only, and its partition would
        # ride along in every fetch the worker makes.
        topic_disable_leader=True,
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    app.consumer_thread = settings.consumer_thread

    def topic(name: str) -> Any:
        return app.topic(
            settings.topic(name),
            partitions=settings.partitions,
            compacting=name in COMPACTED or None,
            key_serializer="raw",
            value_serializer="raw",
        )

    runs_topic = topic("runs")
    deliveries_topic = topic("deliveries")
    dead_letter_topic = topic("dead-letter")
    ledger_table = app.Table(
        "ledger",
        partitions=settings.partitions,
        changelog_topic=topic("status"),
    )

    writer = Writer(app)
    status_topic_name = settings.topic("status")
    dead_letter_topic_name = dead_letter_topic.get_topic_name()
    runs_topic_name = runs_topic.get_topic_name()
    deliveries_topic_name = deliveries_topic.get_topic_name()

    async def put(table: Any, partition: int, key: bytes, value: bytes) -> None:
        # Records of one run are written by both stages and by retry timers, so the partition is
        # given explicitly instead of being taken from faust's current event.
        table.data[key] = value
        unwritten.pop(key, None)  # this write carries every change so far
        await writer.send(status_topic_name, key, value, partition)

    # The evaluate stage's ledger changes are written a little later (LEDGER_WRITE_DELAY), and the run
    # events behind them are acknowledged only after that write. Most of them never need their own
    # write: the delivery's outcome, recorded a few milliseconds later, carries the same record. Every
    # write sends the record as it is in memory at that moment, so the last one written is always the
    # latest. A crash before the write loses nothing: those events were not acknowledged.
    unwritten: dict[bytes, int] = {}  # run key -> partition, changed in memory since its last write
    unacknowledged: list[tuple[TP, list[int]]] = []

    oldest_unacknowledged = [0.0]  # monotonic time the oldest waiting event was handled

    def put_later(partition: int, key: bytes, value: bytes) -> None:
        ledger_table.data[key] = value
        unwritten[key] = partition

    async def write_unwritten() -> None:
        # Both taken at once: events handled after this point wait for the next round.
        events = list(unacknowledged)
        unacknowledged.clear()
        oldest_unacknowledged[0] = 0.0
        keys = list(unwritten.items())
        unwritten.clear()
        for key, partition in keys:
            value = ledger_table.data.get(key)
            if value is not None:
                await writer.send(status_topic_name, key, value, partition)
        for tp, offsets in events:
            app.ack_offsets(tp, offsets)

    @app.timer(LEDGER_WRITE_DELAY)
    async def write_ledger_changes() -> None:
        await write_unwritten()

    # Partitions of the deliveries topic this worker owns. Asking the consumer costs a trip through
    # faust's consumer thread on every send; the set follows rebalances instead (see the handlers
    # below: revoked partitions leave it only after their sends are drained and recorded).
    owned: set[int] = set()

    def owns(partition: int) -> bool:
        return partition in owned

    async def write_record(delivery: Delivery, partition: int, record: ledger.Record) -> None:
        await put(ledger_table, partition, Dispatcher.key_of(delivery).encode(), ledger.dump(record))

    async def dead_letter_delivery(delivery: Delivery, reason: str) -> None:
        payload = delivery.to_record()
        payload["notification"] = redact_secret_params(delivery.notification)
        await writer.send(
            dead_letter_topic_name,
            Dispatcher.key_of(delivery).encode(),
            dead_letter_value(
                reason=reason,
                stage="dispatch",
                source={"delivery_id": delivery.id, "name": delivery.name, "state": delivery.state},
                payload=payload,
            ),
        )

    fetcher = OffsetFetcher(settings, deliveries_topic.get_topic_name())

    dispatcher = Dispatcher(
        notifier_for=notifier_for or _notifier_lookup(settings),
        read_record=lambda key: ledger.load(ledger_table.data.get(key.encode())),
        write_record=write_record,
        dead_letter=dead_letter_delivery,
        fetch_delivery=fetcher.fetch_delivery,
        policy=RetryPolicy(
            max_attempts=settings.retry_max_attempts,
            max_elapsed=settings.retry_max_elapsed,
            base_delay=settings.retry_base_delay,
            max_delay=settings.retry_max_delay,
        ),
        send_timeout=settings.send_timeout,
        max_in_flight=settings.max_in_flight,
        secrets_dir=settings.secrets_dir or None,
        owns_partition=owns,
        on_outcome=_observe,
        breakers=CircuitBreakers(
            settings.circuit_threshold,
            settings.circuit_cooldown,
            settings.retry_max_delay,
            hang_after=settings.send_timeout / 2,
        ),
    )

    metrics.IN_FLIGHT.set_function(lambda: len(dispatcher.in_flight))
    metrics.OPEN_CIRCUITS.set_function(dispatcher.breakers.open_endpoints)

    async def dead_letter_event(message: Any, reason: str) -> None:
        metrics.EVENTS_DEAD_LETTERED.labels(reason.split(":")[0][:40]).inc()
        log.warning(
            "dead-lettered run event %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason
        )
        await writer.send(
            dead_letter_topic_name,
            message.key,
            dead_letter_value(
                reason=reason,
                stage="evaluate",
                source={"topic": message.topic, "partition": message.partition, "offset": message.offset},
                payload=_redacted_payload(message.value),
            ),
        )

    # Both stages take their records a fetch at a time (see kafka.App.batch_topic): faust's per-event
    # stream costs more than everything evaluate does with an event. The lock lets a rebalance wait
    # for the batch under way before the partitions go.
    batch_lock = asyncio.Lock()

    evaluate_lag = metrics.STAGE_LAG.labels("evaluate")

    async def evaluate(tp: TP, records: list[Any]) -> None:
        """Read run events, decide which notifications to send, emit deliveries and ledger entries."""
        async with batch_lock:
            await evaluate_batch(tp, records)

    async def evaluate_batch(tp: TP, records: list[Any]) -> None:
        metrics.EVENTS_CONSUMED.inc(len(records))
        # The wait of the oldest record of each fetch (a histogram update per record costs more
        # than a tenth of what evaluate does with an event).
        oldest = records[0]
        if oldest.timestamp_type == 0 and oldest.timestamp > 0:  # CreateTime, set by the publisher
            evaluate_lag.observe(max(0.0, time.time() - oldest.timestamp / 1000))
        for index, message in enumerate(records):
            if index and not index % YIELD_EVERY:
                await asyncio.sleep(0)  # let sends, their records and the API get a turn
            await evaluate_one(message)
        if not unacknowledged:
            oldest_unacknowledged[0] = time.monotonic()
        unacknowledged.append((tp, [message.offset for message in records]))
        if time.monotonic() - oldest_unacknowledged[0] >= LEDGER_WRITE_DELAY:
            await write_unwritten()  # under load the timer alone could fall behind

    async def evaluate_one(message: Any) -> None:
        try:
            run = parse_event(message.value, settings.max_event_bytes)
        except InvalidEvent as exc:
            await dead_letter_event(message, str(exc))
            return
        key = run_key(run)
        keyb = key.encode()
        if message.key != keyb:
            # Published under another key: move it to its run's partition so per-run order holds.
            await writer.send(runs_topic_name, keyb, orjson.dumps(seal_run(run)))
            return
        meta = run["metadata"]
        result = evaluate_event(
            run,
            record=ledger.load(ledger_table.data.get(keyb), meta["project"], meta["uid"]),
            source=(message.partition, message.offset),
            settings=settings,
        )
        if result.dropped:
            metrics.EVENTS_DROPPED.inc()
            log.info("ignored run event for %s: %s", key, result.dropped)
            return
        for delivery in result.deliveries:
            written = await writer.send(
                deliveries_topic_name, keyb, orjson.dumps(delivery.to_record()), message.partition
            )
            await dispatcher.start_now(delivery, message.partition, written)
        if result.deliveries:
            metrics.DELIVERIES_EMITTED.inc(len(result.deliveries))
        if result.record is not None:
            put_later(message.partition, keyb, ledger.dump(result.record))

    async def dispatch(tp: TP, records: list[Any]) -> None:
        """Send each delivery in its own task; its record is acknowledged once the outcome is recorded."""
        async with batch_lock:
            await dispatch_batch(tp, records)

    async def dispatch_batch(tp: TP, records: list[Any]) -> None:
        for index, message in enumerate(records):
            if index and not index % YIELD_EVERY:
                await asyncio.sleep(0)
            await dispatch_one(tp, message)

    async def dispatch_one(tp: TP, message: Any) -> None:
        offset = message.offset
        try:
            delivery = Delivery.from_record(orjson.loads(message.value))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            await writer.send(
                dead_letter_topic_name,
                message.key,
                dead_letter_value(
                    reason=f"malformed delivery: {exc}",
                    stage="dispatch",
                    source={"topic": message.topic, "partition": message.partition, "offset": offset},
                ),
            )
            app.ack_offsets(tp, (offset,))
            return
        if delivery.created_at and not delivery.attempts:
            metrics.STAGE_LAG.labels("dispatch").observe(max(0.0, time.time() - delivery.created_at))
        await dispatcher.submit(delivery, message.partition, offset, lambda: app.ack_offsets(tp, (offset,)))

    app.batch_topic(runs_topic, evaluate)
    app.batch_topic(deliveries_topic, dispatch, fetch_every=DELIVERIES_FETCH_EVERY)

    @ledger_table.on_recover
    async def reschedule_retries() -> None:
        for key, raw in list(ledger_table.data.items()):
            if raw and b'"retry":[' in raw:
                record = ledger.load(raw)
                for _due, did in ledger.due_retries(record):
                    found = record["deliveries"][did]
                    dispatcher.schedule(
                        float(found["next_attempt_at"]), did, key.decode(), int(found["partition"])
                    )

    @app.task
    async def retries() -> None:
        try:
            await dispatcher.run_retries()
        finally:
            await fetcher.stop()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        # Before the partitions go, let their sends finish and their ledger writes reach the broker:
        # the next owner recovers the ledger as soon as this rebalance completes.
        gone = {tp.partition for tp in revoked if tp.topic == deliveries_topic_name}
        async with batch_lock:
            pass  # the batch under way has finished
        await write_unwritten()
        dispatcher.forget_partitions(lambda partition: partition not in gone)
        await dispatcher.drain(timeout=settings.send_timeout + 1, partitions=gone)
        await app.producer.flush()
        owned.difference_update(gone)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(app: Any, assigned: Any, **kwargs: Any) -> None:
        owned.clear()
        owned.update(tp.partition for tp in assigned if tp.topic == deliveries_topic_name)

    return Pipeline(
        settings=settings,
        app=app,
        dispatcher=dispatcher,
        ledger_table=ledger_table,
        run_fetcher=OffsetFetcher(settings, runs_topic.get_topic_name()),
    )
