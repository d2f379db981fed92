"""The ledger writer and the dead-letter writer, alone.

The producer is stood in for by an in-memory recorder (the real one needs a broker, which the
pipeline tests use): it records what was appended, in order, and can hold an append back the way
aiokafka's send waits for room in a full batch.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from runherald.streams.writers import DeadLetterWriter, LedgerWriter

from runherald import ledger
from runherald.delivery import Delivery, OutcomeKind


class Store(dict[bytes, bytes]):
    """faust's memory store as the writer uses it: a dict that knows each key's partition."""

    def __init__(self) -> None:
        super().__init__()
        self._key_partition: dict[bytes, int] = {}


class Table:
    def __init__(self) -> None:
        self.data = Store()


class RecordingWriter:
    """Appends in call order; `hold` makes the next append wait until released."""

    def __init__(self) -> None:
        self.appended: list[tuple[str, bytes | None, bytes, int | None]] = []
        self.hold: asyncio.Event | None = None

    async def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> Any:
        if self.hold is not None:
            hold, self.hold = self.hold, None
            await hold.wait()
        self.appended.append((topic, key, value, partition))
        return None


def record_with(status: str) -> ledger.Record:
    record = ledger.new_record("p", "u")
    ledger.put_entry(record, "d1", status=status)
    return record


def statuses(appended: list[tuple[str, bytes | None, bytes, int | None]]) -> list[str]:
    return [orjson.loads(value)["deliveries"]["d1"]["status"] for _, _, value, _ in appended]


async def test_a_newer_version_never_reaches_the_topic_before_an_older_one() -> None:
    writer = RecordingWriter()
    ledger_writer = LedgerWriter(Table(), writer, "status")  # type: ignore[arg-type]
    ledger_writer.set(2, b"p/u", record_with(ledger.PENDING))
    release = asyncio.Event()
    writer.hold = release
    flushing = asyncio.create_task(ledger_writer.flush())  # held inside the append, like a full batch
    await asyncio.sleep(0)
    putting = asyncio.create_task(ledger_writer.put(2, b"p/u", record_with(ledger.SENT)))
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(flushing, putting)
    # The held append took the table's value when it went: whatever is last on the topic is the newest.
    assert statuses(writer.appended)[-1] == ledger.SENT
    assert all(partition == 2 for _, _, _, partition in writer.appended)


async def test_set_waits_for_a_flush_and_put_writes_at_once() -> None:
    writer = RecordingWriter()
    ledger_writer = LedgerWriter(Table(), writer, "status")  # type: ignore[arg-type]
    ledger_writer.set(1, b"p/u", record_with(ledger.PENDING))
    assert writer.appended == [] and ledger_writer.pending == 1
    await ledger_writer.put(1, b"p/u", record_with(ledger.SENT))
    assert statuses(writer.appended) == [ledger.SENT]  # one write carried both changes
    await ledger_writer.flush()
    assert len(writer.appended) == 1 and ledger_writer.pending == 0
    assert ledger_writer.partitions[b"p/u"] == 1


async def test_dead_letter_records_say_why_where_from_and_carry_no_literal_secret() -> None:
    writer = RecordingWriter()
    dead_letters = DeadLetterWriter(writer, "dead-letter")  # type: ignore[arg-type]
    delivery = Delivery(
        id="d1",
        project="p",
        uid="u",
        name="hook",
        state="error",
        kind="webhook",
        message="m",
        severity="info",
        runs=[],
        notification={"kind": "webhook", "name": "hook", "secret_params": {"token": "s3cret-value"}},
    )
    await dead_letters.delivery(delivery, "gave up after 8 attempts: 503", OutcomeKind.RETRYABLE)
    [(topic, key, value, _)] = writer.appended
    assert (topic, key) == ("dead-letter", b"p/u")
    record = orjson.loads(value)
    assert record["reason"] == "gave up after 8 attempts: 503" and record["stage"] == "dispatch"
    assert record["source"] == {"delivery_id": "d1", "name": "hook", "state": "error"}
    assert b"s3cret-value" not in value


class AckingWriter(RecordingWriter):
    """Hands back each append's future, as aiokafka does: resolved when the broker acknowledges it."""

    def __init__(self) -> None:
        super().__init__()
        self.acks: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> Any:
        await super().send(topic, key, value, partition)
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]


async def test_written_returns_once_the_last_append_of_the_key_is_acknowledged() -> None:
    writer = AckingWriter()
    ledger_writer = LedgerWriter(Table(), writer, "status")  # type: ignore[arg-type]
    await ledger_writer.written(b"p/u")  # nothing appended: nothing to wait for
    await ledger_writer.put(0, b"p/u", record_with(ledger.PENDING))
    await ledger_writer.put(0, b"p/u", record_with(ledger.SENT))
    waiting = asyncio.create_task(ledger_writer.written(b"p/u"))
    writer.acks[0].set_result(None)
    await asyncio.sleep(0.01)
    assert not waiting.done()  # the first append is acknowledged, not the last
    writer.acks[1].set_result(None)
    await asyncio.wait_for(waiting, 1)
    assert not ledger_writer._appending  # forgotten once acknowledged
