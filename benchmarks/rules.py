"""The rule-scaling figure of ``runherald bench`` (phase ``rules``): evaluate events/s with 10 alert rules
and with 10,000, measured in the same run, and their ratio (target >= 0.5).

Each rule matches a different project (``project="proj-i"``, when ``[error]``, one webhook receiver that
points at a loopback receiver answering 200). The same events are read by both workers: one in
`MATCH_EVERY` matches one rule (a project of the ten rules both sides have), the others no rule at all.
As for ``evaluate_no_match``, one worker subprocess per side reads a topic filled before it starts (the
rules written to its rules topic first), and the rate is read from its /metrics.

Also, without Kafka, how many rule look-ups (``AlertConfig.matching_rules``) per second each side does.
Imported by ``runherald.benchmarks.pipeline``; it imports nothing of it (the two stay acyclic).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaProducer

from runherald.alerting import Receiver, Rule, record_key
from runherald.broker import EmbeddedBroker
from runherald.matchers import parse_matcher, run_fields
from runherald.rule_index import AlertConfig
from runherald.testing.webhook import WebhookReceiver
from runherald.testing.worker import WorkerProcess

FEW_RULES = 10
MANY_RULES = 10_000
MATCH_EVERY = 100  # one event in this many matches a rule
RECEIVER = "bench-hook"
HOOK_PATH = "/rules"
TARGET_RATIO = 0.5
LOOKUPS = 200_000  # rule look-ups per side of the micro-benchmark


class _Report(Protocol):
    def figure(self, name: str, value: float, unit: str, detail: str = "") -> None: ...

    def note(self, text: str) -> None: ...


class _Bench(Protocol):
    """What this phase uses of the bench (runherald.benchmarks.pipeline.Bench)."""

    args: argparse.Namespace
    broker: EmbeddedBroker

    @property
    def report(self) -> _Report: ...

    async def new_worker(
        self,
        phase: str,
        *,
        prepare: Callable[[WorkerProcess], Awaitable[None]] | None = None,
        env: dict[str, str] | None = None,
    ) -> WorkerProcess: ...

    def stop_worker(self, worker: WorkerProcess) -> None: ...

    async def follow_consumed(
        self, worker: WorkerProcess, expected: int, started: float
    ) -> tuple[float, float]: ...

    async def wait_requests(
        self, receiver: Any, worker: WorkerProcess, count: int, within: float
    ) -> None: ...


def figure_name(count: int) -> str:
    """``evaluate_10_rules``, ``evaluate_10000_rules``."""
    return f"evaluate_{count}_rules"


RATIO_NAME = f"rules_{MANY_RULES}_vs_{FEW_RULES}"


# -- what is stored and what is read ----------------------------------------------------------------


def receiver(url: str) -> Receiver:
    """The one webhook receiver every rule sends to."""
    return Receiver(name=RECEIVER, kind="webhook", params={"url": url})


def rule(i: int) -> Rule:
    """Rule i: the runs of project proj-i that fail."""
    return Rule(
        name=f"proj-{i}-failures",
        matchers=(parse_matcher(f'project="proj-{i}"'),),
        receivers=(RECEIVER,),
        when=("error",),
    )


def rule_records(count: int, url: str) -> list[tuple[bytes, bytes]]:
    """The rules topic's records of the receiver and `count` rules, as `rules apply` writes them."""
    records = [(record_key("receiver", RECEIVER).encode(), orjson.dumps(receiver(url).to_dict()))]
    for i in range(count):
        made = rule(i)
        records.append((record_key("rule", made.name).encode(), orjson.dumps(made.to_dict())))
    return records


def event_project(i: int) -> str:
    """Event i's project: one of the ten rules' projects both sides have, or one no rule names."""
    if i % MATCH_EVERY == 0:
        return f"proj-{(i // MATCH_EVERY) % FEW_RULES}"
    return f"other-{i % 1000}"


def rule_event(uid: str, project: str) -> dict[str, Any]:
    """A failed run with no notifications of its own: whatever is sent for it, a rule sends."""
    return {
        "kind": "run",
        "metadata": {
            "uid": uid,
            "name": "train-model",
            "project": project,
            "iteration": 0,
            "labels": {"kind": "job", "owner": "bench", "host": f"train-{uid[-6:]}"},
        },
        "spec": {"notifications": [], "parameters": {"lr": 0.01, "epochs": 3}},
        "status": {
            "state": "error",
            "error": "out of memory",
            "last_update": "2025-01-01T00:00:00+00:00",
        },
    }


