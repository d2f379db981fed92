"""Deliveries waiting for their endpoint's rate limit: in order, recorded pending with the reason, no
attempt used, let go when their partition leaves; driven through the dispatcher's own interfaces."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from runherald.notifiers import ChannelPreview
from runherald.streams.dispatch import Dispatcher
from runherald.streams.throttle import Abandoned, Throttle

from runherald import ledger
from runherald.delivery import Delivery, DeliveryOutcome, OutcomeKind
from runherald.ratelimit import RateLimiter
from runherald.retry import RetryPolicy

URL = "http://hooks.example.invalid/T0/secret-path"
ENDPOINT = "http://hooks.example.invalid:80/T0/secret-path"


class RecordingNotifier:
    kind = "webhook"

    def __init__(self) -> None:
        self.sent: list[tuple[str, float]] = []

    def check_params(self, params: Mapping[str, Any]) -> None:
        return None

    def endpoint(self, delivery: Delivery, params: Mapping[str, Any]) -> str | None:
        return ENDPOINT

    async def send(self, delivery: Delivery, params: Mapping[str, Any]) -> DeliveryOutcome:
        self.sent.append((delivery.id, time.monotonic()))
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


def make_delivery(i: int, per_second: float) -> Delivery:
    params = {"url": URL, "rate_limit": {"per_second": per_second, "burst": 1}}
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
        notification={"kind": "webhook", "name": "hook", "params": params},
    )


async def no_wait(reason: str) -> None:
    raise AssertionError(f"should not wait: {reason}")


async def test_waiting_deliveries_go_in_arrival_order_and_are_told_why() -> None:
    throttle = Throttle(RateLimiter(share=1.0))
    params = {"rate_limit": {"per_second": 50, "burst": 1}}
    reasons: list[str] = []
    order: list[int] = []

    async def one(i: int) -> None:
        async def waiting(reason: str) -> None:
            reasons.append(reason)

        await throttle.admit("webhook", ENDPOINT, params, 0, waiting)
        order.append(i)

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(6)))
    # The first goes at once, the other five wait a fiftieth of a second each (at least).
    assert time.monotonic() - started >= 5 / 50 * 0.99
    assert order == list(range(6))
    assert len(reasons) == 5
    assert reasons[0] == "waiting for the rate limit of http://hooks.example.invalid:80/REDACTED: 50/s"
    # Unlimited (no rate_limit, not Slack) and endpoint-less deliveries never wait.
    for _ in range(100):
        await throttle.admit("webhook", ENDPOINT, {}, 0, no_wait)
        await throttle.admit("slack", None, {}, 0, no_wait)


async def test_a_worker_with_half_the_partitions_says_its_share_and_lets_go_of_a_partition_that_left() -> (
    None
):
    throttle = Throttle(RateLimiter())
    throttle.set_share(2, 4)
    params = {"rate_limit": {"per_second": 2, "burst": 1}}
    reasons: list[str] = []

    async def waiting(reason: str) -> None:
        reasons.append(reason)

    await throttle.admit("webhook", ENDPOINT, params, 1, no_wait)
    kept = asyncio.create_task(throttle.admit("webhook", ENDPOINT, params, 1, waiting))
    gone = asyncio.create_task(throttle.admit("webhook", ENDPOINT, params, 3, waiting))
    await asyncio.sleep(0.05)
    assert reasons[-1].endswith(": 2/s; this worker's share: 1/s")
    throttle.drop_partitions(lambda partition: partition != 3)
    with pytest.raises(Abandoned):
        await gone
    await asyncio.wait_for(kept, 5)  # at 1/s, about a second after the first
    assert throttle.waiting() == 0


async def test_the_dispatcher_records_a_waiting_delivery_pending_with_the_reason_and_no_attempt() -> None:
    records: dict[str, bytes] = {}
    seen: dict[str, list[dict[str, Any]]] = {}  # delivery id -> its entry at each ledger write
    notifier = RecordingNotifier()

    async def write_record(delivery: Delivery, partition: int, record: ledger.Record) -> None:
        records[Dispatcher.key_of(delivery)] = ledger.dump(record)
        seen.setdefault(delivery.id, []).append(dict(record["deliveries"][delivery.id]))

    async def dead_letter(delivery: Delivery, reason: str, outcome: OutcomeKind) -> None:
        raise AssertionError(reason)

    async def fetch(partition: int, offset: int) -> Delivery:
        raise AssertionError("no retry expected")

    dispatcher = Dispatcher(
        notifier_for=lambda kind: notifier,
        read_record=lambda key: ledger.load(records.get(key), *key.split("/")),
        write_record=write_record,
        dead_letter=dead_letter,
        fetch_delivery=fetch,
        policy=RetryPolicy(max_attempts=3, base_delay=0.02, max_delay=0.05),
        send_timeout=5,
        max_in_flight=2,  # fewer slots than waiting deliveries: they wait holding none
        throttle=Throttle(RateLimiter(share=1.0)),
    )
    deliveries = [make_delivery(i, per_second=40) for i in range(8)]
    acknowledged: list[str] = []
    for offset, delivery in enumerate(deliveries):
        await dispatcher.submit(delivery, 0, offset, lambda d=delivery: acknowledged.append(d.id))
    for _ in range(500):
        if len(acknowledged) == len(deliveries) and not dispatcher.in_flight:
            break
        await asyncio.sleep(0.01)
    assert sorted(acknowledged) == sorted(d.id for d in deliveries)
    assert [did for did, _ in notifier.sent] == [d.id for d in deliveries]
    gaps = [b - a for (_, a), (_, b) in zip(notifier.sent, notifier.sent[1:], strict=False)]
    assert min(gaps) >= 1 / 40 * 0.9  # no two closer than the limit allows (a lower bound only)
    waited = [did for did, writes in seen.items() if len(writes) == 2]
    assert len(waited) == 7  # all but the first waited
    for did in waited:
        first, last = seen[did]
        assert first["status"] == ledger.PENDING
        assert (
            first["reason"] == "waiting for the rate limit of http://hooks.example.invalid:80/REDACTED: 40/s"
        )
        assert (last["status"], last["reason"], last["attempts"]) == (ledger.SENT, None, 1)


class TooManyRequestsOnce(RecordingNotifier):
    """Answers the first send 429 with Retry-After, then takes them."""

    async def send(self, delivery: Delivery, params: Mapping[str, Any]) -> DeliveryOutcome:
        self.sent.append((delivery.id, time.monotonic()))
        if len(self.sent) == 1:
            return DeliveryOutcome.retryable("HTTP 429 Too Many Requests", retry_after=0.4)
        return DeliveryOutcome.sent()


async def test_a_429_under_a_rate_limit_still_waits_its_retry_after() -> None:
    records: dict[str, bytes] = {}
    notifier = TooManyRequestsOnce()
    delivery = make_delivery(0, per_second=100)

    async def write_record(d: Delivery, partition: int, record: ledger.Record) -> None:
        records[Dispatcher.key_of(d)] = ledger.dump(record)

    async def dead_letter(d: Delivery, reason: str, outcome: OutcomeKind) -> None:
        raise AssertionError(reason)

    async def fetch(partition: int, offset: int) -> Delivery:
        return delivery

    dispatcher = Dispatcher(
        notifier_for=lambda kind: notifier,
        read_record=lambda key: ledger.load(records.get(key), *key.split("/")),
        write_record=write_record,
        dead_letter=dead_letter,
        fetch_delivery=fetch,
        policy=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=5),
        send_timeout=5,
        max_in_flight=10,
        throttle=Throttle(RateLimiter(share=1.0)),
    )
    retries = asyncio.create_task(dispatcher.run_retries())
    try:
        await dispatcher.submit(delivery, 0, 0, lambda: None)
        for _ in range(300):
            entry = ledger.entry(ledger.load(records.get("p/u0"), "p", "u0"), delivery.id) or {}
            if entry.get("status") == ledger.SENT:
                break
            await asyncio.sleep(0.01)
    finally:
        retries.cancel()
    assert (entry["status"], entry["attempts"]) == (ledger.SENT, 2)
    (_, first), (_, second) = notifier.sent
    assert second - first >= 0.4 * 0.95  # Retry-After, not the 1/100 s of the rate limit
