"""The SQL ledger figures of ``runherald bench`` (phase ``ledger-query``): a query by project and status
over --ledger-rows delivery rows (1,000,000 by default) in SQLite, through its index and as a full scan of
the same table, side by side in one run.

The rows are made up (100 projects, the four statuses, 20 notification names, three kinds, queued over 30
days) and written into a fresh database with the ledger's own schema (runherald.ledger_sql). Both sides
ask for the same page, the newest 100 error deliveries of one project: `ledger_sql.query`, as the API
runs it; and the same SELECT with SQLite's ``NOT INDEXED``, which makes it read the whole table. Each is
timed several times; the figure is the median. The two must return the same rows.

Imported by ``runherald.benchmarks.pipeline``; it imports nothing of it (the two stay acyclic).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from runherald import ledger_sql

PROJECTS = 100
STATUSES = ("sent", "error", "pending", "skipped")
KINDS = ("webhook", "slack", "mail")
TARGET_RATIO = 100.0
PAGE = 100
NOW = 1_800_000_000.0

# One query, as ledger_sql.query asks it; {} is empty (the planner picks the index) or NOT INDEXED.
QUERY = (
    "SELECT * FROM deliveries {} WHERE project = ? AND status = ? ORDER BY queued_at DESC, id DESC LIMIT ?"
)


def made_up_rows(count: int) -> Iterator[tuple[Any, ...]]:
    """`count` delivery rows in the column order of ledger_sql.deliveries."""
    for i in range(count):
        queued = NOW - (i * 2_592_000.0 / count)  # over 30 days, newest first
        status = STATUSES[(i // PROJECTS) % len(STATUSES)]
        yield (
            f"{i:032x}",
            f"project-{i % PROJECTS:03d}",
            f"run-{i // 3:08d}",
            "train-model",
            f"notification-{i % 20:02d}",
            KINDS[i % len(KINDS)],
            "completed" if status == "sent" else "error",
            status,
            1,
            queued,
            None,
            "HTTP 500" if status == "error" else None,
            500 if status == "error" else 200,
            12.5,
            queued,
        )


def load(engine: Engine, count: int) -> None:
    """Write the made-up rows in one transaction (SQLite's executemany, no SQLAlchemy per row)."""
    columns = len(ledger_sql.deliveries.columns)
    placeholders = ", ".join("?" * columns)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.executemany(f"INSERT INTO deliveries VALUES ({placeholders})", made_up_rows(count))  # type: ignore[arg-type]
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def median_ms(work: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The median wall time of `work` over `repeat` calls (ms), and its last answer."""
    times, answer = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        answer = work()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times), answer


def measure(directory: Path, count: int) -> dict[str, Any]:
    """Load `count` rows into a fresh SQLite ledger in `directory`, then time both sides (and the API's)."""
    url = ledger_sql.database_url(str(directory), "")
    assert url is not None
    engine = ledger_sql.open_engine(url)
    try:
        started = time.perf_counter()
        load(engine, count)
        found: dict[str, Any] = {"loaded_s": time.perf_counter() - started}
        project, status = f"project-{7:03d}", "error"
        asked = ledger_sql.Query(project=project, status=status, limit=PAGE)
        found["api_ms"], page = median_ms(lambda: ledger_sql.query(engine, asked), 50)
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            for side, clause, repeat in (("indexed", "", 50), ("scan", "NOT INDEXED", 5)):
                text = QUERY.format(clause)

                def ask(text: str = text) -> Any:
                    return cursor.execute(text, (project, status, PAGE)).fetchall()

                found[f"{side}_ms"], found[side] = median_ms(ask, repeat)
                plan = cursor.execute("EXPLAIN QUERY PLAN " + text, (project, status, PAGE)).fetchall()
                found[f"{side}_plan"] = "; ".join(str(row[-1]) for row in plan)
        finally:
            raw.close()
    finally:
        engine.dispose()
    ids = [item["id"] for item in page["items"]]
    if not ids or ids != [row[0] for row in found["indexed"]] or ids != [row[0] for row in found["scan"]]:
        raise RuntimeError("ledger-query: the indexed query and the full scan returned different rows")
    return found


async def phase_ledger_query(bench: Any) -> None:
    """(9) A query by project and status over --ledger-rows rows in SQLite: by its index, a full scan."""
    count = int(bench.args.ledger_rows)
    with tempfile.TemporaryDirectory(prefix="ledger-", dir=bench.log_dir) as directory:
        found = await asyncio.to_thread(measure, Path(directory), count)
    detail = f"{PAGE} newest error deliveries of 1 of {PROJECTS} projects, {count} rows, median"
    bench.report.note(f"ledger-query: {count} rows loaded in {found['loaded_s']:.1f}s")
    bench.report.note(f"ledger-query plans: {found['indexed_plan']} | {found['scan_plan']}")
    bench.report.figure("ledger_query_indexed", found["indexed_ms"], "ms", f"{detail} of 50")
    bench.report.figure("ledger_query_full_scan", found["scan_ms"], "ms", f"{detail} of 5, NOT INDEXED")
    bench.report.figure("ledger_query_api", found["api_ms"], "ms", f"{detail} of 50, ledger_sql.query")
    bench.report.ratio(
        "ledger_index_vs_scan",
        found["scan_ms"] / found["indexed_ms"],
        TARGET_RATIO,
        higher_is_better=True,
        what="the same query as a full scan over by its index, same table",
    )


__all__ = ["phase_ledger_query"]
