"""The live-subscription figures of ``runherald bench`` (phase ``sse``): SSE fan-out and its pipeline cost.

One worker; runs offered at --sse-rate runs/s, each with one webhook notification to a loopback receiver.
Rounds go without, with, with, without CLIENTS SSE clients connected to that worker
(``GET /api/v1/subscribe``, every run), each --sse-seconds long, the first after a second of warm-up:

- ``sse_p50`` / ``sse_p99``: from publish (the time the bench sent the run, carried in a label) to the
  event's arrival at a client, over every event of every client;
- ``pipeline_p99_without_clients`` / ``pipeline_p99_with_clients`` (and p50): from publish to the
  webhook's arrival at the receiver, the same worker and load, rounds paired in one run.

The clients run in a subprocess of their own (``_sse-clients``), so that reading 100 streams does not
stall this process's publisher and receiver and charge the pipeline with the bench's own pauses; it
shares the machine's CPUs with the worker, as clients on the same host would.

Imported by ``runherald.benchmarks.pipeline``; it imports nothing of it (the two stay acyclic).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer
from runherald.benchmarks.stats import percentile

from runherald.sse import SseParser
from runherald.testing.webhook import WebhookReceiver
from runherald.testing.worker import WorkerProcess, stop_process, tail

CLIENTS = 100
CLIENTS_MAIN = "_sse-clients"  # hidden first argument of the bench: run the clients (a subprocess)
PATH = "/sse-bench"
ROUNDS = ("without", "with", "with", "without")  # counterbalanced: drift over the phase favours neither


# -- the clients (a subprocess) ------------------------------------------------------------------------


async def _client(url: str, latencies: list[float], connected: asyncio.Event, counter: list[int]) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url, params={"project": "bench"}) as response:
            if response.status != 200:
                raise RuntimeError(f"subscribe answered {response.status}: {await response.text()}")
            counter[0] += 1
            if counter[0] == counter[1]:
                connected.set()
            parser = SseParser()
            buffer = b""
            async for chunk in response.content.iter_any():
                now = time.time()
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    event = parser.feed(line.decode())
                    if event is not None:
                        labels = orjson.loads(event.data)["metadata"]["labels"]
                        latencies.append((now - float(labels["published_at"])) * 1000.0)


def clients_main(argv: list[str]) -> int:
    """`CLIENTS_MAIN URL COUNT RESULT`: connect COUNT clients, say "ready" on stdout, and on SIGTERM
    write every latency (ms) to RESULT as JSON."""
    url, count, result = argv[0], int(argv[1]), argv[2]
    latencies: list[float] = []

    async def main() -> None:
        connected = asyncio.Event()
        counter = [0, count]
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        tasks = [asyncio.create_task(_client(url, latencies, connected, counter)) for _ in range(count)]
        waiter = asyncio.create_task(connected.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED, timeout=60)
        if waiter not in done:
            for task in done:
                task.result()  # a client that failed says why
            raise RuntimeError(f"only {counter[0]} of {count} clients connected")
        print("ready", flush=True)
        await stop.wait()
        for task in tasks:
            task.cancel()

    asyncio.run(main())
    Path(result).write_text(json.dumps(latencies))
    return 0


# -- the phase -----------------------------------------------------------------------------------------


def _event(uid: str, url: str) -> bytes:
    """A completed run with one webhook notification; its publish time in a label, for the clients."""
    notification = {
        "kind": "webhook",
        "name": "hook",
        "message": "run finished",
        "when": ["completed"],
        "params": {"url": f"{url}?uid={uid}"},
    }
    run = {
        "kind": "run",
        "metadata": {
            "uid": uid,
            "name": "train-model",
            "project": "bench",
            "iteration": 0,
            "labels": {"kind": "job", "owner": "bench", "published_at": repr(time.time())},
        },
        "spec": {"notifications": [notification], "parameters": {"lr": 0.01, "epochs": 3}},
        "status": {
            "state": "completed",
            "results": {"accuracy": 0.93},
            "last_update": "2025-01-01T00:00:00+00:00",
        },
    }
    return orjson.dumps(run)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _offer(
    bench: Any, worker: WorkerProcess, receiver: WebhookReceiver, label: str, warmup: int
) -> list[float]:
    """Publish --sse-rate runs/s for --sse-seconds (after `warmup` runs not measured); the pipeline's
    publish-to-receipt latencies (ms) of the measured runs."""
    rate = float(bench.args.sse_rate)
    total = max(1, int(rate * float(bench.args.sse_seconds)))
    run_id = uuid.uuid4().hex[:8]
    published: dict[str, float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=bench.broker.bootstrap, enable_idempotence=False, acks=1)
    await producer.start()
    topic = worker.settings.topic("runs")
    url = receiver.url(PATH)
    try:
        for part, count in (("warm", warmup), ("run", total)):
            start = time.monotonic()
            for i in range(count):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                uid = f"{run_id}-{label}-{part}-{i:08d}"
                value = _event(uid, url)
                published[uid] = time.time()
                await producer.send(topic, value=value, key=f"bench/{uid}".encode())
            await producer.flush()
    finally:
        await producer.stop()
    deadline = time.monotonic() + max(60.0, total / 20)
    while len({r.query.get("uid") for r in receiver.requests if r.query.get("uid") in published}) < len(
        published
    ):
        worker.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the receiver did not get every run of round {label}:\n{tail(worker.log_path)}"
            )
        await asyncio.sleep(0.1)
    latencies: dict[str, float] = {}
    for request in receiver.requests:
        uid = request.query.get("uid", "")
        if uid in published and "-run-" in uid and uid not in latencies:
            latencies[uid] = (request.arrived_at - published[uid]) * 1000.0
    return list(latencies.values())


async def phase_sse(bench: Any) -> None:
    """(8) 100 SSE clients on one worker: publish-to-event p50/p99, and the pipeline's p99 without and
    with them, rounds paired in one run."""
    clients = int(bench.args.sse_clients)
    result = bench.log_dir / "sse-clients.json"
    pipeline: dict[str, list[float]] = {"without": [], "with": []}
    sse: list[float] = []
    busy: dict[str, list[float]] = {"without": [], "with": []}  # the worker's CPU share per round
    async with WebhookReceiver() as receiver:
        worker = await bench.new_worker("sse")
        try:
            gc.collect()
            gc.freeze()
            gc.disable()  # the bench's own pauses are not the pipeline's (as the latency phase does)
            for index, label in enumerate(ROUNDS):
                process = await _start_clients(bench, worker, clients, result) if label == "with" else None
                try:
                    warmup = max(1, int(float(bench.args.sse_rate))) if index == 0 else 0
                    cpu, began = _cpu_seconds(worker.pid), time.monotonic()
                    clients_cpu = _cpu_seconds(process.pid) if process is not None else 0.0
                    pipeline[label] += await _offer(bench, worker, receiver, f"{label}{index}", warmup)
                    took = time.monotonic() - began
                    busy[label].append((_cpu_seconds(worker.pid) - cpu) / took)
                    if process is not None:
                        share = 100 * (_cpu_seconds(process.pid) - clients_cpu) / took
                        bench.report.note(
                            f"sse: round {index}: the clients' process used {share:.0f}% of a core"
                        )
                finally:
                    if process is not None:
                        await _stop_clients(process)
                if process is not None:
                    sse += json.loads(await asyncio.to_thread(result.read_text))
        finally:
            gc.enable()
            gc.unfreeze()
            await asyncio.to_thread(bench.stop_worker, worker)
    rate, seconds = float(bench.args.sse_rate), float(bench.args.sse_seconds)
    rounds = ROUNDS.count("with")
    detail = f"{clients} clients, {rate:g} runs/s, {len(sse)} events in {rounds} rounds of {seconds:g}s"
    bench.report.figure("sse_p50", percentile(sse, 0.50), "ms", detail)
    bench.report.figure("sse_p99", percentile(sse, 0.99), "ms", detail)
    for label in ("without", "with"):
        values = pipeline[label]
        what = f"publish to webhook receipt, {len(values)} runs at {rate:g}/s, {label} {clients} SSE clients"
        bench.report.figure(f"pipeline_p50_{label}_clients", percentile(values, 0.50), "ms", what)
        bench.report.figure(f"pipeline_p99_{label}_clients", percentile(values, 0.99), "ms", what)
        share = 100 * sum(busy[label]) / len(busy[label])
        bench.report.figure(
            f"worker_cpu_{label}_clients", share, "% of a core", f"mean of {len(busy[label])} rounds"
        )
    bench.report.ratio(
        "sse_pipeline_p99_ratio",
        percentile(pipeline["with"], 0.99) / percentile(pipeline["without"], 0.99),
        TARGET_RATIO,
        higher_is_better=False,
        what=f"pipeline p99 with {clients} SSE clients over without, same worker and load",
    )


TARGET_RATIO = 1.5


def _spawn_clients(argv: list[str], log_path: Path, result: Path) -> subprocess.Popen[bytes]:
    """Start the clients' process and wait for its "ready" (every client connected)."""
    result.unlink(missing_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"ready":
        stop_process(process)
        raise RuntimeError(f"the SSE clients did not start:\n{tail(log_path)}")
    return process


async def _start_clients(
    bench: Any, worker: WorkerProcess, clients: int, result: Path
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "runherald.benchmarks.pipeline", CLIENTS_MAIN]
    argv += [worker.api + "/api/v1/subscribe", str(clients), str(result)]
    process = await asyncio.to_thread(_spawn_clients, argv, bench.log_dir / "sse-clients.log", result)
    await asyncio.sleep(1.0)  # let the shared reader settle before the round
    bench.report.note(f"sse: {clients} clients connected to worker pid {worker.pid}")
    return process


async def _stop_clients(process: subprocess.Popen[bytes]) -> None:
    await asyncio.sleep(1.0)  # the round's last events reach the clients
    process.send_signal(signal.SIGTERM)
    await asyncio.to_thread(process.wait, 30)
    await asyncio.sleep(1.0)  # the worker notices they are gone


__all__ = ["CLIENTS", "CLIENTS_MAIN", "clients_main", "phase_sse"]
