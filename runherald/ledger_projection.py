"""The projection of the status topic into SQL (runherald.ledger_sql), fed by the worker's ledger view.

The view reads every partition of the status topic, so with SQLite every worker keeps a whole copy of its
own. With a shared database (PostgreSQL, `ledger_db`) every worker sends every record it reads too: more
work than needed, but correct, because a write never replaces the same or a newer version of a delivery.
Records are parsed and written in a process of their own (a thread would hold the interpreter lock the
worker's event loop needs: measured, it slowed the pipeline), in batches (the latest value per run), and
deliveries older than `ledger_retention` are deleted every few minutes. A database that does not answer
is retried; it never stops the worker. Queries run in a thread of the worker, on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from runherald import ledger, ledger_runs, ledger_sql
from runherald.config import Settings, env_name
from runherald.errors import ConfigError
from runherald.matchers import parse_duration

log = logging.getLogger("runherald.ledger_projection")

RECORDS_PER_WRITE = 2000  # ledger records per transaction
# How long records read are gathered before a write: a delivery's record changes a few times within
# milliseconds (decided, sent); gathered, only its latest value is written, and fewer, larger transactions.
GATHER = 0.5
RETENTION_EVERY = 300.0  # seconds between retention passes
RETRY_AFTER = 2.0  # seconds before a database that failed is tried again


T = TypeVar("T")
Q = TypeVar("Q")


def why(exc: SQLAlchemyError) -> str:
    """The database's own first line: not SQLAlchemy's, which quotes the statement (a batch's worth)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:500]


class DatabaseFailed(Exception):
    """The database did not answer, or refused a write (its first line): try again later."""


# -- in the writer process ---------------------------------------------------------------------------

_ENGINES: dict[str, Engine] = {}


def watch_parent(parent: int) -> None:
    """The writer process's start: it ends when its worker does, even one killed outright (SIGKILL), and
    leaves Ctrl-C (sent to the terminal's whole process group) to the worker, which stops it in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="runherald-ledger-parent", daemon=True).start()


async def _shut_down(pool: ProcessPoolExecutor, within: float) -> None:
    """Stop the writer process: in order if it ends within `within` seconds, else killed (a write that
    hangs must not hold the worker's shutdown; the topic still has everything it was writing)."""
    try:
        await asyncio.wait_for(asyncio.to_thread(pool.shutdown, True, cancel_futures=True), within)
    except TimeoutError:
        log.warning("the ledger's writer process did not stop within %.0fs: killed", within)
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()


def _engine(url: str) -> Engine:
    found = _ENGINES.get(url)
    if found is None:
        found = _ENGINES[url] = ledger_sql.engine_for(url)
    return found


def _in_child(work: Callable[[Engine], T], url: str) -> T:
    try:
        return work(_engine(url))
    except SQLAlchemyError as exc:  # SQLAlchemy's errors do not all cross processes: their first line does
        raise DatabaseFailed(why(exc)) from None


def create_tables(url: str) -> None:
    _in_child(ledger_sql.create_tables, url)


def write_records(url: str, oldest: float, values: list[bytes]) -> tuple[int, list[str]]:
    """Write these status records' deliveries queued since `oldest`: (how many changed, problems)."""
    records, problems = [], []
    for value in values:
        try:
            records.append(ledger.load(value))
        except ValueError as exc:  # not JSON: not a record of ours
            problems.append(f"a status record that is not JSON is left out: {exc}")
    try:
        rows, run_rows = ledger_sql.rows_of(records, oldest), ledger_runs.rows_of(records, oldest)
    except Exception as exc:  # a record of a shape it cannot read: the batch is left out, the rest go on
        return 0, [f"{len(records)} records left out: {type(exc).__name__}: {exc}"]

    def both(engine: Engine) -> int:
        ledger_sql.write_runs(engine, run_rows)
        return ledger_sql.write(engine, rows)

    return _in_child(both, url), problems


def delete_old(url: str, oldest: float) -> int:
    return _in_child(lambda engine: ledger_sql.delete_older_than(engine, oldest), url)


# -- in the worker -----------------------------------------------------------------------------------


class LedgerProjection:
    """Keeps the SQL ledger up to date with the records the ledger view reads; answers its queries."""

    def __init__(self, url: str, retention: str) -> None:
        self.retention = parse_duration(retention)
        self._engine = ledger_sql.engine_for(url)  # not connected: ArgumentError, ImportError for a bad URL
        self.engine: Engine | None = None  # once its tables are there
        self.where = self._engine.url.render_as_string(hide_password=True)
        self._pending: dict[bytes, bytes] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._last_retention = 0.0
        self._url = url
        self._pool: ProcessPoolExecutor | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> LedgerProjection | None:
        """The projection the settings ask for, None when the SQL ledger is off; ConfigError for a data
        directory it cannot make or a URL it cannot use."""
        try:
            url = ledger_sql.database_url(settings.data_dir, settings.ledger_db)
        except OSError as exc:
            problem = exc.strerror or str(exc)
            raise ConfigError(f"{env_name('data_dir')}: cannot make the data directory: {problem}") from None
        if url is None:
            return None
        try:
            return cls(url, settings.ledger_retention)
        except (ArgumentError, ImportError) as exc:
            raise ConfigError(
                f"{env_name('ledger_db')}: not a database URL runherald can use: {exc}"
            ) from None

    async def start(self) -> None:
        """Start projecting: the tables are made (or found) first, retried while the database does not
        answer (queries answer None until then)."""
        self._task = asyncio.create_task(self._run())

    async def stop(self, flush_within: float = 5.0) -> None:
        """Write what is pending (for at most `flush_within` seconds), then stop."""
        if self._task is not None:
            if self.engine is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.flushed(), flush_within)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pool is not None:
            await _shut_down(self._pool, within=flush_within)
        self._engine.dispose()

    async def _call(self, work: Callable[..., T], *args: Any) -> T:
        """`work(self url, *args)` in the writer process (started, or started again after it died)."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=watch_parent,
                initargs=(os.getpid(),),
            )
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, self._url, *args)
        except BrokenProcessPool:
            self._pool = None
            raise DatabaseFailed("the ledger's writer process ended") from None

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

    async def query(self, asked: ledger_sql.Query) -> dict[str, Any] | None:
        """The page `asked` for; None while the database has not answered yet."""
        return await self.ask(ledger_sql.query, asked)

    async def ask(self, work: Callable[[Engine, Q], T], asked: Q) -> T | None:
        """`work(engine, asked)` in a thread of the worker: a query; None while the database has not
        answered yet."""
        if self.engine is None:
            return None
        return await asyncio.to_thread(work, self.engine, asked)

    async def _open(self) -> None:
        while True:
            try:
                await self._call(create_tables)
            except DatabaseFailed as exc:
                log.warning("ledger in SQL: %s: %s (again in %.0fs)", self.where, exc, RETRY_AFTER)
                await asyncio.sleep(RETRY_AFTER)
                continue
            self.engine = self._engine
            log.info("ledger in SQL: %s", self.where)
            return

    async def _run(self) -> None:
        await self._open()
        while True:
            await self._retain()
            await asyncio.sleep(GATHER)
            while self._pending:
                batch = dict(list(self._pending.items())[:RECORDS_PER_WRITE])
                for key in batch:
                    del self._pending[key]
                try:
                    _, problems = await self._call(
                        write_records, time.time() - self.retention, list(batch.values())
                    )
                except DatabaseFailed as exc:
                    log.warning("ledger in SQL: cannot write: %s (again in %.0fs)", exc, RETRY_AFTER)
                    self._pending = {**batch, **self._pending}  # newer values read meanwhile win
                    await asyncio.sleep(RETRY_AFTER)
                    continue
                for problem in problems:
                    log.warning("ledger in SQL: %s", problem)
            self._idle.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RETENTION_EVERY)
            self._wake.clear()

    async def _retain(self) -> None:
        now = time.time()
        if now - self._last_retention < RETENTION_EVERY:
            return
        self._last_retention = now
        try:
            deleted = await self._call(delete_old, now - self.retention)
        except DatabaseFailed as exc:
            log.warning("ledger in SQL: retention failed: %s", exc)
            return
        if deleted:
            log.info("ledger in SQL: retention deleted %d deliveries", deleted)


__all__ = ["LedgerProjection"]
