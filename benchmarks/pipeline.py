"""Benchmark the pipeline on an embedded broker: consume rates, deliveries/s, latency, hanging endpoint, RSS.

Run with ``runherald bench [options]`` or ``python -m runherald.benchmarks.pipeline [options]``. Not a
test: it prints one ``name: value unit`` line per figure, then ratio lines against the baseline measured
in the same run and the targets, and optionally a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from runherald.benchmarks.stats import gc_still, percentile

from runherald.broker import EMBEDDED_FETCH_WAIT_MS, EmbeddedBroker
from runherald.config import Settings
from runherald.progress import Progress, announce
from runherald.testing.worker import WorkerProcess, stop_process, tail, unique
from runherald.topics import ensure_topics

PHASES = (
    "raw",
    "faust",
    "evaluate",
    "rules",
    "grouping",
    "deliveries",
    "latency",
    "ingress",
    "hang",
    "rss",
    "sse",
    "ledger-query",
)
FETCH_MAX_WAIT_MS = EMBEDDED_FETCH_WAIT_MS  # as `runherald dev`, for the worker and both baselines
SESSION_TIMEOUT = 6.0
PROJECT = "bench"
BARE_FAUST = "_bare-faust"  # hidden first argument: run the bare faust agent (a subprocess of the bench)

TARGET_DELIVERIES_PER_S = 1000.0
TARGET_P99_MS = 25.0
TARGET_HANG_RATIO = 1.2
TARGET_RSS_MB = 300.0


# -- results ------------------------------------------------------------------------------------------


@dataclass
class Report:
    """The figures and ratios of one bench run, printed as they are measured."""

    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    ratios: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def figure(self, name: str, value: float, unit: str, detail: str = "") -> None:
        """Record and print one measured figure."""
        self.figures[name] = {"value": value, "unit": unit, "detail": detail}
        suffix = f"  ({detail})" if detail else ""
        print(f"{name}: {_fmt(value)} {unit}{suffix}", flush=True)

    def ratio(self, name: str, value: float, target: float, *, higher_is_better: bool, what: str) -> None:
        """Record and print one ratio with its target and whether the target is met."""
        met = value >= target if higher_is_better else value <= target
        sign = ">=" if higher_is_better else "<="
        self.ratios[name] = {"value": value, "target": target, "met": met, "what": what}
        verdict = "OK" if met else "MISS"
        print(f"{name}: {value:.3g} x  (target {sign} {target:g} x; {what}) {verdict}", flush=True)

    def note(self, text: str) -> None:
        """Print and keep a line of context (not a figure)."""
        self.notes.append(text)
        print(f"# {text}", flush=True)


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


# -- run events ---------------------------------------------------------------------------------------


def bench_run(uid: str, state: str, notifications: list[dict[str, Any]]) -> dict[str, Any]:
    """A run dict in the shape of MLRun's RunObject.to_dict(), like a finished training run's."""
    return {
        "kind": "run",
        "metadata": {
            "uid": uid,
            "name": "train-model",
            "project": PROJECT,
            "iteration": 0,
            "labels": {"kind": "job", "owner": "bench", "host": f"train-{uid[-6:]}"},
        },
        "spec": {"notifications": notifications, "parameters": {"lr": 0.01, "epochs": 3}},
        "status": {
            "state": state,
            "results": {"accuracy": 0.93, "loss": 0.12},
            "last_update": "2025-01-01T00:00:00+00:00",
        },
    }


def webhook_notification(url: str, when: list[str]) -> dict[str, Any]:
    """One webhook notification to url for these run states."""
    return {
        "kind": "webhook",
        "name": "hook",
        "message": "run finished",
        "severity": "info",
        "when": when,
        "condition": "",
        "params": {"url": url},
    }


def no_match_event(uid: str) -> bytes:
    """A completed run whose one notification only fires on error: evaluated, nothing dispatched."""
    return orjson.dumps(
        bench_run(uid, "completed", [webhook_notification("http://127.0.0.1:9/x", ["error"])])
    )


def webhook_event(uid: str, url: str) -> bytes:
    """A completed run with one webhook notification that fires."""
    return orjson.dumps(bench_run(uid, "completed", [webhook_notification(url, ["completed"])]))


def key_of(uid: str) -> bytes:
    """The runs-topic key of a bench run."""
    return f"{PROJECT}/{uid}".encode()


# -- kafka helpers ------------------------------------------------------------------------------------


async def start_producer(bootstrap: str, linger_ms: int) -> AIOKafkaProducer:
    """A plain producer (the embedded broker has no idempotent producers)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=False,
        acks=1,
        linger_ms=linger_ms,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    return producer


