"""Send deliveries concurrently, record each outcome, and schedule retries that survive restarts.

The dispatcher never lets one slow endpoint hold back another: every delivery is its own task, bounded
only by ``max_in_flight``. Retries are written to the ledger (with where the delivery to resend is on
the deliveries topic) before the source event is acknowledged, so a restarted worker finds them there
and carries on. The worker that scheduled a retry keeps the delivery in memory for it too (the last
RETRY_MEMORY of them): reading it back costs a fetch from the broker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from faust.types import TP

from runherald import conversation, ledger, metrics
from runherald.breaker import CircuitBreakers
from runherald.delivery import Delivery, DeliveryOutcome, OutcomeKind, run_key
from runherald.faults import fault_point
from runherald.outcomes import outcome_fields
from runherald.retry import RetryPolicy
from runherald.secrets import SecretResolutionError, SecretScrubber, resolve_params_and_secrets

from .conversations import Turns
from .throttle import Abandoned, Throttle

if TYPE_CHECKING:
    from runherald.notifiers.base import Notifier

log = logging.getLogger("runherald.dispatch")

NotifierLookup = Callable[[str], "Notifier"]  # kind -> its notifier
RecordWriter = Callable[[Delivery, int, ledger.Record], Awaitable[None]]  # (delivery, partition, record)
DeadLetterWriter = Callable[[Delivery, str, OutcomeKind], Awaitable[None]]  # (delivery, reason, last outcome)
DeliveryFetcher = Callable[[int, int], Awaitable[Delivery]]  # (partition, offset) on the deliveries topic

YIELD_EVERY = 200  # records handled before a batch gives the event loop a turn

# Deliveries waiting for a retry that this worker keeps in memory (the most recent ones); the others,
# and every one after a restart, are read back from the deliveries topic when their retry falls due.
RETRY_MEMORY = 1000


@dataclass
class _Retry:
    due: float
    delivery_id: str
    key: str
    partition: int

    def __lt__(self, other: _Retry) -> bool:
        return self.due < other.due


class Dispatcher:
    """The send → record → retry stage of the pipeline, independent of how records are stored."""

    def __init__(
        self,
        *,
        notifier_for: NotifierLookup,
        read_record: Callable[[str], ledger.Record],
        write_record: RecordWriter,
        dead_letter: DeadLetterWriter,
        fetch_delivery: DeliveryFetcher,
        policy: RetryPolicy,
        send_timeout: float,
        max_in_flight: int,
        secrets_dir: str | None = None,
        secret_env_allow: frozenset[str] = frozenset(),
        owns_partition: Callable[[int], bool] = lambda p: True,
        on_outcome: Callable[[Delivery, DeliveryOutcome, float], None] | None = None,
        breakers: CircuitBreakers | None = None,
        throttle: Throttle | None = None,
        wait_written: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._notifier_for = notifier_for
        self._read = read_record
        self._write = write_record
        self._dead_letter = dead_letter
        self._fetch = fetch_delivery
        self._policy = policy
        self._send_timeout = send_timeout
        self._slots = asyncio.Semaphore(max_in_flight)
        self._secrets_dir = secrets_dir
        self._secret_env_allow = secret_env_allow
        self._owns = owns_partition
        self._on_outcome = on_outcome
        self.breakers = breakers or CircuitBreakers(0, 0.0, 0.0)
        self.throttle = throttle  # destination rate limits (None: none)
        # Returns once a run's record, as it stands, is on the status topic (streams.conversations).
        self._wait_written = wait_written
        self.turns = Turns()  # one send at a time per conversation (run and notification)
        self.scrubber = SecretScrubber()  # every secret value met so far, for the log filter
        self.in_flight: set[str] = set()
        self._waiters: dict[str, list[Callable[[], Any]]] = {}  # delivery id -> events to acknowledge
        self._tasks: dict[asyncio.Task[None], int] = {}  # send under way -> its partition
        self._retries: list[_Retry] = []
        self._scheduled: set[str] = set()
        self._waiting: OrderedDict[str, tuple[int, Delivery]] = OrderedDict()  # id -> (partition, delivery)
        self._wakeup = asyncio.Event()

    # -- intake -------------------------------------------------------------------------------------

    async def submit(self, delivery: Delivery, partition: int, offset: int, done: Callable[[], Any]) -> None:
        """Start sending one delivery read at (partition, offset); `done` acknowledges that event."""
        record = self._read(self.key_of(delivery))
        found = ledger.entry(record, delivery.id)
        if (
            delivery.replay
            and found
            and found.get("status") == ledger.ERROR
            and found.get("replay") != delivery.replay
        ):
            # An operator asked to try a failed delivery again: a fresh budget, never after a success.
            ledger.put_entry(
                record,
                delivery.id,
                status=ledger.PENDING,
                first_attempt_at=None,
                replay_base=int(found.get("attempts", 0)),
                replay=delivery.replay,
                reason=None,
            )
            await self._write(delivery, partition, record)
            found = ledger.entry(record, delivery.id)
        if delivery.id in self.in_flight:
            # Started straight from the evaluate stage: acknowledge this event once that send is recorded.
            self._waiters.setdefault(delivery.id, []).append(done)
            return
        if ledger.is_terminal(found) or (found or {}).get("retry"):
            done()  # already sent, failed for good, or waiting for its retry
            return
        await self._begin(delivery, partition, offset, done)

    async def start_now(self, delivery: Delivery, partition: int, offset: Awaitable[Any]) -> None:
        """Send a delivery the evaluate stage just emitted, without waiting for it to come round on the
        deliveries topic; `offset` resolves to where it was written there (for a retry's pointer).

        Its deliveries-topic event is acknowledged only once this send is recorded (see submit), so a
        crash still leaves the delivery to be sent again.
        """
        if delivery.id in self.in_flight or not self._owns(partition):
            return
        await self._begin(delivery, partition, offset, None)

    def is_busy(self, delivery_id: str) -> bool:
        """A send of this delivery is under way (or waiting for a free slot) in this worker."""
        return delivery_id in self.in_flight

    async def _begin(
        self,
        delivery: Delivery,
        partition: int,
        offset: int | Awaitable[Any],
        done: Callable[[], Any] | None,
    ) -> None:
        # Marked in flight before waiting for a slot: another path (the deliveries topic, a retry, a
        # re-drive) that meets the same delivery meanwhile waits for this send instead of starting one.
        self.in_flight.add(delivery.id)
        try:
            await self._slots.acquire()
        except BaseException:
            self.in_flight.discard(delivery.id)
            raise
        self._start(self._attempt(delivery, partition, offset, done), partition)

    def _start(self, coro: Any, partition: int) -> None:
        task = asyncio.create_task(coro)
        self._tasks[task] = partition
        task.add_done_callback(lambda t: self._tasks.pop(t, None))

    @staticmethod
    def key_of(delivery: Delivery) -> str:
        return run_key(delivery.project, delivery.uid)

    # -- one attempt --------------------------------------------------------------------------------

    async def _attempt(
        self,
        delivery: Delivery,
        partition: int,
        offset: int | Awaitable[Any],
        done: Callable[[], Any] | None,
    ) -> None:
        started = time.monotonic()
        recorded = False
        try:
            async with self.turns.turn(delivery, self._slots):
                if conversation.converses(delivery.kind):
                    await self._read_thread(delivery)
                outcome = await self._send(delivery, partition)
                fault_point("after-send")
                recorded = await self._record(delivery, partition, offset, outcome)
                fault_point("after-record")
            if self._on_outcome is not None:
                self._on_outcome(delivery, outcome, time.monotonic() - started)
        except Abandoned:  # its partition left while it waited for a rate limit: the new owner sends it
            log.info("partition %s moved while delivery %s waited; leaving it", partition, delivery.id)
        except Exception:  # a bug here must not lose the delivery: leave it unacknowledged
            log.exception("recording delivery %s failed", delivery.id)
        finally:
            self.in_flight.discard(delivery.id)
            self._slots.release()
            waiters = self._waiters.pop(delivery.id, [])
            if recorded:
                for acknowledge in ([done] if done is not None else []) + waiters:
                    acknowledge()

    async def _read_thread(self, delivery: Delivery) -> None:
        """The conversation this delivery continues, from the ledger; when there is one, only once the
        record holding it is on the status topic (streams.conversations)."""
        key = self.key_of(delivery)
        delivery.thread = conversation.thread_of(self._read(key), delivery.name)
        if delivery.thread is not None and self._wait_written is not None:
            await self._wait_written(key)

    async def _send(self, delivery: Delivery, partition: int) -> DeliveryOutcome:
        try:
            params, secrets = resolve_params_and_secrets(
                delivery.notification, secrets_dir=self._secrets_dir, env_allow=self._secret_env_allow
            )
        except SecretResolutionError as exc:
            return DeliveryOutcome.permanent(f"secret resolution failed: {exc}")
        self.scrubber.add(secrets)
        try:
            notifier = self._notifier_for(delivery.kind)
        except (KeyError, ValueError) as exc:
            return DeliveryOutcome.permanent(str(exc))
        endpoint = notifier.endpoint(delivery, params)
        if self.throttle is not None:
            await self._rate_limit(delivery, partition, endpoint, params)
        admission = self.breakers.admit(endpoint)
        if not admission.allowed:
            return DeliveryOutcome.deferred(admission.reason, admission.wait)
        outcome = DeliveryOutcome.retryable("send interrupted", unreachable=True)
        fault_point("before-send")
        sending = time.monotonic()
        try:
            outcome = await asyncio.wait_for(notifier.send(delivery, params), self._send_timeout)
        except TimeoutError:
            outcome = DeliveryOutcome.retryable(f"timed out after {self._send_timeout:g}s", unreachable=True)
        except Exception as exc:  # a notifier bug: retry within budget rather than lose the delivery
            log.exception("notifier %s raised for delivery %s", delivery.kind, delivery.id)
            outcome = DeliveryOutcome.retryable(f"Exception error: {type(exc).__name__}: {exc}")
        finally:
            # Always, even when cancelled: a probe that never reports would keep its circuit shut.
            self.breakers.record(endpoint, admission, answered=not outcome.unreachable)
        outcome = dataclasses.replace(outcome, latency_ms=(time.monotonic() - sending) * 1000.0)
        if secrets and outcome.reason:
            outcome = dataclasses.replace(outcome, reason=SecretScrubber(secrets).scrub(outcome.reason))
        return outcome

    async def _rate_limit(
        self, delivery: Delivery, partition: int, endpoint: str | None, params: dict[str, Any]
    ) -> None:
        """Wait for the endpoint's rate limit (runherald.ratelimit) holding no send slot, recorded as
        pending with the reason meanwhile; raise Abandoned if the partition left this worker."""
        assert self.throttle is not None
        waited = False

        async def waiting(reason: str) -> None:
            nonlocal waited
            waited = True
            self._slots.release()
            if self._owns(partition):  # no attempt, no retry: only why it has not gone yet
                record = self._read(self.key_of(delivery))
                ledger.put_entry(
                    record, delivery.id, status=ledger.PENDING, reason=ledger.short_reason(reason)
                )
                await self._write(delivery, partition, record)

        try:
            await self.throttle.admit(delivery.kind, endpoint, params, partition, waiting)
        finally:
            if waited:
                await self._slots.acquire()
        if not self._owns(partition):
            raise Abandoned

    async def _record(
        self, delivery: Delivery, partition: int, offset: int | Awaitable[Any], outcome: DeliveryOutcome
    ) -> bool:
        """Record one attempt's outcome in the ledger (scheduling its retry); False if it was not
        recorded because the partition moved to another worker meanwhile.

        The run's record is read and written back with no await in between: other deliveries of the
        same run change it concurrently, and a change made between a read and a write would be lost.
        """
        if not self._owns(partition):
            # The partition moved while we were sending: its new owner redoes this delivery from the
            # ledger it recovered. Writing now could land after that recovery and record it twice.
            log.info(
                "partition %s moved during delivery %s; leaving it to the new owner", partition, delivery.id
            )
            return False
        key = self.key_of(delivery)
        # Only this task changes this delivery's entry while it is in flight.
        current = ledger.entry(self._read(key), delivery.id) or {}
        change = outcome_fields(delivery, partition, outcome, current, self._policy, time.time())
        fields, dead_letter, retry_at = change.fields, change.dead_letter, change.retry_at
        if retry_at is not None:
            # The ledger points at the delivery event instead of copying it: no secrets in the ledger.
            if not isinstance(offset, int):
                offset = int((await offset).offset)
            fields["retry"] = [partition, offset]
        if dead_letter is not None:
            await self._dead_letter(delivery, dead_letter, outcome.kind)
        if not self._owns(partition):
            return False
        record = self._read(key)
        ledger.put_entry(record, delivery.id, **fields)
        if outcome.thread is not None:
            conversation.put_thread(record, delivery.name, outcome.thread)
        if retry_at is not None:
            self.schedule(retry_at, delivery.id, key, partition)
            self._keep_for_retry(delivery, partition)
        await self._write(delivery, partition, record)
        return True

    def _keep_for_retry(self, delivery: Delivery, partition: int) -> None:
        # What stays is what the topic holds: the resolved params were never kept on the delivery.
        self._waiting[delivery.id] = (partition, delivery)
        self._waiting.move_to_end(delivery.id)
        while len(self._waiting) > RETRY_MEMORY:
            self._waiting.popitem(last=False)

    # -- retries ------------------------------------------------------------------------------------

    def schedule(self, due: float, delivery_id: str, key: str, partition: int) -> None:
        """Remember that a delivery waits for another attempt at `due` (epoch seconds)."""
        if delivery_id in self._scheduled:
            return
        self._scheduled.add(delivery_id)
        heapq.heappush(self._retries, _Retry(due, delivery_id, key, partition))
        self._wakeup.set()

    def schedule_from_record(self, key: str, partition: int, record: ledger.Record) -> None:
        for due, did in ledger.due_retries(record):
            self.schedule(due, did, key, partition)

    async def run_retries(self) -> None:
        """Fire scheduled retries when they fall due; runs until cancelled."""
        while True:
            self._wakeup.clear()
            now = time.time()
            while self._retries and self._retries[0].due <= now:
                item = heapq.heappop(self._retries)
                self._scheduled.discard(item.delivery_id)
                await self._fire(item)
            timeout = (self._retries[0].due - time.time()) if self._retries else 3600.0
            try:
                await asyncio.wait_for(self._wakeup.wait(), max(0.0, timeout))
            except TimeoutError:
                pass

    async def _fire(self, item: _Retry) -> None:
        if not self._owns(item.partition) or item.delivery_id in self.in_flight:
            return  # another worker owns it now (it reschedules from the ledger), or it is being sent
        found = ledger.entry(self._read(item.key), item.delivery_id)
        if not found or found.get("status") != ledger.PENDING or not found.get("retry"):
            self._waiting.pop(item.delivery_id, None)
            return
        if float(found.get("next_attempt_at") or 0) > time.time():
            self.schedule(float(found["next_attempt_at"]), item.delivery_id, item.key, item.partition)
            return
        partition, offset = found["retry"]
        kept = self._waiting.pop(item.delivery_id, None)
        try:
            delivery = kept[1] if kept else await self._fetch(int(partition), int(offset))
        except Exception as exc:
            log.warning(
                "cannot re-read delivery %s for its retry, trying again in 5s: %s", item.delivery_id, exc
            )
            self.schedule(time.time() + 5, item.delivery_id, item.key, item.partition)
            return
        if delivery.id in self.in_flight:
            return  # started by another path while it was read back
        delivery.attempts = int(found.get("attempts", 0))
        await self._begin(delivery, item.partition, int(offset), None)

    def forget_partitions(self, keep: Callable[[int], bool]) -> None:
        """Drop scheduled retries of partitions this worker no longer owns."""
        self._retries = [r for r in self._retries if keep(r.partition)]
        heapq.heapify(self._retries)
        self._scheduled = {r.delivery_id for r in self._retries}
        self._waiting = OrderedDict((k, v) for k, v in self._waiting.items() if keep(v[0]))
        if self.throttle is not None:
            self.throttle.drop_partitions(keep)

    async def drain(self, timeout: float = 5.0, partitions: set[int] | None = None) -> None:
        """Wait a little for sends under way (all, or those of some partitions)."""
        tasks = {t for t, p in self._tasks.items() if partitions is None or p in partitions}
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)


class DispatchStage:
    """deliveries ──► dispatch: read delivery events a fetch at a time and hand each to the Dispatcher;
    an event is acknowledged once its delivery's outcome is in the ledger (or already was)."""

    def __init__(self, *, app: Any, dispatcher: Dispatcher, dead_letters: Any, lock: asyncio.Lock) -> None:
        self._app = app  # streams.kafka.App: read epochs and acknowledgements
        self._dispatcher = dispatcher
        self._dead_letters = dead_letters  # streams.writers.DeadLetterWriter
        self._lock = lock  # shared with the evaluate stage: a rebalance waits for the batch under way
        self._lag = metrics.STAGE_LAG.labels("dispatch")

    async def handle(self, tp: TP, records: list[Any]) -> None:
        """One partition's records of one fetch, in offset order."""
        async with self._lock:
            epoch = self._app.read_epoch
            for index, message in enumerate(records):
                if index and not index % YIELD_EVERY:
                    await asyncio.sleep(0)
                await self._submit(tp, message, epoch)

    async def _submit(self, tp: TP, message: Any, epoch: int) -> None:
        offset = message.offset

        def acknowledge() -> None:
            self._app.ack_offsets(tp, (offset,), epoch)

        try:
            delivery = Delivery.from_record(orjson.loads(message.value))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            await self._dead_letters.malformed_delivery(message, f"malformed delivery: {exc}")
            acknowledge()
            return
        if delivery.created_at and not delivery.attempts:
            self._lag.observe(max(0.0, time.time() - delivery.created_at))
        await self._dispatcher.submit(delivery, message.partition, offset, acknowledge)


__all__ = ["DispatchStage", "Dispatcher"]
