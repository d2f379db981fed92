"""The projection of the status topic into SQL (runherald.ledger_sql), fed by the worker's ledger view.

The view reads every partition of the status topic, so with SQLite every worker keeps a whole copy of its
own. With a shared database (PostgreSQL, `ledger_db`) every worker writes every record it reads too:
wasteful, but correct, because a write never replaces a newer version of a delivery and writing the same
version again changes nothing. Records are parsed and written off the event loop, in batches (the latest
value per run), and deliveries older than `ledger_retention` are deleted every few minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from runherald import ledger, ledger_sql
from runherald.config import Settings
from runherald.matchers import parse_duration

log = logging.getLogger("runherald.ledger_projection")

RECORDS_PER_WRITE = 2000  # ledger records per transaction
RETENTION_EVERY = 300.0  # seconds between retention passes
RETRY_AFTER = 2.0  # seconds before a failed write is tried again


def why(exc: SQLAlchemyError) -> str:
    """The database's own first line: not SQLAlchemy's, which quotes the statement (a batch's worth)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:500]


class LedgerProjection:
    """Keeps the SQL ledger up to date with the records the ledger view reads; answers its queries."""

    def __init__(self, url: str, retention: str) -> None:
        self.url = url
        self.retention = parse_duration(retention)
        self.engine: Engine | None = None
        self._pending: dict[bytes, bytes] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._last_retention = 0.0

    @classmethod
    def for_settings(cls, settings: Settings) -> LedgerProjection | None:
        """The projection the settings ask for, None when the SQL ledger is off."""
        url = ledger_sql.database_url(settings.data_dir, settings.ledger_db)
        return None if url is None else cls(url, settings.ledger_retention)

    async def start(self) -> None:
        self.engine = await asyncio.to_thread(ledger_sql.open_engine, self.url)
        log.info("ledger in SQL: %s", self.engine.url.render_as_string(hide_password=True))
        self._task = asyncio.create_task(self._run())

    async def stop(self, flush_within: float = 5.0) -> None:
        """Write what is pending (for at most `flush_within` seconds), then stop."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flushed(), flush_within)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.engine is not None:
            self.engine.dispose()

    def add(self, records: Mapping[bytes, bytes]) -> None:
        """Records read from the status topic (key -> latest value), to be written."""
        if records:
            self._pending.update(records)
            self._idle.clear()
            self._wake.set()

    @property
    def idle(self) -> bool:
        """Everything added so far is written."""
        return self._idle.is_set()

    async def flushed(self) -> None:
        """Returns once everything added so far is written."""
        await self._idle.wait()

    async def query(self, asked: ledger_sql.Query) -> dict[str, Any]:
        assert self.engine is not None
        return await asyncio.to_thread(ledger_sql.query, self.engine, asked)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), RETENTION_EVERY)
            except TimeoutError:
                pass
            self._wake.clear()
            await self._retain()
            while self._pending:
                batch = dict(list(self._pending.items())[:RECORDS_PER_WRITE])
                for key in batch:
                    del self._pending[key]
                try:
                    await asyncio.to_thread(self._write, list(batch.values()))
                except SQLAlchemyError as exc:
                    log.warning(
                        "cannot write the ledger to SQL (retrying in %.0fs): %s", RETRY_AFTER, why(exc)
                    )
                    self._pending = {**batch, **self._pending}  # newer values read since win
                    await asyncio.sleep(RETRY_AFTER)
            self._idle.set()

    def _write(self, values: list[bytes]) -> None:
        assert self.engine is not None
        records = [ledger.load(value) for value in values]
        ledger_sql.write(self.engine, ledger_sql.rows_of(records, time.time() - self.retention))

    async def _retain(self) -> None:
        now = time.time()
        if now - self._last_retention < RETENTION_EVERY:
            return
        self._last_retention = now
        assert self.engine is not None
        try:
            deleted = await asyncio.to_thread(ledger_sql.delete_older_than, self.engine, now - self.retention)
        except SQLAlchemyError as exc:
            log.warning("ledger retention failed: %s", why(exc))
            return
        if deleted:
            log.info("ledger retention: deleted %d deliveries queued before %s", deleted, self.retention)


__all__ = ["LedgerProjection"]
