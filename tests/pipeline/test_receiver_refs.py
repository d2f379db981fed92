"""A run's own notification naming a receiver (``params: {receiver: NAME}``), against a real worker: it
is sent with the receiver's secrets, which appear nowhere else; naming a receiver that is not stored is
refused at POST /api/v1/runs, and recorded as an error when it comes by another door."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from runherald.sealing import seal_notification
from runherald.testing.webhook import WebhookReceiver
from runherald.topics import TOPIC_NAMES

from .harness import WorkerProcess, read_topic, run_dict, unique
from .test_silences import api, invoke, receiver_in_force, settled, write_records

SECRET = "SUPERSECRET123"
FAILED = ["error"]


def raw_get(worker: WorkerProcess, path: str) -> bytes:
    try:
        with urllib.request.urlopen(worker.api + path, timeout=5) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        return bytes(exc.read())


async def test_a_notification_naming_a_receiver_is_sent_with_its_secrets_shown_nowhere(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    worker: WorkerProcess = start_worker(RUNHERALD_LOG_LEVEL="debug")
    name = unique("oncall-")
    stored = {
        "name": name,
        "kind": "webhook",
        "params": {"method": "POST"},
        "secret_params": {"url": receiver.url(f"/hook?key={SECRET}")},
    }
    sealed = seal_notification(stored)  # as the receivers API and `rules apply` store it
    assert SECRET not in json.dumps(sealed)
    await write_records(worker.settings, (f"receiver/{name}", sealed))
    await receiver_in_force(worker, name)

    project, uid = unique("p"), unique("u")
    notification = {"name": "page", "when": FAILED, "message": "it failed", "params": {"receiver": name}}
    run = run_dict(project, uid, "error", [notification])
    code, body = await api(worker, "POST", "/api/v1/runs", run)
    assert code == 202, body
    await receiver.wait_for_requests(1, path="/hook", within=20)
    [request] = receiver.requests_to("/hook")
    assert request.method == "POST" and request.query == {"key": SECRET}
    assert SECRET not in request.text and "it failed" in request.text
    status = await settled(worker, project, uid, "page")
    assert status["page"]["status"] == "sent" and status["page"]["kind"] == "webhook"

    answers = [
        raw_get(worker, path)
        for path in (
            f"/api/v1/runs/{project}/{uid}",
            f"/api/v1/runs/{project}/{uid}/notifications",
            "/api/v1/receivers",
            f"/api/v1/receivers/{name}",
        )
    ]
    assert all(SECRET.encode() not in answer for answer in answers), answers
    for topic in TOPIC_NAMES:
        records = await read_topic(worker.settings, topic)
        assert records or topic in {
            "dead-letter",
            "outcomes",
            "history",
            "transitions",
            "groups",
            "group-outcomes",
        }, topic
        assert not [record for record in records if SECRET.encode() in (record[1] or b"")], topic
    rules_topic = dict(await read_topic(worker.settings, "rules"))
    kept = json.loads(rules_topic[f"receiver/{name}".encode()] or b"")["secret_params"]["url"]
    assert isinstance(kept, dict)  # sealed, not the URL
    await asyncio.to_thread(worker.stop)  # its log complete
    log = await asyncio.to_thread(worker.log_path.read_text, errors="replace")
    assert "alert configuration loaded" in log and SECRET not in log


async def test_naming_a_receiver_that_is_not_stored(worker: WorkerProcess, tmp_path: Path) -> None:
    name = unique("ml-oncall-")
    await write_records(
        worker.settings,
        (f"receiver/{name}", {"name": name, "kind": "console", "params": {}, "secret_params": {}}),
    )
    await receiver_in_force(worker, name)
    project = unique("p")
    typo = name[:-1]
    good = run_dict(
        project, unique("u"), "error", [{"name": "ok", "when": FAILED, "params": {"receiver": name}}]
    )
    bad = run_dict(
        project, unique("u"), "error", [{"name": "x", "when": FAILED, "params": {"receiver": typo}}]
    )

    code, body = await api(worker, "POST", "/api/v1/runs", bad)
    assert code == 400 and body == {
        "error": "the input has 1 problem; nothing was published",
        "problems": [
            {
                "path": "spec.notifications[0].params.receiver",
                "message": f"no receiver '{typo}' is defined (did you mean '{name}'?)",
            }
        ],
    }
    # With other problems, all of them; in a list, with the run's index; nothing of it published.
    bad["spec"]["notifications"][0]["severity"] = "loud"
    code, body = await api(worker, "POST", "/api/v1/runs", [good, bad])
    assert code == 400
    assert [problem["path"] for problem in body["problems"]] == [
        "[1].spec.notifications[0].severity",
        "[1].spec.notifications[0].params.receiver",
    ]
    runs = await read_topic(worker.settings, "runs")
    assert not [key for key, _ in runs if key and key.decode().startswith(project)]

    # `runherald publish` writes to Kafka itself and cannot know what is stored: evaluate records it.
    del bad["spec"]["notifications"][0]["severity"]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(bad))
    published = await invoke(worker, "publish", str(path), "--broker", worker.broker_url)
    assert published.exit_code == 0, published.output
    status = await settled(worker, project, bad["metadata"]["uid"], "x")
    assert status["x"]["status"] == "error"
    assert status["x"]["reason"] == f"receiver '{typo}' does not exist"
