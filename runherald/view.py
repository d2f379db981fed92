"""A read-only copy of the ledger and run index, so any worker can answer for any run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib

from aiokafka import AIOKafkaConsumer, TopicPartition

from runherald.config import Settings

log = logging.getLogger("runherald.view")


class LedgerView:
    """Follows the status and run-index topics from the beginning; values are kept as compact bytes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.status_topic = settings.topic("status")
        self.index_topic = settings.topic("run-index")
        self._records: dict[bytes, bytes] = {}
        self._runs: dict[bytes, bytes] = {}  # zlib-compressed run dicts
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.caught_up = asyncio.Event()

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
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
            partitions: list[TopicPartition] = []
            for topic in (self.status_topic, self.index_topic):
                found = self._consumer.partitions_for_topic(topic)
                if not found:
                    await self._consumer._client.force_metadata_update()
                    found = self._consumer.partitions_for_topic(topic)
                partitions += [TopicPartition(topic, p) for p in sorted(found or ())]
            if partitions and {tp.topic for tp in partitions} == {self.status_topic, self.index_topic}:
                return partitions
            await asyncio.sleep(0.5)

    async def _follow(self) -> None:
        assert self._consumer is not None
        partitions = await self._assign()
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        ends = await self._consumer.end_offsets(partitions)
        pending = {tp for tp, end in ends.items() if end > 0}
        if not pending:
            self.caught_up.set()
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, messages in batches.items():
                target = self._records if tp.topic == self.status_topic else self._runs
                for message in messages:
                    if message.key is None:
                        continue
                    if message.value is None:
                        target.pop(message.key, None)
                    elif target is self._runs:
                        target[message.key] = zlib.compress(message.value, 1)
                    else:
                        target[message.key] = message.value
                if tp in pending and messages and messages[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
            if pending and not self.caught_up.is_set():
                for tp in list(pending):
                    if await self._consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
            if not pending:
                self.caught_up.set()

    def record(self, key: str) -> bytes | None:
        """The raw ledger record of a run, if any."""
        return self._records.get(key.encode())

    def run(self, key: str) -> bytes | None:
        """The latest run dict (JSON, secrets redacted) of a run, if any."""
        raw = self._runs.get(key.encode())
        return zlib.decompress(raw) if raw else None

    def __len__(self) -> int:
        return len(self._runs)
