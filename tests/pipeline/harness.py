"""Real workers in subprocesses against the embedded broker, and small helpers to drive them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from runherald.config import Settings
from runherald.testing.worker import WorkerProcess, unique

__all__ = [
    "FAST_ENV",
    "WorkerProcess",
    "fast_worker",
    "read_topic",
    "run_dict",
    "unique",
    "wait_for",
    "webhook",
]

FAST_ENV = {
    "RUNHERALD_FETCH_MAX_WAIT_MS": "5",
    "RUNHERALD_ALLOW_LOOPBACK_EGRESS": "true",
    "RUNHERALD_RETRY_BASE_DELAY": "0.2",
    "RUNHERALD_RETRY_MAX_DELAY": "2",
    "RUNHERALD_SEND_TIMEOUT": "3",
    "RUNHERALD_PARTITIONS": "4",
    "RUNHERALD_SESSION_TIMEOUT": "6",
    "RUNHERALD_MAX_EVENT_BYTES": "200000",
    "RUNHERALD_LOG_LEVEL": "info",
}


def fast_worker(broker_url: str, prefix: str, group: str, log_dir: Path, **env: str) -> WorkerProcess:
    """A worker (not started) with the tests' fast settings, and `env` over them."""
    return WorkerProcess(broker_url, prefix, group, log_dir, {**FAST_ENV, **env})


def run_dict(
    project: str,
    uid: str,
    state: str,
    notifications: list[dict[str, Any]],
    *,
    results: dict[str, Any] | None = None,
    last_update: str | None = None,
    name: str = "train",
    labels: dict[str, str] | None = None,
    extra_status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A run dict in the shape of mlrun's RunObject.to_dict()."""
    status: dict[str, Any] = {"state": state, "results": results or {}}
    if last_update:
        status["last_update"] = last_update
    status.update(extra_status or {})
    return {
        "metadata": {"uid": uid, "name": name, "project": project, "labels": labels or {}, "iteration": 0},
        "spec": {"notifications": notifications, "parameters": {}},
        "status": status,
    }


def webhook(name: str, url: str, **extra: Any) -> dict[str, Any]:
    notification: dict[str, Any] = {
        "kind": "webhook",
        "name": name,
        "message": f"hello from {name}",
        "severity": "info",
        "when": ["completed", "error", "aborted", "running"],
        "condition": "",
        "params": {"url": url},
    }
    notification.update(extra)
    return notification


async def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll a sync or async predicate until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s (last value {last!r})")


async def read_topic(settings: Settings, name: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record now on one of the pipeline's topics, from the beginning (all partitions)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=5
    )
    await consumer.start()
    try:
        topic = settings.topic(name)
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        # The embedded broker under-reports end offsets after a multi-record batch, so read on
        # until a fetch comes back empty, not only up to end_offsets().
        records: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            if not any(batches.values()):
                break
            for messages in batches.values():
                records.extend((m.key, m.value) for m in messages)
        return records
    finally:
        await consumer.stop()


async def publish_foreign(settings: Settings, *runs: dict[str, Any]) -> None:
    """Write runs to the runs topic as a producer other than runherald's does: unchecked at the door,
    so what the pipeline itself does with an invalid run can be seen."""
    import orjson
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for run in runs:
            meta = run["metadata"]
            key = f"{meta['project']}/{meta['uid']}".encode()
            await producer.send_and_wait(settings.topic("runs"), value=orjson.dumps(run), key=key)
    finally:
        await producer.stop()
