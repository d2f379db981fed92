"""faust's aiokafka transport, subclassed (not forked) for these things:

- The consumer's fetch wait comes from our settings. faust hard-codes ``fetch_max_wait_ms=1500``; the
  embedded broker holds every fetch that long even when data is waiting: 1.5 s on every hop.
- End offsets are corrected where the broker under-reports them (see ``true_end_offsets``).
- Batch topics. faust hands records to agents one at a time, and that path alone costs about 200 µs an
  event (a task and a queue hop each). For a topic given a batch handler, the records of each fetch go
  to the handler as one list per partition instead, and offsets are acknowledged through
  ``ack_offsets``. faust still owns the group, the assignment, tables and commits.
- The consumer runs on the worker's event loop. faust gives it a thread of its own with a second
  loop, and every fetch then crosses between the two loops and their threads contend for the GIL.
  Measured at 200 runs/s: publish to evaluate p50 ~8 ms in the loop against ~11 ms in the thread,
  for the same CPU. ``App.consumer_thread = True`` (``RUNHERALD_CONSUMER_THREAD``) restores faust's
  thread.
- Topics whose records may wait (``batch_topic(..., fetch_every=...)``) go in one fetch per interval
  instead of every fetch (see ``_fetch_slow_topics_less_often``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any

import aiokafka
import aiokafka.errors
import faust
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import maybe_async

# (partition, records of one fetch in offset order) -> None; records are aiokafka ConsumerRecords.
BatchHandler = Callable[[TP, list[Any]], Awaitable[None]]


def _servers(app: Any) -> list[tuple[str, int]]:
    servers = []
    for url in app.conf.broker_consumer:
        host = url.host or "localhost"
        servers.append((host, int(url.port or 9092)))
    return servers


async def true_end_offsets(
    client_kwargs: Mapping[str, Any], reported: Mapping[TopicPartition, int], timeout: float = 10.0
) -> dict[TopicPartition, int]:
    """End offsets corrected by a fetch: some brokers (the embedded Tansu among them) report, after a
    multi-record batch, the batch's base offset + 1 instead of the true end. A fetch from there
    returns the whole batch and the true high watermark. faust stops table recovery at the end
    offset it is told, so an under-reported one silently drops the newest changelog records.
    `client_kwargs`: servers and security (runherald.kafka_clients.client_kwargs).
    """
    corrected = dict(reported)
    probe = [tp for tp, end in reported.items() if end > 0]
    if not probe:
        return corrected
    consumer = aiokafka.AIOKafkaConsumer(**client_kwargs, enable_auto_commit=False, fetch_max_wait_ms=5)
    await consumer.start()
    try:
        consumer.assign(probe)
        for tp in probe:
            consumer.seek(tp, reported[tp] - 1)
        pending = set(probe)
        deadline = asyncio.get_running_loop().time() + timeout
        while pending and asyncio.get_running_loop().time() < deadline:
            await consumer.getmany(*pending, timeout_ms=200)
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    corrected[tp] = max(corrected[tp], highwater)
                    pending.discard(tp)
                    consumer.pause(tp)
    finally:
        await consumer.stop()
    return corrected


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer service: in a thread of its own, or on the worker's loop (``thread_loop`` is
    the parent loop). On the loop, mode's ServiceThread runs as a task instead of a thread, and calls
    that faust would queue to the thread are awaited directly."""

    _serving: asyncio.Future[Any] | None = None

    @property
    def in_loop(self) -> bool:
        return self.thread_loop is self.parent_loop

    def verify_event_path(self, now: float, tp: TP) -> None:
        # A table's changelog (the status and history topics) is read at recovery only: its position
        # stays where recovery ended while this worker appends to it, which faust's livelock check
        # would log every few seconds, 5 minutes after start, as a stream that never started.
        if tp.topic in self.consumer.app.tables.changelog_topics:
            return None
        return super().verify_event_path(now, tp)

    async def start(self) -> None:
        if not self.in_loop:
            await super().start()
            return
        # mode's ServiceThread.start, with the thread's body (_serve) as a task on this loop.
        assert not self._thread_started.is_set()
        self._thread_started.set()
        self._thread_running = asyncio.Future(loop=self.parent_loop)
        self._serving = asyncio.ensure_future(self._serve())
        self._serving.add_done_callback(_consume_result)  # a crash is reported by _serve itself
        try:
            if not self.should_stop:
                await self._thread_running  # set once started; raises if starting failed
        finally:
            self._thread_running = None

    async def _gather_remaining_tasks(self) -> None:
        # The thread's version cancels every task of its loop: here that loop is the worker's.
        if not self.in_loop:
            await super()._gather_remaining_tasks()

    async def call_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.in_loop:
            return await maybe_async(fun(*args, **kwargs))
        return await super().call_thread(fun, *args, **kwargs)

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            consumer._fetch_max_wait_ms = int(wait_ms)
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        # aiokafka keeps its prefetch backoff: no fetch goes to a broker while fetched records wait
        # to be taken (the stages take them within a few milliseconds). Without it the next fetch
        # went at once but without the partitions that had just had records, and a record arriving
        # there waited for two broker holds instead of one. That was a win (p99 33 against 38 ms)
        # while every fetch also brought back the deliveries topic; with that topic in one fetch
        # per 250 ms, keeping the backoff is: 5 paired runs at 200 runs/s, p99 better in 4 (median
        # 26.5 against 28.5 ms), publish to evaluate p90 better in all 5.
        fetcher = self._ensure_consumer()._fetcher
        slow = dict(getattr(self.app, "slow_topics", {}))
        if slow:
            _fetch_slow_topics_less_often(fetcher, slow)

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        reported = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return reported
        kwargs = getattr(self.app, "client_kwargs", None) or {
            "bootstrap_servers": ",".join(f"{host}:{port}" for host, port in _servers(self.app))
        }
        corrected = await true_end_offsets(
            kwargs, {TopicPartition(tp.topic, tp.partition): v for tp, v in reported.items()}
        )
        return {tp: corrected[TopicPartition(tp.topic, tp.partition)] for tp in reported}


