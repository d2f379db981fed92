"""The ledger in SQL: one row per delivery and one per kept attempt, projected from the status topic.

A projection, never the truth: every row is rebuilt from the ledger records (runherald.ledger), so writing
a record again changes nothing. A delivery is upserted by its id unless the row already holds that version
of it or a later one (the entry's ``updated``), and its attempts are replaced by the record's (the latest
20).
That makes it safe for several workers to project the same records into one shared database
(PostgreSQL): whichever writes last, the newest version wins. SQLite by default, in the data directory.

Queries answer DESIGN.md's "Ledger queries": newest queued first, paged by an opaque cursor.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    ColumnElement,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    literal,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from runherald import ledger

SQLITE_FILE = "ledger.sqlite3"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

metadata = MetaData()

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("project", String(255), nullable=False),
    Column("uid", String(255), nullable=False),
    Column("run_name", Text),
    Column("notification", String(255)),
    Column("kind", String(32)),
    Column("state", String(32)),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("queued_at", Double, nullable=False),  # epoch seconds: compared and ordered on
    Column("sent_time", String(40)),
    Column("reason", Text),
    Column("response_code", Integer),
    Column("latency_ms", Double),
    Column("version", Double, nullable=False),  # the entry's `updated`: a later one wins
    # Each ends in (queued_at, id), the queries' order: a page is read off the index, never sorted.
    Index("ix_deliveries_project_status_queued", "project", "status", "queued_at", "id"),
    Index("ix_deliveries_project_queued", "project", "queued_at", "id"),
    Index("ix_deliveries_queued", "queued_at", "id"),
    Index("ix_deliveries_notification", "notification"),
    Index("ix_deliveries_kind", "kind"),
    Index("ix_deliveries_uid", "uid"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("delivery_id", String(64), ForeignKey("deliveries.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),  # 0 = the oldest attempt kept
    Column("at", Double),
    Column("outcome", String(16)),
    Column("response_code", Integer),
    Column("latency_ms", Double),
    Column("reason", Text),
    Index("ix_attempts_at", "at"),  # attempts per minute (runherald.ledger_rates)
)

# One row per run the ledger knows (runherald.ledger_runs), notifications or not.
runs = Table(
    "runs",
    metadata,
    Column("key", String(512), primary_key=True),  # "{project}/{uid}"
    Column("project", String(255), nullable=False),
    Column("uid", String(255), nullable=False),
    Column("name", Text),
    Column("state", String(32)),
    Column("last_update", String(64)),  # the run's own, RFC 3339 when it parses
    Column("updated", Double, nullable=False),  # when runherald last recorded it: also the version
    Column("pending", Integer, nullable=False),  # its deliveries by status
    Column("sent", Integer, nullable=False),
    Column("error", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Index("ix_runs_project_updated", "project", "updated", "key"),
    Index("ix_runs_state_updated", "state", "updated", "key"),
    Index("ix_runs_updated", "updated", "key"),
)


def create_tables(engine: Engine) -> None:
    """The tables made when missing, and the indexes added since a table was made."""
    metadata.create_all(engine)
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            for index in table.indexes:
                index.create(connection, checkfirst=True)


def database_url(data_dir: str, ledger_db: str) -> str | None:
    """The SQLAlchemy URL of the ledger database (None when turned off): `ledger_db`, or SQLite in the data
    directory (made if missing)."""
    if ledger_db.strip().lower() == "off":
        return None
    if ledger_db.strip():
        return ledger_db.strip()
    path = Path(data_dir or default_data_dir()).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / SQLITE_FILE}"


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "runherald")


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # WAL: readers (the API) never wait for the projection's writes; NORMAL sync is safe with WAL (a
    # crash loses at most the last commits, which the next replay of the topic writes again).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def open_engine(url: str) -> Engine:
    """An engine on `url` with the tables made if missing."""
    engine = engine_for(url)
    create_tables(engine)
    return engine


def engine_for(url: str) -> Engine:
    """An engine on `url`, not connected yet; ArgumentError or ImportError for a URL it cannot serve."""
    sqlite_file = url.startswith("sqlite")
    # A server's connections can go stale (a restart, an idle timeout): checked before use. A file's cannot.
    engine = create_engine(url, pool_pre_ping=not sqlite_file, hide_parameters=True)
    if sqlite_file:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


@dataclass(frozen=True, slots=True)
class Rows:
    """What one batch of ledger records writes: delivery rows, and each delivery's attempt rows."""

    deliveries: list[dict[str, Any]]
    attempts: dict[str, list[dict[str, Any]]]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def rows_of(records: Iterable[ledger.Record], oldest: float = 0.0) -> Rows:
    """The rows of these records' deliveries queued at or after `oldest` (epoch seconds); for a delivery
    that appears more than once, its latest version. The fields are ledger.delivery_items' (the item of
    the ledger queries), read straight from the entries: this runs for every record the view reads."""
    found: dict[str, dict[str, Any]] = {}
    logs: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        project, uid = record.get("project") or "", record.get("uid") or ""
        run_name = (record.get("run") or {}).get("name")
        for did, entry in (record.get("deliveries") or {}).items():
            did = entry.get("id", did)
            queued = _number(entry.get("created")) or _number(entry.get("updated")) or 0.0
            version = _number(entry.get("updated")) or queued
            if queued < oldest or (did in found and found[did]["version"] > version):
                continue
            log = entry.get("log")
            kept = (
                [item for item in log if isinstance(item, list) and len(item) >= 5]
                if isinstance(log, list)
                else []
            )
            last = kept[-1] if kept else None
            found[did] = {
                "id": did,
                "project": project,
                "uid": uid,
                "run_name": run_name,
                "notification": entry.get("name"),
                "kind": entry.get("kind"),
                "state": entry.get("state"),
                "status": entry.get("status", ledger.PENDING),
                "attempts": int(entry.get("attempts") or 0),
                "queued_at": queued,
                "sent_time": entry.get("sent_time"),
                "reason": entry.get("reason"),
                "response_code": last[2] if last and isinstance(last[2], int) else None,
                "latency_ms": _number(last[3]) if last else None,
                "version": version,
            }
            logs[did] = [
                {
                    "delivery_id": did,
                    "seq": seq,
                    "at": _number(at),
                    "outcome": outcome,
                    "response_code": code if isinstance(code, int) else None,
                    "latency_ms": _number(ms),
                    "reason": reason,
                }
                for seq, (at, outcome, code, ms, reason) in enumerate(item[:5] for item in kept)
            ]
    # In id order: two workers writing overlapping batches into one database lock rows in one order.
    return Rows(sorted(found.values(), key=lambda row: row["id"]), logs)


