"""`runherald dead-letter list|replay` against a real worker: a failed delivery is resent after a fix."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from runherald.deadletter import DeadLetter, read_dead_letters
from runherald.publish import Publisher
from runherald.testing._server import Reply
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, read_topic, run_dict, unique, wait_for, webhook

SECRET = "dl-replay-secret-5e0b7c"


def cli(worker: WorkerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runherald.cli", "dead-letter", *args],
        env=worker.environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def hook_status(worker: WorkerProcess, project: str, uid: str) -> dict[str, Any]:
    code, body = worker.get(f"/api/v1/runs/{project}/{uid}/notifications")
    return body.get("hook", {}) if code == 200 else {}


def status_is(worker: WorkerProcess, project: str, uid: str, status: str) -> dict[str, Any]:
    found = hook_status(worker, project, uid)
    return found if found.get("status") == status else {}


async def letters_where(worker: WorkerProcess, **source: Any) -> list[DeadLetter]:
    found = await read_dead_letters(worker.settings)
    return [letter for letter in found if all(letter.source.get(k) == v for k, v in source.items())]


async def test_failed_delivery_is_listed_and_replayed_with_its_sealed_secret(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    worker: WorkerProcess = start_worker()  # opens what the publisher here seals (tests/conftest.py)
    project, uid = unique("p"), unique("u")
    receiver.fail("/dl", 400)
    hook = webhook(
        "hook", receiver.url("/dl"), when=["completed"], secret_params={"headers": {"X-Token": SECRET}}
    )
    async with Publisher(worker.settings) as publisher:
        await publisher.publish(run_dict(project, uid, "completed", [hook]))
    await receiver.wait_for_requests(1, path="/dl", within=20)
    failed = await wait_for(
        lambda: (
            hook_status(worker, project, uid).get("status") == "error" and hook_status(worker, project, uid)
        )
    )
    assert failed["attempts"] == 1 and "400" in failed["reason"]

    [letter] = await wait_for(lambda: letters_where(worker, name="hook", state="completed"), timeout=20)
    assert letter.stage == "dispatch" and letter.key == f"{project}/{uid}"
    sealed = letter.record["payload"]["notification"]["secret_params"]["headers"]
    assert set(sealed) == {"sealed"}  # kept sealed (not REDACTED), so a replay can still authenticate
    assert SECRET not in json.dumps(letter.record)

    listed = cli(worker, "list")
    assert listed.returncode == 0, listed.stderr
    [line] = [line for line in listed.stdout.splitlines() if line.startswith(letter.id + " ")]
    assert "dispatch" in line and f"{project}/{uid}" in line and "400" in line
    as_json = cli(worker, "list", "--json", "--limit", "1")
    assert as_json.returncode == 0, as_json.stderr
    assert len(json.loads(as_json.stdout)) == 1

    receiver.reply("/dl", Reply())  # the endpoint is fixed
    replayed = cli(worker, "replay", "--id", letter.id)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert f"replayed {letter.id}: to {worker.prefix}deliveries as {project}/{uid}" in replayed.stdout

    await receiver.wait_for_requests(2, path="/dl", within=20)
    first, second = receiver.requests_to("/dl")[:2]
    assert second.headers["X-Token"] == SECRET
    assert second.headers["Idempotency-Key"] == first.headers["Idempotency-Key"]
    sent = await wait_for(lambda: status_is(worker, project, uid, "sent"))
    assert sent["sent_time"] and sent["reason"] is None
    assert sent["attempts"] == 2  # the replayed attempt counts on top of the failed one

    # A second replay of the same record does not send again: the ledger says sent now.
    again = cli(worker, "replay", "--id", letter.id)
    assert again.returncode == 0
    await publish_marker_and_wait(worker, receiver)
    assert len(receiver.requests_to("/dl")) == 2


async def publish_marker_and_wait(worker: WorkerProcess, receiver: WebhookReceiver) -> None:
    async with Publisher(worker.settings) as publisher:
        await publisher.publish(
            run_dict(unique("p"), unique("u"), "completed", [webhook("m", receiver.url("/marker"))])
        )
    await receiver.wait_for_requests(1, path="/marker", within=20)


async def test_evaluate_stage_records_replay_run_dicts_and_report_the_rest(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    worker: WorkerProcess = start_worker()
    settings = worker.settings
    project = unique("p")
    bad_when = run_dict(project, "w1", "completed", [{"kind": "webhook", "name": "x", "when": "completed"}])
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic("runs"), value=b"{nope", key=f"{project}/junk".encode())
        await producer.send_and_wait(
            settings.topic("runs"), value=orjson.dumps(bad_when), key=f"{project}/w1".encode()
        )
    finally:
        await producer.stop()

    async def two_letters() -> list[DeadLetter]:
        found = [
            letter for letter in await read_dead_letters(settings) if (letter.key or "").startswith(project)
        ]
        return found if len(found) >= 2 else []

    letters = {letter.key: letter for letter in await wait_for(two_letters, timeout=20)}
    junk, run_letter = letters[f"{project}/junk"], letters[f"{project}/w1"]
    assert junk.stage == run_letter.stage == "evaluate"

    result = cli(worker, "replay", "--id", junk.id, "--id", run_letter.id, "--id", "99:99")
    assert result.returncode == 1
    assert f"not replayed {junk.id}: the payload is not a run dict" in result.stdout
    assert f"replayed {run_letter.id}: to {worker.prefix}runs as {project}/w1" in result.stdout
    assert "not replayed 99:99: no such record" in result.stdout

    async def republished() -> int:
        records = [v for k, v in await read_topic(settings, "runs") if k == f"{project}/w1".encode()]
        return len(records) >= 2 and orjson.loads(records[-1]) == bad_when

    assert await wait_for(republished, timeout=20)
