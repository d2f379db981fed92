"""The faust app: topics, the ledger table and the stages, declared here and wired to each other.

runs ──► EvaluateStage ──► deliveries ──► DispatchStage ──► Dispatcher ──► Slack / SMTP / HTTP
               │                                               │
               └──────────► LedgerWriter: status (the ledger) ◄┘        (dead letters: DeadLetterWriter)

After every takeover (the recovery that follows a rebalance or a restart) waiting retries are
rescheduled from the ledger and the Redriver looks for deliveries left pending with nothing behind them.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from runherald.notifiers import Notifiers, NotifierSettings

from runherald import grouping, ledger, metrics
from runherald.breaker import CircuitBreakers
from runherald.config import Settings
from runherald.delivery import Delivery, DeliveryOutcome, OutcomeKind, run_key
from runherald.faults import fault_point
from runherald.kafka_clients import Plan, client_kwargs, faust_kwargs
from runherald.ratelimit import RateLimiter
from runherald.retry import RetryPolicy
from runherald.topics import COMPACTED

from .alert_store import AlertStore
from .dispatch import Dispatcher, DispatchStage
from .evaluate import LEDGER_WRITE_DELAY, EvaluateStage
from .groups import GROUP_TICK, Groups, MemberOutcomes
from .history import HistoryStage, TransitionStage, outcome_writer
from .kafka import App
from .offsets import OffsetFetcher
from .redrive import Redriver
from .sources import RunSources
from .throttle import Throttle
from .writers import DeadLetterWriter, LedgerWriter, Writer

log = logging.getLogger("runherald.pipeline")


def _scratch_dir() -> str:
    """faust wants a data directory even for memory tables: a temporary one, removed at exit."""
    path = tempfile.mkdtemp(prefix="runherald-")
    atexit.register(shutil.rmtree, path, True)
    return path


# How often the worker's fetches include the deliveries topic. Evaluate starts each delivery's send
# at once; reading it back only acknowledges it (and picks up deliveries other workers or a replay
# wrote), so it need not ride along in every fetch: that halves the partitions per fetch.
DELIVERIES_FETCH_EVERY = 0.25


def _observe(delivery: Delivery, outcome: DeliveryOutcome, _took: float) -> None:
    # Per attempt; a delivery's final status is counted once: sent here, error where it is dead-lettered.
    metrics.DELIVERY_ATTEMPTS.labels(delivery.kind, outcome.kind.value).inc()
    if outcome.kind is OutcomeKind.SENT:
        metrics.DELIVERIES.labels(delivery.kind, "sent").inc()
        if delivery.created_at:
            metrics.DELIVERY_LATENCY.labels(delivery.kind).observe(
                max(0.0, time.time() - delivery.created_at)
            )


# How often the consumer lag gauge is sampled (seconds): cheap, it reads what the consumer already knows.
LAG_SAMPLE_EVERY = 1.0


class Ownership:
    """The partitions this worker owns, followed through rebalances (asking faust's consumer costs a
    trip through its consumer thread on every send). A revoked partition leaves only once its sends
    are drained and recorded (see ``create_pipeline``'s rebalance handlers)."""

    def __init__(self) -> None:
        self.partitions: set[int] = set()

    def owns(self, partition: int) -> bool:
        return partition in self.partitions


@dataclass
class Pipeline:
    """One worker's faust app and the objects the API and CLI reach into."""

    settings: Settings
    app: App
    dispatcher: Dispatcher
    ledger: LedgerWriter
    ownership: Ownership
    run_fetcher: OffsetFetcher
    redriver: Redriver
    alerts: AlertStore

    def local_record(self, key: bytes) -> bytes | None:
        """A run's ledger record if this worker owns its partition (fresh), else None: ask the view."""
        if self.ownership.owns(self.ledger.partitions.get(key, -1)):
            return self.ledger.get(key)
        return None


def create_pipeline(
    settings: Settings, notifier_for: Callable[[str], Any] | None = None, kafka: Plan | None = None
) -> Pipeline:
    """Build the faust app for these settings (nothing connects until the app starts).

    `kafka`: what the worker decided for its cluster (idempotent producer, replication of the topics
    faust would create); without it, a plain producer and topics replicated once. Every producer
    waits for acks=all; security (TLS, SASL) comes from the settings (runherald.kafka_clients).
    """
    app = App(
        settings.group_id,
        broker=settings.broker,
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=kafka.replication_factor if kafka else 1,
        **faust_kwargs(settings),
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        # A worker killed between commits redoes what it did since the last one: this bounds the
        # deliveries sent twice after a crash (see README, "Crashes").
        broker_commit_interval=settings.commit_interval,
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
    app.idempotent_producer = kafka.idempotent if kafka else False
    app.client_kwargs = client_kwargs(settings)

    def topic(name: str) -> Any:
        return app.topic(
            settings.topic(name),
            partitions=settings.partitions,
            compacting=name in COMPACTED or None,
            key_serializer="raw",
            value_serializer="raw",
        )

    runs_topic, deliveries_topic, dead_letter_topic = topic("runs"), topic("deliveries"), topic("dead-letter")
    groups_topic, group_outcomes_topic = topic("groups"), topic("group-outcomes")
    ledger_table = app.Table("ledger", partitions=settings.partitions, changelog_topic=topic("status"))
    deliveries_topic_name = deliveries_topic.get_topic_name()

    writer = Writer(app)
    ledger_writer = LedgerWriter(ledger_table, writer, settings.topic("status"))
    dead_letters = DeadLetterWriter(writer, dead_letter_topic.get_topic_name())
    ownership = Ownership()
    alert_store = AlertStore(settings, settings.topic("rules"), send=writer.send)
    delivery_fetcher = OffsetFetcher(settings, deliveries_topic_name)
    run_fetcher = OffsetFetcher(settings, runs_topic.get_topic_name())

    async def write_record(delivery: Delivery, partition: int, record: ledger.Record) -> None:
        key = run_key(delivery.project, delivery.uid).encode()
        await ledger_writer.put(partition, key, record)
        if delivery.project == grouping.GROUP_PROJECT:
            groups.poke(key)  # a digest's outcome: its members are told

    dispatcher = Dispatcher(
        notifier_for=notifier_for or Notifiers(NotifierSettings.from_settings(settings)),
        read_record=lambda key: ledger_writer.load(key.encode()),
        write_record=write_record,
        dead_letter=dead_letters.delivery,
        fetch_delivery=delivery_fetcher.fetch_delivery,
        policy=RetryPolicy(
            max_attempts=settings.retry_max_attempts,
            max_elapsed=settings.retry_max_elapsed,
            base_delay=settings.retry_base_delay,
            max_delay=settings.retry_max_delay,
        ),
        send_timeout=settings.send_timeout,
        max_in_flight=settings.max_in_flight,
        secrets_dir=settings.secrets_dir or None,
        secret_env_allow=settings.secret_env_names,
        owns_partition=ownership.owns,
        on_outcome=_observe,
        breakers=CircuitBreakers(
            settings.circuit_threshold,
            settings.circuit_cooldown,
            settings.retry_max_delay,
            hang_after=settings.send_timeout / 2,
        ),
        throttle=Throttle(RateLimiter(), settings.slack_rate_limit),
        wait_written=lambda key: ledger_writer.written(key.encode()),
    )
    metrics.IN_FLIGHT.set_function(lambda: len(dispatcher.in_flight))
    metrics.OPEN_CIRCUITS.set_function(dispatcher.breakers.open_endpoints)

    async def emit(delivery: Delivery, partition: int) -> None:
        """Write a delivery to the deliveries topic and start sending it at once (this worker owns the
        partition); its event there is acknowledged once the send is recorded."""
        key = run_key(delivery.project, delivery.uid).encode()
        written = await writer.send(deliveries_topic_name, key, orjson.dumps(delivery.to_record()), partition)
        await dispatcher.start_now(delivery, partition, written)

    # Both stages take their records a fetch at a time (see kafka.App.batch_topic): faust's per-event
    # stream costs more than everything evaluate does with an event. The lock lets a rebalance wait
    # for the batch under way before the partitions go.
    batch_lock = asyncio.Lock()
    evaluate = EvaluateStage(
        app=app,
        settings=settings,
        writer=writer,
        ledger=ledger_writer,
        dead_letters=dead_letters,
        emit=emit,
        runs_topic=runs_topic.get_topic_name(),
        lock=batch_lock,
        alerts=lambda: alert_store.config,
        alerts_ready=alert_store.ready,
        inhibit=alert_store.inhibit,
        record_outcome=outcome_writer(writer, settings.topic("outcomes")),
        groups_topic=groups_topic.get_topic_name(),
    )
    dispatch = DispatchStage(app=app, dispatcher=dispatcher, dead_letters=dead_letters, lock=batch_lock)
    app.batch_topic(runs_topic, evaluate.handle)
    app.batch_topic(deliveries_topic, dispatch.handle, fetch_every=DELIVERIES_FETCH_EVERY)
    # Transitions (streams.history): rare records, which may wait for the slow topics' fetch as well.
    history = HistoryStage(
        app=app,
        table=app.Table("history", partitions=settings.partitions, changelog_topic=topic("history")),
        writer=writer,
        history_topic=settings.topic("history"),
        transitions_topic=settings.topic("transitions"),
        lock=batch_lock,
    )
    transitions = TransitionStage(
        app=app,
        settings=settings,
        ledger=ledger_writer,
        emit=emit,
        fetch_run=run_fetcher.fetch,
        lock=batch_lock,
        alerts=lambda: alert_store.config,
    )
    app.batch_topic(topic("outcomes"), history.handle, fetch_every=DELIVERIES_FETCH_EVERY)
    app.batch_topic(topic("transitions"), transitions.handle, fetch_every=DELIVERIES_FETCH_EVERY)
    # Grouped rules (streams.groups): members to their group's owner, digests out, members told.
    groups = Groups(
        app=app,
        ledger=ledger_writer,
        writer=writer,
        emit=emit,
        outcomes_topic=group_outcomes_topic.get_topic_name(),
        lock=batch_lock,
        owns=ownership.owns,
        is_busy=dispatcher.is_busy,
    )
    # Neither needs to ride along in every fetch (a group waits seconds): the runs' fetches stay small.
    outcomes = MemberOutcomes(app=app, ledger=ledger_writer, lock=batch_lock)
    app.batch_topic(groups_topic, groups.handle, fetch_every=DELIVERIES_FETCH_EVERY)
    app.batch_topic(group_outcomes_topic, outcomes.handle, fetch_every=DELIVERIES_FETCH_EVERY)

    @app.timer(GROUP_TICK)
    async def close_group_windows() -> None:
        await groups.sweep()

    @app.timer(LEDGER_WRITE_DELAY)
    async def write_ledger_changes() -> None:
        await evaluate.write_waiting()

    lag_topics = frozenset({runs_topic.get_topic_name(), deliveries_topic_name})

    @app.timer(LAG_SAMPLE_EVERY)
    async def sample_consumer_lag() -> None:
        metrics.set_consumer_lag(app.consumer_lag(lag_topics))

    async def record_error(key: bytes, delivery_id: str, partition: int, reason: str) -> None:
        record = ledger_writer.load(key)
        ledger.put_entry(
            record, delivery_id, status=ledger.ERROR, reason=ledger.short_reason(reason), detail=reason
        )
        await ledger_writer.put(partition, key, record)

    def owned_records() -> list[tuple[bytes, bytes]]:
        partitions = ledger_writer.partitions
        return [(key, raw) for key, raw in ledger_writer.items() if ownership.owns(partitions.get(key, -1))]

    redriver = Redriver(
        records=owned_records,
        read_record=ledger_writer.load,
        partition_of=ledger_writer.partitions.get,
        is_busy=dispatcher.is_busy,
        owns=ownership.owns,
        fetch_run=run_fetcher.fetch,
        emit=emit,
        record_error=record_error,
        grace=settings.redrive_after,
        max_event_bytes=settings.max_event_bytes,
        alerts=lambda: alert_store.config,
    )

    @app.task
    async def follow_alert_configuration() -> None:
        alert_store.start()

    sources = RunSources(settings, idempotent=kafka.idempotent if kafka else False)
    if sources.pattern is not None:  # run_topics / run_topic_pattern (streams.sources)

        @app.task
        async def read_run_sources() -> None:
            await sources.run()

    @ledger_table.on_recover
    async def after_takeover() -> None:
        # Runs after every rebalance's recovery, the first one at start included.
        for key, raw in owned_records():
            if b'"retry":[' in raw:
                partition = ledger_writer.partitions[key]
                dispatcher.schedule_from_record(key.decode(), partition, ledger.load(raw))
        groups.takeover(owned_records())
        redriver.takeover()

    @app.task
    async def retries() -> None:
        try:
            await dispatcher.run_retries()
        finally:
            await delivery_fetcher.stop()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        # Before the partitions go, let their sends finish and their ledger writes reach the broker:
        # the next owner recovers the ledger as soon as this rebalance completes.
        fault_point("rebalance")
        await redriver.stop()  # a sweep waiting for its grace starts again after the next takeover
        gone = {tp.partition for tp in revoked if tp.topic == deliveries_topic_name}
        share_partitions(ownership.partitions - gone)  # the rate limits' shares drop before they go
        async with batch_lock:
            pass  # the batch under way has finished
        await evaluate.write_waiting()
        dispatcher.forget_partitions(lambda partition: partition not in gone)
        await dispatcher.drain(timeout=settings.send_timeout + 1, partitions=gone)
        await ledger_writer.flush()
        await app.producer.flush()
        ownership.partitions.difference_update(gone)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(app: Any, assigned: Any, **kwargs: Any) -> None:
        ownership.partitions = {tp.partition for tp in assigned if tp.topic == deliveries_topic_name}
        share_partitions(ownership.partitions)

    def share_partitions(owned: set[int]) -> None:
        # The topic's real partition count (it may predate the setting); never fewer than we know of.
        try:
            known = app.consumer.topic_partitions(deliveries_topic_name)
        except AttributeError:  # no metadata yet
            known = None
        total = max(settings.partitions, known or 0, max(owned, default=-1) + 1)
        if dispatcher.throttle is not None:
            dispatcher.throttle.set_share(len(owned), total)

    return Pipeline(
        settings=settings,
        app=app,
        dispatcher=dispatcher,
        ledger=ledger_writer,
        ownership=ownership,
        run_fetcher=run_fetcher,
        redriver=redriver,
        alerts=alert_store,
    )
