"""The queries across runs over a real worker: the dead letter over HTTP (listed with secrets redacted,
replayed by id), the runs list (GET /api/v1/runs and `runherald runs`) and attempts per minute."""

from __future__ import annotations

import json
from typing import Any

from runherald.publish import Publisher
from runherald.testing._server import Reply
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, api_get, publish_foreign, request, run_dict, unique, wait_for, webhook

SECRET = "h16-dead-letter-secret-81f2"


async def letters_of(worker: WorkerProcess, project: str, query: str = "") -> list[dict[str, Any]]:
    code, body = await api_get(worker, f"/api/v1/dead-letter?limit=1000{query}")
    assert code == 200, body
    assert SECRET not in json.dumps(body)
    return [item for item in body["items"] if (item["key"] or "").startswith(project + "/")]


async def test_dead_letters_are_listed_without_secrets_and_replayed_over_http(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    worker: WorkerProcess = start_worker()
    project = unique("p")
    receiver.fail("/dl", 400)
    headers = {"headers": {"X-Token": SECRET}}
    # Sealed by the publisher, failing at dispatch: replayable. Literal (a producer other than runherald's)
    # in a run the evaluate stage refuses (`when` not a list): redacted in the record, so not replayable.
    sealed = run_dict(
        project, "sealed", "completed", [webhook("hook", receiver.url("/dl"), secret_params=headers)]
    )
    literal = run_dict(
        project,
        "literal",
        "completed",
        [webhook("hook", receiver.url("/dl"), secret_params=headers, when="completed")],
    )
    async with Publisher(worker.settings) as publisher:
        await publisher.publish(sealed)
    await publish_foreign(worker.settings, literal)

    async def both() -> list[dict[str, Any]]:
        found = await letters_of(worker, project)
        return found if len(found) == 2 else []

    items = {item["key"]: item for item in await wait_for(both, timeout=30)}
    good, bad = items[f"{project}/sealed"], items[f"{project}/literal"]
    assert good["stage"] == "dispatch" and "400" in good["reason"] and bad["stage"] == "evaluate"
    for item in (good, bad):
        assert item["at"] == item["time"] and item["id"] == f"{item['partition']}:{item['offset']}"
    assert good["replayable"] is True and good["not_replayable"] is None
    assert set(good["payload"]["notification"]["secret_params"]["headers"]) == {"sealed"}
    assert bad["replayable"] is False and "redacted" in bad["not_replayable"]

    # Newest first, a page at a time; only one stage's.
    code, page = await api_get(worker, "/api/v1/dead-letter?limit=1")
    assert code == 200 and len(page["items"]) == 1 and page["next"]
    code, rest = await api_get(worker, f"/api/v1/dead-letter?limit=1000&cursor={page['next']}")
    assert code == 200 and rest["next"] is None
    ordered = [(item["time"], item["partition"], item["offset"]) for item in page["items"] + rest["items"]]
    assert ordered == sorted(ordered, reverse=True)
    assert [item["id"] for item in await letters_of(worker, project, "&stage=evaluate")] == [bad["id"]]
    code, body = await api_get(worker, "/api/v1/dead-letter?limit=0&cursor=nope")
    assert code == 400 and {p["path"] for p in body["problems"]} == {"limit", "cursor"}

    # Refusals, then a replay by id: the sealed one is sent again with its secret, the literal one is not.
    for wrong in ({}, {"ids": []}, {"all": False}, {"all": True, "ids": ["0:0"]}, {"ids": [1]}, [], {"x": 1}):
        code, body = await request(worker, "POST", "/api/v1/dead-letter/replay", wrong)
        assert code == 400 and isinstance(body["error"], str), (wrong, body)
    receiver.reply("/dl", Reply())
    code, done = await request(
        worker, "POST", "/api/v1/dead-letter/replay", {"ids": [good["id"], bad["id"], "99:99", good["id"]]}
    )
    assert code == 200, done
    assert done["replayed"] == 1 and done["unknown"] == ["99:99"]
    assert [item["id"] for item in done["not_replayed"]] == [bad["id"]]
    assert [(item["id"], item["replayed"]) for item in done["results"]] == [
        ("99:99", False),
        (good["id"], True),
        (bad["id"], False),
    ]
    assert SECRET not in json.dumps(done)
    await receiver.wait_for_requests(2, path="/dl", within=20)
    assert receiver.requests_to("/dl")[1].headers["X-Token"] == SECRET