class _Lane:
    """An assignment seen without some of its partitions (aiokafka's fetcher reads only these two)."""

    def __init__(self, assignment: Any, tps: Iterable[TopicPartition]) -> None:
        self._assignment = assignment
        self.tps = list(tps)

    def state_value(self, tp: TopicPartition) -> Any:
        return self._assignment.state_value(tp)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._assignment, name)


def _fetch_slow_topics_less_often(fetcher: Any, every: Mapping[str, float]) -> None:
    """Leave the partitions of some topics out of the fetcher's requests except once per interval.

    Every fetch costs the client and the broker per partition in it, and the embedded broker holds
    each fetch for its whole wait. A topic whose records nobody waits for (the deliveries topic: its
    deliveries are sent as soon as evaluate decides them; reading them back only acknowledges them)
    need not be in every fetch.
    """
    plan = fetcher._get_actions_per_node
    due: dict[str, float] = dict.fromkeys(every, 0.0)

    def actions(assignment: Any) -> Any:
        now = time.monotonic()
        left_out = {topic for topic, at in due.items() if now < at}
        if not left_out:
            result = plan(assignment)
        else:
            result = plan(_Lane(assignment, (tp for tp in assignment.tps if tp.topic not in left_out)))
        for _node, request in result[0]:
            for topic, _partitions in request.topics:
                if topic in due:
                    due[topic] = now + every[topic]
        return result

    fetcher._get_actions_per_node = actions


