"""Live subscriptions: GET /api/v1/subscribe (SSE) and `runherald subscribe`, on a worker and the embedded
broker: states in order, Last-Event-ID resume, since, filters, no secrets, a slow client; and every run
seen is known to the API, with or without notifications."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from runherald.streams.run_feed import TOO_SLOW

from runherald.broker import EmbeddedBroker, free_port
from runherald.sse import SseEvent, iter_events

from .harness import WorkerProcess, own_worker, run_dict, unique, wait_for, webhook

QUEUE = 100  # the worker's subscribe_queue: small, so that a client that does not read falls behind soon


@pytest.fixture(scope="module")
def live(broker: EmbeddedBroker, worker_logs: Path) -> Iterator[WorkerProcess]:
    with own_worker(broker.url, worker_logs, RUNHERALD_SUBSCRIBE_QUEUE=str(QUEUE)) as process:
        yield process


def stamp(second: int) -> str:
    return datetime.fromtimestamp(1_800_000_000 + second, UTC).isoformat()


async def post_runs(worker: WorkerProcess, runs: list[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(worker.api + "/api/v1/runs", json=runs) as response:
            assert response.status == 202, await response.text()


class Events:
    """The events of one open stream, read in the background (so a wait that times out loses none)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.queue: asyncio.Queue[SseEvent] = asyncio.Queue()
        self.pump = asyncio.create_task(self._read(response))

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        async for event in iter_events(response):
            self.queue.put_nowait(event)

    async def take(self, count: int, within: float = 20.0) -> list[SseEvent]:
        taken = []
        async with asyncio.timeout(within):
            while len(taken) < count:
                taken.append(await self.queue.get())
        return taken

    async def nothing_more(self, within: float = 1.5) -> bool:
        await asyncio.sleep(within)
        return self.queue.empty()


