"""The grouping figures of ``runherald bench`` (phase ``grouping``): failing runs over GROUPS projects
under one rule, with grouping off (a message per run) and on (``group_by: [project]``).

- evaluate events/s with grouping off and on, each read by one worker from a topic filled before it
  starts (the rule written to its rules topic first), from its /metrics, and the messages each sent;
- with grouping on and the runs published while the worker runs (paced over PUBLISH_SECONDS), the p99
  from a group's last run (its publish time) to the arrival of the digest listing it at a loopback
  webhook receiver; `group_wait` and `group_interval` are part of that wait.

Imported by ``runherald.benchmarks.pipeline``; it imports nothing of it (the two stay acyclic).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from runherald.benchmarks.rules import RECEIVER, publish, receiver, rule_event
from runherald.benchmarks.stats import percentile

from runherald.alerting import Rule, record_key
from runherald.matchers import parse_matcher
from runherald.testing.webhook import WebhookReceiver
from runherald.testing.worker import WorkerProcess

GROUPS = 100
GROUP_WAIT = 5.0  # seconds
GROUP_INTERVAL = 1.0
PUBLISH_SECONDS = 10.0  # the live side's runs are spread over this long (1,000 runs/s for 10,000)
HOOK_PATH = "/grouping"


def grouping_rule(on: bool) -> Rule:
    grouping: dict[str, Any] = (
        {"group_by": ("project",), "group_wait": GROUP_WAIT, "group_interval": GROUP_INTERVAL} if on else {}
    )
    return Rule(
        name="grouped-failures",
        matchers=(parse_matcher('project=~"grp-.*"'),),
        receivers=(RECEIVER,),
        when=("error",),
        **grouping,
    )


def config_records(on: bool, url: str) -> list[tuple[bytes, bytes]]:
    made = grouping_rule(on)
    return [
        (record_key("receiver", RECEIVER).encode(), orjson.dumps(receiver(url).to_dict())),
        (record_key("rule", made.name).encode(), orjson.dumps(made.to_dict())),
    ]


def events(run_id: str, count: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of `count` failing runs, run i in project grp-(i % GROUPS)."""
    found = []
    for i in range(count):
        uid, project = f"{run_id}-{i:08d}", f"grp-{i % GROUPS}"
        found.append((f"{project}/{uid}".encode(), orjson.dumps(rule_event(uid, project))))
    return found


def runs_listed(requests: list[Any]) -> set[str]:
    return {run["metadata"]["uid"] for request in requests for run in orjson.loads(request.body)["runs"]}


async def wait_listed(
    bench: Any, hook: WebhookReceiver, worker: WorkerProcess, tag: str, count: int
) -> list[Any]:
    """Wait until the receiver's requests of this side list `count` distinct runs; returns them."""
    deadline = time.monotonic() + 120 + count / 100
    while True:
        mine = [r for r in hook.requests if r.query.get("side") == tag]
        if len(runs_listed(mine)) >= count:
            return mine
        worker.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{tag}: {len(runs_listed(mine))} of {count} runs reached the receiver")
        await asyncio.sleep(0.1)


async def phase_grouping(bench: Any) -> None:
    """Evaluate events/s with grouping off and on (pre-filled), then the live digest latency."""
    count = int(bench.args.group_runs)
    rates: dict[str, float] = {}
    async with WebhookReceiver() as hook:
        for tag in ("off", "on"):
            url = hook.url(HOOK_PATH) + f"?side={tag}"
            run_id = uuid.uuid4().hex[:8]

            async def fill(
                worker: WorkerProcess, tag: str = tag, url: str = url, run_id: str = run_id
            ) -> None:
                await publish(
                    bench.broker.bootstrap, worker.settings.topic("rules"), config_records(tag == "on", url)
                )
                await publish(bench.broker.bootstrap, worker.settings.topic("runs"), events(run_id, count))

            worker = await bench.new_worker(f"grouping-{tag}", prepare=fill)
            try:
                rates[tag], took = await bench.follow_consumed(worker, count, time.monotonic())
                sent = await wait_listed(bench, hook, worker, tag, count)
            finally:
                await asyncio.to_thread(bench.stop_worker, worker)
            messages = len({r.headers["Idempotency-Key"] for r in sent})
            bench.report.figure(
                f"evaluate_grouping_{tag}",
                rates[tag],
                "events/s",
                f"{count} failing runs over {GROUPS} projects in {took:.1f}s, 1 worker, pre-filled; "
                f"{messages} messages sent ({len(sent)} requests)",
            )
        bench.report.figure(
            "grouping_on_vs_off",
            rates["on"] / rates["off"],
            "x",
            "evaluate events/s, grouping on over off",
        )
        await live_latency(bench, hook, count)


async def live_latency(bench: Any, hook: WebhookReceiver, count: int) -> None:
    """Grouping on, runs published while the worker runs: messages sent, p99 last run -> its digest."""
    tag, run_id = "live", uuid.uuid4().hex[:8]
    url = hook.url(HOOK_PATH) + f"?side={tag}"

    async def configure(worker: WorkerProcess) -> None:
        await publish(bench.broker.bootstrap, worker.settings.topic("rules"), config_records(True, url))

    worker = await bench.new_worker("grouping-live", prepare=configure)
    producer = AIOKafkaProducer(bootstrap_servers=bench.broker.bootstrap, enable_idempotence=False, acks=1)
    await producer.start()
    last_of_group: dict[str, tuple[str, float]] = {}  # project -> (its last run's uid, publish time)
    try:
        started = time.monotonic()
        for i, (key, value) in enumerate(events(run_id, count)):
            await producer.send(worker.settings.topic("runs"), value=value, key=key)
            project, uid = key.decode().split("/")
            last_of_group[project] = (uid, time.time())
            lag = started + PUBLISH_SECONDS * (i + 1) / count - time.monotonic()
            if lag > 0:
                await asyncio.sleep(lag)
        await producer.flush()
        sent = await wait_listed(bench, hook, worker, tag, count)
    finally:
        await producer.stop()
        await asyncio.to_thread(bench.stop_worker, worker)
    arrival: dict[str, float] = {}
    for request in sent:
        for run in orjson.loads(request.body)["runs"]:
            uid = run["metadata"]["uid"]
            arrival[uid] = min(arrival.get(uid, request.arrived_at), request.arrived_at)
    waits = [arrival[uid] - published for uid, published in last_of_group.values()]
    messages = len({r.headers["Idempotency-Key"] for r in sent})
    bench.report.figure(
        "grouping_last_run_to_digest_p99",
        percentile(waits, 0.99) * 1000,
        "ms",
        f"{count} runs over {GROUPS} groups published over {PUBLISH_SECONDS:g}s, group_wait "
        f"{GROUP_WAIT:g}s, group_interval {GROUP_INTERVAL:g}s (both in it); {messages} messages sent, "
        f"median {percentile(waits, 0.5) * 1000:.0f} ms",
    )


__all__ = ["GROUPS", "phase_grouping"]