async def publish_all(producer: AIOKafkaProducer, topic: str, events: Iterable[tuple[bytes, bytes]]) -> int:
    """Send (key, value) pairs as fast as the producer takes them and wait for every ack."""
    pending: list[asyncio.Future[Any]] = []
    count = 0
    for key, value in events:
        pending.append(await producer.send(topic, value=value, key=key))
        count += 1
        if len(pending) >= 5000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    return count


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create one plain topic."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


# -- processes ----------------------------------------------------------------------------------------


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) of a live process in MB, from /proc/<pid>/status."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            found[name] = int(rest.split()[0]) / 1024.0
    return found["VmHWM"], found["VmRSS"]


def bench_worker(
    broker_url: str, phase: str, partitions: int, log_dir: Path, env: dict[str, str]
) -> WorkerProcess:
    """A worker (not started) for one phase: its own prefix and group, the bench's settings."""
    settings = {
        "RUNHERALD_PARTITIONS": str(partitions),
        "RUNHERALD_FETCH_MAX_WAIT_MS": str(FETCH_MAX_WAIT_MS),
        "RUNHERALD_SESSION_TIMEOUT": f"{SESSION_TIMEOUT:g}",
        "RUNHERALD_ALLOW_LOOPBACK_EGRESS": "true",
    }
    prefix = unique(f"bench-{phase}-") + "."
    return WorkerProcess(broker_url, prefix, unique(f"bench-{phase}-"), log_dir, {**settings, **env})


