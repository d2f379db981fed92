"""A batch topic with `fetch_every` rides along in one fetch per interval, not in every fetch.

Driven against a real aiokafka consumer on the embedded broker: its fetcher's planning step is
wrapped, and every fetch request it plans is recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from runherald.benchmarks.pipeline import create_topic
from runherald.streams.kafka import _fetch_slow_topics_less_often


async def test_slow_topic_is_fetched_once_per_interval(broker: Any) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        fast = [TopicPartition("lane-fast", p) for p in range(2)]
        slow = [TopicPartition("lane-slow", p) for p in range(2)]

        for topic in ("lane-fast", "lane-slow"):
            await create_topic(broker.bootstrap, topic, 2)
        consumer.assign(fast + slow)
        fetcher = consumer._fetcher
        planned: list[tuple[float, set[str]]] = []
        _fetch_slow_topics_less_often(fetcher, {"lane-slow": 0.3})
        wrapped = fetcher._get_actions_per_node

        def record(assignment: Any) -> Any:
            result = wrapped(assignment)
            for _node, request in result[0]:
                planned.append((time.monotonic(), {topic for topic, _ in request.topics}))
            return result

        fetcher._get_actions_per_node = record
        started = time.monotonic()
        while time.monotonic() - started < 1.5:
            await consumer.getmany(timeout_ms=50)
        await asyncio.sleep(0)
    finally:
        await consumer.stop()
    with_slow = [at for at, topics in planned if "lane-slow" in topics]
    assert len(planned) > 30  # the fast topic is fetched all the time (10 ms broker hold)
    assert all("lane-fast" in topics for _, topics in planned)
    assert 3 <= len(with_slow) <= 7  # ~1.5 s / 0.3 s
    gaps = [b - a for a, b in itertools.pairwise(with_slow)]
    assert all(gap >= 0.29 for gap in gaps)
