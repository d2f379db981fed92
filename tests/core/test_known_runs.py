"""Every valid run is recorded (its state, last_update and offset), with or without notifications, so the
API knows it; order is kept the same way as for runs with notifications."""

from __future__ import annotations

import time
from typing import Any

from runherald import ledger
from runherald.config import Settings
from runherald.evaluation import evaluate_event


def bare_run(state: str, last_update: str) -> dict[str, Any]:
    return {
        "metadata": {"project": "p", "uid": "u", "name": "train"},
        "spec": {},
        "status": {"state": state, "last_update": last_update},
    }


def test_a_run_without_notifications_is_recorded_and_kept_in_order() -> None:
    record = ledger.new_record("p", "u")
    first = evaluate_event(
        bare_run("running", "2026-01-02T00:00:00"), record=record, source=(3, 7), settings=Settings()
    )
    assert first.record is record and first.deliveries == [] and not first.dropped
    assert time.time() - 5 < record["run"].pop("recorded") <= time.time()  # when it was recorded
    assert record["run"] == {
        "state": "running",
        "last_update": "2026-01-02T00:00:00",
        "offset": [3, 7],
        "name": "train",  # the ledger's run name
    }
    assert record["deliveries"] == {}
    older = evaluate_event(
        bare_run("completed", "2026-01-01T00:00:00"), record=record, source=(3, 8), settings=Settings()
    )
    assert older.dropped.startswith("out of order") and older.record is None
    assert record["run"]["offset"] == [3, 7]
    newer = evaluate_event(
        bare_run("completed", "2026-01-03T00:00:00"), record=record, source=(3, 9), settings=Settings()
    )
    assert newer.record is record and record["run"]["state"] == "completed"
