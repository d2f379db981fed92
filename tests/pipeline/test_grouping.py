"""Grouped rules on real workers: 200 failing runs under one rule grouped by project give one digest per
project (counted by distinct Idempotency-Key), listing every run exactly once, with two workers and
with one of them SIGKILLed mid-wait; each member run's ledger says which digest it went in and when;
a repeat interval suppresses a run and lets the next window through."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from collections import defaultdict
from typing import Any

from runherald.grouping import group_hash
from runherald.publish import Publisher
from runherald.testing.webhook import WebhookReceiver
from runherald.topics import TOPIC_NAMES

from .harness import WorkerProcess, read_topic, run_dict, unique, wait_for

RUNS = 200
PROJECTS = 4
SECRET = "grouped-s3cr3t-token"


def _put(api: str, path: str, body: Any) -> tuple[int, Any]:
    sent = urllib.request.Request(api + path, data=json.dumps(body).encode(), method="PUT")
    with urllib.request.urlopen(sent, timeout=15) as response:
        return response.status, json.loads(response.read())


async def configure(worker: WorkerProcess, document: dict[str, Any]) -> None:
    code, body = await asyncio.to_thread(_put, worker.api, "/api/v1/config", {"document": document})
    assert code == 200, body


async def notifications(worker: WorkerProcess, project: str, uid: str) -> dict[str, Any]:
    code, body = await asyncio.to_thread(worker.get, f"/api/v1/runs/{project}/{uid}/notifications")
    return body if code == 200 else {}


def grouped_config(base: str, url: str, secret: bool = False, **rule: Any) -> dict[str, Any]:
    hook: dict[str, Any] = {"name": "hook", "kind": "webhook", "params": {"url": url}}
    if secret:  # the URL a literal secret (sealed when stored): it must show on no topic
        hook = {**hook, "params": {}, "secret_params": {"url": f"{url}?key={SECRET}"}}
    return {
        "receivers": [hook],
        "rules": [
            {
                "name": "failures",
                "matchers": [f'project=~"{base}-.*"'],
                "when": ["error"],
                "receivers": ["hook"],
                "group_by": ["project"],
                **rule,
            }
        ],
    }


def digests(receiver: WebhookReceiver, path: str) -> dict[str, list[list[tuple[str, str]]]]:
    """Idempotency-Key -> the (project, uid) lists of each request carrying it."""
    found: dict[str, list[list[tuple[str, str]]]] = defaultdict(list)
    for sent in receiver.requests_to(path):
        runs = [(r["metadata"]["project"], r["metadata"]["uid"]) for r in sent.json()["runs"]]
        found[sent.headers["Idempotency-Key"]].append(runs)
    return found


async def publish_failures(worker: WorkerProcess, base: str, kill: Any = None) -> dict[str, set[str]]:
    """RUNS failing runs over PROJECTS projects in about 5 s; `kill(i)` is awaited after the i-th."""
    by_project: dict[str, set[str]] = defaultdict(set)
    async with Publisher(worker.settings) as publisher:
        for i in range(RUNS):
            project, uid = f"{base}-{i % PROJECTS}", f"u{i:04d}"
            await publisher.publish(run_dict(project, uid, "error", []))
            by_project[project].add(uid)
            if kill is not None:
                await kill(i)
            await asyncio.sleep(5 / RUNS)
    return by_project


def check_one_digest_per_group(
    receiver: WebhookReceiver, path: str, by_project: dict[str, set[str]]
) -> dict[str, str]:
    """Every run in exactly one digest, one digest (Idempotency-Key) per project; returns project -> key."""
    found = digests(receiver, path)
    assert len(found) == PROJECTS, {key: [len(r) for r in requests] for key, requests in found.items()}
    key_of: dict[str, str] = {}
    seen: dict[str, str] = {}
    for key, requests in found.items():
        for runs in requests:
            assert len(runs) == len(set(runs)), "a run is listed twice in one message"
            projects = {project for project, _ in runs}
            assert len(projects) == 1, projects
            project = projects.pop()
            assert key_of.setdefault(project, key) == key, f"two digests for {project}"
            for _, uid in runs:
                assert seen.setdefault(f"{project}/{uid}", key) == key, f"{project}/{uid} in two digests"
    assert {p: {k.split("/")[1] for k in seen if k.startswith(p + "/")} for p in by_project} == by_project
    return key_of


async def test_200_failing_runs_give_one_digest_per_group_and_each_run_says_where_it_went(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    prefix, group = unique("t") + ".", unique("g")
    workers = [start_worker(prefix, group, wait=False) for _ in range(2)]
    await asyncio.gather(*(asyncio.to_thread(w.wait_ready) for w in workers))
    base, path = unique("p"), "/digest"
    await configure(workers[0], grouped_config(base, receiver.url(path), secret=True, group_wait="8s"))
    await asyncio.sleep(1)  # in force on the other worker too
    by_project = await publish_failures(workers[0], base)

    def all_listed() -> bool:
        return sum(len({uid for runs in r for uid in runs}) for r in digests(receiver, path).values()) >= RUNS

    await wait_for(all_listed, timeout=60, interval=0.2)
    await asyncio.sleep(2)  # a second digest of a group would come within the wait's slack
    key_of = check_one_digest_per_group(receiver, path, by_project)
    print(f"\n{RUNS} runs, {len(receiver.requests_to(path))} requests, {len(key_of)} digests")

    # Each member run: skipped, naming its digest, with the digest's sent_time; on either worker.
    project = f"{base}-1"
    for uid in sorted(by_project[project])[:5]:
        for worker in workers:

            async def told(worker: WorkerProcess = worker, uid: str = uid) -> dict[str, Any]:
                found = (await notifications(worker, project, uid)).get("failures/hook") or {}
                return found if found.get("status") == "skipped" else {}

            entry = await wait_for(told, timeout=20)
            assert key_of[project] in entry["reason"] and entry["sent_time"], entry
    # `runherald status` of a member run says the same.
    shown = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "runherald.cli", "status", f"{project}/{uid}", "--api", workers[0].api],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("RUNHERALD_")},
    )
    assert shown.returncode == 0, shown.stderr
    assert "skipped" in shown.stdout and key_of[project] in shown.stdout, shown.stdout
    # The group's own record: its digest sent, under the synthetic project "group".
    hashed = group_hash("failures", "hook", [project])

    async def digest_sent() -> dict[str, Any]:
        found = (await notifications(workers[1], "group", hashed)).get("failures/hook") or {}
        return found if found.get("status") == "sent" else {}

    assert (await wait_for(digest_sent, timeout=20))["sent_time"]
    assert receiver.requests_to(path)[0].query == {"key": SECRET}
    # No topic holds the receiver's secret: not the members, the group's records nor the digests.
    for topic in TOPIC_NAMES:
        records = await read_topic(workers[0].settings, topic)
        # (no rule here uses transitions: their topics stay empty)
        assert records or topic in {"dead-letter", "outcomes", "history", "transitions"}, topic
        assert not [value for _, value in records if SECRET.encode() in (value or b"")], topic


async def test_a_worker_killed_mid_wait_still_gives_one_digest_per_group_with_every_run(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    prefix, group = unique("t") + ".", unique("g")
    workers = [start_worker(prefix, group, wait=False) for _ in range(2)]
    await asyncio.gather(*(asyncio.to_thread(w.wait_ready) for w in workers))
    base, path = unique("p"), "/killed"
    # The wait outlasts the failover (the session timeout, then the takeover's recovery): the runs of the
    # killed worker's partitions are evaluated again by the next owner and still join the first window.
    await configure(workers[0], grouped_config(base, receiver.url(path), group_wait="20s"))
    await asyncio.sleep(1)

    async def kill(i: int) -> None:
        if i == RUNS // 2:  # mid-wait: members of every group are waiting on both workers
            await asyncio.to_thread(workers[1].kill)

    by_project = await publish_failures(workers[0], base, kill)
    workers[1] = start_worker(prefix, group, wait=False)  # a rebalance again when it joins

    def all_listed() -> bool:
        return sum(len({uid for runs in r for uid in runs}) for r in digests(receiver, path).values()) >= RUNS

    await wait_for(all_listed, timeout=90, interval=0.2)
    await asyncio.to_thread(workers[1].wait_ready)
    await asyncio.sleep(3)
    key_of = check_one_digest_per_group(receiver, path, by_project)
    requests = len(receiver.requests_to(path))
    print(f"\nkilled mid-wait: {RUNS} runs, {requests} requests, {len(key_of)} distinct Idempotency-Keys")


async def test_a_repeat_interval_suppresses_then_lets_the_next_window_through(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    worker: WorkerProcess = start_worker()
    base, path = unique("p"), "/repeat"
    await configure(worker, grouped_config(base, receiver.url(path), repeat_interval="6s"))
    project = f"{base}-0"
    async with Publisher(worker.settings) as publisher:
        await publisher.publish(run_dict(project, "first", "error", []))
        await receiver.wait_for_requests(1, path=path, within=20)
        first_key = receiver.requests_to(path)[0].headers["Idempotency-Key"]
        await publisher.publish(run_dict(project, "second", "error", []))

        async def suppressed() -> dict[str, Any]:
            found = (await notifications(worker, project, "second")).get("failures/hook") or {}
            return found if found.get("status") == "skipped" else {}

        entry = await wait_for(suppressed, timeout=20)
        assert first_key in entry["reason"] and "repeat_interval 6s" in entry["reason"], entry
        assert len(digests(receiver, path)) == 1
        await asyncio.sleep(6)
        await publisher.publish(run_dict(project, "third", "error", []))
    await receiver.wait_for_requests(2, path=path, within=20)
    found = digests(receiver, path)
    assert len(found) == 2
    (second_key,) = set(found) - {first_key}
    assert found[second_key][0] == [(project, "third")]
    assert found[first_key][0] == [(project, "first")]