@asynccontextmanager
async def stream(
    worker: WorkerProcess, query: list[tuple[str, str]], last_event_id: str = ""
) -> AsyncIterator[Events]:
    """An open SSE stream (the server has registered it once this yields) and its events."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(worker.api + "/api/v1/subscribe", params=query, headers=headers) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Content-Type"] == "text/event-stream"
            events = Events(response)
            try:
                yield events
            finally:
                events.pump.cancel()


def states(events: list[SseEvent]) -> list[tuple[str, str]]:
    return [(e.json()["metadata"]["uid"], e.json()["status"]["state"]) for e in events]


async def test_a_runs_states_in_order_and_resume_from_last_event_id(live: WorkerProcess) -> None:
    project, uid = unique("live"), unique("u")
    changes = [run_dict(project, uid, s, [], last_update=stamp(i)) for i, s in enumerate(STATES)]
    async with stream(live, [("project", project)]) as events:
        await post_runs(live, changes)
        got = await events.take(3)
        assert states(got) == [(uid, state) for state in STATES]
        assert {e.event for e in got} == {"run"} and len({e.id for e in got}) == 3
    async with stream(live, [("project", project)], last_event_id=got[0].id) as events:
        resumed = await events.take(2)
        assert [e.id for e in resumed] == [e.id for e in got[1:]]
        assert states(resumed) == states(got[1:])
        assert await events.nothing_more()
    # Without any notification, the run is known to the API all the same, in its latest state.
    _, run = await wait_for(lambda: (r := live.get(f"/api/v1/runs/{project}/{uid}"))[0] == 200 and r)
    assert run["status"]["state"] == "completed"


STATES = ["pending", "running", "completed"]


async def test_since_replays_and_filters_hold(live: WorkerProcess) -> None:
    project = unique("flt")
    runs = [
        run_dict(f"{project}-a", unique("u"), "completed", [], labels={"team": "a", "env": "prod"}),
        run_dict(f"{project}-b", unique("u"), "error", [], labels={"team": "a", "env": "prod"}),
        run_dict(f"{project}-c", unique("u"), "completed", [], labels={"team": "b", "env": "prod"}),
        run_dict(f"{project}-d", unique("u"), "completed", [], labels={"team": "a"}),
        run_dict(f"other-{project}", unique("u"), "completed", [], labels={"team": "a", "env": "prod"}),
        run_dict(f"{project}-e", unique("u"), "aborted", [], labels={"team": "a", "env": "prod"}),
    ]
    await post_runs(live, runs)
    query = [
        ("project", f"{project}-*"),
        ("state", "completed"),
        ("state", "aborted"),
        ("label", "team=a"),
        ("label", "env=prod"),
        ("since", "5m"),
    ]
    async with stream(live, query) as events:
        got = await events.take(2)
        assert sorted(e.json()["metadata"]["project"] for e in got) == [f"{project}-a", f"{project}-e"]
        assert await events.nothing_more()
        # Caught up, it goes on live.
        later = run_dict(f"{project}-f", unique("u"), "completed", [], labels={"team": "a", "env": "prod"})
        await post_runs(live, [later])
        assert states(await events.take(1)) == [(later["metadata"]["uid"], "completed")]
    since = datetime.now(UTC).isoformat()
    await asyncio.sleep(0.05)
    fresh = run_dict(f"{project}-a", unique("u"), "completed", [], labels={"team": "a", "env": "prod"})
    await post_runs(live, [fresh])
    async with stream(live, [("project", f"{project}-a"), ("since", since)]) as events:
        assert states(await events.take(1)) == [(fresh["metadata"]["uid"], "completed")]  # not runs[0]


async def test_no_secret_reaches_a_stream(live: WorkerProcess) -> None:
    project = unique("sec")
    secret = "s3cr3t-" + unique()
    sealed = run_dict(project, unique("u"), "running", [webhook("h", "http://127.0.0.1:9/x")])
    sealed["spec"]["notifications"][0]["secret_params"] = {"token": secret}
    foreign = json.loads(json.dumps(sealed))  # a producer that did not seal: the literal is on the topic
    foreign["metadata"]["uid"] = unique("u")
    async with stream(live, [("project", project)]) as events:
        await post_runs(live, [sealed])
        producer = AIOKafkaProducer(
            bootstrap_servers=live.settings.bootstrap_servers, enable_idempotence=False
        )
        await producer.start()
        try:
            key = f"{project}/{foreign['metadata']['uid']}".encode()
            await producer.send_and_wait(live.settings.topic("runs"), orjson.dumps(foreign), key=key)
        finally:
            await producer.stop()
        got = await events.take(2)
    for event in got:
        assert secret not in event.data and "rhs1." not in event.data
        assert event.json()["spec"]["notifications"][0]["secret_params"] == {"token": "REDACTED"}


async def test_invalid_and_rekeyed_records_are_skipped(live: WorkerProcess) -> None:
    project, uid = unique("skip"), unique("u")
    run = run_dict(project, uid, "running", [])
    async with stream(live, [("project", project)]) as events:
        producer = AIOKafkaProducer(
            bootstrap_servers=live.settings.bootstrap_servers, enable_idempotence=False
        )
        await producer.start()
        try:
            topic = live.settings.topic("runs")
            await producer.send_and_wait(topic, b"{not json", key=f"{project}/{uid}".encode())
            await producer.send_and_wait(topic, orjson.dumps(run), key=b"some-other-key")
        finally:
            await producer.stop()
        # Only the evaluate stage's re-keyed copy shows, once.
        assert states(await events.take(1)) == [(uid, "running")]
        assert await events.nothing_more()


async def test_bad_queries_are_json_400s(live: WorkerProcess) -> None:
    bad = [
        ("state=bogus", "state"),
        ("label=novalue", "label"),
        ("since=yesterday", "since"),
        ("since=2026-01-02T03:04:05", "since"),  # no zone
        ("colour=red", "colour"),
    ]
    async with aiohttp.ClientSession() as session:
        for query, path in bad:
            async with session.get(f"{live.api}/api/v1/subscribe?{query}") as response:
                assert response.status == 400, query
                assert response.content_type == "application/json"
                body = await response.json()
                assert [p["path"] for p in body["problems"]] == [path], body
        headers = {"Last-Event-ID": "not a cursor"}
        async with session.get(f"{live.api}/api/v1/subscribe", headers=headers) as response:
            assert response.status == 400
            assert (await response.json())["problems"][0]["path"] == "Last-Event-ID"


def slow_client(port: int, project: str) -> socket.socket:
    """A client that asks for the stream and never reads it (a tiny receive buffer fills at once)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /api/v1/subscribe?project={project} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


