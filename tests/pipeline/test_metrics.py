"""A real worker's /metrics: a fixed set of series whatever the events say, attempts apart from deliveries,
build info, process metrics and consumer lag."""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from runherald.publish import Publisher
from runherald.testing._server import Reply
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, run_dict, unique, wait_for, webhook

OVERSIZED = 25


def series(text: str, name: str) -> dict[str, float]:
    """The series of one metric: labels text -> value."""
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(\{{[^}}]*\}})? (\S+)", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


async def test_metrics_stay_bounded_and_count_attempts_apart_from_deliveries(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    worker: WorkerProcess = start_worker(RUNHERALD_RETRY_MAX_ATTEMPTS="3")
    settings = worker.settings
    project = unique("p")
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        limit = settings.max_event_bytes
        bad = [b"x" * (limit + 1 + i) for i in range(OVERSIZED)]  # a distinct byte count each
        bad += [b"{nope", orjson.dumps({"metadata": {"project": project}, "status": {"state": "completed"}})]
        for value in bad:
            await producer.send_and_wait(settings.topic("runs"), value=value, key=f"{project}/bad".encode())
    finally:
        await producer.stop()
    receiver.script("/flaky", Reply(status=503))  # then 200
    receiver.fail("/refused", 400)
    receiver.fail("/down", 503)
    hooks = [webhook(name, receiver.url(f"/{name}")) for name in ("flaky", "refused", "down")]
    async with Publisher(settings) as publisher:
        await publisher.publish(run_dict(project, unique("u"), "completed", hooks))

    def scraped() -> str | None:
        code, text = worker.get_text("/metrics")
        deliveries = series(text, "runherald_deliveries_total")
        dead = series(text, "runherald_events_dead_lettered_total")
        done = sum(deliveries.values()) == 3 and sum(dead.values()) == len(bad) + 2
        return text if code == 200 and done else None

    text = await wait_for(scraped, timeout=40)
    assert series(text, "runherald_events_dead_lettered_total") == {
        '{reason="too_large"}': OVERSIZED,
        '{reason="not_json"}': 1,
        '{reason="missing_field"}': 1,
        '{reason="permanent"}': 1,
        '{reason="gave_up"}': 1,
    }
    assert series(text, "runherald_delivery_attempts_total") == {
        '{kind="webhook",outcome="retryable"}': 1 + 3,
        '{kind="webhook",outcome="sent"}': 1,
        '{kind="webhook",outcome="permanent"}': 1,
    }
    assert series(text, "runherald_deliveries_total") == {
        '{kind="webhook",status="sent"}': 1,
        '{kind="webhook",status="error"}': 2,
    }
    [(labels, value)] = series(text, "runherald_build_info").items()
    assert re.fullmatch(r'\{version="[^"]+"\}', labels) and value == 1
    assert series(text, "process_resident_memory_bytes")[""] > 0
    assert series(text, "process_cpu_seconds_total")[""] > 0

    runs_topic = settings.topic("runs")
    lag = await wait_for(lambda: series(worker.get_text("/metrics")[1], "runherald_consumer_lag"))
    partitions = {re.search(r'partition="(\d+)"', k).group(1) for k in lag if f'topic="{runs_topic}"' in k}
    assert partitions == {str(p) for p in range(settings.partitions)}  # the one worker owns them all
    assert all(value >= 0 for value in lag.values())
