"""Destination rate limits across two workers: a receiver with ``rate_limit: {per_second: 20, burst: 1}``
gets 100 deliveries, published as fast as they go, from two workers of one group. None is lost or
doubled, the receiver never sees more than the limit allows, and the ledger says why the waiting ones
wait. And when a second worker joins while deliveries wait, the ones whose partition moves are sent by
their new owner, once."""

from __future__ import annotations

import asyncio
import json
import math
import urllib.request
from collections import Counter
from typing import Any

from runherald.publish import Publisher
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, run_dict, unique, wait_for

RUNS = 100
PER_SECOND = 20
BURST = 1
WORKERS = 2
# A worker's bucket always holds at least one whole message: with burst 1 each worker may send one at
# the same instant as the other, so w workers can exceed per_second * T + burst by w - 1 (see
# runherald.ratelimit). The limiter bounds when requests leave; the receiver records when they arrive,
# and a loopback request's latency varies (both workers and this test's event loop share two cores with
# whatever else runs): requests that left evenly spaced can arrive bunched. With arrivals up to JITTER
# late, any window of arrivals holds at most the sends of a window 2 * JITTER longer: TOLERANCE. Over the
# whole run the jitter counts only once (first and last arrival), so the overall rate is checked too.
JITTER = 0.1
TOLERANCE = math.ceil(2 * JITTER * PER_SECOND)
MOST_PER_SECOND = PER_SECOND + BURST + (WORKERS - 1) + TOLERANCE


def most_in_any_window(times: list[float], window: float) -> int:
    """The most arrivals in any closed window [t, t + window] (sliding)."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] > window:
            start += 1
        most = max(most, end - start + 1)
    return most


def _put(worker: WorkerProcess, path: str, body: Any) -> int:
    sent = urllib.request.Request(worker.api + path, data=json.dumps(body).encode(), method="PUT")
    with urllib.request.urlopen(sent, timeout=15) as response:
        return int(response.status)


def _notification(worker: WorkerProcess, project: str, uid: str) -> dict[str, Any] | None:
    code, body = worker.get(f"/api/v1/runs/{project}/{uid}/notifications")
    return body.get("limited/hook") if code == 200 else None


async def test_two_workers_keep_a_receiver_under_its_rate_limit_and_lose_nothing(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    prefix, group = unique("t") + ".", unique("g")
    workers: list[WorkerProcess] = [start_worker(prefix, group, wait=False) for _ in range(WORKERS)]
    # Blocking calls go to a thread: the receiver answers on this test's event loop.
    await asyncio.gather(*(asyncio.to_thread(w.wait_ready) for w in workers))
    project = unique("p")
    hook = f"/limited-{project}"
    document = {
        "receivers": [
            {
                "name": "hook",
                "kind": "webhook",
                "params": {"url": receiver.url(hook)},
                "rate_limit": {"per_second": PER_SECOND, "burst": BURST},
            }
        ],
        "rules": [{"name": "limited", "matchers": [f'project="{project}"'], "receivers": ["hook"]}],
    }
    assert await asyncio.to_thread(_put, workers[0], "/api/v1/config", {"document": document}) == 200

    async def in_force_everywhere() -> bool:
        answers = await asyncio.gather(*(asyncio.to_thread(w.get, "/api/v1/receivers/hook") for w in workers))
        return all(code == 200 and body.get("rate_limit") for code, body in answers)

    await wait_for(in_force_everywhere, timeout=10)

    uids = [f"u{i:03d}" for i in range(RUNS)]
    async with Publisher(workers[0].settings) as publisher:
        for uid in uids:
            await publisher.publish(run_dict(project, uid, "completed", []))

    # While they go out (five seconds at 20/s), the ones still waiting are `pending`, with the reason.
    async def a_waiting_one() -> dict[str, Any] | None:
        for uid in reversed(uids):
            for worker in workers:
                found = await asyncio.to_thread(_notification, worker, project, uid)
                if found and found["status"] == "pending" and found.get("reason"):
                    return found
        return None

    waiting = await wait_for(a_waiting_one, timeout=20, interval=0.05)
    assert waiting["reason"].startswith(f"waiting for the rate limit of {receiver.base_url}/REDACTED: 20/s")
    assert waiting["attempts"] == 0  # waiting is not an attempt

    await receiver.wait_for_requests(RUNS, path=hook, within=60)
    await asyncio.sleep(1.0)  # anything sent twice would arrive by now
    arrived = receiver.requests_to(hook)
    keys = Counter(request.headers["Idempotency-Key"] for request in arrived)
    assert len(keys) == RUNS and max(keys.values()) == 1, "every delivery exactly once"
    assert {request.json()["runs"][0]["metadata"]["uid"] for request in arrived} == set(uids)

    times = [request.arrived_monotonic for request in arrived]
    busiest = most_in_any_window(times, 1.0)
    span = max(times) - min(times)
    print(f"\n{RUNS} deliveries over {span:.2f}s; the busiest second had {busiest}")
    assert busiest <= MOST_PER_SECOND
    for window in (0.5, 2.0, 3.0):  # shorter and longer windows hold too
        assert most_in_any_window(times, window) <= PER_SECOND * window + BURST + WORKERS - 1 + TOLERANCE
    # Over the whole run, no faster than the limit: 100 at 20/s take at least ~4.9 s.
    assert span >= (RUNS - BURST - (WORKERS - 1) - TOLERANCE) / PER_SECOND

    # In the end every one is recorded sent, with one attempt, whichever worker owns its run.
    async def all_sent() -> bool:
        for uid in uids:
            found = await asyncio.to_thread(_notification, workers[0], project, uid)
            if not found or found["status"] != "sent" or found["attempts"] != 1:
                return False
        return True

    await wait_for(all_sent, timeout=30, interval=0.5)


async def test_deliveries_waiting_when_a_second_worker_joins_are_sent_once_by_their_new_owner(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    prefix, group = unique("t") + ".", unique("g")
    first: WorkerProcess = start_worker(prefix, group)
    project = unique("p")
    hook = f"/joined-{project}"
    per_second, runs = 10, 80
    document = {
        "receivers": [
            {
                "name": "hook",
                "kind": "webhook",
                "params": {"url": receiver.url(hook)},
                "rate_limit": {"per_second": per_second, "burst": 1},
            }
        ],
        "rules": [{"name": "limited", "matchers": [f'project="{project}"'], "receivers": ["hook"]}],
    }
    assert await asyncio.to_thread(_put, first, "/api/v1/config", {"document": document}) == 200
    uids = [f"u{i:03d}" for i in range(runs)]
    async with Publisher(first.settings) as publisher:
        for uid in uids:
            await publisher.publish(run_dict(project, uid, "completed", []))
    await receiver.wait_for_requests(5, path=hook, within=20)
    # Eight seconds of waiting deliveries: the rebalance takes some of their partitions to the new worker.
    second: WorkerProcess = start_worker(prefix, group, wait=False)
    await asyncio.to_thread(second.wait_ready)
    await receiver.wait_for_requests(runs, path=hook, within=60)
    await asyncio.sleep(1.0)
    arrived = receiver.requests_to(hook)
    keys = Counter(request.headers["Idempotency-Key"] for request in arrived)
    assert len(keys) == runs and max(keys.values()) == 1, "every delivery exactly once"
    times = [request.arrived_monotonic for request in arrived]
    assert most_in_any_window(times, 1.0) <= per_second + 1 + (WORKERS - 1) + TOLERANCE
    # It did happen: the first worker let go of waiting deliveries whose partition moved.
    assert "waited; leaving it" in await asyncio.to_thread(first.log_path.read_text)