def _consume_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class _Consumer(faust_aiokafka.Consumer):
    # Counts rebalances. A record handed to a batch handler may only be acknowledged in the epoch it
    # was read in: once partitions are revoked, faust forgets their acknowledgements and reads them
    # again from the last commit, and an acknowledgement arriving after that (a send that outlived the
    # rebalance, its outcome never written) would otherwise count for the next assignment and let a
    # commit pass a record whose effect is not in the ledger.
    epoch = 0

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.epoch += 1
        await super().on_partitions_revoked(revoked)

    def lag(self, topics: Collection[str]) -> dict[tuple[str, int], int]:
        """(topic, partition) -> records not read yet, for the assigned partitions of these topics:
        the high watermark the last fetch reported minus the next offset to read (the committed one
        before the first read). Partitions not fetched yet are left out."""
        lags: dict[tuple[str, int], int] = {}
        for tp in self.assignment():
            if tp.topic not in topics:
                continue
            try:
                highwater = self.highwater(tp)
            except (aiokafka.errors.KafkaError, AssertionError):  # revoked meanwhile, or not started
                continue
            position = self._read_offset.get(tp)
            if position is None:
                position = self._committed_offset.get(tp)
            if highwater is not None:
                # Nothing read or committed yet: everything from the log's start waits.
                lags[(tp.topic, tp.partition)] = max(0, highwater - (position or 0))
        return lags

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        if getattr(self.app, "consumer_thread", False):
            return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)
        return _ConsumerThread(self, loop=self.loop, thread_loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        records, active = await super()._wait_next_records(timeout)
        handlers: dict[str, BatchHandler] = getattr(self.app, "batch_handlers", {})
        if records and handlers:
            rest = {}
            for tp, batch in records.items():
                handler = handlers.get(tp.topic)
                if handler is None:
                    rest[tp] = batch
                elif self.flow_active and (active is None or tp in active):
                    # While the flow is stopped (a rebalance) the records are dropped: faust seeks
                    # every partition back to its committed offset before the flow resumes.
                    await self._handle_batch(TP(tp.topic, tp.partition), batch, handler)
            records = rest
        return records, active

    async def _handle_batch(self, tp: TP, batch: list[Any], handler: BatchHandler) -> None:
        expected = self._read_offset[tp]  # the next offset this partition should deliver
        if expected is not None:
            batch = [record for record in batch if record.offset >= expected]
        if not batch:
            return
        first = batch[0].offset
        if expected is not None and first > expected:
            await self._add_gap(tp, expected, first - 1)  # offsets the log no longer has
        for before, after in itertools.pairwise(batch):
            if after.offset > before.offset + 1:
                await self._add_gap(tp, before.offset + 1, after.offset - 1)
        await handler(tp, batch)
        self._read_offset[tp] = batch[-1].offset + 1

    def ack_offsets(self, tp: TP, offsets: Iterable[int], epoch: int) -> None:
        """Mark records of a batch topic read in `epoch` as done: faust commits up to the first one
        not done. Records read before the last rebalance are not acknowledged: they are read again."""
        if epoch != self.epoch:
            return
        with ack_lock:
            committed = self._committed_offset[tp]
            index = self._acked_index[tp]
            acked = self._acked[tp]
            for offset in offsets:
                if (committed is None or offset >= committed) and offset not in index:
                    index.add(offset)
                    acked.append(offset)
                    self._n_acked += 1


class _Producer(faust_aiokafka.Producer):
    """faust's producer, idempotent when the app says so (``App.idempotent_producer``: the worker
    decides it from the cluster at start). faust turns idempotence on only inside transactions."""

    def _settings_extra(self) -> Mapping[str, Any]:
        extra = dict(super()._settings_extra())
        extra.setdefault("enable_idempotence", bool(getattr(self.app, "idempotent_producer", False)))
        return extra


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = _Producer


class App(faust.App):
    """A faust App whose consumer honours ``fetch_max_wait_ms``, runs on the app's loop and has batch
    topics."""

    fetch_max_wait_ms: int | None = None
    consumer_thread: bool = False  # run the consumer in faust's own thread instead of on the loop
    idempotent_producer: bool = False  # the producer's enable_idempotence (acks: conf.producer_acks)
    client_kwargs: Mapping[str, Any] | None = None  # servers and security for the clients made here

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_handlers: dict[str, BatchHandler] = {}
        self.slow_topics: dict[str, float] = {}

    def batch_topic(self, topic: Any, handler: BatchHandler, *, fetch_every: float = 0.0) -> None:
        """Subscribe to `topic` (a faust Topic) and give its records to `handler` a fetch at a time.

        With `fetch_every` (seconds) its partitions go in one fetch per that interval instead of in
        every fetch: for a topic whose records may wait that long.
        """
        self.topics.add(topic)
        for name in topic.topics:
            self.batch_handlers[name] = handler
            if fetch_every > 0:
                self.slow_topics[name] = fetch_every

    @property
    def read_epoch(self) -> int:
        """The rebalance epoch records are read in now; pass it back with their acknowledgement."""
        return int(self.consumer.epoch)  # type: ignore[attr-defined]

    def ack_offsets(self, tp: TP, offsets: Iterable[int], epoch: int) -> None:
        """Acknowledge records handed to a batch handler (see ``batch_topic``) in `epoch`."""
        self.consumer.ack_offsets(tp, offsets, epoch)  # type: ignore[attr-defined]

    def consumer_lag(self, topics: Collection[str]) -> dict[tuple[str, int], int]:
        """Records not read yet per assigned (topic, partition) of these topics (see ``_Consumer.lag``)."""
        lags: dict[tuple[str, int], int] = self.consumer.lag(topics)  # type: ignore[attr-defined]
        return lags

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)
