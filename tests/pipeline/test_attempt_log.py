"""Every attempt of a delivery in the ledger record, the API and `runherald status -o json`: a webhook
answering 500, 500, then 200 leaves three attempts, with their outcomes, codes, latencies and reasons,
and no secret in any of them."""

from __future__ import annotations

import json
from datetime import datetime

import orjson

from runherald import ledger
from runherald.publish import Publisher
from runherald.testing._server import Reply
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, read_topic, run_dict, unique, wait_for, webhook
from .test_cli import invoke

SECRET = "attempt-log-secret-5d21c9"


async def test_a_delivery_retried_twice_shows_its_three_attempts(
    worker: WorkerProcess, publisher: Publisher, receiver: WebhookReceiver
) -> None:
    project, uid = unique("p"), unique("u")
    # The receiver quotes the secret header back in its error body; the reason must not carry it.
    echo = f"denied: X-Auth {SECRET} is not yet valid"
    receiver.script("/flaky", Reply(status=500, body=echo), Reply(status=500, body=echo), Reply(status=200))
    hook = webhook("hook", receiver.url("/flaky"), secret_params={"headers": {"X-Auth": SECRET}})
    await publisher.publish(run_dict(project, uid, "completed", [hook], name="train-attempts"))

    def notifications() -> dict:
        code, body = worker.get(f"/api/v1/runs/{project}/{uid}/notifications")
        return body if code == 200 and body.get("hook", {}).get("status") == "sent" else {}

    view = (await wait_for(notifications, timeout=30))["hook"]
    assert [r.headers["X-Auth"] for r in receiver.requests_to("/flaky")] == [SECRET] * 3  # really used
    assert view["attempts"] == 3 and view["response_code"] == 200
    log = view["attempt_log"]
    assert [a["outcome"] for a in log] == ["retryable", "retryable", "sent"]
    assert [a["response_code"] for a in log] == [500, 500, 200]
    assert all(isinstance(a["latency_ms"], float) and 0 <= a["latency_ms"] < 3000 for a in log)
    assert [a["reason"] is None for a in log] == [False, False, True]
    for attempt in log[:2]:
        assert attempt["reason"].startswith("HTTP 500 Internal Server Error: denied: X-Auth")
        assert SECRET not in attempt["reason"]
    times = [datetime.fromisoformat(a["at"]) for a in log]
    assert times == sorted(times) and times[0] >= datetime.fromisoformat(view["queued_at"])
    assert datetime.fromisoformat(view["sent_time"]) >= times[-1]
    assert view["states"]["completed"]["attempt_log"] == log

    # The status topic's record holds the same attempts: a projection can be rebuilt from the topic.
    async def recorded() -> bytes | None:
        key = f"{project}/{uid}".encode()
        values = [v for k, v in await read_topic(worker.settings, "status") if k == key and v]
        last = values[-1] if values else None
        return last if last and b'"sent"' in last else None

    raw = await wait_for(recorded, timeout=20)
    assert SECRET.encode() not in raw
    (item,) = ledger.delivery_items(ledger.load(raw))
    assert item["run_name"] == "train-attempts" and item["notification"] == "hook"
    assert item["kind"] == "webhook" and item["state"] == "completed" and item["status"] == "sent"
    assert item["attempts"] == log and item["response_code"] == 200 and item["queued_at"] == view["queued_at"]
    assert len(orjson.loads(raw)["deliveries"][item["id"]]["log"]) == 3

    # The command line shows them too.
    result = await invoke(worker, "status", f"{project}/{uid}", "--api", worker.api, "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hook"]["attempt_log"] == log
    assert SECRET not in result.stdout
