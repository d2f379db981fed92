"""After a worker takes over partitions, send again what was left `pending` with nothing behind it.

A ledger entry is `pending` while its delivery is queued, in flight, or waiting for a retry. Offsets
are committed only after the writes behind them (see ``streams.kafka``), so after a crash the new owner
reads again every delivery whose outcome did not reach the ledger and sends it. This is the second
line: whatever the cause, an entry that is still `pending`, with no retry scheduled and no send under
way, some time after a takeover, is driven again. Its delivery is rebuilt from the run event the entry
came from (its `source` on the runs topic) and emitted as evaluate emits it, with the same delivery
id, so a receiver drops the rare duplicate by its idempotency key. Where that run event is gone, the
entry is recorded `error` with a reason that says so. No entry stays `pending` with nothing behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from runherald import ledger, metrics
from runherald.delivery import Delivery
from runherald.evaluation import InvalidEvent, candidates, make_delivery, parse_event
from runherald.rule_index import AlertConfig
from runherald.transition_evaluation import rebuild as rebuild_transition

log = logging.getLogger("runherald.redrive")

READ_TRIES = 3  # reads of a run event before it counts as gone


@dataclass(frozen=True)
class Candidate:
    key: bytes
    delivery_id: str
    partition: int


def stranded(record: ledger.Record, older_than: float) -> list[str]:
    """Ids of entries that are `pending` with no retry scheduled and unchanged since `older_than`."""
    return [
        did
        for did, found in record["deliveries"].items()
        if found.get("status") == ledger.PENDING
        and not found.get("retry")
        and not found.get("group")  # a grouped rule's: its group's owner sends it (streams.groups)
        and float(found.get("updated") or 0.0) <= older_than
    ]


class Redriver:
    """Finds stranded ledger entries after a takeover and drives each once more."""

    def __init__(
        self,
        *,
        records: Callable[[], Iterable[tuple[bytes, bytes]]],  # (run key, raw record) of owned partitions
        read_record: Callable[[bytes], ledger.Record],
        partition_of: Callable[[bytes], int | None],
        is_busy: Callable[[str], bool],  # a send of this delivery is under way
        owns: Callable[[int], bool],
        fetch_run: Callable[[int, int], Awaitable[bytes]],  # (partition, offset) on the runs topic
        emit: Callable[[Delivery, int], Awaitable[None]],
        record_error: Callable[
            [bytes, str, int, str], Awaitable[None]
        ],  # (key, delivery id, partition, reason)
        grace: float,
        max_event_bytes: int,
        alerts: Callable[[], AlertConfig | None] = lambda: None,  # the alert configuration in force
    ) -> None:
        self._records = records
        self._read = read_record
        self._partition_of = partition_of
        self._is_busy = is_busy
        self._owns = owns
        self._fetch_run = fetch_run
        self._emit = emit
        self._record_error = record_error
        self.grace = grace
        self._max_event_bytes = max_event_bytes
        self._alerts = alerts
        self._task: asyncio.Task[None] | None = None

    def takeover(self) -> None:
        """Look, `grace` seconds from now, for entries left stranded in the partitions owned then.

        The wait lets the normal path (the deliveries this worker reads again from the last commit)
        take care of nearly all of them first; a second takeover meanwhile starts the wait again.
        """
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.ensure_future(self._after_grace())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _after_grace(self) -> None:
        await asyncio.sleep(self.grace)
        try:
            await self.sweep()
        except Exception:  # the sweep is a safety net: log, never crash the worker
            log.exception("re-driving stranded deliveries failed")

    def candidates(self, now: float | None = None) -> list[Candidate]:
        """Stranded entries of owned partitions, left alone for at least the grace period."""
        older_than = (time.time() if now is None else now) - self.grace
        found: list[Candidate] = []
        for key, raw in self._records():
            if b'"pending"' not in raw:  # most records: decided without parsing them
                continue
            partition = self._partition_of(key)
            if partition is None or not self._owns(partition):
                continue
            for did in stranded(ledger.load(raw), older_than):
                if not self._is_busy(did):
                    found.append(Candidate(key, did, partition))
        return found

    async def sweep(self) -> int:
        """Drive every stranded entry once more; returns how many were driven."""
        driven = 0
        for candidate in self.candidates():
            await self.redrive(candidate)
            driven += 1
        if driven:
            log.warning("re-drove %d stranded deliveries after a takeover", driven)
        return driven

    async def redrive(self, candidate: Candidate) -> None:
        # Look again right before acting: the normal path may have recorded it meanwhile.
        found = ledger.entry(self._read(candidate.key), candidate.delivery_id)
        if (
            found is None
            or found.get("status") != ledger.PENDING
            or found.get("retry")
            or self._is_busy(candidate.delivery_id)
            or not self._owns(candidate.partition)
        ):
            return
        source = found.get("source")
        if not source:
            await self._fail(candidate, "the ledger entry does not say which run event it came from")
            return
        partition, offset = int(source[0]), int(source[1])
        where = f"runs[{partition}]@{offset}"
        try:
            run = parse_event(await self._read_run(partition, offset), self._max_event_bytes)
        except LookupError as exc:
            await self._fail(candidate, f"its run event ({where}) is gone from the runs topic: {exc}")
            return
        except InvalidEvent as exc:
            await self._fail(candidate, f"its run event ({where}) cannot be read: {exc}")
            return
        delivery = self._rebuild(run, found, candidate.delivery_id)
        if delivery is None:
            await self._fail(
                candidate,
                f"its run event ({where}) no longer asks for this notification, nor does a rule in force",
            )
            return
        log.info("re-driving stranded delivery %s from %s", candidate.delivery_id, where)
        metrics.REDRIVEN.labels("resent").inc()
        await self._emit(delivery, candidate.partition)

    async def _read_run(self, partition: int, offset: int) -> bytes:
        last: Exception | None = None
        for attempt in range(READ_TRIES):
            try:
                return await self._fetch_run(partition, offset)
            except LookupError:
                raise
            except Exception as exc:  # a timeout or a broker error: try again before giving up
                last = exc
                await asyncio.sleep(min(5.0, 0.5 * 2**attempt))
        raise LookupError(f"not read after {READ_TRIES} tries ({last!r})")

    def _rebuild(self, run: dict[str, Any], found: ledger.Entry, delivery_id: str) -> Delivery | None:
        """The delivery again, from the run event and (for an alert rule's) the rules in force now."""
        if found.get("transition"):
            transition = rebuild_transition(run, found, self._alerts())
            return transition if transition is not None and transition.id == delivery_id else None
        for candidate in candidates(run, self._alerts()):
            if candidate.name == found.get("name") and not candidate.error:
                delivery = make_delivery(run, candidate.notification)
                return delivery if delivery.id == delivery_id else None
        return None

    async def _fail(self, candidate: Candidate, why: str) -> None:
        reason = f"not sent again after a worker crash: {why}"
        log.warning("stranded delivery %s: %s", candidate.delivery_id, reason)
        metrics.REDRIVEN.labels("error").inc()
        await self._record_error(candidate.key, candidate.delivery_id, candidate.partition, reason)