async def test_a_slow_client_is_dropped_without_slowing_the_others(live: WorkerProcess) -> None:
    project = unique("slow")
    count = 600
    padding = "x" * 4000  # 2.4 MB in all: more than the slow client's queue and socket buffers hold
    runs = [run_dict(project, unique("u"), "running", [], results={"pad": padding}) for _ in range(count)]
    slow = await asyncio.to_thread(slow_client, live.web_port, project)
    try:
        async with stream(live, [("project", project)]) as events:
            await asyncio.sleep(0.5)  # the slow client's request is in
            await post_runs(live, runs[: count // 2])
            await post_runs(live, runs[count // 2 :])
            got = await events.take(count, within=60)
            assert len({e.json()["metadata"]["uid"] for e in got}) == count
        # The slow one was ended, with a comment saying how to resume.
        slow.settimeout(10)

        def read_all() -> bytes:
            data = b""
            while not data.endswith(b"\r\n0\r\n\r\n"):  # the last chunk: the server ended the stream
                chunk = slow.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data

        received = await asyncio.to_thread(read_all)
    finally:
        slow.close()
    assert received.count(b"event: run") < count
    assert TOO_SLOW.encode() in received


def subscribe_cli(worker: WorkerProcess, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNHERALD_")}
    return subprocess.Popen(
        [sys.executable, "-m", "runherald.cli", "subscribe", "--api", worker.api, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_lines(process: subprocess.Popen[str], count: int, within: float = 30.0) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + within
    while len(lines) < count and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
    return lines


async def test_runherald_subscribe_prints_changes_until_ctrl_c(live: WorkerProcess) -> None:
    project, uid = unique("cli"), unique("u")
    changes = [
        run_dict(project, uid, s, [], last_update=stamp(i), name="nightly") for i, s in enumerate(STATES)
    ]
    await post_runs(live, changes)
    for output in ("json", "table"):
        process = subscribe_cli(live, "--project", project, "--since", "5m", "-o", output)
        try:
            lines = await asyncio.to_thread(read_lines, process, 3)
            process.send_signal(signal.SIGINT)
            code = await asyncio.to_thread(process.wait, 20)
        finally:
            if process.poll() is None:
                process.kill()
        assert code == 0, process.stderr.read() if process.stderr else ""
        if output == "json":
            assert [json.loads(line)["status"]["state"] for line in lines] == STATES
        else:
            assert [line.split()[1:] for line in lines] == [
                [f"{project}/{uid}", "nightly", s] for s in STATES
            ]
            assert lines[0].split()[0] == stamp(0)


async def test_runherald_subscribe_exit_codes(live: WorkerProcess) -> None:
    bad = subscribe_cli(live, "--state", "bogus")
    assert await asyncio.to_thread(bad.wait, 20) == 2
    assert "--state: unknown run state 'bogus'" in (bad.stderr.read() if bad.stderr else "")
    yaml = subscribe_cli(live, "-o", "yaml")
    assert await asyncio.to_thread(yaml.wait, 20) == 2
    nowhere = subscribe_cli(live, "--api", f"http://127.0.0.1:{free_port()}")
    assert await asyncio.to_thread(nowhere.wait, 20) == 1
    assert "cannot reach the API" in (nowhere.stderr.read() if nowhere.stderr else "")


async def test_catching_up_while_runs_flow_misses_nothing_and_repeats_nothing(live: WorkerProcess) -> None:
    """A subscriber from `since` reads with its own reader while runs go on arriving, then joins the
    shared reader: every run exactly once, each run's states in order."""
    project = unique("join")
    uids = [unique("u") for _ in range(40)]

    async def publish_paced() -> None:
        for i, uid in enumerate(uids):
            await post_runs(
                live, [run_dict(project, uid, s, [], last_update=stamp(k)) for k, s in enumerate(STATES)]
            )
            if i % 4 == 3:
                await asyncio.sleep(0.05)

    async with stream(live, [("project", "nobody-*")]):  # the shared reader is running
        publishing = asyncio.create_task(publish_paced())
        await asyncio.sleep(0.3)  # some runs are in the past, the rest arrive while it catches up
        async with stream(live, [("project", project), ("since", "1m")]) as events:
            got = await events.take(3 * len(uids), within=60)
            await publishing
            assert await events.nothing_more()
    seen: dict[str, list[str]] = {}
    for uid, state in states(got):
        seen.setdefault(uid, []).append(state)
    assert seen == {uid: STATES for uid in uids}
