"""`POST /api/v1/runs` end to end on a real worker: an MLRun user's one webhook notification pointing at
runherald gets its rules, retries and ledger (and MLRun's own notifications are not sent twice), and a
notification leading back into runherald's own ingress stops after max_hops."""

from __future__ import annotations

import asyncio
import copy
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, unique, wait_for

MLRUN_BODY = orjson.loads(
    (Path(__file__).parents[1] / "fixtures" / "adapters" / "mlrun_webhook_body.json").read_bytes()
)


def _send(url: str, method: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    sent = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(sent, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def send(worker: WorkerProcess, method: str, path: str, body: Any, **headers: str) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return await asyncio.to_thread(_send, worker.api + path, method, data, headers)


async def configure(
    worker: WorkerProcess, receivers: list[dict[str, Any]], rules: list[dict[str, Any]]
) -> None:
    document = {"receivers": receivers, "rules": rules}
    code, body = await send(worker, "PUT", "/api/v1/config", {"document": document})
    assert code == 200, body


async def test_an_mlrun_webhook_notification_pointing_at_runherald_gets_its_rules_and_ledger(
    worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    project, uid = unique("mlrun"), unique("run")
    await configure(
        worker,
        [{"name": f"ops-{project}", "kind": "webhook", "params": {"url": receiver.url("/ops")}}],
        [{"name": f"r-{project}", "matchers": [f'project="{project}"'], "receivers": [f"ops-{project}"]}],
    )
    body = copy.deepcopy(MLRUN_BODY["body"])  # exactly what mlrun 1.12.1's WebhookNotification posts
    run = body["runs"][0]
    run["metadata"].update(project=project, uid=uid)
    run["spec"]["notifications"][0]["params"]["url"] = receiver.url("/mlrun-own")  # MLRun sent this one
    code, answer = await send(
        worker, "POST", "/api/v1/runs", body, **{"Content-Type": MLRUN_BODY["content_type"]}
    )
    assert (code, answer) == (202, {"accepted": 1, "runs": [f"{project}/{uid}"], "adapter": "mlrun-webhook"})

    await receiver.wait_for_requests(1, path="/ops", within=20)
    (notice,) = receiver.requests_to("/ops")
    sent_run = notice.json()["runs"][0]
    assert (sent_run["metadata"]["uid"], sent_run["status"]["results"]) == (uid, {"accuracy": 0.97})
    assert notice.headers["X-Runherald-Hops"] == "1"
    # The run is known to the API, with the rule's delivery in its ledger, and MLRun's own webhook
    # (the one that reached runherald) is not sent again.
    code, known = await asyncio.to_thread(worker.get, f"/api/v1/runs/{project}/{uid}")
    assert code == 200 and known["status"]["state"] == "completed"
    statuses = await wait_for(
        lambda: (lambda got: got[1] if got[0] == 200 and got[1] else None)(
            worker.get(f"/api/v1/runs/{project}/{uid}/notifications")
        )
    )
    assert set(statuses) == {f"r-{project}/ops-{project}"}
    await asyncio.sleep(1.0)
    assert receiver.requests_to("/mlrun-own") == []
    assert len(receiver.requests_to("/ops")) == 1


async def test_a_notification_that_leads_back_into_runherald_stops_after_max_hops(
    worker: WorkerProcess,
) -> None:
    project = unique("loop")
    # Each run of the project is posted back to runherald's own ingress as a new run (the generic
    # shape, a new uid): the delivery id cannot stop it, the hop count does.
    template = '{"project": "{{ project }}", "uid": "{{ uid }}-again", "state": "{{ state }}"}'
    await configure(
        worker,
        [
            {
                "name": f"back-{project}",
                "kind": "webhook",
                "params": {"url": worker.api + "/api/v1/runs", "body_template": template},
            }
        ],
        [{"name": f"r-{project}", "matchers": [f'project="{project}"'], "receivers": [f"back-{project}"]}],
    )
    first = {"project": project, "uid": "u", "state": "completed"}
    code, _ = await send(worker, "POST", "/api/v1/runs", first)
    assert code == 202
    name = f"r-{project}/back-{project}"
    uids = ["u", "u-again", "u-again-again", "u-again-again-again"]  # hops 0, 1, 2, 3

    def last_refused() -> Any:
        code, statuses = worker.get(f"/api/v1/runs/{project}/{uids[-1]}/notifications")
        status = statuses.get(name) if code == 200 else None
        return status if status and status["status"] == "error" else None

    refused = await wait_for(last_refused, timeout=30)
    assert refused["reason"].startswith("HTTP 508 Loop Detected"), refused
    assert refused["attempts"] == 1  # a loop is not retried
    for uid in uids[:-1]:
        code, statuses = await asyncio.to_thread(worker.get, f"/api/v1/runs/{project}/{uid}/notifications")
        assert code == 200 and statuses[name]["status"] == "sent", (uid, statuses)
    code, run = await asyncio.to_thread(worker.get, f"/api/v1/runs/{project}/{uids[-1]}")
    assert run["runherald"] == {"hops": 3}
    await asyncio.sleep(1.0)
    assert (await asyncio.to_thread(worker.get, f"/api/v1/runs/{project}/{uids[-1]}-again"))[0] == 404
