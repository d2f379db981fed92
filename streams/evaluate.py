"""The evaluate stage: runs ──► evaluate ──► deliveries, and the ledger's record of each decision.

It reads run events a fetch at a time (see ``streams.kafka``), decides with the pure core
(``runherald.evaluation``) which notifications to send, emits their deliveries (each starts sending at
once) and records the decisions in the ledger. A run event is acknowledged only once its ledger change
is queued: that write is held back up to LEDGER_WRITE_DELAY, because the delivery's outcome, recorded
a few milliseconds later, usually carries the same record and most changes then need no write of
their own. A crash before the write loses nothing: those events were not acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from faust.types import TP

from runherald import grouping, metrics
from runherald.config import Settings
from runherald.delivery import Delivery, run_key
from runherald.evaluation import InvalidEvent, evaluate_event, parse_event
from runherald.faults import fault_point
from runherald.inhibition import Inhibition
from runherald.rule_index import AlertConfig
from runherald.sealing import seal_run

from .writers import DeadLetterWriter, LedgerWriter, Writer

log = logging.getLogger("runherald.pipeline")

YIELD_EVERY = 200  # records handled before a batch gives the event loop a turn
LEDGER_WRITE_DELAY = 0.25  # seconds an evaluate-stage ledger change may wait for a write (see above)

Emit = Callable[[Delivery, int], Awaitable[None]]  # (delivery, partition): write it and start sending
Inhibit = Callable[[list[Inhibition]], Awaitable[None]]  # in force here at once, written for every worker


class EvaluateStage:
    """Turns run events into deliveries and ledger changes; acknowledges each event once its change is
    queued."""

    def __init__(
        self,
        *,
        app: Any,  # streams.kafka.App: read epochs and acknowledgements
        settings: Settings,
        writer: Writer,
        ledger: LedgerWriter,
        dead_letters: DeadLetterWriter,
        emit: Emit,
        runs_topic: str,
        lock: asyncio.Lock,
        alerts: Callable[[], AlertConfig | None] = lambda: None,
        alerts_ready: asyncio.Event | None = None,
        inhibit: Inhibit | None = None,
        # (run, its record): the run's terminal state to its name's history (streams.history)
        record_outcome: Callable[[dict[str, Any], Any], Awaitable[None]] | None = None,
        groups_topic: str = "",
    ) -> None:
        self._app = app
        self._settings = settings
        self._writer = writer
        self._ledger = ledger
        self._dead_letters = dead_letters
        self._emit = emit
        self._runs_topic = runs_topic
        self._groups_topic = groups_topic  # grouped rules' members go there (streams.groups)
        self._lock = lock  # shared with the dispatch stage: a rebalance waits for the batch under way
        self._unacknowledged: list[tuple[TP, list[int], int]] = []  # (partition, offsets, read epoch)
        self._oldest = 0.0  # monotonic time the oldest unacknowledged event was handled
        self._lag = metrics.STAGE_LAG.labels("evaluate")
        self._alerts = alerts  # the alert configuration in force, read once per fetch
        self._alerts_ready = alerts_ready  # set once every stored rule is loaded
        self._inhibit = inhibit
        self._record_outcome = record_outcome

    async def handle(self, tp: TP, records: list[Any]) -> None:
        """One partition's records of one fetch, in offset order."""
        if self._alerts_ready is not None and not self._alerts_ready.is_set():
            log.info("waiting for the alert configuration to load before evaluating runs")
            await self._alerts_ready.wait()
        async with self._lock:
            alerts = self._alerts()
            epoch = self._app.read_epoch
            metrics.EVENTS_CONSUMED.inc(len(records))
            # The wait of the oldest record of each fetch (a histogram update per record costs more
            # than a tenth of what evaluate does with an event).
            oldest = records[0]
            if oldest.timestamp_type == 0 and oldest.timestamp > 0:  # CreateTime, set by the publisher
                self._lag.observe(max(0.0, time.time() - oldest.timestamp / 1000))
            for index, message in enumerate(records):
                if index and not index % YIELD_EVERY:
                    await asyncio.sleep(0)  # let sends, their records and the API get a turn
                await self._evaluate(message, alerts)
            if not self._unacknowledged:
                self._oldest = time.monotonic()
            self._unacknowledged.append((tp, [message.offset for message in records], epoch))
            if time.monotonic() - self._oldest >= LEDGER_WRITE_DELAY:
                await self.write_waiting()  # under load the timer alone could fall behind

    async def write_waiting(self) -> None:
        """Queue every ledger change made so far, then acknowledge the events behind them."""
        events = self._unacknowledged  # taken first: events handled meanwhile wait for the next round
        self._unacknowledged = []
        self._oldest = 0.0
        await self._ledger.flush()
        for tp, offsets, epoch in events:
            self._app.ack_offsets(tp, offsets, epoch)

    async def _evaluate(self, message: Any, alerts: AlertConfig | None) -> None:
        try:
            run = parse_event(message.value, self._settings.max_event_bytes)
        except InvalidEvent as exc:
            await self._dead_letters.run_event(message, str(exc), exc.code)
            return
        meta = run["metadata"]
        key = run_key(meta["project"], meta["uid"]).encode()
        if message.key != key:
            # Published under another key: move it to its run's partition so per-run order holds.
            await self._writer.send(self._runs_topic, key, orjson.dumps(seal_run(run)))
            return
        if self._record_outcome is not None and alerts is not None and alerts.uses_transitions:
            await self._record_outcome(run, message)
        result = evaluate_event(
            run,
            record=self._ledger.load(key, meta["project"], meta["uid"]),
            source=(message.partition, message.offset),
            settings=self._settings,
            alerts=alerts,
        )
        if result.dropped:
            metrics.EVENTS_DROPPED.inc()
            log.info("ignored run event for %s: %s", result.key, result.dropped)
            return
        if result.inhibitions and self._inhibit is not None:
            await self._inhibit(result.inhibitions)  # before the next event of this fetch is evaluated
        if result.record is not None:
            # In the table before any send starts: an outcome is recorded into this record.
            self._ledger.set(message.partition, key, result.record)
        for member in result.members:
            group_key = grouping.group_key(member["group"]).encode()
            await self._writer.send(self._groups_topic, group_key, orjson.dumps(member))
        for delivery in result.deliveries:
            await self._emit(delivery, message.partition)
        if result.deliveries:
            metrics.DELIVERIES_EMITTED.inc(len(result.deliveries))
            fault_point("evaluated")
