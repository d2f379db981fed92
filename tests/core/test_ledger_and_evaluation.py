"""The pure core of the pipeline: the ledger record functions and the evaluation of one run event."""

from __future__ import annotations

import time
from typing import Any

import pytest

from runherald import ledger
from runherald.config import Settings
from runherald.delivery import delivery_id, run_key
from runherald.evaluation import InvalidEvent, evaluate_event, make_delivery, validate_run


def run(state: str, last_update: str | None = None, names: tuple[str, ...] = ("hook",)) -> dict[str, Any]:
    notifications = [
        {"kind": "webhook", "name": n, "when": ["running", "completed"], "params": {"url": "http://x/"}}
        for n in names
    ]
    return {
        "metadata": {"project": "p", "uid": "u", "name": "train"},
        "spec": {"notifications": notifications},
        "status": {"state": state, **({"last_update": last_update} if last_update else {})},
    }


def test_one_key_for_everything_of_a_run() -> None:
    assert run_key("proj", "abc") == "proj/abc"


def test_the_view_has_mlrun_s_one_status_per_name_and_one_per_state() -> None:
    record = ledger.new_record("p", "u")
    ledger.put_entry(record, "a", name="hook", state="running", status=ledger.SENT, sent_time="t1")
    time.sleep(0.001)
    ledger.put_entry(record, "b", name="hook", state="completed", status=ledger.PENDING, attempts=2)
    view = ledger.notifications_view(record)["hook"]
    assert (view["status"], view["state"], view["attempts"]) == ("pending", "completed", 2)
    assert view["states"]["running"]["sent_time"] == "t1"
    assert ledger.mlrun_status_notifications(record) == {"hook": {"status": "pending"}}


def test_due_retries_are_the_pending_entries_with_a_retry() -> None:
    record = ledger.new_record("p", "u")
    ledger.put_entry(record, "a", status=ledger.PENDING, retry=[1, 2], next_attempt_at=5.0)
    ledger.put_entry(record, "b", status=ledger.PENDING)
    ledger.put_entry(record, "c", status=ledger.ERROR, retry=[1, 3], next_attempt_at=6.0)
    assert ledger.due_retries(record) == [(5.0, "a")]


def test_an_event_older_than_one_seen_is_dropped_and_changes_nothing() -> None:
    record = ledger.new_record("p", "u")
    first = evaluate_event(
        run("running", "2026-01-02T00:00:00"), record=record, source=(0, 1), settings=Settings()
    )
    assert [d.state for d in first.deliveries] == ["running"]
    older = evaluate_event(
        run("completed", "2026-01-01T00:00:00"), record=record, source=(0, 2), settings=Settings()
    )
    assert older.dropped.startswith("out of order") and older.deliveries == []


def test_a_delivery_is_not_emitted_again_once_sent_or_while_waiting_for_its_retry() -> None:
    did = delivery_id("p", "u", "hook", "completed")
    for fields in ({"status": ledger.SENT}, {"status": ledger.PENDING, "retry": [0, 9], "source": [0, 1]}):
        record = ledger.new_record("p", "u")
        ledger.put_entry(record, did, name="hook", state="completed", **fields)
        result = evaluate_event(run("completed"), record=record, source=(0, 1), settings=Settings())
        assert result.deliveries == []


def test_the_same_source_event_again_emits_the_same_delivery() -> None:
    record = ledger.new_record("p", "u")
    first = evaluate_event(run("completed"), record=record, source=(0, 1), settings=Settings())
    again = evaluate_event(
        run("completed"), record=first.record or record, source=(0, 1), settings=Settings()
    )
    assert [d.id for d in again.deliveries] == [d.id for d in first.deliveries]
    notification = run("completed")["spec"]["notifications"][0]
    assert make_delivery(run("completed"), notification).id == first.deliveries[0].id


def test_duplicate_names_send_nothing_and_record_an_error() -> None:
    record = ledger.new_record("p", "u")
    result = evaluate_event(
        run("completed", names=("hook", "hook")), record=record, source=(0, 1), settings=Settings()
    )
    assert result.deliveries == []
    [entry] = (result.record or record)["deliveries"].values()
    assert entry["status"] == ledger.ERROR and entry["reason"] == "Notification names must be unique"


@pytest.mark.parametrize("field", ["kind", "name", "message", "severity", "condition"])
def test_a_notification_field_that_is_not_text_is_an_invalid_event(field: str) -> None:
    # Found by fuzzing the API: a name {"a": 1} reached the evaluate stage and stopped the worker.
    bad = run("completed")
    bad["spec"]["notifications"][0][field] = {"a": 1}
    with pytest.raises(InvalidEvent, match=rf"spec.notifications\[0\].{field} must be a string"):
        validate_run(bad)
    bad["spec"]["notifications"][0][field] = None
    validate_run(bad)


def test_labels_that_are_not_an_object_are_an_invalid_event() -> None:
    bad = run("completed")
    bad["metadata"]["labels"] = ["workflow"]
    with pytest.raises(InvalidEvent, match=r"metadata.labels must be an object"):
        validate_run(bad)
