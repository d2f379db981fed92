"""The ledger record of one run: every delivery's status, sent_time, reason and attempts.

One record per run, keyed ``"{project}/{uid}"`` on the compacted status topic, so the latest value of a
key is the whole truth about that run's notifications. These are pure functions over that record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

PENDING = "pending"
SENT = "sent"
ERROR = "error"
SKIPPED = "skipped"  # decided not to send (muted by a silence); the reason says what decided it
TERMINAL = frozenset({SENT, ERROR, SKIPPED})
REASON_LIMIT = 255  # MLRun's column width for reason; the full text stays in `detail`

Record = dict[str, Any]
Entry = dict[str, Any]


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat()


def new_record(project: str, uid: str) -> Record:
    return {"project": project, "uid": uid, "deliveries": {}}


def load(raw: bytes | None, project: str = "", uid: str = "") -> Record:
    """The record stored for a run, or an empty one."""
    if not raw:
        return new_record(project, uid)
    record: Record = orjson.loads(raw)
    record.setdefault("deliveries", {})
    return record


def dump(record: Record) -> bytes:
    # orjson hands back a 4 KiB allocation whatever the length; ledger values live for as long as
    # the run is tracked, so keep an exact-size copy (100 000 runs: ~400 MB less resident memory).
    return memoryview(orjson.dumps(record)).tobytes()


def entry(record: Record, delivery_id: str) -> Entry | None:
    found: Entry | None = record["deliveries"].get(delivery_id)
    return found


def is_terminal(found: Entry | None) -> bool:
    return found is not None and found.get("status") in TERMINAL


def put_entry(record: Record, delivery_id: str, **fields: Any) -> Entry:
    """Create or update one delivery's entry; returns it."""
    now = datetime.now(UTC).timestamp()
    current: Entry = record["deliveries"].setdefault(
        delivery_id, {"id": delivery_id, "status": PENDING, "attempts": 0, "created": now}
    )
    current.update(fields)
    current["updated"] = now
    return current


def short_reason(reason: str | None) -> str | None:
    return None if reason is None else reason[:REASON_LIMIT]


def _public(found: Entry) -> dict[str, Any]:
    return {
        "status": found.get("status", PENDING),
        "sent_time": found.get("sent_time"),
        "reason": found.get("reason"),
        "attempts": found.get("attempts", 0),
    }


def notifications_view(record: Record) -> dict[str, Any]:
    """``{name: {status, sent_time, reason, attempts, states: {state: {...}}}}`` for the API.

    The top level is MLRun's one-status-per-name view: the delivery for the latest state notified.
    """
    by_name: dict[str, list[Entry]] = {}
    for found in record["deliveries"].values():
        by_name.setdefault(found.get("name", ""), []).append(found)
    view: dict[str, Any] = {}
    for name, found_entries in by_name.items():
        found_entries.sort(key=lambda e: e.get("created", 0.0))
        latest = found_entries[-1]
        view[name] = {
            **_public(latest),
            "state": latest.get("state"),
            "kind": latest.get("kind"),
            "states": {e.get("state", ""): _public(e) for e in found_entries},
        }
    return view


def mlrun_status_notifications(record: Record) -> dict[str, dict[str, Any]]:
    """``status.notifications`` as MLRun fills it in a run dict: ``{name: {status, sent_time, reason}}``."""
    return {
        name: {k: v for k, v in item.items() if k in {"status", "sent_time", "reason"} and v is not None}
        for name, item in notifications_view(record).items()
    }


def due_retries(record: Record) -> list[tuple[float, str]]:
    """(when, delivery id) of every delivery waiting for another attempt."""
    return [
        (float(e["next_attempt_at"]), e["id"])
        for e in record["deliveries"].values()
        if e.get("status") == PENDING and e.get("next_attempt_at") and e.get("retry")
    ]
