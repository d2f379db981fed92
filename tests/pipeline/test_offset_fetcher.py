"""OffsetFetcher: single records read back by (partition, offset), as retries and the API do."""

from __future__ import annotations

import logging
import random

import pytest
from aiokafka import AIOKafkaProducer
from runherald.streams.offsets import OffsetFetcher

from runherald.broker import EmbeddedBroker
from runherald.config import Settings
from runherald.topics import ensure_topics

from .harness import unique


async def test_reads_any_record_back_and_assigns_each_partition_once(
    broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(broker=broker.url, topic_prefix=unique("f") + ".", partitions=3)
    await ensure_topics(settings)
    topic = settings.topic("deliveries")
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    written: dict[tuple[int, int], bytes] = {}
    try:
        for i in range(60):
            value = f"record-{i}".encode()
            meta = await producer.send_and_wait(topic, value=value, partition=i % 3)
            written[(meta.partition, meta.offset)] = value
    finally:
        await producer.stop()

    fetcher = OffsetFetcher(settings, topic)
    places = list(written) * 2
    random.Random(7).shuffle(places)
    caplog.set_level(logging.INFO, logger="aiokafka")
    try:
        for partition, offset in places[:40]:
            assert await fetcher.fetch(partition, offset) == written[(partition, offset)]
    finally:
        await fetcher.stop()
    changes = [r for r in caplog.records if "Updating subscribed topics" in r.getMessage()]
    assert 1 <= len(changes) <= 3  # once per partition, not once per read
