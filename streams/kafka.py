"""faust's aiokafka transport with the consumer's fetch wait taken from our settings.

faust hard-codes ``fetch_max_wait_ms=1500``; the embedded broker holds every fetch that long even when
data is waiting, which would put 1.5 s on every hop. This subclasses the transport instead of forking faust.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiokafka
import faust
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP


def _servers(app: Any) -> list[tuple[str, int]]:
    servers = []
    for url in app.conf.broker_consumer:
        host = url.host or "localhost"
        servers.append((host, int(url.port or 9092)))
    return servers


async def true_end_offsets(
    bootstrap_servers: str, reported: Mapping[TopicPartition, int], timeout: float = 10.0
) -> dict[TopicPartition, int]:
    """End offsets corrected by a fetch: some brokers (the embedded Tansu among them) report, after a
    multi-record batch, the batch's base offset + 1 instead of the true end. A fetch from there
    returns the whole batch and the true high watermark. faust stops table recovery at the end
    offset it is told, so an under-reported one silently drops the newest changelog records.
    """
    corrected = dict(reported)
    probe = [tp for tp, end in reported.items() if end > 0]
    if not probe:
        return corrected
    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=5
    )
    await consumer.start()
    try:
        consumer.assign(probe)
        for tp in probe:
            consumer.seek(tp, reported[tp] - 1)
        pending = set(probe)
        deadline = asyncio.get_running_loop().time() + timeout
        while pending and asyncio.get_running_loop().time() < deadline:
            await consumer.getmany(*pending, timeout_ms=200)
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    corrected[tp] = max(corrected[tp], highwater)
                    pending.discard(tp)
                    consumer.pause(tp)
    finally:
        await consumer.stop()
    return corrected


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            consumer._fetch_max_wait_ms = int(wait_ms)
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        reported = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return reported
        bootstrap = ",".join(f"{host}:{port}" for host, port in _servers(self.app))
        corrected = await true_end_offsets(
            bootstrap, {TopicPartition(tp.topic, tp.partition): v for tp, v in reported.items()}
        )
        return {tp: corrected[TopicPartition(tp.topic, tp.partition)] for tp in reported}


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class App(faust.App):
    """A faust App whose consumer honours ``fetch_max_wait_ms``."""

    fetch_max_wait_ms: int | None = None

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)
