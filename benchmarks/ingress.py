"""The HTTP ingress figures of ``runherald bench`` (phase ``ingress``): latency from a run's
``POST /api/v1/runs`` to the webhook receiver getting its notification, beside the same run published
to the runs topic, at each of --ingress-rates runs/s (200 and 1,000 by default), on one worker.

Each side offers its rate for --seconds (after one second of warm-up, not measured): one run per
request (or record), each with one webhook notification to a loopback receiver. A run's time starts
when its request is due to be sent (so a client waiting for a connection counts) or when its record
is handed to the producer, and ends when its notification arrives. The HTTP side goes through what
every POST does: parsing, the shapes (runherald.ingress), the admission, sealing, a producer's ack.

Imported by ``runherald.benchmarks.pipeline``; it imports nothing of it (the two stay acyclic).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer
from runherald.benchmarks.stats import gc_still, percentile

from runherald.testing.webhook import WebhookReceiver
from runherald.testing.worker import WorkerProcess, tail

SIDES = ("http", "kafka")
PATH = "/ingress"


def run_event(uid: str, url: str) -> bytes:
    """A completed run (as MLRun's RunObject.to_dict() has it) with one webhook notification to url."""
    hook = {
        "kind": "webhook",
        "name": "hook",
        "message": "run finished",
        "when": ["completed"],
        "params": {"url": url},
    }
    return orjson.dumps(
        {
            "metadata": {"uid": uid, "name": "train-model", "project": "bench", "labels": {"owner": "bench"}},
            "spec": {"notifications": [hook], "parameters": {"lr": 0.01}},
            "status": {
                "state": "completed",
                "results": {"accuracy": 0.93},
                "last_update": "2025-01-01T00:00:00+00:00",
            },
        }
    )


def rates_of(text: str) -> list[float]:
    """--ingress-rates: comma-separated runs/s."""
    rates = [float(item) for item in text.split(",") if item.strip()]
    if not rates or any(rate <= 0 for rate in rates):
        raise SystemExit(f"runherald bench: --ingress-rates wants positive numbers, got {text!r}")
    return rates


async def offer(
    send: Callable[[str, bytes], Any], event: Callable[[str], bytes], rate: float, count: int, tag: str
) -> dict[str, float]:
    """Send `count` runs at `rate` runs/s; the time each was due, by uid."""
    due: dict[str, float] = {}
    started = time.monotonic()
    for i in range(count):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        uid = f"{tag}-{i:07d}"
        due[uid] = time.time()
        await send(uid, event(uid))
    return due


async def wait_arrived(
    receiver: WebhookReceiver, worker: WorkerProcess, uids: set[str], within: float
) -> None:
    deadline = time.monotonic() + within
    while True:
        got = uids & {request.query.get("uid", "") for request in receiver.requests_to(PATH)}
        if len(got) == len(uids):
            return
        worker.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"ingress: {len(got)} of {len(uids)} runs notified:\n{tail(worker.log_path)}")
        await asyncio.sleep(0.1)


async def measure(
    bench: Any,
    worker: WorkerProcess,
    receiver: WebhookReceiver,
    session: aiohttp.ClientSession,
    producer: AIOKafkaProducer,
    side: str,
    rate: float,
) -> list[float]:
    """Latencies (ms) of one side at one rate; RuntimeError if a POST was refused."""
    run_id = uuid.uuid4().hex[:6]
    refused: list[int] = []
    posts: list[asyncio.Task[None]] = []
    url = worker.api + "/api/v1/runs"

    async def post(body: bytes) -> None:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
            if response.status != 202:
                refused.append(response.status)

    async def send(uid: str, body: bytes) -> None:
        if side == "http":
            posts.append(asyncio.create_task(post(body)))
        else:
            await producer.send(worker.settings.topic("runs"), value=body, key=f"bench/{uid}".encode())

    def event(uid: str) -> bytes:
        return run_event(uid, receiver.url(PATH) + f"?uid={uid}")

    warm = int(rate)
    total = max(1, int(rate * float(bench.args.seconds)))
    await offer(send, event, rate, warm, f"{run_id}-{side}-warm")
    due = await offer(send, event, rate, total, f"{run_id}-{side}-run")
    await producer.flush()
    await asyncio.gather(*posts)
    if refused:
        raise RuntimeError(f"ingress: {len(refused)} POSTs refused (statuses {sorted(set(refused))})")
    await wait_arrived(receiver, worker, set(due), max(60.0, total / 50))
    arrived: dict[str, float] = {}
    for request in receiver.requests_to(PATH):
        uid = request.query.get("uid", "")
        if uid in due and uid not in arrived:
            arrived[uid] = request.arrived_at
    return [(arrived[uid] - due[uid]) * 1000.0 for uid in due]


async def phase_ingress(bench: Any) -> None:
    """p50 and p99 from POST (or publish) to the receiver, each rate, HTTP beside Kafka."""
    rates = rates_of(bench.args.ingress_rates)
    async with WebhookReceiver() as receiver:
        worker = await bench.new_worker("ingress")
        producer = AIOKafkaProducer(
            bootstrap_servers=bench.broker.bootstrap, enable_idempotence=False, acks=1
        )
        await producer.start()
        connector = aiohttp.TCPConnector(limit=256)
        try:
            async with aiohttp.ClientSession(connector=connector) as session:
                for rate in rates:
                    for side in SIDES:
                        with gc_still():
                            latencies = await measure(bench, worker, receiver, session, producer, side, rate)
                        detail = f"{len(latencies)} runs at {rate:g}/s for {bench.args.seconds:g}s, 1 worker"
                        name = f"ingress_{side}_{rate:g}"
                        bench.report.figure(f"{name}_p50", percentile(latencies, 0.50), "ms", detail)
                        bench.report.figure(f"{name}_p99", percentile(latencies, 0.99), "ms", detail)
        finally:
            await producer.stop()
            await asyncio.to_thread(bench.stop_worker, worker)


__all__ = ["SIDES", "phase_ingress", "rates_of"]
