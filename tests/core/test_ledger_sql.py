"""The ledger in SQL: rows from ledger records, idempotent writes (a replay changes nothing, an older version
never wins), queries with filters and cursors, retention. On SQLite always; on PostgreSQL too when
RUNHERALD_TEST_POSTGRES_URL names a database (.ci/run starts one)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, func, select

from runherald import ledger, ledger_sql
from runherald.api_deliveries import parse_query
from runherald.config import Settings
from runherald.errors import ConfigError
from runherald.ledger_projection import LedgerProjection

NOW = 1_000_000_000.0  # 2001: retention passes of these tests delete no real rows of a shared database
POSTGRES_URL = os.environ.get("RUNHERALD_TEST_POSTGRES_URL", "")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = ledger_sql.database_url(str(tmp_path / "data"), "")
        assert url is not None
    else:
        if not POSTGRES_URL:
            pytest.skip(
                "RUNHERALD_TEST_POSTGRES_URL is not set (.ci/run starts Debian's PostgreSQL and sets it)"
            )
        url = POSTGRES_URL
    opened = ledger_sql.open_engine(url)
    yield opened
    opened.dispose()


def record(project: str, uid: str, *entries: dict[str, Any], run_name: str = "train") -> ledger.Record:
    return {
        "project": project,
        "uid": uid,
        "run": {"name": run_name},
        "deliveries": {found["id"]: found for found in entries},
    }


def entry(
    did: str,
    *,
    status: str = "sent",
    created: float = NOW,
    version: float | None = None,
    tries: int = 1,
    name: str = "hook",
    kind: str = "webhook",
) -> dict[str, Any]:
    log = [[created + i, "retryable", 500, 10.0, "HTTP 500"] for i in range(tries - 1)]
    log.append(
        [created + tries, "sent", 200, 5.5, None]
        if status == "sent"
        else [created + tries, "retryable", 500, 9.0, "HTTP 500"]
    )
    return {
        "id": did,
        "name": name,
        "state": "completed",
        "kind": kind,
        "status": status,
        "attempts": len(log),
        "created": created,
        "updated": version if version is not None else created + tries,
        "sent_time": ledger.iso_time(created + tries) if status == "sent" else None,
        "reason": None if status == "sent" else "HTTP 500",
        "log": log,
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def snapshot(engine: Engine, project: str) -> tuple[list[Any], list[Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(ledger_sql.deliveries).where(ledger_sql.deliveries.c.project == project).order_by("id")
        ).all()
        ids = [row.id for row in rows]
        tries = connection.execute(
            select(ledger_sql.attempts)
            .where(ledger_sql.attempts.c.delivery_id.in_(ids))
            .order_by("delivery_id", "seq")
        ).all()
    return [tuple(row) for row in rows], [tuple(row) for row in tries]


def test_writing_the_same_records_again_changes_nothing(engine: Engine) -> None:
    project = unique("p")
    records = [
        record(project, "u1", entry(unique("d"), tries=3), entry(unique("d"), status="error", tries=2)),
        record(project, "u2", entry(unique("d"), created=NOW + 60)),
    ]
    assert ledger_sql.write(engine, ledger_sql.rows_of(records)) == 3
    first = snapshot(engine, project)
    assert len(first[0]) == 3 and len(first[1]) == 3 + 2 + 1
    assert ledger_sql.write(engine, ledger_sql.rows_of(records)) == 0  # not even written again
    assert ledger_sql.write(engine, ledger_sql.rows_of(reversed(records))) == 0
    assert snapshot(engine, project) == first


def test_an_older_version_never_replaces_a_newer_one_and_attempts_follow_the_latest(engine: Engine) -> None:
    project, did = unique("p"), unique("d")
    retrying = record(project, "u1", entry(did, status="pending", tries=2, version=NOW + 2))
    sent = record(project, "u1", entry(did, tries=3, version=NOW + 9))
    ledger_sql.write(engine, ledger_sql.rows_of([retrying]))
    assert [row[1] for row in snapshot(engine, project)[1]] == [0, 1]
    ledger_sql.write(engine, ledger_sql.rows_of([sent]))
    ledger_sql.write(engine, ledger_sql.rows_of([retrying]))  # a lagging worker writes the older one
    rows, tries = snapshot(engine, project)
    (row,) = rows
    assert row[7] == "sent"
    assert [t[3] for t in tries] == ["retryable", "retryable", "sent"]
    page = ledger_sql.query(engine, ledger_sql.Query(project=project))
    (item,) = page["items"]
    assert item["status"] == "sent" and item["attempt_count"] == 3 and item["response_code"] == 200
    assert [a["response_code"] for a in item["attempts"]] == [500, 500, 200]
    assert item["attempts"][-1] == {
        "at": ledger.iso_time(NOW + 3),
        "outcome": "sent",
        "response_code": 200,
        "latency_ms": 5.5,
        "reason": None,
    }
    assert item["run_name"] == "train" and item["notification"] == "hook" and item["state"] == "completed"
    assert item["queued_at"] == ledger.iso_time(NOW) and item["sent_time"] == ledger.iso_time(NOW + 3)


def test_queries_filter_and_page_newest_first(engine: Engine) -> None:
    project, other = unique("p"), unique("p")
    ids = [unique("d") for _ in range(5)]
    records = [
        record(project, "u1", *(entry(ids[i], created=NOW + i) for i in range(3))),
        record(project, "u2", entry(ids[3], created=NOW + 3, status="error", kind="slack", name="r/chat")),
        record(other, "u3", entry(ids[4], created=NOW + 4)),
    ]
    ledger_sql.write(engine, ledger_sql.rows_of(records))

    def ids_of(**filters: Any) -> list[str]:
        return [item["id"] for item in ledger_sql.query(engine, ledger_sql.Query(**filters))["items"]]

    assert ids_of(project=project) == [ids[3], ids[2], ids[1], ids[0]]
    assert ids_of(project=project, status="sent") == [ids[2], ids[1], ids[0]]
    assert ids_of(project=project, status="error") == [ids[3]]
    assert ids_of(project=project, kind="slack") == ids_of(project=project, name="r/chat") == [ids[3]]
    assert ids_of(project=project, uid="u2") == [ids[3]]
    assert ids_of(project=project, since=NOW + 1, until=NOW + 3) == [ids[2], ids[1]]
    assert ids_of(project=other) == [ids[4]]

    pages, cursor = [], None
    while True:
        page = ledger_sql.query(engine, ledger_sql.Query(project=project, limit=3, cursor=cursor))
        pages.append([item["id"] for item in page["items"]])
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == [[ids[3], ids[2], ids[1]], [ids[0]]]


def test_retention_deletes_old_deliveries_and_keeps_them_out(engine: Engine) -> None:
    project = unique("p")
    old, new = unique("d"), unique("d")
    records = [record(project, "u1", entry(old, created=NOW - 100 * 86400), entry(new, created=NOW))]
    ledger_sql.write(engine, ledger_sql.rows_of(records))
    assert ledger_sql.delete_older_than(engine, NOW - 30 * 86400) >= 1
    assert [row[0] for row in snapshot(engine, project)[0]] == [new]
    with engine.connect() as connection:
        left = connection.execute(
            select(func.count()).where(ledger_sql.attempts.c.delivery_id == old)
        ).scalar_one()
    assert left == 0
    # A replay of the topic does not bring it back.
    ledger_sql.write(engine, ledger_sql.rows_of(records, oldest=NOW - 30 * 86400))
    assert [row[0] for row in snapshot(engine, project)[0]] == [new]


def test_the_database_is_sqlite_in_the_data_dir_unless_named_or_off(tmp_path: Path) -> None:
    url = ledger_sql.database_url(str(tmp_path / "d"), "")
    assert url == f"sqlite:///{tmp_path / 'd' / 'ledger.sqlite3'}" and (tmp_path / "d").is_dir()
    assert ledger_sql.database_url("", "postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert ledger_sql.database_url(str(tmp_path), "off") is None


def test_query_parameters_are_checked() -> None:
    asked, problems = parse_query({"project": "p", "since": "1h", "until": "2026-01-02T00:00:00Z"}, NOW)
    assert problems == [] and asked.project == "p" and asked.since == NOW - 3600
    assert asked.until == 1767312000.0 and asked.limit == ledger_sql.DEFAULT_LIMIT
    _, problems = parse_query(
        {"status": "lost", "since": "yesterday", "limit": "0", "cursor": "nope", "uid": "a\x00b"}, NOW
    )
    assert sorted(p["path"] for p in problems) == ["cursor", "limit", "since", "status", "uid"]
    _, problems = parse_query({"status": "", "limit": "", "project": ""}, NOW)
    assert sorted(p["path"] for p in problems) == ["limit", "status"]


def test_retention_is_a_positive_duration() -> None:
    assert Settings(ledger_retention="12h").ledger_retention == "12h"
    for bad in ("0", "soon"):
        with pytest.raises(ValidationError, match=r"ledger_retention|duration"):
            Settings(ledger_retention=bad)


async def test_the_projection_writes_what_the_view_hands_it_off_the_loop(tmp_path: Path) -> None:
    url = ledger_sql.database_url(str(tmp_path), "")
    assert url is not None
    projection = LedgerProjection(url, "36500d")
    await projection.start()
    try:
        did = unique("d")
        pending = ledger.dump(record("p", "u1", entry(did, status="pending", version=NOW + 1)))
        sent = ledger.dump(record("p", "u1", entry(did, tries=2, version=NOW + 5)))
        projection.add({b"p/u1": pending})
        projection.add({b"p/u1": sent})  # the same run again before the write: its latest value is written
        await asyncio.wait_for(projection.flushed(), 10)
        assert projection.idle
        page = await projection.query(ledger_sql.Query(project="p"))
        assert [(item["id"], item["status"], item["attempt_count"]) for item in page["items"]] == [
            (did, "sent", 2)
        ]
    finally:
        await projection.stop()


def test_a_data_dir_or_database_it_cannot_use_is_a_setting_problem(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError, match="RUNHERALD_DATA_DIR: cannot make the data directory"):
        LedgerProjection.for_settings(Settings(data_dir=str(tmp_path / "file" / "data")))
    with pytest.raises(ConfigError, match="RUNHERALD_LEDGER_DB: not a database URL"):
        LedgerProjection.for_settings(Settings(ledger_db="nosuchdb://somewhere/ledger"))
    assert LedgerProjection.for_settings(Settings(ledger_db="off")) is None


async def test_a_database_that_does_not_answer_leaves_queries_unanswered_not_the_worker_stopped() -> None:
    projection = LedgerProjection("postgresql+psycopg://nobody:secret-pw@127.0.0.1:1/none", "30d")
    assert "secret-pw" not in projection.where
    await projection.start()
    try:
        await asyncio.sleep(0.3)
        projection.add({b"p/u": ledger.dump(record("p", "u", entry(unique("d"))))})
        assert await projection.query(ledger_sql.Query()) is None and not projection.idle
    finally:
        await asyncio.wait_for(projection.stop(), 5)


def test_a_query_answers_each_delivery_as_the_ledger_record_itself_gives_it(engine: Engine) -> None:
    project = unique("p")
    written = record(
        project,
        "u1",
        entry(unique("d"), tries=3),
        entry(unique("d"), status="error", tries=2, created=NOW + 10),
        {
            **entry(unique("d"), status="pending", created=NOW + 20),
            "log": None,
        },  # written before attempt logs
    )
    ledger_sql.write(engine, ledger_sql.rows_of([ledger.load(ledger.dump(written))]))
    answered = ledger_sql.query(engine, ledger_sql.Query(project=project))["items"]
    expected = sorted(ledger.delivery_items(written), key=lambda item: item["queued_at"], reverse=True)
    assert answered == expected


def _hang(_url: str) -> None:
    """A write that never ends (run in the writer process)."""
    time.sleep(600)


async def test_a_writer_that_hangs_is_killed_and_never_holds_the_shutdown(tmp_path: Path) -> None:
    url = ledger_sql.database_url(str(tmp_path), "")
    assert url is not None
    projection = LedgerProjection(url, "36500d")
    hung = asyncio.create_task(projection._call(_hang))
    deadline = time.monotonic() + 30
    while not (projection._pool and projection._pool._processes):
        assert time.monotonic() < deadline, "the writer process was never spawned"
        await asyncio.sleep(0.1)
    pool = projection._pool
    await asyncio.sleep(2.0)  # the writer's time to import and take the write
    processes = list(pool._processes.values())
    assert processes
    # Bounded: the writer is given `flush_within` seconds, then killed (20 s is only this test's guard).
    await asyncio.wait_for(projection.stop(flush_within=1.0), 20)
    for process in processes:
        process.join(10)
        assert not process.is_alive()
    hung.cancel()
    with contextlib.suppress(BaseException):
        await hung
