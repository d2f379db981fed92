"""What one send's outcome changes in its delivery's ledger entry: status, reason, retry, attempt log.

A pure function of the outcome, the entry as it stands and the retry policy; the dispatcher
(runherald.streams.dispatch) writes what it returns and schedules the retry it names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runherald import ledger
from runherald.delivery import Delivery, DeliveryOutcome, OutcomeKind
from runherald.retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class OutcomeFields:
    """The entry's new fields; the dead-letter reason when the delivery failed for good; when to try
    again (epoch seconds) when it waits for a retry."""

    fields: dict[str, Any]
    dead_letter: str | None = None
    retry_at: float | None = None


def outcome_fields(
    delivery: Delivery,
    partition: int,
    outcome: DeliveryOutcome,
    current: ledger.Entry,
    policy: RetryPolicy,
    now: float,
) -> OutcomeFields:
    """What `outcome` changes in the delivery's entry `current` (an empty dict when it has none)."""
    first = float(current.get("first_attempt_at") or now)
    common: dict[str, Any] = {
        "name": delivery.name,
        "state": delivery.state,
        "kind": delivery.kind,
        "first_attempt_at": first,
        "partition": partition,
        "next_attempt_at": None,
        "retry": None,
    }
    if outcome.kind is OutcomeKind.DEFERRED:
        # Not attempted (its endpoint's circuit is open): no attempt is used, none is logged; the retry
        # budget's time limit still runs from the first attempt.
        common["attempts"] = int(current.get("attempts", 0))
        wait = float(outcome.retry_after or 0.0)
        if now + wait - first > policy.max_elapsed:
            reason = f"gave up after {now - first:.0f}s: {outcome.reason}"
            return OutcomeFields(_failed(common, reason), reason)
        return OutcomeFields(_waiting(common, outcome.reason, now + wait), None, now + wait)
    attempts = int(current.get("attempts", 0)) + 1
    latency = outcome.latency_ms
    common.update(
        attempts=attempts,
        last_attempt_at=now,
        log=ledger.with_attempt(
            current.get("log"),
            at=now - (latency or 0.0) / 1000.0,  # when the request went out
            outcome=outcome.kind.value,
            response_code=outcome.response_code,
            latency_ms=latency,
            reason=outcome.reason,
        ),
    )
    if outcome.kind is OutcomeKind.SENT:
        return OutcomeFields(
            {**common, "status": ledger.SENT, "sent_time": ledger.utc_now_iso(), "reason": None}
        )
    # A replayed delivery gets a fresh budget; `attempts` keeps counting every try.
    used = attempts - int(current.get("replay_base") or 0)
    delay = None
    if outcome.kind is OutcomeKind.RETRYABLE:
        delay = policy.next_delay(used, now - first, outcome.retry_after)
    if delay is None:
        reason = outcome.reason
        if outcome.kind is OutcomeKind.RETRYABLE:
            reason = f"gave up after {used} attempts: {outcome.reason}"
        return OutcomeFields(_failed(common, reason), reason)
    return OutcomeFields(_waiting(common, outcome.reason, now + delay), None, now + delay)


def _failed(common: dict[str, Any], reason: str) -> dict[str, Any]:
    return {**common, "status": ledger.ERROR, "reason": ledger.short_reason(reason), "detail": reason}


def _waiting(common: dict[str, Any], reason: str, due: float) -> dict[str, Any]:
    return {
        **common,
        "status": ledger.PENDING,
        "next_attempt_at": due,
        "reason": ledger.short_reason(reason),
        "detail": reason,
    }


__all__ = ["OutcomeFields", "outcome_fields"]
