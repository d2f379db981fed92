"""Inhibition on two real workers: a failing healthcheck run in project A fires "project-down", which
mutes "run-failed" for project A on every worker (whichever evaluates the runs), not for project B, and
for inhibit_for only: then a failing run in A is sent again."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from typing import Any

from runherald.publish import Publisher
from runherald.testing.webhook import WebhookReceiver
from runherald.testing.worker import WorkerProcess

from .harness import api_get, run_dict, unique, wait_for

INHIBIT_FOR = 3.0


def _call(worker: WorkerProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    sent = urllib.request.Request(worker.api + path, data=data, method=method)
    try:
        with urllib.request.urlopen(sent, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def consumed(worker: WorkerProcess) -> float:
    """The run events this worker has evaluated (its evaluate stage's counter)."""
    _, text = await asyncio.to_thread(worker.get_text, "/metrics")
    found = re.search(r"^runherald_events_consumed_total (\S+)$", text, re.M)
    assert found, text[:500]
    return float(found.group(1))


def uid_of(request: Any) -> str:
    return str(json.loads(request.body)["runs"][0]["metadata"]["uid"])


async def notifications(worker: WorkerProcess, project: str, uid: str) -> dict[str, Any]:
    async def recorded() -> dict[str, Any] | None:
        code, body = await api_get(worker, f"/api/v1/runs/{project}/{uid}/notifications")
        return body if code == 200 and "run-failed/failed" in body else None

    found: dict[str, Any] = await wait_for(recorded, timeout=15)
    return found


async def test_inhibition_mutes_and_then_lets_through(start_worker: Any, receiver: WebhookReceiver) -> None:
    prefix, group = unique("t") + ".", unique("g")
    one: WorkerProcess = start_worker(prefix, group)
    other: WorkerProcess = start_worker(prefix, group)

    async def both_own_partitions() -> bool:
        answers = [await api_get(worker, "/readyz") for worker in (one, other)]
        return all(code == 200 and body.get("assigned_partitions", 0) >= 1 for code, body in answers)

    await wait_for(both_own_partitions, timeout=40, interval=0.2)

    a, b = unique("pa"), unique("pb")
    down, failed = f"/down-{a}", f"/failed-{a}"
    document = {
        "receivers": [
            {"name": "down", "kind": "webhook", "params": {"url": receiver.url(down)}},
            {"name": "failed", "kind": "webhook", "params": {"url": receiver.url(failed)}},
        ],
        "rules": [
            {
                "name": "project-down",
                "matchers": ['labels.kind="healthcheck"', f'project=~"{a}|{b}"'],
                "when": ["error"],
                "receivers": ["down"],
                "inhibits": ["run-failed"],
                "inhibit_equal": ["project"],
                "inhibit_for": f"{INHIBIT_FOR:g}s",
            },
            {
                "name": "run-failed",
                "matchers": [f'project=~"{a}|{b}"'],
                "when": ["error"],
                "receivers": ["failed"],
            },
        ],
    }
    code, body = await asyncio.to_thread(_call, one, "PUT", "/api/v1/config", {"document": document})
    assert code == 200, body
    await wait_for(lambda: other.get("/api/v1/rules/project-down")[0] == 200, timeout=5)
    # A rule that another inhibits cannot be deleted from under it.
    code, body = await asyncio.to_thread(_call, other, "DELETE", "/api/v1/rules/run-failed")
    assert code == 409 and body["rules"] == ["project-down"], body

    async with Publisher(one.settings) as publisher:
        # The healthcheck fails in A: project-down is sent; the run's own run-failed is already muted.
        await publisher.publish(run_dict(a, "health", "error", [], labels={"kind": "healthcheck"}))
        await receiver.wait_for_requests(1, path=down, within=15)
        fired = time.monotonic()

        async def seen_by(worker: WorkerProcess) -> list[Any]:
            code, body = await api_get(worker, "/api/v1/inhibitions")
            return [i for i in body["inhibitions"] if i["equal"] == {"project": a}] if code == 200 else []

        async def seen_by_both() -> list[Any]:
            found = [await seen_by(worker) for worker in (one, other)]
            return found[0] if found[0] and found[0] == found[1] else []

        (inhibition,) = await wait_for(seen_by_both, timeout=5, interval=0.01)
        took = time.monotonic() - fired
        print(f"\nthe inhibition was in force on both workers {took:.3f}s after its delivery arrived")
        assert inhibition["source"] == "project-down" and inhibition["inhibited"] == ["run-failed"]
        assert inhibition["run"] == f"{a}/health"
        health = await notifications(one, a, "health")
        assert health["project-down/down"]["status"] == "sent"
        assert health["run-failed/failed"]["status"] == "skipped"

        # Failing runs in A are muted, on both workers (each evaluates the runs of its partitions).
        before = [await consumed(worker) for worker in (one, other)]
        muted = [unique("ua") for _ in range(12)]
        for uid in muted:
            await publisher.publish(run_dict(a, uid, "error", []))
        for uid in muted:
            entry = (await notifications(other, a, uid))["run-failed/failed"]
            assert entry["status"] == "skipped", (uid, entry)
            assert entry["reason"].startswith(f"inhibited by rule project-down (run {a}/health) until "), (
                entry
            )
        after = [await consumed(worker) for worker in (one, other)]
        assert all(later > earlier for earlier, later in zip(before, after, strict=True)), (before, after)
        # In B they are sent.
        sent = [unique("ub") for _ in range(3)]
        for uid in sent:
            await publisher.publish(run_dict(b, uid, "error", []))
        await receiver.wait_for_requests(3, path=failed, within=15)
        assert sorted(uid_of(r) for r in receiver.requests_to(failed)) == sorted(sent)

        # When inhibit_for is over, a failing run in A is sent again.
        remaining = INHIBIT_FOR - (time.monotonic() - fired)
        await asyncio.sleep(max(0.0, remaining) + 0.2)
        assert await seen_by(one) == [] and await seen_by(other) == []
        again = unique("ua")
        await publisher.publish(run_dict(a, again, "error", []))
        await receiver.wait_for_requests(4, path=failed, within=15)
        assert uid_of(receiver.requests_to(failed)[-1]) == again
        assert (await notifications(one, a, again))["run-failed/failed"]["status"] == "sent"
    assert len(receiver.requests_to(down)) == 1
