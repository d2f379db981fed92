"""AlertStore: every worker's copy of the compacted rules topic, against the embedded broker."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from runherald.streams.alert_store import AlertStore

from runherald.alerting import Receiver, Rule
from runherald.broker import EmbeddedBroker
from runherald.config import Settings
from runherald.inhibition import BUCKET, CLOCK_SKEW, start_inhibition
from runherald.matchers import parse_matcher
from runherald.topics import ensure_topics

from .harness import unique, wait_for

HOOK = Receiver("hook", "console")
RULE = Rule("prod", (parse_matcher('project="prod"'),), ("hook",), ("error",))


async def test_loads_what_was_stored_then_follows_changes_and_tombstones(broker: EmbeddedBroker) -> None:
    settings = Settings(broker=broker.url, topic_prefix=unique("a") + ".", partitions=3, fetch_max_wait_ms=5)
    await ensure_topics(settings)
    topic = settings.topic("rules")
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, enable_idempotence=False)
    await producer.start()

    async def put(key: str, value: dict[str, Any] | None) -> Any:
        return await producer.send_and_wait(
            topic, key=key.encode(), value=None if value is None else orjson.dumps(value)
        )

    stores: list[AlertStore] = []
    try:
        await put("receiver/hook", HOOK.to_dict())
        await put("rule/prod", RULE.to_dict())
        await put("rule/broken", {"name": "broken", "matchers": ["nonsense"], "receivers": ["hook"]})
        await producer.send_and_wait(topic, key=b"rule/not-json", value=b"{")

        store = AlertStore(settings, topic)
        stores.append(store)
        store.start()
        await asyncio.wait_for(store.ready.wait(), 20)
        config = store.config
        assert set(config.rules) == {"prod"} and set(config.receivers) == {"hook"}  # the bad ones left out
        assert store.values("rule") == {"prod": RULE.to_dict()}

        # A change is read back and in force; wait_for says when.
        meta = await put("rule/prod", {**RULE.to_dict(), "when": ["error", "aborted"]})
        await store.wait_for(meta.partition, meta.offset, timeout=5)
        assert store.config.rules["prod"].when == ("error", "aborted")
        meta = await put("rule/prod", None)
        await store.wait_for(meta.partition, meta.offset, timeout=5)
        assert store.config.rules == {} and store.value("rule/prod") is None

        # A second store (another worker, or a restart) loads the same state.
        second = AlertStore(settings, topic)
        stores.append(second)
        second.start()
        await asyncio.wait_for(second.ready.wait(), 20)
        assert second.config.rules == {} and set(second.config.receivers) == {"hook"}
        await put("rule/prod", RULE.to_dict())
        await wait_for(lambda: "prod" in second.config.rules and "prod" in store.config.rules, timeout=5)
    finally:
        for each in stores:
            await each.stop()
        await producer.stop()


async def test_an_empty_topic_is_ready_at_once_and_put_waits_for_its_own_write(
    broker: EmbeddedBroker,
) -> None:
    settings = Settings(broker=broker.url, topic_prefix=unique("a") + ".", partitions=2, fetch_max_wait_ms=5)
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, enable_idempotence=False)
    await producer.start()

    async def send(topic: str, key: bytes, value: bytes | None) -> asyncio.Future[Any]:
        return await producer.send(topic, key=key, value=value)

    store = AlertStore(settings, settings.topic("rules"), send=send)
    try:
        store.start()
        await asyncio.wait_for(store.ready.wait(), 20)
        assert store.config.rules == {}
        await store.put("receiver/hook", HOOK.to_dict())
        assert store.config.receivers == {"hook": HOOK}  # in force when put returns
        await store.put("receiver/hook", None)
        assert store.config.receivers == {}
    finally:
        await store.stop()
        await producer.stop()


async def test_an_inhibition_is_in_force_at_once_here_then_on_another_store_and_is_swept_later(
    broker: EmbeddedBroker,
) -> None:
    settings = Settings(broker=broker.url, topic_prefix=unique("a") + ".", partitions=3, fetch_max_wait_ms=5)
    await ensure_topics(settings)
    topic = settings.topic("rules")
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, enable_idempotence=False)
    await producer.start()

    async def send(topic: str, key: bytes, value: bytes | None) -> Any:
        return await producer.send(topic, key=key, value=value)

    here, there = AlertStore(settings, topic, send=send), AlertStore(settings, topic)
    try:
        for store in (here, there):
            store.start()
            await asyncio.wait_for(store.ready.wait(), 20)
        now = time.time()
        fired = start_inhibition("down", ("failed",), ("project",), 60.0, {"project": "a"}, "a/u1", now)
        await here.inhibit([fired])
        assert here.config.inhibition_for("failed", {"project": "a"}, now) == fired  # no read-back wait
        await wait_for(lambda: there.config.inhibition_for("failed", {"project": "a"}, now), timeout=5)
        assert there.config.inhibition_for("failed", {"project": "b"}, now) is None
        # A rule change rebuilds the configuration; the inhibitions stay.
        await producer.send_and_wait(topic, key=b"rule/prod", value=orjson.dumps(RULE.to_dict()))
        await wait_for(lambda: "prod" in there.config.rules, timeout=5)
        assert there.config.inhibition_for("failed", {"project": "a"}, now) == fired
        # Long after its hour, a sweep tombstones it, for every store.
        later = (int(now // BUCKET) + 1) * BUCKET + CLOCK_SKEW
        await here.sweep_inhibitions(later)
        assert len(here.inhibitions) == 0
        await wait_for(lambda: len(there.inhibitions) == 0, timeout=5)
    finally:
        for store in (here, there):
            await store.stop()
        await producer.stop()
