"""Webhook subscriptions on a real worker and the embedded broker: added with the CLI (a generated name),
each state change of a matching run POSTed once as a signed CloudEvent the reference Standard Webhooks
library verifies, none for other runs, a failing receiver retried with the ledger showing it, `runherald
status` listing the deliveries, and the secret nowhere: not on a topic, in the log or in an answer."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from runherald.broker import EmbeddedBroker
from runherald.publish import Publisher
from runherald.testing import Reply, WebhookReceiver

from .harness import WorkerProcess, api_get, cli, own_worker, read_topic, run_dict, unique, wait_for

SECRET = "whsec_c3Vic2NyaXB0aW9uLXNpZ25pbmctc2VjcmV0LXZhbHVl"  # a literal: sealed before it is stored
TOPICS = ("runs", "deliveries", "status", "rules", "dead-letter")


@pytest.fixture(scope="module")
def subscribed(broker: EmbeddedBroker, worker_logs: Path) -> Iterator[WorkerProcess]:
    """A worker of this module's own: its subscriptions must not reach other modules' runs."""
    with own_worker(broker.url, worker_logs) as process:
        yield process


async def test_every_state_change_of_a_matching_run_arrives_once_in_order_signed(
    subscribed: WorkerProcess, receiver: WebhookReceiver
) -> None:
    project, other = unique("p"), unique("p")
    path = f"/events-{project}"
    added = await cli(
        subscribed, "subscriptions", "add", "--url", receiver.url(path), "--matcher", f'project="{project}"',
        "--secret", SECRET,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    name = added.stdout.strip()
    assert name.startswith("sub-") and SECRET not in added.stdout

    uid, elsewhere = unique("u"), unique("u")
    async with Publisher(subscribed.settings) as publisher:
        await publisher.publish(run_dict(other, elsewhere, "running", [], last_update="2026-12-05T10:00:00"))
        await publisher.publish(run_dict(project, uid, "running", [], last_update="2026-12-05T10:00:00"))
        await receiver.wait_for_requests(1, path=path, within=20)
        await publisher.publish(
            run_dict(other, elsewhere, "completed", [], last_update="2026-12-05T10:05:00")
        )
        await publisher.publish(run_dict(project, uid, "completed", [], last_update="2026-12-05T10:05:00"))
        await receiver.wait_for_requests(2, path=path, within=20)
    await asyncio.sleep(1.0)  # room for a duplicate, or the other run's, to arrive: none may

    requests = receiver.requests_to(path)
    assert len(requests) == 2 and len(receiver.requests) == 2
    events = []
    for request in requests:
        headers = dict(request.headers)
        assert headers["Content-Type"] == "application/cloudevents+json"
        assert headers["webhook-id"] == headers["Idempotency-Key"] == json.loads(request.body)["id"]
        assert headers["X-Runherald-Hops"] == "1"
        events.append(standardwebhooks.Webhook(SECRET).verify(request.body, headers))
    assert [(e["type"], e["subject"], e["data"]["status"]["state"]) for e in events] == [
        ("io.runherald.run.state", f"{project}/{uid}", "running"),
        ("io.runherald.run.state", f"{project}/{uid}", "completed"),
    ]
    assert events[0]["specversion"] == "1.0" and events[0]["source"] == f"runherald/{project}"
    assert events[0]["time"] == "2026-12-05T10:00:00.000Z"

    # The ledger has both, the status command shows them, and the run is known to the API.
    async def sent() -> dict[str, Any]:
        code, body = await api_get(subscribed, f"/api/v1/runs/{project}/{uid}/notifications")
        entry = body.get(f"subscription:{name}", {}) if code == 200 else {}
        states = entry.get("states", {})
        return entry if {s["status"] for s in states.values()} == {"sent"} and len(states) == 2 else {}

    entry = await wait_for(sent, timeout=20)
    assert set(entry["states"]) == {"running", "completed"}
    shown = await cli(subscribed, "status", f"{project}/{uid}")
    assert shown.returncode == 0, shown.stderr
    rows = [line.split() for line in shown.stdout.splitlines() if line.startswith(f"subscription:{name}")]
    assert sorted((row[1], row[2]) for row in rows) == [("completed", "sent"), ("running", "sent")]
    assert (await api_get(subscribed, f"/api/v1/runs/{project}/{uid}"))[0] == 200

    # The secret is on no topic, in no answer and not in the worker's log.
    for topic in TOPICS:
        records = await read_topic(subscribed.settings, topic)
        assert all(SECRET.encode() not in (value or b"") for _, value in records), topic
    listed = await cli(subscribed, "subscriptions", "list", "-o", "json")
    one = await cli(subscribed, "subscriptions", "get", name, "-o", "json")
    answers = [listed.stdout, one.stdout, json.dumps(await api_get(subscribed, "/api/v1/subscriptions"))]
    answers.append(json.dumps(await api_get(subscribed, f"/api/v1/runs/{project}/{uid}")))
    assert all(SECRET not in answer for answer in answers)
    assert json.loads(one.stdout)["secret"]["sealed"].startswith("rhs1.")
    log = subscribed.log_path.read_text(errors="replace")
    assert SECRET not in log and "Traceback" not in log


async def test_a_failing_receiver_is_retried_and_the_ledger_shows_each_attempt(
    subscribed: WorkerProcess, receiver: WebhookReceiver
) -> None:
    project = unique("p")
    path = f"/flaky-{project}"
    receiver.script(path, Reply(status=500, body="down"))
    name = unique("flaky")
    added = await cli(
        subscribed, "subscriptions", "add", "--name", name, "--url", receiver.url(path),
        "--matcher", f'project="{project}"', "--state", "completed",
    )  # fmt: skip
    assert added.returncode == 0 and added.stdout.strip() == name, added.stderr
    uid = unique("u")
    async with Publisher(subscribed.settings) as publisher:
        await publisher.publish(run_dict(project, uid, "running", []))  # a state it does not want
        await publisher.publish(run_dict(project, uid, "completed", []))
    await receiver.wait_for_requests(2, path=path, within=20)

    async def sent() -> dict[str, Any]:
        code, body = await api_get(subscribed, f"/api/v1/runs/{project}/{uid}/notifications")
        entry = body.get(f"subscription:{name}", {}) if code == 200 else {}
        return entry if entry.get("status") == "sent" else {}

    entry = await wait_for(sent, timeout=20)
    assert entry["attempts"] == 2 and set(entry["states"]) == {"completed"}
    first, second = receiver.requests_to(path)
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert first.body == second.body  # the same event, sent again
    assert "webhook-signature" not in first.headers  # no secret: unsigned


async def test_the_cli_adds_lists_and_deletes_and_refuses_what_is_wrong(
    subscribed: WorkerProcess, receiver: WebhookReceiver
) -> None:
    name = unique("cli")
    url = receiver.url("/never")
    added = await cli(subscribed, "subscriptions", "add", "--name", name, "--url", url)
    assert added.returncode == 0 and added.stdout.strip() == name, added.stderr
    again = await cli(subscribed, "subscriptions", "add", "--name", name, "--url", url)
    assert again.returncode == 2 and "exists" in again.stderr
    wrong = await cli(subscribed, "subscriptions", "add", "--url", "ftp://x", "--state", "complete")
    assert wrong.returncode == 2
    assert "subscriptions.new.states[0]: unknown state 'complete' (did you mean 'completed'?)" in wrong.stderr
    assert "subscriptions.new.url" in wrong.stderr

    listed = await cli(subscribed, "subscriptions", "list")
    assert listed.returncode == 0 and name in listed.stdout and "(every state)" in listed.stdout
    deleted = await cli(subscribed, "subscriptions", "delete", name)
    assert deleted.returncode == 0, deleted.stderr
    listed = await cli(subscribed, "subscriptions", "list", "-o", "json")
    assert name not in [item["name"] for item in json.loads(listed.stdout)]
    missing = await cli(subscribed, "subscriptions", "delete", name)
    assert missing.returncode == 1 and "no subscription named" in missing.stderr


def _request(api: str, method: str, path: str, body: Any) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    sent = urllib.request.Request(api + path, data=data, method=method)
    try:
        with urllib.request.urlopen(sent, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def call(worker: WorkerProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return await asyncio.to_thread(_request, worker.api, method, path, body)


async def test_the_api_creates_replaces_and_refuses_with_paths(subscribed: WorkerProcess) -> None:
    url = "https://hooks.example.com/runs"
    code, created = await call(subscribed, "POST", "/api/v1/subscriptions", {"url": url, "secret": SECRET})
    assert code == 201 and created["generated_name"] is True and created["states"] == []
    assert created["secret"] == "REDACTED"  # the answer shows what was given, never the secret
    name = created["name"]
    code, again = await call(subscribed, "POST", "/api/v1/subscriptions", {"name": name, "url": url})
    assert code == 409 and name in again["error"]

    one = f"/api/v1/subscriptions/{name}"
    stored = (await call(subscribed, "GET", one))[1]
    assert stored["secret"]["sealed"].startswith("rhs1.")
    # The same content again is left as it is (the sealed secret opened to compare), a change is not.
    assert await call(subscribed, "PUT", one, {"url": url, "secret": SECRET}) == (
        200,
        {"name": name, "action": "unchanged"},
    )
    changed = {"url": url, "secret": SECRET, "states": ["error"]}
    assert (await call(subscribed, "PUT", one, changed))[1]["action"] == "updated"
    assert (await call(subscribed, "GET", one))[1]["states"] == ["error"]

    code, refused = await call(
        subscribed, "PUT", one, {"url": url, "matchers": ['labels.team="a"', 'stat="x"'], "state": []}
    )
    assert code == 400 and "nothing was stored" in refused["error"]
    problems = {p["path"]: p["message"] for p in refused["problems"]}
    assert set(problems) == {f"subscriptions.{name}.matchers[1]", f"subscriptions.{name}.state"}
    assert "did you mean 'states'" in problems[f"subscriptions.{name}.state"]
    code, refused = await call(subscribed, "PUT", one, {"name": "other", "url": url})
    assert code == 400 and refused["problems"][0]["path"] == f"subscriptions.{name}.name"

    assert await call(subscribed, "DELETE", one) == (200, {"name": name, "action": "deleted"})
    assert (await call(subscribed, "GET", one))[0] == 404