def rule_events(run_id: str, count: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of `count` run events; one in MATCH_EVERY matches a rule."""
    for i in range(count):
        uid, project = f"{run_id}-{i:08d}", event_project(i)
        yield f"{project}/{uid}".encode(), orjson.dumps(rule_event(uid, project))


def matching_events(count: int) -> int:
    """How many of `count` events match a rule (on either side)."""
    return len(range(0, count, MATCH_EVERY))


async def publish(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    """Send (key, value) records and wait for every ack."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, acks=1, linger_ms=5, max_batch_size=512 * 1024
    )
    await producer.start()
    count = 0
    try:
        for key, value in records:
            await producer.send(topic, value=value, key=key)
            count += 1
        await producer.flush()
    finally:
        await producer.stop()
    return count


# -- the phase --------------------------------------------------------------------------------------


async def phase_rules(bench: _Bench) -> None:
    """evaluate events/s with FEW_RULES and with MANY_RULES rules stored (the same events), then the
    in-process look-up rates."""
    events = int(bench.args.rule_runs)
    expected = matching_events(events)
    async with WebhookReceiver() as hook:
        for count in (FEW_RULES, MANY_RULES):
            url = hook.url(HOOK_PATH) + f"?rules={count}"
            run_id = uuid.uuid4().hex[:8]

            async def fill(
                worker: WorkerProcess, count: int = count, url: str = url, run_id: str = run_id
            ) -> None:
                rules_topic, runs_topic = worker.settings.topic("rules"), worker.settings.topic("runs")
                await publish(bench.broker.bootstrap, rules_topic, rule_records(count, url))
                await publish(bench.broker.bootstrap, runs_topic, rule_events(run_id, events))

            before = len(hook.requests)
            worker = await bench.new_worker(f"rules-{count}", prepare=fill)
            try:
                rate, took = await bench.follow_consumed(worker, events, time.monotonic())
                # Each matching event is delivered: the rules were in force (and only they matched).
                await bench.wait_requests(hook, worker, before + expected, 60 + expected / 50)
            finally:
                await asyncio.to_thread(bench.stop_worker, worker)
            sent = sum(1 for request in hook.requests if request.query.get("rules") == str(count))
            bench.report.figure(
                figure_name(count),
                rate,
                "events/s",
                f"{events} events in {took:.1f}s, 1 worker, pre-filled; {count} rules stored, "
                f"1 in {MATCH_EVERY} events matches one ({sent} webhooks sent)",
            )
    for count, rate in lookup_rates().items():
        bench.report.figure(
            lookup_figure_name(count), rate, "lookups/s", "AlertConfig.matching_rules in process, no Kafka"
        )


def lookup_figure_name(count: int) -> str:
    """``rule_lookups_10_rules``, ``rule_lookups_10000_rules``."""
    return f"rule_lookups_{count}_rules"


def lookup_rates(lookups: int = LOOKUPS) -> dict[int, float]:
    """Rule look-ups per second (the fields of the bench's events, in turn) over FEW_RULES and MANY_RULES
    rules, in this process: the index alone, without Kafka or the worker."""
    fields = [run_fields(rule_event(f"u-{i:06d}", event_project(i))) for i in range(1000)]
    rates: dict[int, float] = {}
    for count in (FEW_RULES, MANY_RULES):
        config = AlertConfig.from_objects(
            [receiver("http://127.0.0.1:9/x"), *(rule(i) for i in range(count))]
        )
        found = 0
        started = time.perf_counter()
        for i in range(lookups):
            found += len(config.matching_rules(fields[i % len(fields)]))
        rates[count] = lookups / (time.perf_counter() - started)
        assert found == matching_events(lookups), (count, found)  # one rule per matching event, no other
    return rates


__all__ = [
    "FEW_RULES",
    "MANY_RULES",
    "MATCH_EVERY",
    "RATIO_NAME",
    "TARGET_RATIO",
    "figure_name",
    "lookup_figure_name",
    "lookup_rates",
    "phase_rules",
    "rule_events",
    "rule_records",
]
