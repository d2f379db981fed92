"""The runs list in SQL (runherald.ledger_runs): one row per run, notifications or not, counted by status,
versioned by when it was recorded (a replay changes nothing), filtered and paged last recorded first, kept
for the retention; attempts per minute by outcome (runherald.ledger_rates). On SQLite always; on PostgreSQL
too when RUNHERALD_TEST_POSTGRES_URL names a database."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import MultiDict
from sqlalchemy import Engine, select

from runherald import ledger, ledger_rates, ledger_runs, ledger_sql
from runherald.api_deliveries import parse_rates_query, parse_runs_query

from .test_ledger_sql import NOW, engine, entry, record, unique

__all__ = ["engine"]  # the fixture: SQLite, and PostgreSQL when given


def run_record(
    project: str, uid: str, state: str, recorded: float | None, *entries: dict[str, Any]
) -> ledger.Record:
    found = record(project, uid, *entries)
    found["run"] = {"state": state, "last_update": "2001-09-09T01:46:40", "offset": [0, 1], "name": "train"}
    if recorded is not None:
        found["run"]["recorded"] = recorded
    return found


def stored(engine: Engine, project: str) -> list[tuple[Any, ...]]:
    runs = ledger_sql.runs
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(select(runs).where(runs.c.project == project).order_by(runs.c.key))
        ]


def test_every_run_is_a_row_counted_by_status_and_a_replay_changes_nothing(engine: Engine) -> None:
    project = unique("p")
    records = [
        run_record(project, "bare", "running", NOW),  # no notifications: still a run
        run_record(
            project,
            "sent",
            "completed",
            NOW + 1,
            entry(unique("d"), version=NOW + 5),
            entry(unique("d"), status="error", version=NOW + 4),
            entry(unique("d"), status="pending", version=NOW + 3),
        ),
        {"project": "group", "uid": unique("g"), "deliveries": {}},  # a group's record: not a run
    ]
    assert ledger_sql.write_runs(engine, ledger_runs.rows_of(records)) == 2
    first = stored(engine, project)
    assert ledger_sql.write_runs(engine, ledger_runs.rows_of(records)) == 0  # not even written again
    assert stored(engine, project) == first
    page = ledger_runs.query(engine, ledger_runs.RunQuery(projects=(project,)))
    assert page["next"] is None
    sent, bare = page["items"]  # last recorded first: a delivery's update counts as recording the run
    assert sent == {
        "project": project,
        "uid": "sent",
        "name": "train",
        "state": "completed",
        "last_update": "2001-09-09T01:46:40+00:00",
        "updated": ledger.iso_time(NOW + 5),
        "notifications": {"pending": 1, "sent": 1, "error": 1, "skipped": 0},
    }
    assert bare["updated"] == ledger.iso_time(NOW) and bare["notifications"]["sent"] == 0

    # An older version never replaces a newer one; a newer one does.
    ledger_sql.write_runs(engine, ledger_runs.rows_of([run_record(project, "bare", "pending", NOW - 10)]))
    ledger_sql.write_runs(engine, ledger_runs.rows_of([run_record(project, "bare", "completed", NOW + 20)]))
    items = ledger_runs.query(engine, ledger_runs.RunQuery(projects=(project,)))["items"]
    assert [(item["uid"], item["state"]) for item in items] == [("bare", "completed"), ("sent", "completed")]


def test_a_record_from_before_recorded_times_is_versioned_by_its_deliveries_or_last_update() -> None:
    with_deliveries = run_record("p", "u", "completed", None, entry("d1", version=NOW + 7))
    bare = run_record("p", "v", "completed", None)
    assert ledger_runs.recorded_at(with_deliveries) == NOW + 7
    assert ledger_runs.recorded_at(bare) == 1_000_000_000.0  # its last_update, 2001-09-09T01:46:40 UTC
    assert ledger_runs.rows_of([bare], oldest=NOW + 1) == []  # older than the retention keeps


def test_runs_filter_by_projects_and_states_and_page_last_recorded_first(engine: Engine) -> None:
    one, two, three = unique("p"), unique("p"), unique("p")
    records = [
        run_record(project, f"u{i}", state, NOW + i)
        for i, (project, state) in enumerate(
            [(one, "running"), (two, "error"), (one, "error"), (three, "completed"), (two, "completed")]
        )
    ]
    ledger_sql.write_runs(engine, ledger_runs.rows_of(records))

    def uids(**asked: Any) -> list[str]:
        return [item["uid"] for item in ledger_runs.query(engine, ledger_runs.RunQuery(**asked))["items"]]

    assert uids(projects=(one, two)) == ["u4", "u2", "u1", "u0"]
    assert uids(projects=(one, two, three), states=("error",)) == ["u2", "u1"]
    assert uids(projects=(one, two, three), states=("error", "completed"), since=NOW + 2) == [
        "u4",
        "u3",
        "u2",
    ]
    seen, cursor = [], None
    while True:
        page = ledger_runs.query(
            engine, ledger_runs.RunQuery(projects=(one, two, three), limit=2, cursor=cursor)
        )
        seen += [item["uid"] for item in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ["u4", "u3", "u2", "u1", "u0"]

    # Retention: runs last recorded before it are deleted.
    ledger_sql.delete_older_than(engine, NOW + 3)
    assert uids(projects=(one, two, three)) == ["u4", "u3"]


def test_the_runs_query_takes_repeated_or_comma_separated_values_and_checks_them() -> None:
    params = MultiDict([("project", "a,b"), ("project", "c"), ("state", "error, completed"), ("since", "1h")])
    asked, problems = parse_runs_query(params, NOW)
    assert problems == [] and asked.projects == ("a", "b", "c") and asked.states == ("error", "completed")
    assert asked.since == NOW - 3600 and asked.limit == ledger_sql.DEFAULT_LIMIT
    wrong = MultiDict([("state", "lost"), ("since", "soon"), ("limit", "0"), ("cursor", "x")])
    _, problems = parse_runs_query(wrong, NOW)
    assert [p["path"] for p in problems] == ["state", "since", "limit", "cursor"]


@pytest.mark.parametrize("state", sorted(ledger_runs.STATUSES))
def test_each_status_is_counted(state: str) -> None:
    [row] = ledger_runs.rows_of([run_record("p", "u", "completed", NOW, entry("d", status=state))])
    assert row[state] == 1 and sum(row[s] for s in ledger_runs.STATUSES) == 1


def test_attempts_per_minute_count_every_minute_of_the_range_by_outcome(engine: Engine) -> None:
    project, other = unique("p"), unique("p")
    minute = 999_999_960.0  # the minute holding NOW (1e9)
    records = [
        # attempts at NOW, NOW+1 (retryable) and NOW+3 (sent): the first minute
        record(project, "u1", entry(unique("d"), tries=3)),
        # at NOW+30 (retryable) and NOW+31 (still failing: retryable): the second
        record(project, "u2", entry(unique("d"), created=NOW + 30, status="error", tries=2)),
        record(other, "u3", entry(unique("d"), created=NOW + 30)),
    ]
    ledger_sql.write(engine, ledger_sql.rows_of(records))
    asked = ledger_rates.RateQuery(since=minute - 60, until=minute + 180, projects=(project,))
    answer = ledger_rates.per_minute(engine, asked)
    assert answer["step_seconds"] == 60
    assert [bucket["at"] for bucket in answer["buckets"]] == [
        ledger.iso_time(minute + step) for step in (-60, 0, 60, 120)
    ]
    zero = dict.fromkeys(ledger_rates.OUTCOMES, 0)
    assert [bucket["counts"] for bucket in answer["buckets"]] == [
        zero,
        {**zero, "retryable": 2, "sent": 1},
        {**zero, "retryable": 2},
        zero,
    ]
    both = ledger_rates.per_minute(engine, ledger_rates.RateQuery(minute, minute + 120, (project, other)))
    assert [bucket["counts"]["sent"] for bucket in both["buckets"]] == [1, 1]
    # `until` is excluded, `since` included, to the second.
    cut = ledger_rates.per_minute(engine, ledger_rates.RateQuery(NOW + 1, NOW + 3, (project,)))
    assert [bucket["counts"] for bucket in cut["buckets"]] == [{**zero, "retryable": 1}]


def test_the_per_minute_query_defaults_to_the_last_hour_and_checks_its_range() -> None:
    asked, problems = parse_rates_query(MultiDict([("project", "a,b")]), NOW)
    assert problems == [] and (asked.since, asked.until, asked.projects) == (NOW - 3600, NOW, ("a", "b"))
    # an hour not on a minute's edge touches 61 minutes: both partial ones are there
    assert len(ledger_rates.minutes(asked.since, asked.until)) == 61
    assert len(ledger_rates.minutes(600.0, 4200.0)) == 60
    _, problems = parse_rates_query(MultiDict([("since", "1h"), ("until", "2h")]), NOW)
    assert [p["path"] for p in problems] == ["until"]
    _, problems = parse_rates_query(MultiDict([("since", "8d")]), NOW)
    assert [p["path"] for p in problems] == ["since"]
    _, problems = parse_rates_query(MultiDict([("since", "then")]), NOW)
    assert [p["path"] for p in problems] == ["since"]
