"""Attempts per minute by outcome, from the SQL ledger's attempts table: what the dashboard's chart draws.

Every minute of the range is there, zero counts included, each with every outcome an attempt can have
(runherald.delivery.OutcomeKind: sent, retryable, permanent, deferred) and any other found. The counts
are of the attempts the ledger keeps (the latest 20 of each delivery, for the retention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Engine, Integer, cast, func, select

from runherald import ledger, ledger_sql
from runherald.delivery import OutcomeKind

STEP = 60  # seconds a bucket
MAX_BUCKETS = 7 * 24 * 60  # a week of minutes
DEFAULT_SINCE = 3600.0  # seconds back when no `since` is given
OUTCOMES = tuple(kind.value for kind in OutcomeKind)


@dataclass(frozen=True, slots=True)
class RateQuery:
    """Attempts made at or after `since` and before `until` (epoch seconds), of these projects' (any
    when empty)."""

    since: float
    until: float
    projects: tuple[str, ...] = ()


def minutes(since: float, until: float) -> list[int]:
    """The start (epoch seconds) of each minute from the one holding `since` to the one before `until`."""
    first, last = math.floor(since / STEP), math.ceil(until / STEP)
    return [minute * STEP for minute in range(first, max(last, first + 1))]


def per_minute(engine: Engine, asked: RateQuery) -> dict[str, Any]:
    """``{"step_seconds": 60, "buckets": [{"at": RFC 3339 minute start, "counts": {outcome: n}}]}``."""
    attempts, deliveries = ledger_sql.attempts, ledger_sql.deliveries
    starts = minutes(asked.since, asked.until)
    counts = {start: dict.fromkeys(OUTCOMES, 0) for start in starts}
    with engine.connect() as connection:
        # The minute of an attempt: floor on PostgreSQL (its CAST rounds), CAST on SQLite (it truncates,
        # and times are positive; SQLite's floor() is an optional build feature).
        if connection.dialect.name == "postgresql":
            minute = cast(func.floor(attempts.c.at / STEP), BigInteger)
        else:
            minute = cast(attempts.c.at / STEP, Integer)
        statement = (
            select(minute.label("minute"), attempts.c.outcome, func.count().label("n"))
            .where(attempts.c.at >= asked.since, attempts.c.at < asked.until)
            .group_by(minute, attempts.c.outcome)
        )
        if asked.projects:
            statement = statement.join(deliveries, deliveries.c.id == attempts.c.delivery_id).where(
                deliveries.c.project.in_(asked.projects)
            )
        for found in connection.execute(statement):
            bucket = counts.get(int(found.minute) * STEP)
            if bucket is not None and found.outcome is not None:
                bucket[found.outcome] = bucket.get(found.outcome, 0) + int(found.n)
    return {
        "step_seconds": STEP,
        "since": ledger.iso_time(asked.since),
        "until": ledger.iso_time(asked.until),
        "buckets": [{"at": ledger.iso_time(start), "counts": counts[start]} for start in starts],
    }


__all__ = ["DEFAULT_SINCE", "MAX_BUCKETS", "OUTCOMES", "STEP", "RateQuery", "minutes", "per_minute"]
