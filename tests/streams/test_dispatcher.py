"""The dispatcher's retry path, driven through its own interfaces (ledger and topic kept in dicts).

The pipeline tests run retries end to end on the broker; this one checks which copy of a delivery a
retry sends: the one kept in memory by the worker that scheduled it, else the one on the topic.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from runherald.notifiers import ChannelPreview, Notifier, NotifierSettings, WebhookNotifier
from runherald.streams import dispatch
from runherald.streams.dispatch import Dispatcher

from runherald import channels, ledger
from runherald.breaker import CircuitBreakers
from runherald.delivery import Delivery, DeliveryOutcome, OutcomeKind
from runherald.egress import EgressPolicy
from runherald.retry import RetryPolicy
from runherald.testing import Reply, WebhookReceiver


class FlakyNotifier:
    """Fails the first `failures` sends of each delivery (retryable), then succeeds."""

    kind = "webhook"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[str, int]] = []  # (delivery id, attempts it carried)
        self.params: list[dict[str, Any]] = []  # the params each send was handed

    def check_params(self, params: Mapping[str, Any]) -> None:
        channels.WEBHOOK.check_params(params)

    def endpoint(self, delivery: Delivery, params: Mapping[str, Any]) -> str | None:
        return None

    async def send(self, delivery: Delivery, params: Mapping[str, Any]) -> DeliveryOutcome:
        self.sent.append((delivery.id, delivery.attempts))
        self.params.append(dict(params))
        if sum(1 for did, _ in self.sent if did == delivery.id) <= self.failures:
            return DeliveryOutcome.retryable("HTTP 503 Service Unavailable")
        return DeliveryOutcome.sent()

    def preview(
        self,
        message: str,
        severity: str,
        runs: Sequence[Mapping[str, Any]],
        *,
        name: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> ChannelPreview | None:
        return None

    async def close(self) -> None:
        return None


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

    async def dead_letter(delivery: Delivery, reason: str, outcome: OutcomeKind) -> None:
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


async def test_the_notifier_is_handed_the_resolved_params_and_the_delivery_keeps_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNHERALD_SECRET_TEST_HOOK_TOKEN", "t0ken-4711")
    delivery = make_delivery(0)
    delivery.notification["secret_params"] = {"headers": {"X-Token": "${RUNHERALD_SECRET_TEST_HOOK_TOKEN}"}}
    configured = copy.deepcopy(delivery.notification)
    notifier, _, _ = await run_dispatcher([delivery], failures=1)
    assert isinstance(notifier, Notifier)
    resolved = {"url": "http://example.invalid/", "headers": {"X-Token": "t0ken-4711"}}
    assert notifier.params == [resolved, resolved]  # the first attempt and its retry
    assert delivery.notification == configured  # secret references unresolved, as on the topic
    assert not hasattr(delivery, "params")


async def test_retries_beyond_the_memory_read_the_delivery_back(monkeypatch: Any) -> None:
    monkeypatch.setattr(dispatch, "RETRY_MEMORY", 2)
    _, fetched, entries = await run_dispatcher([make_delivery(i) for i in range(6)], failures=1)
    assert all(entry["status"] == ledger.SENT and entry["attempts"] == 2 for entry in entries.values())
    # Only the two most recently failed deliveries were kept; the other four came back from the topic.
    assert len(fetched) == 4
    assert {offset for _, offset in fetched} <= set(range(6))


async def test_a_hanging_endpoint_opens_its_circuit_and_its_deliveries_wait_without_attempts() -> None:
    """Real HTTP on loopback: after two timeouts in a row the endpoint gets no more requests until its
    cool-down ends; its deliveries are recorded as waiting (no attempt used), another path of the same
    server is not held back, and once the endpoint answers again every delivery is sent."""
    records: dict[str, bytes] = {}
    dead: list[str] = []

    async def write_record(delivery: Delivery, partition: int, record: ledger.Record) -> None:
        records[Dispatcher.key_of(delivery)] = ledger.dump(record)

    async def fetch_delivery(partition: int, offset: int) -> Delivery:
        raise AssertionError("retries here use the copies kept in memory")

    async def dead_letter(delivery: Delivery, reason: str, outcome: OutcomeKind) -> None:
        dead.append(reason)

    async with WebhookReceiver() as receiver:
        receiver.hang("/down")
        notifier = WebhookNotifier(NotifierSettings(egress=EgressPolicy(allow_loopback=True), timeout=5.0))
        dispatcher = Dispatcher(
            notifier_for=lambda kind: notifier,
            read_record=lambda key: ledger.load(records.get(key), *key.split("/")),
            write_record=write_record,
            dead_letter=dead_letter,
            fetch_delivery=fetch_delivery,
            policy=RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=0.5),
            send_timeout=0.2,
            max_in_flight=100,
            breakers=CircuitBreakers(2, 0.6, 5.0),
        )

        def hook(i: int, path: str) -> Delivery:
            delivery = make_delivery(i)
            delivery.notification["params"]["url"] = receiver.url(path) + f"?uid={i}"
            return delivery

        retries = asyncio.create_task(dispatcher.run_retries())
        try:
            down = [hook(i, "/down") for i in range(5)]
            for offset, delivery in enumerate(down):
                await dispatcher.submit(delivery, 0, offset, lambda: None)
                await settled(lambda d=delivery: entry_of(records, d)["status"] is not None)
            # Two requests timed out; the other three deliveries were never attempted.
            assert len(receiver.requests_to("/down")) == 2
            waiting = [entry_of(records, d) for d in down[2:]]
            assert all(e["status"] == ledger.PENDING and e["attempts"] == 0 for e in waiting)
            assert all(e["reason"].startswith("not sent: http://127.0.0.1:") for e in waiting)
            assert "/down" not in waiting[0]["reason"]  # paths may hold tokens: never in a reason
            assert dispatcher.breakers.open_endpoints() == 1

            # The same server's other path is sent at once.
            up = hook(9, "/up")
            await dispatcher.submit(up, 0, 9, lambda: None)
            await settled(lambda: entry_of(records, up)["status"] == ledger.SENT)

            # Retries of the timed-out two fall due within the cool-down: deferred, not sent.
            await settled(lambda: all(entry_of(records, d)["attempts"] == 1 for d in down[:2]))
            await settled(
                lambda: all(entry_of(records, d)["reason"].startswith("not sent") for d in down[:2])
            )
            assert len(receiver.requests_to("/down")) == 2

            receiver.reply("/down", Reply())
            await settled(lambda: all(entry_of(records, d)["status"] == ledger.SENT for d in down), 15)
        finally:
            retries.cancel()
            await notifier.close()
    entries = [entry_of(records, d) for d in down]
    assert dead == []
    # The timed-out two used one attempt more than the three that only waited (one delivery may have
    # been the probe that found the endpoint still hanging).
    assert sum(e["attempts"] for e in entries) in (7, 8)
    assert all(e["attempts"] >= 2 for e in entries[:2])
    assert dispatcher.breakers.open_endpoints() == 0