async def consumed(session: aiohttp.ClientSession, worker: WorkerProcess) -> float:
    """runherald_events_consumed_total from the worker's /metrics."""
    async with session.get(worker.api + "/metrics") as response:
        text = await response.text()
    found = re.search(r"^runherald_events_consumed_total (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


# -- the bare faust agent (runs in a subprocess) ------------------------------------------------------


def write_json(path: str, value: Any) -> None:
    """Write a JSON file atomically (a reader never sees half of it)."""
    tmp = path + ".tmp"
    Path(tmp).write_text(json.dumps(value))
    os.replace(tmp, path)


def start_logged(
    argv: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a child process whose output goes to a log file."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def bare_faust_main(argv: list[str]) -> int:
    """A minimal faust worker counting the events of one topic; writes first/last times to a file."""
    import faust
    from runherald.streams.kafka import App

    broker, topic_name, group, count, partitions, result_path = argv
    expected = int(count)
    app = App(
        group,
        broker=broker,
        store="memory://",
        topic_partitions=int(partitions),
        topic_replication_factor=1,
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        broker_commit_interval=0.5,
        broker_session_timeout=SESSION_TIMEOUT,
        broker_heartbeat_interval=1.0,
        stream_wait_empty=False,
        datadir=tempfile.mkdtemp(prefix="runherald-bench-faust-"),
    )
    app.fetch_max_wait_ms = FETCH_MAX_WAIT_MS
    topic = app.topic(topic_name, partitions=int(partitions), key_serializer="raw", value_serializer="raw")

    @app.agent(topic)
    async def count_events(stream: Any) -> None:
        n = 0
        first = 0.0
        async for _event in stream:
            n += 1
            if n == 1:
                first = time.time()
            if n == expected:
                write_json(result_path, {"first": first, "last": time.time(), "count": n})

    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # as in runherald's worker: faust's spinner puts the root logger at DEBUG
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        shutil.rmtree(app.conf.datadir, ignore_errors=True)
    return 0


# -- phases -------------------------------------------------------------------------------------------


@dataclass
class Bench:
    """One bench run: the embedded broker, the options, and the report."""

    args: argparse.Namespace
    broker: EmbeddedBroker
    log_dir: Path
    report: Report
    session: aiohttp.ClientSession
    workers: list[WorkerProcess] = field(default_factory=list)
    runs_topic: str = ""  # the pre-filled topic phases 1 and 2 read

    @property
    def partitions(self) -> int:
        return int(self.args.partitions)

    @property
    def quiet(self) -> bool:
        """--quiet: no progress on stderr (runherald.progress; shown only on a terminal anyway)."""
        return bool(getattr(self.args, "quiet", False))

    @property
    def worker_env(self) -> dict[str, str]:
        """--worker-env NAME=VALUE pairs."""
        return dict(item.split("=", 1) for item in self.args.worker_env)

    async def new_worker(
        self,
        phase: str,
        *,
        prepare: Callable[[WorkerProcess], Awaitable[None]] | None = None,
        env: dict[str, str] | None = None,
    ) -> WorkerProcess:
        """Start a worker on a fresh prefix and group and wait until it owns partitions; `prepare`
        runs once its topics exist, before it starts."""
        worker_env = {**self.worker_env, **(env or {})}
        worker = bench_worker(self.broker.url, phase, self.partitions, self.log_dir, worker_env)
        await ensure_topics(worker.settings)
        if prepare is not None:
            await prepare(worker)
        self.workers.append(worker)
        worker.start()
        # In a thread: this process's receiver must go on answering meanwhile.
        took = await asyncio.to_thread(worker.wait_ready, 90.0)
        self.report.note(f"{phase}: worker pid {worker.pid} ready in {took:.1f}s")
        return worker

    def stop_worker(self, worker: WorkerProcess) -> None:
        """Stop a phase's worker."""
        worker.stop()
        if worker in self.workers:
            self.workers.remove(worker)

    async def prefill(self) -> str:
        """Fill one topic with --runs no-match run events (read by phases 1 and 2)."""
        if self.runs_topic:
            return self.runs_topic
        topic = unique("bench-prefill-") + ".runs"
        await create_topic(self.broker.bootstrap, topic, self.partitions)
        producer = await start_producer(self.broker.bootstrap, linger_ms=5)
        try:
            run_id = uuid.uuid4().hex[:8]
            started = time.monotonic()
            uids = (f"{run_id}-{i:08d}" for i in range(self.args.runs))
            count = await publish_all(producer, topic, ((key_of(u), no_match_event(u)) for u in uids))
            took = time.monotonic() - started
        finally:
            await producer.stop()
        self.report.note(f"pre-filled {topic} with {count} run events in {took:.1f}s ({count / took:.0f}/s)")
        self.runs_topic = topic
        return topic

    async def phase_raw(self) -> None:
        """(1) A plain AIOKafkaConsumer in a group, per message, on the pre-filled topic."""
        topic = await self.prefill()
        expected = int(self.args.runs)
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.broker.bootstrap,
            group_id=unique("bench-raw-"),
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            session_timeout_ms=int(SESSION_TIMEOUT * 1000),
            heartbeat_interval_ms=1000,
        )
        await consumer.start()
        n = 0
        first = last = 0.0
        try:
            async with asyncio.timeout(60 + expected / 1000):
                async for _message in consumer:
                    n += 1
                    if n == 1:
                        first = time.monotonic()
                    if n >= expected:
                        last = time.monotonic()
                        break
        finally:
            await consumer.stop()
        self.report.figure("raw_aiokafka_consume", (n - 1) / (last - first), "events/s", f"{n} events")

    async def phase_faust(self) -> None:
        """(2) A bare faust agent (`async for event in stream: n += 1`) in a subprocess."""
        topic = await self.prefill()
        expected = int(self.args.runs)
        result = self.log_dir / "bare-faust.json"
        log_path = self.log_dir / "bare-faust.log"
        argv = [
            self.broker.url,
            topic,
            unique("bench-faust-"),
            str(expected),
            str(self.partitions),
            str(result),
        ]
        process = start_logged(
            [sys.executable, "-m", "runherald.benchmarks.pipeline", BARE_FAUST, *argv], log_path
        )
        try:
            deadline = time.monotonic() + 90 + expected / 500
            while not result.exists():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"bare faust agent exited with {process.returncode}:\n{tail(log_path)}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(f"bare faust agent did not finish:\n{tail(log_path)}")
                await asyncio.sleep(0.1)
        finally:
            await asyncio.to_thread(stop_process, process)
        times = json.loads(result.read_text())
        rate = (times["count"] - 1) / (times["last"] - times["first"])
        self.report.figure("bare_faust_agent", rate, "events/s", f"{times['count']} events, subprocess")

    async def phase_evaluate(self) -> None:
        """(3) runherald's evaluate with no matching notification, one worker subprocess.

        Like phases 1 and 2 it reads a topic filled beforehand, so that no publisher competes with
        it for the CPU while it is measured.
        """
        expected = int(self.args.runs)
        run_id = uuid.uuid4().hex[:8]

        async def fill(worker: WorkerProcess) -> None:
            producer = await start_producer(self.broker.bootstrap, linger_ms=5)
            try:
                uids = (f"{run_id}-{i:08d}" for i in range(expected))
                events = ((key_of(u), no_match_event(u)) for u in uids)
                await publish_all(producer, worker.settings.topic("runs"), events)
            finally:
                await producer.stop()

        worker = await self.new_worker("evaluate", prepare=fill)
        try:
            rate, took = await self.follow_consumed(worker, expected, time.monotonic())
        finally:
            await asyncio.to_thread(self.stop_worker, worker)
        self.report.figure(
            "evaluate_no_match", rate, "events/s", f"{expected} events in {took:.1f}s, 1 worker, pre-filled"
        )

    async def phase_rules(self) -> None:
        """(3b) evaluate with 10 and with 10,000 alert rules, one in a hundred events matching one."""
        from runherald.benchmarks.rules import phase_rules

        await phase_rules(self)

    async def phase_grouping(self) -> None:
        """(3c) failing runs over 100 groups: evaluate with grouping off and on, messages, digest p99."""
        from runherald.benchmarks.grouping import phase_grouping

        await phase_grouping(self)

    async def follow_consumed(
        self, worker: WorkerProcess, expected: int, started: float
    ) -> tuple[float, float]:
        """Poll /metrics until the worker consumed `expected` events; (events/s, seconds) first to last.

        If every event was consumed before the first sample showed any (a small --runs), the rate is
        taken from `started` (monotonic time publishing began) instead: a lower bound.
        """
        with Progress("consumed", expected, quiet=self.quiet) as progress:
            return await self._follow(worker, expected, started, progress)

    async def _follow(
        self, worker: WorkerProcess, expected: int, started: float, progress: Progress
    ) -> tuple[float, float]:
        first_t = 0.0
        first_n = 0.0
        deadline = time.monotonic() + 120 + expected / 200
        while True:
            worker.check_alive()
            n = await consumed(self.session, worker)
            progress.update(min(int(n), expected))
            now = time.monotonic()
            if n > 0 and not first_t:
                first_t, first_n = now, n
            if n >= expected:
                if now == first_t:
                    return n / (now - started), now - started
                return (n - first_n) / (now - first_t), now - first_t
            if now > deadline:
                raise TimeoutError(f"worker consumed {n:.0f} of {expected} events:\n{tail(worker.log_path)}")
            await asyncio.sleep(0.05)

    async def phase_deliveries(self) -> None:
        """(4) Webhook deliveries/s: one webhook per run to a loopback receiver answering 200."""
        from runherald.testing.webhook import WebhookReceiver

        expected = int(self.args.deliveries)
        async with WebhookReceiver() as receiver:
            worker = await self.new_worker("deliveries")
            try:
                producer = await start_producer(self.broker.bootstrap, linger_ms=5)
                run_id = uuid.uuid4().hex[:8]
                url = receiver.url("/hook")
                events = (
                    (key_of(f"{run_id}-{i:08d}"), webhook_event(f"{run_id}-{i:08d}", url))
                    for i in range(expected)
                )
                began = time.monotonic()
                try:
                    await publish_all(producer, worker.settings.topic("runs"), events)
                finally:
                    await producer.stop()
                published = time.monotonic() - began
                await self.wait_requests(receiver, worker, expected, 120 + expected / 100)
            finally:
                await asyncio.to_thread(self.stop_worker, worker)
            arrivals = sorted(r.arrived_monotonic for r in receiver.requests[:expected])
        took = arrivals[-1] - began
        steady = (len(arrivals) - 1) / max(arrivals[-1] - arrivals[0], 1e-9)
        self.report.note(
            f"deliveries: published {expected} runs in {published:.1f}s; first receipt "
            f"{arrivals[0] - began:.1f}s after the first publish, last {took:.1f}s"
        )
        self.report.figure(
            "webhook_deliveries",
            len(arrivals) / took,
            "deliveries/s",
            f"{expected} from first publish to last receipt in {took:.1f}s, 1 worker; "
            f"{steady:.0f}/s first to last receipt",
        )

    async def wait_requests(self, receiver: Any, worker: WorkerProcess, count: int, within: float) -> None:
        """Wait until the receiver got `count` requests, failing early if the worker died."""
        deadline = time.monotonic() + within
        with Progress("delivered", count, quiet=self.quiet) as progress:
            while len(receiver.requests) < count:
                progress.update(len(receiver.requests))
                worker.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"receiver got {len(receiver.requests)} of {count} requests:\n{tail(worker.log_path)}"
                    )
                await asyncio.sleep(0.05)
            progress.update(count)

    async def offered_load(
        self, phase: str, paths: list[str], hang: str | None, **extra_env: str
    ) -> tuple[list[float], dict[str, list[float]]]:
        """Publish --rate runs/s for --seconds, one webhook each over `paths`; latencies (ms) by path."""
        from runherald.testing.webhook import WebhookReceiver

        rate = float(self.args.rate)
        total = max(1, int(rate * float(self.args.seconds)))
        warmup = max(1, int(rate))  # one second of warm-up, not measured
        run_id = uuid.uuid4().hex[:8]
        published: dict[str, float] = {}
        async with WebhookReceiver() as receiver:
            if hang is not None:
                receiver.hang(hang)
            worker = await self.new_worker(phase, env=extra_env)
            try:
                with gc_still():
                    producer = await start_producer(self.broker.bootstrap, linger_ms=0)
                    topic = worker.settings.topic("runs")
                    try:
                        for label, count in (("warm", warmup), ("run", total)):
                            start = time.monotonic()
                            for i in range(count):
                                delay = start + i / rate - time.monotonic()
                                if delay > 0:
                                    await asyncio.sleep(delay)
                                uid = f"{run_id}-{label}-{i:08d}"
                                path = paths[i % len(paths)]
                                url = receiver.url(path) + f"?uid={uid}"
                                value = webhook_event(uid, url)
                                published[uid] = time.time()
                                await producer.send(topic, value=value, key=key_of(uid))
                            await producer.flush()
                    finally:
                        await producer.stop()
                    answered = sum(1 for i in range(warmup + total) if paths[i % len(paths)] != hang)
                    within = max(60.0, answered / 50)
                    await self.wait_requests_answered(receiver, worker, hang, answered, within)
            finally:
                await asyncio.to_thread(self.stop_worker, worker)
        latencies: dict[str, list[float]] = {}
        seen: set[str] = set()
        for request in receiver.requests:
            uid = request.query.get("uid", "")
            if uid in seen or "-warm-" in uid or uid not in published:
                continue
            seen.add(uid)
            latencies.setdefault(request.path, []).append((request.arrived_at - published[uid]) * 1000.0)
        measured = [ms for path, values in latencies.items() if path != hang for ms in values]
        return measured, latencies

    async def wait_requests_answered(
        self, receiver: Any, worker: WorkerProcess, hang: str | None, count: int, within: float
    ) -> None:
        """Wait until `count` distinct runs reached the receiver on paths that answer."""
        deadline = time.monotonic() + within
        while True:
            got = len({r.query.get("uid") for r in receiver.requests if r.path != hang})
            if got >= count:
                return
            worker.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"receiver got {got} of {count} runs:\n{tail(worker.log_path)}")
            await asyncio.sleep(0.1)

    async def phase_latency(self) -> None:
        """(5) publish→receipt latency at a fixed offered rate, one webhook per run."""
        measured, _ = await self.offered_load("latency", ["/hook"], None)
        detail = f"{len(measured)} runs at {self.args.rate:g}/s for {self.args.seconds:g}s"
        self.report.figure("latency_p50", percentile(measured, 0.50), "ms", detail)
        self.report.figure("latency_p99", percentile(measured, 0.99), "ms", detail)

    async def phase_ingress(self) -> None:
        """(5b) POST /api/v1/runs -> receiver latency at --ingress-rates, beside the runs topic's."""
        from runherald.benchmarks.ingress import phase_ingress

        await phase_ingress(self)

    async def phase_hang(self) -> None:
        """(6) The same latency when one of ten endpoints never answers; p99 of the other nine."""
        paths = [f"/hook{i}" for i in range(10)]
        measured, _ = await self.offered_load(
            "hang", paths, paths[-1], RUNHERALD_SEND_TIMEOUT=f"{self.args.send_timeout:g}"
        )
        detail = f"{len(measured)} runs on 9 answering paths, {paths[-1]} hangs"
        self.report.figure("hang_others_p50", percentile(measured, 0.50), "ms", detail)
        self.report.figure("hang_others_p99", percentile(measured, 0.99), "ms", detail)

    async def phase_rss(self) -> None:
        """(7) Peak RSS of a worker after --rss-runs runs (one webhook each, or no match)."""
        from runherald.testing.webhook import WebhookReceiver

        expected = int(self.args.rss_runs)
        webhooks = self.args.rss_mode == "webhook"
        async with WebhookReceiver() as receiver:
            worker = await self.new_worker("rss")
            try:
                _, baseline = peak_rss_mb(worker.pid)
                producer = await start_producer(self.broker.bootstrap, linger_ms=5)
                run_id = uuid.uuid4().hex[:8]
                url = receiver.url("/hook")
                make: Callable[[str], bytes] = (
                    (lambda u: webhook_event(u, url)) if webhooks else no_match_event
                )
                events = ((key_of(u), make(u)) for u in (f"{run_id}-{i:08d}" for i in range(expected)))
                started = time.monotonic()
                try:
                    await publish_all(producer, worker.settings.topic("runs"), events)
                finally:
                    await producer.stop()
                if webhooks:
                    await self.wait_requests(receiver, worker, expected, 120 + expected / 100)
                else:
                    await self.follow_consumed(worker, expected, started)
                await asyncio.sleep(1.0)  # let the last ledger writes land
                hwm, rss = peak_rss_mb(worker.pid)
            finally:
                await asyncio.to_thread(self.stop_worker, worker)
        mode = "one webhook each" if webhooks else "no matching notification"
        self.report.figure(
            "worker_peak_rss",
            hwm,
            "MB",
            f"VmHWM after {expected} runs, {mode}; RSS {rss:.0f} MB, idle {baseline:.0f} MB",
        )

    async def phase_sse(self) -> None:
        """(8) 100 SSE clients on one worker: publish-to-event p99, pipeline p99 without and with them."""
        from runherald.benchmarks.sse import phase_sse

        await phase_sse(self)

    async def phase_ledger_query(self) -> None:
        """(9) A query by project and status over --ledger-rows rows in SQLite: by its index, a full scan."""
        from runherald.benchmarks.ledger_query import phase_ledger_query

        await phase_ledger_query(self)

    def rules_ratio(self, figures: dict[str, float]) -> None:
        """evaluate events/s with 10,000 rules over with 10 (phase rules)."""
        from runherald.benchmarks import rules

        few, many = rules.figure_name(rules.FEW_RULES), rules.figure_name(rules.MANY_RULES)
        if few in figures and many in figures:
            self.report.ratio(
                rules.RATIO_NAME,
                figures[many] / figures[few],
                rules.TARGET_RATIO,
                higher_is_better=True,
                what=f"evaluate events/s with {rules.MANY_RULES} rules over with {rules.FEW_RULES}",
            )

    def ratios(self) -> None:
        """The ratio lines against this run's baseline and the issue's targets."""
        figures = {name: item["value"] for name, item in self.report.figures.items()}
        print("--- ratios", flush=True)
        if "evaluate_no_match" in figures and "bare_faust_agent" in figures:
            self.report.ratio(
                "evaluate_vs_bare_faust",
                figures["evaluate_no_match"] / figures["bare_faust_agent"],
                1.0,
                higher_is_better=True,
                what="evaluate events/s over bare faust agent events/s",
            )
        if "evaluate_no_match" in figures and "raw_aiokafka_consume" in figures:
            self.report.ratio(
                "evaluate_vs_raw_aiokafka",
                figures["evaluate_no_match"] / figures["raw_aiokafka_consume"],
                0.25,
                higher_is_better=True,
                what="evaluate events/s over raw aiokafka events/s",
            )
        self.rules_ratio(figures)
        if "bare_faust_agent" in figures and "raw_aiokafka_consume" in figures:
            faust_share = figures["bare_faust_agent"] / figures["raw_aiokafka_consume"]
            self.report.note(f"bare faust agent is {faust_share:.3g} x raw aiokafka")
        if "webhook_deliveries" in figures:
            self.report.ratio(
                "deliveries_vs_target",
                figures["webhook_deliveries"] / TARGET_DELIVERIES_PER_S,
                1.0,
                higher_is_better=True,
                what=f"deliveries/s per worker over {TARGET_DELIVERIES_PER_S:.0f}/s",
            )
        if "latency_p99" in figures:
            self.report.ratio(
                "p99_vs_target",
                figures["latency_p99"] / TARGET_P99_MS,
                1.0,
                higher_is_better=False,
                what=f"p99 over {TARGET_P99_MS:.0f} ms",
            )
        if "hang_others_p99" in figures and "latency_p99" in figures:
            self.report.ratio(
                "hang_p99_ratio",
                figures["hang_others_p99"] / figures["latency_p99"],
                TARGET_HANG_RATIO,
                higher_is_better=False,
                what="p99 of answering endpoints with one of ten hanging, over p99 without",
            )
        if "worker_peak_rss" in figures:
            self.report.ratio(
                "rss_vs_target",
                figures["worker_peak_rss"] / TARGET_RSS_MB,
                1.0,
                higher_is_better=False,
                what=f"peak RSS over {TARGET_RSS_MB:.0f} MB",
            )


