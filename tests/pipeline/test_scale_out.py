"""Two workers share the partitions; each is SIGKILLed mid-stream and restarted; nothing is lost."""

from __future__ import annotations

import asyncio
from collections import Counter

import orjson

from runherald.publish import Publisher
from runherald.testing.webhook import WebhookReceiver

from .harness import read_topic, run_dict, unique, wait_for, webhook

RUNS = 400


async def test_each_of_two_workers_sigkilled_and_restarted_loses_nothing_and_the_ledger_converges(
    start_worker, receiver: WebhookReceiver
) -> None:
    prefix, group = unique("t") + ".", unique("g")
    workers = [start_worker(prefix=prefix, group=group, wait=False) for _ in range(2)]
    # The receiver runs on this test's event loop: calls that block go to a thread, or it stops
    # answering and the workers' sends time out and are retried (duplicates the product did not make).
    await asyncio.gather(*(asyncio.to_thread(w.wait_ready) for w in workers))
    project = unique("p")
    uids = [f"u{i:04d}" for i in range(RUNS)]
    # Each worker is killed once (SIGKILL: no clean shutdown, no final commit) while runs flow, and
    # started again a little later: two kills, and a rebalance after each kill and each restart.
    kill_at = {RUNS // 4: 0, RUNS // 2: 1}
    restart_at = {RUNS // 4 + RUNS // 8: 0, RUNS // 2 + RUNS // 8: 1}
    async with Publisher(workers[0].settings) as publisher:
        for i, uid in enumerate(uids):
            await publisher.publish(
                run_dict(project, uid, "completed", [webhook("hook", receiver.url("/sink"))])
            )
            if i in kill_at:
                await wait_for(lambda at=i: len(receiver.requests) > at // 2)
                await asyncio.to_thread(workers[kill_at[i]].kill)
            if i in restart_at:
                index = restart_at[i]
                workers[index] = start_worker(prefix=prefix, group=group, wait=False)
            await asyncio.sleep(0.01)
    await asyncio.gather(*(asyncio.to_thread(w.wait_ready) for w in workers))

    def delivered() -> set[str]:
        return {r.json()["runs"][0]["metadata"]["uid"] for r in receiver.requests_to("/sink")}

    await wait_for(lambda: len(delivered()) == RUNS, timeout=90)
    assert delivered() == set(uids)

    keys = Counter(r.headers["Idempotency-Key"] for r in receiver.requests_to("/sink"))
    duplicates = sum(n - 1 for n in keys.values())
    by_uid: dict[str, set[str]] = {}
    for r in receiver.requests_to("/sink"):
        by_uid.setdefault(r.json()["runs"][0]["metadata"]["uid"], set()).add(r.headers["Idempotency-Key"])
    assert all(len(k) == 1 for k in by_uid.values()), "a run's duplicates must carry the same Idempotency-Key"
    print(f"\nreceiver saw {sum(keys.values())} requests for {RUNS} deliveries: {duplicates} duplicates")

    # What users see: every delivery (not a sample) is `sent` in each worker's API within 30 s of the
    # last worker being ready, whichever worker owns its run.
    def not_sent() -> list[str]:
        left = []
        for uid in uids:
            for worker in workers:
                code, body = worker.get(f"/api/v1/runs/{project}/{uid}/notifications")
                if code != 200 or body.get("hook", {}).get("status") != "sent":
                    left.append(
                        f"{uid}@{worker.web_port}: {code} {body.get('hook') if code == 200 else body}"
                    )
                    break
        return left

    async def all_sent() -> bool:
        return not await asyncio.to_thread(not_sent)

    await wait_for(all_sent, timeout=30, interval=0.5)

    # No delivery was ever recorded as sent with two sent_times.
    sent_times: dict[str, set[str]] = {}
    for key, value in await read_topic(workers[0].settings, "status"):
        if value is None or not key or not key.startswith(f"{project}/".encode()):
            continue
        for did, entry in orjson.loads(value)["deliveries"].items():
            if entry.get("status") == "sent":
                sent_times.setdefault(did, set()).add(entry["sent_time"])
    assert len(sent_times) == RUNS
    assert all(len(times) == 1 for times in sent_times.values())
