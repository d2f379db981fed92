"""The ledger in SQL over a real worker: webhook deliveries (one retried) answered by GET /api/v1/deliveries
with their attempts; the rows survive a restart on the same data directory, and the restart's replay of the
status topic changes none of them."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from runherald import ledger_sql
from runherald.publish import Publisher
from runherald.testing._server import Reply
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, api_get, cli, run_dict, unique, wait_for, webhook

POSTGRES_URL = os.environ.get("RUNHERALD_TEST_POSTGRES_URL", "")


def sqlite_rows(data_dir: str, project: str) -> tuple[list[Any], list[Any], list[Any]]:
    """Every delivery row of the project, their attempt rows and its run rows, read from the worker's
    SQLite file."""
    with sqlite3.connect(Path(data_dir) / "ledger.sqlite3") as db:
        rows = db.execute("SELECT * FROM deliveries WHERE project = ? ORDER BY id", (project,)).fetchall()
        tries = db.execute(
            "SELECT a.* FROM attempts a JOIN deliveries d ON d.id = a.delivery_id"
            " WHERE d.project = ? ORDER BY a.delivery_id, a.seq",
            (project,),
        ).fetchall()
        runs = db.execute("SELECT * FROM runs WHERE project = ? ORDER BY key", (project,)).fetchall()
    return rows, tries, runs


async def deliveries(worker: WorkerProcess, query: str) -> dict[str, Any]:
    code, body = await api_get(worker, f"/api/v1/deliveries?{query}")
    assert code == 200, body
    return body


async def caught_up(worker: WorkerProcess) -> None:
    """Wait until the worker is ready and its SQL ledger holds everything its ledger view has read."""
    worker.wait_ready()

    def projected() -> bool:
        code, health = worker.get("/healthz")
        return code == 200 and health.get("ledger_sql") == "caught_up"

    await wait_for(projected, timeout=30)


async def publish_three(worker: WorkerProcess, receiver: WebhookReceiver) -> tuple[str, str, list[str]]:
    """Three runs of two projects: two sent at once, one after a 500; returns the projects and uids."""
    project, other = unique("p"), unique("p")
    uids = [unique("u") for _ in range(3)]
    receiver.script("/flaky", Reply(status=500, body="try later"), Reply(status=200))
    async with Publisher(worker.settings) as publisher:
        await publisher.publish(run_dict(project, uids[0], "completed", [webhook("ok", receiver.url("/ok"))]))
        await publisher.publish(
            run_dict(
                project, uids[1], "completed", [webhook("flaky", receiver.url("/flaky"))], name="trainer"
            )
        )
        await publisher.publish(run_dict(other, uids[2], "error", [webhook("ok", receiver.url("/ok"))]))
    return project, other, uids


async def sent_everywhere(worker: WorkerProcess, project: str, other: str) -> None:
    async def done() -> bool:
        mine = await deliveries(worker, f"project={project}&status=sent")
        theirs = await deliveries(worker, f"project={other}&status=sent")
        return len(mine["items"]) == 2 and len(theirs["items"]) == 1

    await wait_for(done, timeout=40)


async def test_deliveries_are_queried_across_runs_and_survive_a_restart(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    worker: WorkerProcess = start_worker()
    project, other, uids = await publish_three(worker, receiver)
    await sent_everywhere(worker, project, other)

    page = await deliveries(worker, f"project={project}")
    assert page["next"] is None
    by_uid = {item["uid"]: item for item in page["items"]}
    flaky = by_uid[uids[1]]
    assert flaky["notification"] == "flaky" and flaky["kind"] == "webhook" and flaky["state"] == "completed"
    assert flaky["run_name"] == "trainer" and flaky["status"] == "sent" and flaky["project"] == project
    assert [a["outcome"] for a in flaky["attempts"]] == ["retryable", "sent"]
    assert [a["response_code"] for a in flaky["attempts"]] == [500, 200]
    assert flaky["attempts"][0]["reason"].startswith("HTTP 500") and flaky["reason"] is None
    assert flaky["sent_time"] and flaky["queued_at"] <= flaky["attempts"][0]["at"]
    assert [a["outcome"] for a in by_uid[uids[0]]["attempts"]] == ["sent"]

    # Filters, and a cursor through the pages.
    assert [i["uid"] for i in (await deliveries(worker, f"uid={uids[2]}"))["items"]] == [uids[2]]
    named = await deliveries(worker, f"project={project}&name=flaky&kind=webhook&since=10m")
    assert [i["uid"] for i in named["items"]] == [uids[1]]
    assert (await deliveries(worker, f"project={project}&until=10m"))["items"] == []
    first = await deliveries(worker, f"project={project}&limit=1")
    assert len(first["items"]) == 1 and first["next"]
    second = await deliveries(worker, f"project={project}&limit=1&cursor={first['next']}")
    assert second["next"] is None
    assert {first["items"][0]["uid"], second["items"][0]["uid"]} == {uids[0], uids[1]}
    code, body = await api_get(worker, "/api/v1/deliveries?since=yesterday&status=lost")
    assert code == 400 and {p["path"] for p in body["problems"]} == {"since", "status"}

    # `runherald deliveries`: the same, as a table, JSON or YAML, a page at a time or --all.
    shown = await cli(worker, "deliveries", "--project", project, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == page
    paged = await cli(worker, "deliveries", "--project", project, "--limit", "1", "--all", "-o", "yaml")
    assert paged.returncode == 0 and yaml.safe_load(paged.stdout) == page
    one = await cli(worker, "deliveries", "--project", project, "--limit", "1")
    assert one.returncode == 0 and one.stdout.splitlines()[0].split()[:3] == ["QUEUED", "RUN", "NOTIFICATION"]
    assert len(one.stdout.splitlines()) == 2 and f"--cursor {first['next']}" in one.stderr
    rest = await cli(worker, "deliveries", "--project", project, "--limit", "1", "--cursor", first["next"])
    assert rest.returncode == 0 and second["items"][0]["uid"] in rest.stdout and "--cursor" not in rest.stderr
    failed = await cli(worker, "deliveries", "--status", "error", "--since", "yesterday")
    assert failed.returncode == 2 and "since" in failed.stderr

    # The rows, on disk in the worker's data directory.
    data_dir = worker.environment["RUNHERALD_DATA_DIR"]
    before = sqlite_rows(data_dir, project)
    assert len(before[0]) == 2 and len(before[1]) == 3 and len(before[2]) == 2
    worker.stop()
    assert sqlite_rows(data_dir, project) == before  # survives the worker

    # Restarted on the same data directory: it reads the whole status topic again and writes it again.
    again = worker.restarted()
    try:
        await caught_up(again)
        assert sqlite_rows(data_dir, project) == before
        assert (await deliveries(again, f"project={project}"))["items"] == page["items"]
    finally:
        again.stop()


def postgres_rows(project: str) -> tuple[list[Any], list[Any]]:
    engine = ledger_sql.open_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            found = ledger_sql.deliveries
            rows = connection.execute(
                select(found).where(found.c.project == project).order_by(found.c.id)
            ).all()
            tries = connection.execute(
                select(ledger_sql.attempts)
                .where(ledger_sql.attempts.c.delivery_id.in_([row.id for row in rows]))
                .order_by(ledger_sql.attempts.c.delivery_id, ledger_sql.attempts.c.seq)
            ).all()
    finally:
        engine.dispose()
    return [tuple(row) for row in rows], [tuple(row) for row in tries]


@pytest.mark.skipif(
    not POSTGRES_URL, reason="RUNHERALD_TEST_POSTGRES_URL is not set (.ci/run starts Debian's PostgreSQL)"
)
async def test_two_workers_share_one_postgresql_ledger(start_worker: Any, receiver: WebhookReceiver) -> None:
    prefix, group = unique("t") + ".", unique("g")
    first: WorkerProcess = start_worker(prefix, group, RUNHERALD_LEDGER_DB=POSTGRES_URL)
    second: WorkerProcess = start_worker(prefix, group, RUNHERALD_LEDGER_DB=POSTGRES_URL)
    project, other, uids = await publish_three(first, receiver)
    await sent_everywhere(first, project, other)

    # Both wrote every record into the one database: one row per delivery, one per attempt, either answers.
    rows, tries = postgres_rows(project)
    assert len(rows) == 2 and len(tries) == 3
    page = await deliveries(first, f"project={project}")
    assert (await deliveries(second, f"project={project}")) == page
    flaky = next(item for item in page["items"] if item["uid"] == uids[1])
    assert [a["response_code"] for a in flaky["attempts"]] == [500, 200]

    # A worker started again replays the whole status topic into it: nothing changes.
    first.stop()
    again = first.restarted()
    try:
        await caught_up(again)
        assert postgres_rows(project) == (rows, tries)
    finally:
        again.stop()