UPSERT_CHUNK = 500  # rows per statement: under SQLite's 32766 bound parameters at 15 columns


def write(engine: Engine, rows: Rows) -> int:
    """Upsert the rows in one transaction; returns how many deliveries changed: new ones, and newer
    versions of stored ones (a version already stored is not written again: a replay writes nothing)."""
    if not rows.deliveries:
        return 0
    changed: list[str] = []
    with engine.begin() as connection:
        for start in range(0, len(rows.deliveries), UPSERT_CHUNK):
            changed.extend(_upsert(connection, rows.deliveries[start : start + UPSERT_CHUNK]))
        for start in range(0, len(changed), UPSERT_CHUNK):
            ids = changed[start : start + UPSERT_CHUNK]
            connection.execute(delete(attempts).where(attempts.c.delivery_id.in_(ids)))
            new = [row for did in ids for row in rows.attempts.get(did, ())]
            if new:
                connection.execute(attempts.insert(), new)
    return len(changed)


def upsert_statement(table: Table, dialect: str, version: str) -> Any:
    """INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE the stored `version` column is older, RETURNING
    the keys written: built once per dialect, run with many rows at a time (insertmanyvalues)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    [key] = table.primary_key.columns
    return statement.on_conflict_do_update(
        index_elements=[key],
        set_={column.name: statement.excluded[column.name] for column in table.columns if column is not key},
        where=table.c[version] < statement.excluded[version],
    ).returning(key)


# Per dialect (the two it supports): deliveries by id, runs by key.
_UPSERTS = {name: upsert_statement(deliveries, name, "version") for name in ("sqlite", "postgresql")}
_RUN_UPSERTS = {name: upsert_statement(runs, name, "updated") for name in ("sqlite", "postgresql")}


def _upsert(
    connection: Connection, chunk: Sequence[Mapping[str, Any]], table: Table = deliveries
) -> list[str]:
    statement = (_UPSERTS if table is deliveries else _RUN_UPSERTS)[connection.dialect.name]
    return [row[0] for row in connection.execute(statement, list(chunk))]


def write_runs(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> int:
    """Upsert run rows (runherald.ledger_runs.rows_of) in one transaction: how many changed (a version
    already stored is not written again)."""
    changed = 0
    if rows:
        with engine.begin() as connection:
            for start in range(0, len(rows), UPSERT_CHUNK):
                changed += len(_upsert(connection, rows[start : start + UPSERT_CHUNK], runs))
    return changed


def delete_older_than(engine: Engine, oldest: float) -> int:
    """Delete the deliveries queued before `oldest` (epoch seconds), and their attempts, and the runs last
    recorded before it; how many deliveries."""
    with engine.begin() as connection:
        old = select(deliveries.c.id).where(deliveries.c.queued_at < oldest).scalar_subquery()
        connection.execute(delete(attempts).where(attempts.c.delivery_id.in_(old)))
        connection.execute(delete(runs).where(runs.c.updated < oldest))
        result = connection.execute(delete(deliveries).where(deliveries.c.queued_at < oldest))
        return int(result.rowcount or 0)


@dataclass(frozen=True, slots=True)
class Query:
    """A ledger query's filters (any may be None), page size and cursor."""

    project: str | None = None
    uid: str | None = None
    name: str | None = None
    kind: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