# -- entry point --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The bench's options."""
    parser = argparse.ArgumentParser(
        prog="runherald bench",
        description="Benchmark runherald on its own embedded broker (memory storage) and print figures "
        "with ratios against a raw aiokafka consumer and a bare faust agent measured in the same run.",
    )
    parser.add_argument("--runs", type=int, default=50_000, help="events for phases raw, faust, evaluate")
    parser.add_argument(
        "--rule-runs",
        type=int,
        default=100_000,
        help="events for each side of phase rules (10 and 10,000 rules)",
    )
    parser.add_argument(
        "--group-runs", type=int, default=10_000, help="failing runs for each side of phase grouping"
    )
    parser.add_argument(
        "--deliveries", type=int, default=3_000, help="runs (one webhook each) for deliveries"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="offered runs/s for latency and hang")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long to offer --rate")
    parser.add_argument(
        "--ingress-rates",
        default="200,1000",
        help="offered runs/s for ingress (HTTP and Kafka), comma-separated",
    )
    parser.add_argument("--rss-runs", type=int, default=100_000, help="runs before reading peak RSS")
    parser.add_argument(
        "--rss-mode",
        choices=("webhook", "no-match"),
        default="no-match",
        help="runs of the RSS phase: a notification that does not match (default) or one webhook each",
    )
    parser.add_argument("--send-timeout", type=float, default=5.0, help="RUNHERALD_SEND_TIMEOUT for hang")
    parser.add_argument("--sse-clients", type=int, default=100, help="SSE clients of phase sse")
    parser.add_argument("--sse-rate", type=float, default=100.0, help="offered runs/s of phase sse")
    parser.add_argument("--sse-seconds", type=float, default=10.0, help="each round of phase sse")
    parser.add_argument(
        "--ledger-rows", type=int, default=1_000_000, help="delivery rows in SQLite for ledger-query"
    )
    parser.add_argument("--partitions", type=int, default=Settings().partitions, help="partitions per topic")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every worker the bench starts (repeatable), e.g. "
        "RUNHERALD_EVENT_LOOP=asyncio to compare event loops",
    )
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(PHASES)}")
    parser.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress on stderr (shown only when stderr is a terminal; RUNHERALD_PROGRESS=always|never)",
    )
    parser.add_argument(
        "--log-dir", default="", help="keep broker and worker logs here (default: temp, removed)"
    )
    return parser


