"""The runs the ledger knows, in SQL: one row per run key (runherald.ledger_sql.runs), queried across runs.

Every run the evaluate stage accepts is recorded in the ledger, with or without notifications, so every
run has a row: its project, uid, name, state, its own last_update, when runherald last recorded it
(``updated``) and its deliveries counted by status. ``updated`` is read from the record (the latest of the
run's ``recorded`` time and its deliveries' ``updated``), never the clock of the writer: it is the row's
version, as a delivery's ``updated`` is its row's, so writing a record again changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine

from runherald import ledger, ledger_sql

STATUSES = (ledger.PENDING, ledger.SENT, ledger.ERROR, ledger.SKIPPED)


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _parsed(last_update: Any) -> datetime | None:
    """A run's last_update as a time (no zone: UTC, as MLRun writes it), None when it is not one."""
    if not isinstance(last_update, str) or not last_update.strip():
        return None
    try:
        parsed = datetime.fromisoformat(last_update.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def recorded_at(record: Mapping[str, Any]) -> float:
    """When runherald last recorded the run (epoch seconds): the latest of the run's ``recorded`` and
    its deliveries' ``updated``; for a record written before ``recorded`` existed and without
    deliveries, its last_update, else 0."""
    run = record.get("run") or {}
    times = [_epoch(run.get("recorded"))]
    times += [_epoch(entry.get("updated")) for entry in (record.get("deliveries") or {}).values()]
    known = [t for t in times if t is not None]
    if known:
        return max(known)
    parsed = _parsed(run.get("last_update"))
    return parsed.timestamp() if parsed is not None else 0.0


def rows_of(records: Iterable[Mapping[str, Any]], oldest: float = 0.0) -> list[dict[str, Any]]:
    """The run rows of these ledger records (those of a run: a group's record has none) last recorded
    at or after `oldest`; the latest version of a run that appears more than once; in key order."""
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        run = record.get("run")
        project, uid = record.get("project"), record.get("uid")
        if not isinstance(run, Mapping) or not isinstance(project, str) or not isinstance(uid, str):
            continue
        updated = recorded_at(record)
        key = f"{project}/{uid}"
        if updated < oldest or (key in found and found[key]["updated"] > updated):
            continue
        counts = dict.fromkeys(STATUSES, 0)
        for entry in (record.get("deliveries") or {}).values():
            status = entry.get("status", ledger.PENDING)
            if status in counts:
                counts[status] += 1
        last_update = run.get("last_update")
        parsed = _parsed(last_update)
        found[key] = {
            "key": key,
            "project": project,
            "uid": uid,
            "name": run.get("name"),
            "state": run.get("state"),
            "last_update": parsed.isoformat() if parsed is not None else last_update,
            "updated": updated,
            **counts,
        }
    return [found[key] for key in sorted(found)]


@dataclass(frozen=True, slots=True)
class RunQuery:
    """The runs list's filters (empty: any), page size and cursor."""

    projects: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    since: float | None = None
    limit: int = ledger_sql.DEFAULT_LIMIT
    cursor: str | None = None


def query(engine: Engine, asked: RunQuery) -> dict[str, Any]:
    """``{"items": [...], "next": cursor | None}``: the runs matching `asked`, last recorded first."""
    runs = ledger_sql.runs
    conditions: list[ColumnElement[bool]] = []
    if asked.projects:
        conditions.append(runs.c.project.in_(asked.projects))
    if asked.states:
        conditions.append(runs.c.state.in_(asked.states))
    if asked.since is not None:
        conditions.append(runs.c.updated >= asked.since)
    with engine.connect() as connection:
        found, next_cursor = ledger_sql.keyset_page(
            connection, runs, conditions, (runs.c.updated, runs.c.key), asked.limit, asked.cursor
        )
    return {"items": [_item(row) for row in found], "next": next_cursor}


def _item(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "project": row["project"],
        "uid": row["uid"],
        "name": row["name"],
        "state": row["state"],
        "last_update": row["last_update"],
        "updated": ledger.iso_time(row["updated"]),
        "notifications": {status: row[status] for status in STATUSES},
    }


__all__ = ["STATUSES", "RunQuery", "query", "recorded_at", "rows_of"]
