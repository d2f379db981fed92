"""Each delivery's attempts in its ledger entry: what one outcome adds, the cap, and records written before
the attempt log existed."""

from __future__ import annotations

import dataclasses

import orjson

from runherald import ledger
from runherald.delivery import Delivery, DeliveryOutcome
from runherald.outcomes import outcome_fields
from runherald.retry import RetryPolicy

NOW = 1_800_000_000.0
LONG_BUDGET = RetryPolicy(max_attempts=100, max_elapsed=1e9, base_delay=1.0, max_delay=1.0)


def delivery() -> Delivery:
    return Delivery(
        id="d1",
        project="p",
        uid="u1",
        name="hook",
        state="completed",
        kind="webhook",
        message="done",
        severity="info",
        runs=[],
        notification={"kind": "webhook", "name": "hook"},
    )


def decided(record: ledger.Record) -> ledger.Entry:
    """The entry as the evaluate stage makes it when it decides to send: its queued time."""
    found = ledger.put_entry(record, "d1", name="hook", state="completed", kind="webhook")
    found["created"] = NOW - 5
    return found


def record_outcome(record: ledger.Record, outcome: DeliveryOutcome, now: float) -> ledger.Entry:
    current = ledger.entry(record, "d1") or {}
    change = outcome_fields(delivery(), 0, outcome, current, LONG_BUDGET, now)
    return ledger.put_entry(record, "d1", **change.fields)


def test_each_attempt_is_logged_with_outcome_code_latency_and_reason() -> None:
    record = ledger.new_record("p", "u1")
    decided(record)
    failed = DeliveryOutcome.retryable("HTTP 500 Internal Server Error: boom", response_code=500)
    record_outcome(record, dataclasses.replace(failed, latency_ms=12.34), NOW)
    sent = DeliveryOutcome.sent(response_code=200)
    found = record_outcome(record, dataclasses.replace(sent, latency_ms=3.0), NOW + 2)

    # Written and read back as the status topic carries it.
    view = ledger.notifications_view(ledger.load(ledger.dump(record)))["hook"]
    assert found["attempts"] == 2 and view["attempts"] == 2
    assert view["attempt_log"] == [
        {
            "at": ledger.iso_time(round(NOW - 0.01234, 3)),  # kept to the millisecond
            "outcome": "retryable",
            "response_code": 500,
            "latency_ms": 12.3,
            "reason": "HTTP 500 Internal Server Error: boom",
        },
        {
            "at": ledger.iso_time(NOW + 2 - 0.003),
            "outcome": "sent",
            "response_code": 200,
            "latency_ms": 3.0,
            "reason": None,
        },
    ]
    assert view["response_code"] == 200
    assert view["queued_at"] == ledger.iso_time(NOW - 5)  # when it was decided
    assert view["states"]["completed"]["attempt_log"] == view["attempt_log"]
    # MLRun's status.notifications stays MLRun's three fields.
    assert set(ledger.mlrun_status_notifications(record)["hook"]) == {"status", "sent_time"}


def test_a_deferred_send_is_no_attempt_and_is_not_logged() -> None:
    record = ledger.new_record("p", "u1")
    decided(record)
    record_outcome(record, DeliveryOutcome.retryable("timed out", unreachable=True), NOW)
    found = record_outcome(record, DeliveryOutcome.deferred("not sent: circuit open", 5.0), NOW + 1)
    assert found["attempts"] == 1
    assert [a["outcome"] for a in ledger.attempt_log(found)] == ["retryable"]
    assert ledger.attempt_log(found)[0]["response_code"] is None


def test_the_log_keeps_the_latest_twenty_attempts() -> None:
    record = ledger.new_record("p", "u1")
    decided(record)
    for i in range(25):
        outcome = DeliveryOutcome.retryable(f"HTTP 503 attempt {i + 1}", response_code=503)
        found = record_outcome(record, outcome, NOW + i)
    assert found["attempts"] == 25 and found["status"] == ledger.PENDING
    log = ledger.attempt_log(found)
    assert len(log) == ledger.ATTEMPT_LOG_LIMIT == 20
    assert [a["reason"] for a in log] == [f"HTTP 503 attempt {i + 1}" for i in range(5, 25)]
    assert log[0]["at"] == ledger.iso_time(NOW + 5)


def test_an_attempts_reason_is_shortened_like_the_entrys() -> None:
    record = ledger.new_record("p", "u1")
    decided(record)
    found = record_outcome(record, DeliveryOutcome.permanent("x" * 1000, response_code=400), NOW)
    assert found["status"] == ledger.ERROR
    (attempt,) = ledger.attempt_log(found)
    assert attempt["reason"] == "x" * ledger.REASON_LIMIT and attempt["outcome"] == "permanent"


def test_a_record_written_before_the_attempt_log_still_loads() -> None:
    # A ledger value as workers wrote it before attempts were logged: a count, no log, no run name.
    old = orjson.dumps(
        {
            "project": "p",
            "uid": "u1",
            "run": {"state": "completed", "last_update": None, "offset": [0, 7]},
            "deliveries": {
                "d1": {
                    "id": "d1",
                    "status": "sent",
                    "attempts": 3,
                    "created": NOW,
                    "updated": NOW + 9,
                    "name": "hook",
                    "state": "completed",
                    "kind": "webhook",
                    "first_attempt_at": NOW,
                    "last_attempt_at": NOW + 9,
                    "sent_time": "2027-01-15T08:00:09+00:00",
                    "reason": None,
                }
            },
        }
    )
    record = ledger.load(old)
    view = ledger.notifications_view(record)["hook"]
    assert view["status"] == "sent" and view["attempts"] == 3
    assert view["attempt_log"] == [] and view["response_code"] is None
    assert view["queued_at"] == ledger.iso_time(NOW)  # its entry's creation
    (item,) = ledger.delivery_items(record)
    assert item["run_name"] is None and item["attempts"] == [] and item["attempt_count"] == 3
    # One more attempt on an old entry starts its log.
    found = record_outcome(record, DeliveryOutcome.sent(response_code=202), NOW + 20)
    assert found["attempts"] == 4 and [a["response_code"] for a in ledger.attempt_log(found)] == [202]


def test_delivery_items_give_every_field_a_projection_needs() -> None:
    record = ledger.new_record("p", "u1")
    decided(record)
    record["run"] = {"state": "completed", "last_update": None, "offset": [0, 1], "name": "train"}
    failed = DeliveryOutcome.retryable("HTTP 502 Bad Gateway", response_code=502)
    record_outcome(record, failed, NOW)
    (item,) = ledger.delivery_items(ledger.load(ledger.dump(record)))
    assert {k: item[k] for k in ("id", "project", "uid", "run_name", "notification", "kind", "state")} == {
        "id": "d1",
        "project": "p",
        "uid": "u1",
        "run_name": "train",
        "notification": "hook",
        "kind": "webhook",
        "state": "completed",
    }
    assert (
        item["status"] == "pending"
        and item["response_code"] == 502
        and item["reason"] == "HTTP 502 Bad Gateway"
    )
    assert item["queued_at"] == ledger.iso_time(NOW - 5) and item["attempt_count"] == 1
    assert [a["outcome"] for a in item["attempts"]] == ["retryable"]