def selected_phases(only: str) -> list[str]:
    """The phases to run, in bench order, from --only (all when empty)."""
    if not only.strip():
        return list(PHASES)
    wanted = {name.strip() for name in only.split(",") if name.strip()}
    unknown = wanted - set(PHASES)
    if unknown:
        raise SystemExit(
            f"runherald bench: unknown phase(s) {', '.join(sorted(unknown))}; choose from {PHASES}"
        )
    return [name for name in PHASES if name in wanted]


async def run_bench(args: argparse.Namespace, log_dir: Path) -> Report:
    """Start the embedded broker, run the selected phases, stop everything."""
    report = Report()
    phases = selected_phases(args.only)
    broker = EmbeddedBroker(log_path=str(log_dir / "broker.log"))
    await asyncio.to_thread(broker.start)
    bench: Bench | None = None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            bench = Bench(args=args, broker=broker, log_dir=log_dir, report=report, session=session)
            report.note(
                f"broker {broker.url} (embedded, memory), {args.partitions} partitions, logs in {log_dir}"
            )
            for number, phase in enumerate(phases, 1):
                announce(f"phase {number}/{len(phases)}: {phase}", quiet=args.quiet)
                await getattr(bench, f"phase_{phase.replace('-', '_')}")()
            bench.ratios()
    finally:
        if bench is not None:
            for worker in list(bench.workers):
                await asyncio.to_thread(bench.stop_worker, worker)
        await asyncio.to_thread(broker.stop)
    return report


