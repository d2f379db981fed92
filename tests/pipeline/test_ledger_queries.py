"""The queries across runs over a real worker: the dead letter over HTTP (listed with secrets redacted,
replayed by id), the runs list (GET /api/v1/runs and `runherald runs`) and attempts per minute."""

from __future__ import annotations

import json
from typing import Any

from runherald.publish import Publisher
from runherald.testing._server import Reply
from runherald.testing.webhook import WebhookReceiver

from .harness import (
    WorkerProcess,
    api_get,
    cli,
    publish_foreign,
    request,
    run_dict,
    unique,
    wait_for,
    webhook,
)

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


async def runs_page(worker: WorkerProcess, query: str) -> dict[str, Any]:
    code, body = await api_get(worker, f"/api/v1/runs?{query}")
    assert code == 200, body
    return body


async def test_every_run_is_listed_with_its_notifications_counted_by_status(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    worker: WorkerProcess = start_worker()
    project, other = unique("p"), unique("p")
    receiver.fail("/bad", 400)
    async with Publisher(worker.settings) as publisher:
        await publisher.publish(run_dict(project, "bare", "running", [], last_update="2026-01-02T03:04:05"))
        await publisher.publish(
            run_dict(
                project,
                "hooked",
                "error",
                [webhook("ok", receiver.url("/ok")), webhook("bad", receiver.url("/bad"))],
                name="trainer",
            )
        )
        await publisher.publish(run_dict(other, "elsewhere", "completed", []))

    async def settled() -> dict[str, Any]:
        page = await runs_page(worker, f"project={project}")
        counts = [item["notifications"] for item in page["items"]]
        done = len(counts) == 2 and any(c["sent"] == 1 and c["error"] == 1 for c in counts)
        return page if done else {}

    page = await wait_for(settled, timeout=40)
    assert page["next"] is None
    hooked, bare = page["items"]  # last recorded first: the hooked run's deliveries came after
    assert (hooked["uid"], hooked["name"], hooked["state"]) == ("hooked", "trainer", "error")
    assert hooked["notifications"] == {"pending": 0, "sent": 1, "error": 1, "skipped": 0}
    assert bare["notifications"] == {"pending": 0, "sent": 0, "error": 0, "skipped": 0}
    assert bare["last_update"] == "2026-01-02T03:04:05+00:00" and bare["state"] == "running"
    assert hooked["updated"] > bare["updated"]

    # project and state: repeated or comma-separated; since; a page at a time.
    both = await runs_page(worker, f"project={project},{other}&since=10m")
    assert {item["uid"] for item in both["items"]} == {"elsewhere", "hooked", "bare"}
    times = [item["updated"] for item in both["items"]]
    assert times == sorted(times, reverse=True)
    assert (await runs_page(worker, f"project={project}&project={other}")) == both
    failed = await runs_page(worker, f"project={project}&project={other}&state=error,completed")
    assert [item["uid"] for item in failed["items"]] == [
        i["uid"] for i in both["items"] if i["uid"] != "bare"
    ]
    first = await runs_page(worker, f"project={project}&limit=1")
    second = await runs_page(worker, f"project={project}&limit=1&cursor={first['next']}")
    assert [i["uid"] for i in first["items"] + second["items"]] == ["hooked", "bare"] and second[
        "next"
    ] is None
    code, body = await api_get(worker, "/api/v1/runs?state=lost&since=soon")
    assert code == 400 and {p["path"] for p in body["problems"]} == {"state", "since"}

    # `runherald runs`: the same filters, paging and output as `runherald deliveries`.
    shown = await cli(
        worker, "runs", "--project", project, "--project", other, "--since", "10m", "-o", "json"
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == both
    paged = await cli(worker, "runs", "--project", project, "--limit", "1", "--all", "-o", "json")
    assert paged.returncode == 0 and json.loads(paged.stdout) == page
    table = await cli(worker, "runs", "--project", project, "--state", "error", "--limit", "1")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split()[:4] == ["UPDATED", "RUN", "NAME", "STATE"]
    assert row.split()[1:6] == [f"{project}/hooked", "trainer", "error", "1", "1"]
    assert "--cursor" not in table.stderr
    wrong = await cli(worker, "runs", "--state", "lost")
    assert wrong.returncode == 2 and "state" in wrong.stderr


async def test_attempts_per_minute_count_a_retried_delivery_by_outcome(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    worker: WorkerProcess = start_worker()
    project = unique("p")
    receiver.script("/flaky", Reply(status=500, body="try later"), Reply(status=200))
    async with Publisher(worker.settings) as publisher:
        await publisher.publish(
            run_dict(project, "u1", "completed", [webhook("flaky", receiver.url("/flaky"))])
        )

    async def counted() -> dict[str, Any]:
        code, body = await api_get(worker, f"/api/v1/deliveries/per-minute?project={project}&since=10m")
        assert code == 200, body
        total = {o: sum(b["counts"][o] for b in body["buckets"]) for o in body["buckets"][0]["counts"]}
        return body if total["sent"] == 1 else {}

    body = await wait_for(counted, timeout=40)
    assert body["step_seconds"] == 60 and len(body["buckets"]) in (10, 11)  # 10 minutes: 11 when unaligned
    starts = [bucket["at"] for bucket in body["buckets"]]
    assert starts == sorted(starts) and all(at.endswith(":00+00:00") for at in starts)
    for bucket in body["buckets"]:
        assert set(bucket["counts"]) == {"sent", "retryable", "permanent", "deferred"}
    total = {o: sum(b["counts"][o] for b in body["buckets"]) for o in body["buckets"][0]["counts"]}
    assert total == {"sent": 1, "retryable": 1, "permanent": 0, "deferred": 0}

    # The default range is the last hour; another project's attempts are not counted.
    code, hour = await api_get(worker, f"/api/v1/deliveries/per-minute?project={unique('p')}")
    assert code == 200 and len(hour["buckets"]) in (60, 61)
    assert all(not any(bucket["counts"].values()) for bucket in hour["buckets"])
    code, wrong = await api_get(worker, "/api/v1/deliveries/per-minute?since=1h&until=2h")
    assert code == 400 and [p["path"] for p in wrong["problems"]] == ["until"]
