"""The run sources stage: topics producers already write ──► adapt ──► runs (keyed "{project}/{uid}").

faust cannot subscribe to a pattern (its aiokafka driver passes topic names only), and the sources
are a pattern as often as names, so this stage is an aiokafka consumer of its own, in the consumer
group ``{group_id}.run-sources``, subscribed to one regular expression (runherald.run_sources): the
named topics and the topics matching ``run_topic_pattern``, new ones included (the metadata is
refreshed every SOURCE_METADATA_MAX_AGE seconds). It runs beside the faust stages in every worker;
the group shares the source partitions among the workers.

Each record is adapted (runherald.adapters) with its headers, and its runs are re-published to the
runs topic keyed ``"{project}/{uid}"``, in the order read: the evaluate stage then sees each run on its
own partition, whatever the source topic's keys were. Records of one fetch from several partitions
are taken in their timestamps' order (each partition's own order kept), so a run whose states a
producer wrote one after the other to different partitions keeps its order; an older state that
still arrives late is dropped by evaluate (last_update). A record no adapter recognises goes to the
dead-letter topic with each adapter's reason, and the stream goes on. The source offsets are
committed only once the runs (and dead letters) re-published for them are acknowledged: a crash
re-reads them, and a run re-published twice is harmless (the delivery id de-duplicates).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError

from runherald import metrics
from runherald.adapters import Unrecognised
from runherald.config import Settings
from runherald.connect import start_client
from runherald.deadletter import dead_letter_value
from runherald.events import INVALID_FIELD, InvalidEvent
from runherald.kafka_clients import client_kwargs, start_producer
from runherald.run_sources import redacted_record, source_records, subscription_pattern

log = logging.getLogger("runherald.sources")

SOURCE_METADATA_MAX_AGE = 5.0  # seconds: how soon a new topic matching the pattern is read
RESTART_DELAY = 2.0  # seconds before the stage starts again after a failure (uncommitted records re-read)
STAGE = "source"  # the dead-letter records' stage


def source_group(settings: Settings) -> str:
    """The consumer group of the run sources: derived from the workers' group id."""
    return f"{settings.group_id}.run-sources"


def in_time_order(batches: Mapping[TopicPartition, Sequence[Any]]) -> list[Any]:
    """The records of one fetch by timestamp, each partition's records in their own order."""
    return list(heapq.merge(*batches.values(), key=lambda record: record.timestamp))


class RunSources:
    """Consumes the run sources and re-publishes their runs to the runs topic; `run` until cancelled."""

    def __init__(self, settings: Settings, *, idempotent: bool = False) -> None:
        self.settings = settings
        self.pattern = subscription_pattern(
            settings.run_topic_names, settings.run_topic_pattern, settings.topic_prefix
        )
        self._idempotent = idempotent
        self._runs_topic = settings.topic("runs")
        self._dead_letter_topic = settings.topic("dead-letter")
        self.republished = 0
        self.dead_lettered = 0

    async def run(self) -> None:
        """Consume until cancelled; after a failure (the broker gone, a rebalance during a commit)
        start again from the last committed offsets."""
        if self.pattern is None:
            return
        log.info(
            "run sources: topics matching %s (consumer group %s)", self.pattern, source_group(self.settings)
        )
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("run sources stopped (%r); starting again in %gs", exc, RESTART_DELAY)
                await asyncio.sleep(RESTART_DELAY)

    async def _consume(self) -> None:
        settings = self.settings
        consumer = AIOKafkaConsumer(
            **client_kwargs(settings),
            group_id=source_group(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=int(SOURCE_METADATA_MAX_AGE * 1000),
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            session_timeout_ms=int(settings.session_timeout * 1000),
            heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
            max_partition_fetch_bytes=max(settings.max_event_bytes + 1024, 1024 * 1024),
        )
        await start_client(consumer, settings)
        producer: AIOKafkaProducer | None = None
        try:
            producer, _ = await start_producer(settings, idempotent=self._idempotent, linger_ms=1)
            consumer.subscribe(pattern=self.pattern)
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                batches = {tp: records for tp, records in batches.items() if records}
                if batches:
                    await self.handle(producer, batches)
                    try:
                        await consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
                    except CommitFailedError as exc:  # a rebalance took the partitions meanwhile
                        log.info(
                            "run sources: commit refused (%s): the new owner re-reads those records", exc
                        )
        finally:
            if producer is not None:
                await producer.stop()
            await consumer.stop()

    async def handle(
        self, producer: AIOKafkaProducer, batches: Mapping[TopicPartition, Sequence[Any]]
    ) -> None:
        """Re-publish the runs of one fetch (dead-letter what is not one) and wait for every ack."""
        sent: list[asyncio.Future[Any]] = []
        for record in in_time_order(batches):
            sent += await self._route(producer, record)
        if sent:
            await asyncio.gather(*sent)

    async def _route(self, producer: AIOKafkaProducer, record: Any) -> list[asyncio.Future[Any]]:
        try:
            adapter, runs = source_records(
                record.value,
                record.headers or (),
                max_event_bytes=self.settings.max_event_bytes,
                max_hops=self.settings.max_hops,
            )
        except InvalidEvent as exc:
            return [await self._dead_letter(producer, record, exc)]
        except Exception as exc:  # sealing without a key, say: this record is refused, the stream goes on
            return [
                await self._dead_letter(
                    producer, record, InvalidEvent(f"cannot re-publish: {exc}", INVALID_FIELD)
                )
            ]
        self.republished += len(runs)
        log.debug(
            "%s[%s]@%s: %d run(s) (%s)", record.topic, record.partition, record.offset, len(runs), adapter
        )
        return [await producer.send(self._runs_topic, value=value, key=key.encode()) for key, value in runs]

    async def _dead_letter(
        self, producer: AIOKafkaProducer, record: Any, exc: InvalidEvent
    ) -> asyncio.Future[Any]:
        self.dead_lettered += 1
        metrics.EVENTS_DEAD_LETTERED.labels(exc.code).inc()
        log.warning(
            "dead-lettered source record %s[%s]@%s: %s", record.topic, record.partition, record.offset, exc
        )
        source = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        extra = {"reasons": exc.reasons} if isinstance(exc, Unrecognised) else {}
        value = dead_letter_value(
            reason=str(exc), stage=STAGE, source=source, payload=redacted_record(record.value), **extra
        )
        future: asyncio.Future[Any] = await producer.send(
            self._dead_letter_topic, value=value, key=record.key
        )
        return future
