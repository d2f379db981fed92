"""The ledger record of one run: every delivery's status, sent_time, reason and attempts.

One record per run, keyed ``"{project}/{uid}"`` on the compacted status topic, so the latest value of a
key is the whole truth about that run's notifications. These are pure functions over that record.

Besides the count in ``attempts``, an entry keeps its latest attempts (ATTEMPT_LOG_LIMIT) in ``log``, each
a compact ``[at, outcome, response_code, latency_ms, reason]`` (epoch seconds; outcome as
DeliveryOutcome's kind; the code and latency null when there was none; reason shortened and already
scrubbed of secrets by whoever made the outcome). When the delivery was decided (its queued time) is
``created``: the entry is made by the stage that decides. ``record["run"]["name"]`` is the run's name, and
``record["run"]["recorded"]`` when the evaluate stage last recorded the run (epoch seconds).
Records written before these existed lack them and read as having no attempt log.
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
ATTEMPT_LOG_LIMIT = 20  # attempts kept per delivery (the latest); `attempts` still counts every one

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


def with_attempt(
    log: list[list[Any]] | None,
    *,
    at: float,
    outcome: str,
    response_code: int | None,
    latency_ms: float | None,
    reason: str | None,
) -> list[list[Any]]:
    """The attempt log with one more attempt, keeping the latest ATTEMPT_LOG_LIMIT."""
    latency = None if latency_ms is None else round(latency_ms, 1)
    attempt = [round(at, 3), outcome, response_code, latency, short_reason(reason or None)]
    return [*(log or [])[-(ATTEMPT_LOG_LIMIT - 1) :], attempt]


def iso_time(epoch: Any) -> str | None:
    """Epoch seconds as RFC 3339 in UTC (sent_time's format), None for none."""
    if not isinstance(epoch, int | float) or isinstance(epoch, bool):
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def attempt_log(found: Entry) -> list[dict[str, Any]]:
    """``[{at, outcome, response_code, latency_ms, reason}]``, oldest first: an entry's kept attempts."""
    log = found.get("log")
    if not isinstance(log, list):
        return []  # written before attempts were logged
    return [
        {"at": iso_time(at), "outcome": outcome, "response_code": code, "latency_ms": ms, "reason": reason}
        for at, outcome, code, ms, reason in (
            item[:5] for item in log if isinstance(item, list) and len(item) >= 5
        )
    ]


def last_response_code(found: Entry) -> int | None:
    """The response code of the delivery's latest attempt, if it had one."""
    log = found.get("log")
    if isinstance(log, list) and log and isinstance(log[-1], list) and len(log[-1]) >= 3:
        code = log[-1][2]
        return code if isinstance(code, int) else None
    return None


def _public(found: Entry) -> dict[str, Any]:
    return {
        "status": found.get("status", PENDING),
        "sent_time": found.get("sent_time"),
        "reason": found.get("reason"),
        "attempts": found.get("attempts", 0),
        "queued_at": iso_time(found.get("created")),
        "response_code": last_response_code(found),
        "attempt_log": attempt_log(found),
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


def delivery_items(record: Record) -> list[dict[str, Any]]:
    """The record's deliveries as the items of the ledger queries (DESIGN.md "Ledger queries"), each with
    its latest attempt's response code and latency: what a projection of the status topic stores."""
    run_name = (record.get("run") or {}).get("name")
    items = []
    for did, found in record["deliveries"].items():
        log = attempt_log(found)
        items.append(
            {
                "id": found.get("id", did),
                "project": record.get("project"),
                "uid": record.get("uid"),
                "run_name": run_name,
                "notification": found.get("name"),
                "kind": found.get("kind"),
                "state": found.get("state"),
                "status": found.get("status", PENDING),
                "attempts": log,
                "attempt_count": found.get("attempts", 0),
                "queued_at": iso_time(found.get("created")),
                "sent_time": found.get("sent_time"),
                "reason": found.get("reason"),
                "response_code": log[-1]["response_code"] if log else None,
                "latency_ms": log[-1]["latency_ms"] if log else None,
            }
        )
    return items
