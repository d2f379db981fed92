"""End to end on the embedded broker: publish → evaluate → dispatch → webhook receiver → ledger → API."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import orjson

from runherald.publish import Publisher
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, publish_foreign, read_topic, run_dict, unique, wait_for, webhook


def notifications(worker: WorkerProcess, project: str, uid: str) -> dict:
    code, body = worker.get(f"/api/v1/runs/{project}/{uid}/notifications")
    return body if code == 200 else {}


async def test_each_notifying_state_is_sent_and_recorded(
    worker: WorkerProcess, publisher: Publisher, receiver: WebhookReceiver
) -> None:
    project = unique("p")
    for state in ("completed", "error", "aborted", "running"):
        uid = unique("u")
        await publisher.publish(run_dict(project, uid, state, [webhook("hook", receiver.url(f"/{state}"))]))
        await receiver.wait_for_requests(1, path=f"/{state}", within=15)
        body = receiver.requests_to(f"/{state}")[0].json()
        verb = {"completed": "completed", "error": "failed", "aborted": "aborted", "running": "started"}[
            state
        ]
        assert body["message"] == f"Run {verb} in project {project}: hello from hook"
        assert body["severity"] == "info"
        assert body["runs"][0]["metadata"]["uid"] == uid
        status = await wait_for(
            lambda uid=uid: (
                notifications(worker, project, uid).get("hook", {}).get("status") == "sent"
                and notifications(worker, project, uid)
            )
        )
        assert status["hook"]["sent_time"]
        assert status["hook"]["attempts"] == 1
        assert status["hook"]["states"][state]["status"] == "sent"


async def test_state_that_never_notifies_sends_nothing(
    worker: WorkerProcess, publisher: Publisher, receiver: WebhookReceiver
) -> None:
    project, uid = unique("p"), unique("u")
    hook = webhook("hook", receiver.url("/created"), when=["created", "pending", "skipped"])
    # runherald's publishers refuse such a `when` at the door; another producer's run gets this far.
    await publish_foreign(
        worker.settings,
        run_dict(project, uid, "created", [hook]),
        run_dict(project, unique("u"), "skipped", [hook]),
    )
    # A marker run published after them on another key shows the pipeline moved past both.
    marker = unique("u")
    await publisher.publish(run_dict(project, marker, "completed", [webhook("m", receiver.url("/marker"))]))
    await receiver.wait_for_requests(1, path="/marker", within=15)
    assert receiver.requests_to("/created") == []
    assert notifications(worker, project, uid) == {}


async def test_run_dict_and_status_api_and_cli(
    worker: WorkerProcess, publisher: Publisher, receiver: WebhookReceiver
) -> None:
    project, uid = unique("p"), unique("u")
    run = run_dict(
        project, uid, "completed", [webhook("hook", receiver.url("/cli"))], results={"accuracy": 0.9}
    )
    await publisher.publish(run)
    await receiver.wait_for_requests(1, path="/cli", within=15)

    def run_view() -> dict:
        code, body = worker.get(f"/api/v1/runs/{project}/{uid}")
        if code == 200 and body["status"].get("notifications", {}).get("hook", {}).get("status") == "sent":
            return body
        return {}

    body = await wait_for(run_view)
    assert body["status"]["results"] == {"accuracy": 0.9}
    assert set(body["status"]["notifications"]["hook"]) == {"status", "sent_time"}

    text = subprocess.run(
        [sys.executable, "-m", "runherald.cli", "status", f"{project}/{uid}", "--api", worker.api],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "hook" in text and "completed" in text and "sent" in text
    as_json = subprocess.run(
        [sys.executable, "-m", "runherald.cli", "status", f"{project}/{uid}", "--json", "--api", worker.api],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert json.loads(as_json)["hook"]["status"] == "sent"
    missing = subprocess.run(
        [sys.executable, "-m", "runherald.cli", "status", f"{project}/nope", "--api", worker.api],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 1 and "not found" in missing.stderr


async def test_condition_decides_on_completed_only(
    worker: WorkerProcess, publisher: Publisher, receiver: WebhookReceiver
) -> None:
    project = unique("p")
    condition = '{{ run["status"]["results"]["val"] > 4 }}'
    cases = {"/high": ("completed", 5), "/low": ("completed", 3), "/err": ("error", 3)}
    for path, (state, val) in cases.items():
        hook = webhook("cond", receiver.url(path), condition=condition)
        await publisher.publish(run_dict(project, unique("u"), state, [hook], results={"val": val}))
    await receiver.wait_for_requests(1, path="/high", within=15)
    await receiver.wait_for_requests(1, path="/err", within=15)
    marker = unique("u")
    await publisher.publish(run_dict(project, marker, "completed", [webhook("m", receiver.url("/marker2"))]))
    await receiver.wait_for_requests(1, path="/marker2", within=15)
    assert receiver.requests_to("/low") == []


async def test_duplicate_names_send_nothing_and_record_the_reason(
    worker: WorkerProcess, publisher: Publisher, receiver: WebhookReceiver
) -> None:
    project, uid = unique("p"), unique("u")
    hooks = [
        webhook("same", receiver.url("/dup1")),
        webhook("same", receiver.url("/dup2")),
        webhook("other", receiver.url("/dup3")),
    ]
    # runherald's publishers refuse duplicate names at the door; another producer's run gets this far.
    await publish_foreign(worker.settings, run_dict(project, uid, "completed", hooks))
    status = await wait_for(
        lambda: notifications(worker, project, uid).get("other") and notifications(worker, project, uid)
    )
    for name in ("same", "other"):
        assert status[name]["status"] == "error"
        assert status[name]["reason"] == "Notification names must be unique"
    assert receiver.requests == []


async def test_already_sent_is_not_sent_again(
    worker: WorkerProcess, publisher: Publisher, receiver: WebhookReceiver
) -> None:
    project, uid = unique("p"), unique("u")
    run = run_dict(project, uid, "completed", [webhook("hook", receiver.url("/once"))])
    await publisher.publish(run)
    await receiver.wait_for_requests(1, path="/once", within=15)
    await wait_for(lambda: notifications(worker, project, uid).get("hook", {}).get("status") == "sent")
    await publisher.publish(run)  # the same event again (a publisher retry)
    # MLRun's rule: a notification marked sent in the run dict itself is not sent again either.
    marked_uid = unique("u")
    marked = run_dict(
        project,
        marked_uid,
        "completed",
        [webhook("hook", receiver.url("/marked"))],
        extra_status={"notifications": {"hook": {"status": "sent", "sent_time": "2026-01-01T00:00:00"}}},
    )
    await publisher.publish(marked)
    await publisher.publish(
        run_dict(project, unique("u"), "completed", [webhook("m", receiver.url("/marker3"))])
    )
    await receiver.wait_for_requests(1, path="/marker3", within=15)
    assert len(receiver.requests_to("/once")) == 1
    assert receiver.requests_to("/marked") == []


async def test_out_of_order_event_is_ignored(
    worker: WorkerProcess, publisher: Publisher, receiver: WebhookReceiver
) -> None:
    project, uid = unique("p"), unique("u")
    late = webhook("hook", receiver.url("/order"), when=["running", "completed"])
    await publisher.publish(
        run_dict(project, uid, "completed", [late], last_update="2026-11-27T10:00:05+00:00")
    )
    await publisher.publish(
        run_dict(project, uid, "running", [late], last_update="2026-11-27T10:00:01+00:00")
    )
    await receiver.wait_for_requests(1, path="/order", within=15)
    await publisher.publish(
        run_dict(project, unique("u"), "completed", [webhook("m", receiver.url("/marker4"))])
    )
    await receiver.wait_for_requests(1, path="/marker4", within=15)
    assert len(receiver.requests_to("/order")) == 1
    assert receiver.requests_to("/order")[0].json()["message"].startswith("Run completed")
    code, body = worker.get(f"/api/v1/runs/{project}/{uid}")
    assert code == 200 and body["status"]["state"] == "completed"


async def test_malformed_events_go_to_dead_letter_and_the_stream_goes_on(
    worker: WorkerProcess, publisher: Publisher, receiver: WebhookReceiver
) -> None:
    from aiokafka import AIOKafkaProducer

    settings = worker.settings
    project = unique("p")
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    bad = {
        "not json": b"{nope",
        "not an object": b"[1, 2]",
        "no uid": orjson.dumps({"metadata": {"project": project}, "status": {"state": "completed"}}),
        "no state": orjson.dumps({"metadata": {"project": project, "uid": "x1"}, "status": {}}),
        "oversized": orjson.dumps(run_dict(project, "big", "completed", [], results={"blob": "x" * 300_000})),
        "bad when": orjson.dumps(
            run_dict(project, "w", "completed", [{"kind": "webhook", "when": "completed"}])
        ),
    }
    try:
        for value in bad.values():
            await producer.send_and_wait(settings.topic("runs"), value=value, key=f"{project}/bad".encode())
    finally:
        await producer.stop()
    uid = unique("u")
    await publisher.publish(
        run_dict(project, uid, "completed", [webhook("hook", receiver.url("/after-bad"))])
    )
    await receiver.wait_for_requests(1, path="/after-bad", within=15)

    async def dead_letters() -> list[dict]:
        records = [
            orjson.loads(v)
            for k, v in await read_topic(settings, "dead-letter")
            if k == f"{project}/bad".encode()
        ]
        return records if len(records) >= len(bad) else []

    records = await wait_for(dead_letters)
    reasons = [r["reason"] for r in records]
    assert any(r.startswith("not JSON") for r in reasons)
    assert any("must be a JSON object" in r for r in reasons)
    assert any("metadata.uid" in r for r in reasons)
    assert any("status.state" in r for r in reasons)
    assert any("over the limit" in r for r in reasons)
    assert any("when must be a list" in r for r in reasons)
    assert all(r["stage"] == "evaluate" and "offset" in r["source"] for r in records)


async def test_standard_loop_and_consumer_thread_still_deliver(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    # The default worker runs on uvloop with the consumer on its loop (every other test); the
    # alternatives stay available (RUNHERALD_EVENT_LOOP, RUNHERALD_CONSUMER_THREAD) and must work.
    worker = start_worker(RUNHERALD_EVENT_LOOP="asyncio", RUNHERALD_CONSUMER_THREAD="true")
    assert "event loop asyncio, Kafka consumer in its own thread" in worker.tail(200)
    project, uid = unique("p"), unique("u")
    async with Publisher(worker.settings) as publisher:
        await publisher.publish(run_dict(project, uid, "completed", [webhook("hook", receiver.url("/t"))]))
    await receiver.wait_for_requests(1, path="/t", within=20)
    status = await wait_for(
        lambda: notifications(worker, project, uid).get("hook", {}).get("status") == "sent", timeout=15
    )
    assert status


def test_default_worker_runs_uvloop_with_the_consumer_on_its_loop(worker: WorkerProcess) -> None:
    assert "event loop uvloop, Kafka consumer on the event loop" in worker.tail(100_000)  # its start


async def test_pending_delivery_reaches_the_ledger_topic_while_its_send_hangs(
    worker: WorkerProcess, publisher: Publisher, receiver: WebhookReceiver
) -> None:
    # The evaluate stage writes its ledger change a little later, usually folded into the outcome
    # write. With no outcome coming (the receiver never answers), that change must still be written.
    project, uid = unique("p"), unique("u")
    receiver.hang("/slow")
    await publisher.publish(run_dict(project, uid, "completed", [webhook("slow", receiver.url("/slow"))]))
    await receiver.wait_for_requests(1, path="/slow", within=15)
    key = f"{project}/{uid}".encode()

    async def pending_on_topic() -> dict | None:
        for record_key, value in await read_topic(worker.settings, "status"):
            if record_key == key and value:
                record = orjson.loads(value)
                entries = list(record.get("deliveries", {}).values())
                # Written by evaluate (no attempt yet), not by a retry after the send timed out.
                if entries and entries[0].get("status") == "pending" and not entries[0].get("attempts"):
                    return record
        return None

    record = await wait_for(pending_on_topic, timeout=5)
    assert record["run"]["state"] == "completed"
    entry = next(iter(record["deliveries"].values()))
    assert entry["name"] == "slow"
    assert entry["source"]  # the run event it came from
