"""The dispatcher's retry path, driven through its own interfaces (ledger and topic kept in dicts).

The pipeline tests run retries end to end on the broker; this one checks which copy of a delivery a
retry sends: the one kept in memory by the worker that scheduled it, else the one on the topic.
"""

from __future__ import annotations

import asyncio
from typing import Any

from runherald.streams import dispatch, ledger
from runherald.streams.dispatch import Dispatcher

from runherald.delivery import Delivery, DeliveryOutcome
from runherald.retry import RetryPolicy


class FlakyNotifier:
    """Fails the first `failures` sends of each delivery (retryable), then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[str, int]] = []  # (delivery id, attempts it carried)

    async def send(self, delivery: Delivery) -> DeliveryOutcome:
        self.sent.append((delivery.id, delivery.attempts))
        if sum(1 for did, _ in self.sent if did == delivery.id) <= self.failures:
            return DeliveryOutcome.retryable("HTTP 503 Service Unavailable")
        return DeliveryOutcome.sent()


def make_delivery(i: int) -> Delivery:
    return Delivery(
        id=f"d{i}",
        project="p",
        uid=f"u{i}",
        name="hook",
        state="completed",
        kind="webhook",
        message="done",
        severity="info",
        runs=[],
        notification={"kind": "webhook", "name": "hook", "params": {"url": "http://example.invalid/"}},
    )


async def run_dispatcher(deliveries: list[Delivery], failures: int) -> tuple[FlakyNotifier, list, dict]:
    records: dict[str, bytes] = {}
    topic = {(0, i): d.to_record() for i, d in enumerate(deliveries)}
    fetched: list[tuple[int, int]] = []
    notifier = FlakyNotifier(failures)

    async def write_record(delivery: Delivery, partition: int, record: ledger.Record) -> None:
        records[Dispatcher.key_of(delivery)] = ledger.dump(record)

    async def fetch_delivery(partition: int, offset: int) -> Delivery:
        fetched.append((partition, offset))
        return Delivery.from_record(topic[(partition, offset)])

    async def dead_letter(delivery: Delivery, reason: str) -> None:
        raise AssertionError(f"nothing should be dead-lettered: {reason}")

    dispatcher = Dispatcher(
        notifier_for=lambda kind: notifier,
        read_record=lambda key: ledger.load(records.get(key), *key.split("/")),
        write_record=write_record,
        dead_letter=dead_letter,
        fetch_delivery=fetch_delivery,
        policy=RetryPolicy(max_attempts=5, base_delay=0.02, max_delay=0.05),
        send_timeout=5,
        max_in_flight=100,
    )
    acknowledged: list[str] = []
    retries = asyncio.create_task(dispatcher.run_retries())
    try:
        for offset, delivery in enumerate(deliveries):
            await dispatcher.submit(delivery, 0, offset, lambda d=delivery: acknowledged.append(d.id))
        await settled(
            lambda: (
                len(acknowledged) == len(deliveries)
                and not dispatcher.in_flight
                and all(entry_of(records, d)["status"] == ledger.SENT for d in deliveries)
            )
        )
    finally:
        retries.cancel()
    return notifier, fetched, {d.id: entry_of(records, d) for d in deliveries}


def entry_of(records: dict[str, bytes], delivery: Delivery) -> dict[str, Any]:
    """The delivery's ledger entry, or a placeholder while it has none."""
    raw = records.get(Dispatcher.key_of(delivery))
    found = ledger.entry(ledger.load(raw), delivery.id) if raw else None
    return found or {"status": None}


async def settled(done: Any, within: float = 10.0) -> None:
    """Wait until done() is true."""
    for _ in range(int(within / 0.01)):
        if done():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the dispatcher did not settle")


async def test_retries_send_the_copy_kept_in_memory_without_reading_the_topic() -> None:
    notifier, fetched, entries = await run_dispatcher([make_delivery(i) for i in range(5)], failures=2)
    assert fetched == []
    assert all(entry["status"] == ledger.SENT and entry["attempts"] == 3 for entry in entries.values())
    # Each attempt carried the attempts recorded before it.
    assert sorted(a for did, a in notifier.sent if did == "d0") == [0, 1, 2]


async def test_retries_beyond_the_memory_read_the_delivery_back(monkeypatch: Any) -> None:
    monkeypatch.setattr(dispatch, "RETRY_MEMORY", 2)
    _, fetched, entries = await run_dispatcher([make_delivery(i) for i in range(6)], failures=1)
    assert all(entry["status"] == ledger.SENT and entry["attempts"] == 2 for entry in entries.values())
    # Only the two most recently failed deliveries were kept; the other four came back from the topic.
    assert len(fetched) == 4
    assert {offset for _, offset in fetched} <= set(range(6))