def main(argv: list[str]) -> int:
    """`runherald bench`: run the benchmark and print its figures; returns the exit code."""
    if argv and argv[0] == BARE_FAUST:
        return bare_faust_main(argv[1:])
    if argv and argv[0] == "_sse-clients":  # runherald.benchmarks.sse.CLIENTS_MAIN
        from runherald.benchmarks.sse import clients_main

        return clients_main(argv[1:])
    if argv and argv[0] == "--":  # `runherald bench -- --runs N` hands the separator on
        argv = argv[1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    for item in args.worker_env:
        if "=" not in item or not item.split("=", 1)[0]:
            parser.error(f"--worker-env expects NAME=VALUE, got {item!r}")
    keep = bool(args.log_dir)
    log_dir = Path(args.log_dir) if keep else Path(tempfile.mkdtemp(prefix="runherald-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        report = asyncio.run(run_bench(args, log_dir))
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"runherald bench: failed: {exc}", file=sys.stderr)
        print(f"runherald bench: logs kept in {log_dir}", file=sys.stderr)
        return 1
    print(f"# bench took {time.monotonic() - started:.0f}s", flush=True)
    if args.json:
        print(
            json.dumps({"figures": report.figures, "ratios": report.ratios, "notes": report.notes}, indent=2)
        )
    if not keep:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
