"""Two workers share the partitions; one is SIGKILLed mid-stream and restarted; nothing is lost."""

from __future__ import annotations

import asyncio
from collections import Counter

import orjson

from runherald.publish import Publisher
from runherald.testing.webhook import WebhookReceiver

from .harness import read_topic, run_dict, unique, wait_for, webhook

RUNS = 400


async def test_sigkill_mid_stream_loses_nothing_and_records_each_delivery_once(
    start_worker, receiver: WebhookReceiver
) -> None:
    prefix, group = unique("t") + ".", unique("g")
    a = start_worker(prefix=prefix, group=group)
    b = start_worker(prefix=prefix, group=group, wait=False)
    b.wait_ready()
    await wait_for(
        lambda: a.get("/healthz")[1]["assigned_partitions"] and b.get("/healthz")[1]["assigned_partitions"],
        timeout=30,
    )
    project = unique("p")
    uids = [f"u{i:04d}" for i in range(RUNS)]
    async with Publisher(a.settings) as publisher:
        for i, uid in enumerate(uids):
            await publisher.publish(
                run_dict(project, uid, "completed", [webhook("hook", receiver.url("/sink"))])
            )
            if i == RUNS // 3:
                await wait_for(lambda: len(receiver.requests) > 20)
                a.kill()  # SIGKILL: no clean shutdown, no final commit
            if i == 2 * RUNS // 3:
                a = start_worker(prefix=prefix, group=group, wait=False)
            await asyncio.sleep(0.01)

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

    # The ledger: every delivery ends sent, and no delivery was ever recorded as sent with two sent_times.
    def all_sent() -> bool:
        for uid in uids[:: max(1, RUNS // 40)]:
            code, body = b.get(f"/api/v1/runs/{project}/{uid}/notifications")
            if code != 200 or body.get("hook", {}).get("status") != "sent":
                return False
        return True

    await wait_for(all_sent, timeout=30)
    sent_times: dict[str, set[str]] = {}
    for key, value in await read_topic(a.settings, "status"):
        if value is None or not key or not key.startswith(f"{project}/".encode()):
            continue
        for did, entry in orjson.loads(value)["deliveries"].items():
            if entry.get("status") == "sent":
                sent_times.setdefault(did, set()).add(entry["sent_time"])
    assert len(sent_times) == RUNS
    assert all(len(times) == 1 for times in sent_times.values())