def encode_cursor(queued_at: float, delivery_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([queued_at, delivery_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """(queued_at, id) of the last item of the page before; ValueError if it is not a cursor of ours."""
    try:
        queued_at, delivery_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except Exception:
        raise ValueError("cursor is not one this API gave") from None
    if not isinstance(queued_at, int | float) or not isinstance(delivery_id, str):
        raise ValueError("cursor is not one this API gave")
    return float(queued_at), delivery_id


def keyset_page(
    connection: Connection,
    table: Table,
    conditions: Sequence[ColumnElement[bool]],
    order: tuple[Column[Any], Column[Any]],
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `table`'s rows matching `conditions`, newest first by `order` (a time, then a unique
    key): at most `limit` rows after `cursor`, and the cursor of the next page (None: no more). One row
    more than the page is read to know whether there are more; the cursor is the last row's (time, key)."""
    at_column, key_column = order
    if cursor is not None:
        at, last = decode_cursor(cursor)
        # A row value: both databases read it as a range of the index, however deep the page.
        conditions = [*conditions, tuple_(at_column, key_column) < tuple_(literal(at), literal(last))]
    statement = (
        select(table).where(*conditions).order_by(at_column.desc(), key_column.desc()).limit(limit + 1)
    )
    found = [dict(row._mapping) for row in connection.execute(statement)]
    more = len(found) > limit
    found = found[:limit]
    last_row = found[-1] if found else None
    next_cursor = (
        encode_cursor(last_row[at_column.name], last_row[key_column.name]) if more and last_row else None
    )
    return found, next_cursor


def query(engine: Engine, asked: Query) -> dict[str, Any]:
    """``{"items": [...], "next": cursor | None}``: deliveries matching `asked`, newest queued first."""
    conditions = [
        column == value
        for column, value in (
            (deliveries.c.project, asked.project),
            (deliveries.c.uid, asked.uid),
            (deliveries.c.notification, asked.name),
            (deliveries.c.kind, asked.kind),
            (deliveries.c.status, asked.status),
        )
        if value is not None
    ]
    if asked.since is not None:
        conditions.append(deliveries.c.queued_at >= asked.since)
    if asked.until is not None:
        conditions.append(deliveries.c.queued_at < asked.until)
    with engine.connect() as connection:
        found, next_cursor = keyset_page(
            connection,
            deliveries,
            conditions,
            (deliveries.c.queued_at, deliveries.c.id),
            asked.limit,
            asked.cursor,
        )
        kept: dict[str, list[dict[str, Any]]] = {row["id"]: [] for row in found}
        if kept:
            for attempt in connection.execute(
                select(attempts)
                .where(attempts.c.delivery_id.in_(list(kept)))
                .order_by(attempts.c.delivery_id, attempts.c.seq)
            ):
                kept[attempt.delivery_id].append(
                    {
                        "at": ledger.iso_time(attempt.at),
                        "outcome": attempt.outcome,
                        "response_code": attempt.response_code,
                        "latency_ms": attempt.latency_ms,
                        "reason": attempt.reason,
                    }
                )
    items = [_item(row, kept[row["id"]]) for row in found]
    return {"items": items, "next": next_cursor}


def _item(row: Mapping[str, Any], logged: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "project": row["project"],
        "uid": row["uid"],
        "run_name": row["run_name"],
        "notification": row["notification"],
        "kind": row["kind"],
        "state": row["state"],
        "status": row["status"],
        "attempts": logged,
        "attempt_count": row["attempts"],
        "queued_at": ledger.iso_time(row["queued_at"]),
        "sent_time": row["sent_time"],
        "reason": row["reason"],
        "response_code": row["response_code"],
        "latency_ms": row["latency_ms"],
    }


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Query",
    "Rows",
    "attempts",
    "create_tables",
    "database_url",
    "decode_cursor",
    "delete_older_than",
    "deliveries",
    "encode_cursor",
    "engine_for",
    "keyset_page",
    "metadata",
    "open_engine",
    "query",
    "rows_of",
    "runs",
    "upsert_statement",
    "write",
    "write_runs",
]
