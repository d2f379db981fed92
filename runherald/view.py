"""A read-only copy of the ledger and run index, so any worker can answer for any run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from runherald.config import Settings
from runherald.kafka_clients import client_kwargs
from runherald.streams.kafka import true_end_offsets

log = logging.getLogger("runherald.view")


class LedgerView:
    """Follows the status topic (the ledger) from the beginning; values are kept as the bytes read."""

    def __init__(
        self, settings: Settings, on_records: Callable[[Mapping[bytes, bytes]], None] | None = None
    ) -> None:
        self.settings = settings
        self._on_records = on_records  # handed each fetch's records (key -> latest value): the projection
        self.status_topic = settings.topic("status")
        self._records: dict[bytes, bytes] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.caught_up = asyncio.Event()

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **client_kwargs(self.settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # The view serves reads for runs this worker does not own: 100 ms of staleness is fine, and
            # fewer, fuller fetches leave the broker and this process more time for the pipeline.
            fetch_max_wait_ms=max(self.settings.fetch_max_wait_ms, 100),
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _assign(self) -> list[TopicPartition]:
        assert self._consumer is not None
        while True:
            found = self._consumer.partitions_for_topic(self.status_topic)
            if not found:
                await self._consumer._client.force_metadata_update()
                found = self._consumer.partitions_for_topic(self.status_topic)
            partitions = [TopicPartition(self.status_topic, p) for p in sorted(found or ())]
            if partitions:
                return partitions
            await asyncio.sleep(0.5)

    async def _follow(self) -> None:
        assert self._consumer is not None
        partitions = await self._assign()
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        ends = await true_end_offsets(
            client_kwargs(self.settings), await self._consumer.end_offsets(partitions)
        )
        pending = {tp for tp, end in ends.items() if end > 0}
        if not pending:
            self.caught_up.set()
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000, max_records=5000)
            read: dict[bytes, bytes] = {}
            for tp, messages in batches.items():
                for message in messages:
                    if message.key is None:
                        continue
                    if message.value is None:
                        self._records.pop(message.key, None)
                        read.pop(message.key, None)
                    else:
                        self._records[message.key] = message.value
                        read[message.key] = message.value
                if tp in pending and messages and messages[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
            if pending and not self.caught_up.is_set():
                for tp in list(pending):
                    if await self._consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
            if read and self._on_records is not None:
                self._on_records(read)
            if not pending:
                self.caught_up.set()

    def record(self, key: str) -> bytes | None:
        """The raw ledger record of a run, if any."""
        return self._records.get(key.encode())

    def __len__(self) -> int:
        return len(self._records)
