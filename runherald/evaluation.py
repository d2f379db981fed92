"""Turn one run event into deliveries: validate, order, check names, apply the rules, de-duplicate.

Pure: it reads the run's ledger record and latest indexed run, and returns what to write; the stage
in ``streams.app`` does the writing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from runherald import ledger, rules
from runherald.config import Settings
from runherald.delivery import Delivery, delivery_id, run_key
from runherald.sealing import seal_notification

NOTIFYING_STATES = frozenset({"completed", "error", "aborted", "running"})
NOTIFICATION_TEXT_FIELDS = ("kind", "name", "message", "severity", "condition")


class InvalidEvent(ValueError):
    """A run event that cannot be processed; its message is the dead-letter reason, its `code` one of
    DEAD_LETTER_CODES (a metric label: a few fixed values, whatever the message says)."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.code = code


# Why a run event was dead-lettered, as the metric's reason label says it.
NOT_JSON, NOT_A_RUN, TOO_LARGE, MISSING_FIELD, INVALID_FIELD = (
    "not_json",
    "not_a_run",
    "too_large",
    "missing_field",
    "invalid_field",
)


@dataclass
class Evaluation:
    """What one run event leads to."""

    key: str = ""
    run: dict[str, Any] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    record: ledger.Record | None = None  # the run's ledger record, when it changed
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (notification name, why)
    dropped: str = ""  # why the whole event was ignored (e.g. out of order)


def parse_event(raw: bytes | None, max_bytes: int) -> dict[str, Any]:
    """The run dict in a runs-topic value, or InvalidEvent saying what is wrong with it."""
    if raw is None:
        raise InvalidEvent("empty event (no value)", NOT_JSON)
    if len(raw) > max_bytes:
        raise InvalidEvent(f"event is {len(raw)} bytes, over the limit of {max_bytes}", TOO_LARGE)
    try:
        run = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not JSON: {exc}", NOT_JSON) from None
    validate_run(run)
    return run


def validate_run(run: Any) -> None:
    """Check the shape the pipeline relies on; raise InvalidEvent naming the first problem."""
    if not isinstance(run, dict):
        raise InvalidEvent(
            f"a run event must be a JSON object (a run dict), not {type(run).__name__}", NOT_A_RUN
        )
    meta = run.get("metadata")
    if not isinstance(meta, dict):
        raise InvalidEvent("metadata is missing or not an object", MISSING_FIELD)
    for name in ("project", "uid"):
        value = meta.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidEvent(f"metadata.{name} is missing or not a non-empty string", MISSING_FIELD)
        if "/" in value:
            raise InvalidEvent(f"metadata.{name} must not contain '/'", INVALID_FIELD)
    if meta.get("labels") is not None and not isinstance(meta["labels"], dict):
        raise InvalidEvent(
            "metadata.labels must be an object", INVALID_FIELD
        )  # notifiers and rules read it as one
    status = run.get("status")
    if not isinstance(status, dict):
        raise InvalidEvent("status is missing or not an object", MISSING_FIELD)
    if not isinstance(status.get("state"), str) or not status["state"]:
        raise InvalidEvent("status.state is missing or not a non-empty string", MISSING_FIELD)
    spec = run.get("spec", {})
    if not isinstance(spec, dict):
        raise InvalidEvent("spec is not an object", INVALID_FIELD)
    notifications = spec.get("notifications", [])
    if not isinstance(notifications, list):
        raise InvalidEvent("spec.notifications is not a list", INVALID_FIELD)
    for i, item in enumerate(notifications):
        if not isinstance(item, dict):
            raise InvalidEvent(f"spec.notifications[{i}] is not an object", INVALID_FIELD)
        when = item.get("when", ["completed"])
        if not isinstance(when, list) or not all(isinstance(w, str) for w in when):
            raise InvalidEvent(f"spec.notifications[{i}].when must be a list of state names", INVALID_FIELD)
        for fld in ("params", "secret_params"):
            if item.get(fld) is not None and not isinstance(item[fld], dict):
                raise InvalidEvent(f"spec.notifications[{i}].{fld} must be an object", INVALID_FIELD)
        for fld in NOTIFICATION_TEXT_FIELDS:  # a name that is not text stopped the whole stage once
            if item.get(fld) is not None and not isinstance(item[fld], str):
                raise InvalidEvent(f"spec.notifications[{i}].{fld} must be a string", INVALID_FIELD)


def _timestamp(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def evaluate_event(
    run: dict[str, Any],
    *,
    record: ledger.Record,
    source: tuple[int, int],
    settings: Settings,
) -> Evaluation:
    """Decide, for a validated run dict, which deliveries to emit and what to record.

    A run without notifications needs nothing. Otherwise the record always changes: it remembers the
    latest accepted event (its state, last_update and offset on the runs topic) for ordering and for
    the API, which reads the run itself back from the runs topic.
    """
    meta, status = run["metadata"], run["status"]
    project, uid, state = meta["project"], meta["uid"], status["state"]
    result = Evaluation(key=run_key(project, uid), run=run)
    notifications: list[dict[str, Any]] = (run.get("spec") or {}).get("notifications") or []
    if not notifications:
        return result

    latest = record.get("run") or {}
    seen = _timestamp(latest.get("last_update"))
    this = _timestamp(status.get("last_update"))
    if seen is not None and this is not None and this < seen:
        result.dropped = (
            f"out of order: last_update {status.get('last_update')} is older than "
            f"{latest.get('last_update')} already seen"
        )
        return result
    record["run"] = {"state": state, "last_update": status.get("last_update"), "offset": list(source)}
    result.record = record
    redacted: dict[str, Any] | None = None

    duplicate_names = rules.check_unique_names(notifications)
    now = time.time()
    for notification in notifications:
        name = str(notification.get("name") or "")
        when = rules.when_states(notification)
        if state not in when and not duplicate_names:
            # Never sent in this state whatever else holds (rules.evaluate says the same, later and
            # dearer): most events of a run take this path.
            result.skipped.append((name, f"state {state!r} not in when {when}"))
            continue
        did = delivery_id(project, uid, name, state)
        found = ledger.entry(record, did)
        if duplicate_names:
            if state in when and not ledger.is_terminal(found):
                ledger.put_entry(
                    record,
                    did,
                    name=name,
                    state=state,
                    kind=notification.get("kind", "slack"),
                    status=ledger.ERROR,
                    reason=duplicate_names,
                )
            result.skipped.append((name, duplicate_names))
            continue
        if ledger.is_terminal(found):
            result.skipped.append((name, f"already {found['status']} for state {state!r}"))  # type: ignore[index]
            continue
        if found is not None and found.get("retry"):
            result.skipped.append((name, "waiting for its retry"))
            continue
        if found is not None and found.get("source") != list(source):
            # An earlier event already emitted this delivery; the dispatcher owns it now.
            result.skipped.append((name, "already queued"))
            continue
        decision = rules.evaluate(
            run,
            notification,
            condition_error_policy=settings.condition_error_policy,
            notify_iterations=settings.notify_iterations,
        )
        if not decision.send:
            result.skipped.append((name, decision.reason))
            continue
        if redacted is None:
            redacted = rules.redact_run(run, parsed_json=True)
        delivery = make_delivery(run, notification, redacted=redacted, created_at=now)
        result.deliveries.append(delivery)
        ledger.put_entry(
            record,
            did,
            name=name,
            state=state,
            kind=delivery.kind,
            status=ledger.PENDING,
            source=list(source),
            note=decision.reason or None,
        )
    return result


def make_delivery(
    run: dict[str, Any],
    notification: dict[str, Any],
    *,
    redacted: dict[str, Any] | None = None,
    created_at: float | None = None,
) -> Delivery:
    """The delivery of one notification for a validated run dict in its current state.

    The same run event always gives the same delivery (and id): the crash re-drive builds it again
    from the run event when the deliveries topic's copy was never written.
    """
    meta = run["metadata"]
    state = run["status"]["state"]
    name = str(notification.get("name") or "")
    return Delivery(
        id=delivery_id(meta["project"], meta["uid"], name, state),
        project=meta["project"],
        uid=meta["uid"],
        name=name,
        state=state,
        kind=str(notification.get("kind") or "slack"),
        message=rules.compose_message(run, notification),
        severity=rules.severity_of(notification),
        runs=[redacted if redacted is not None else rules.redact_run(run, parsed_json=True)],
        # Sealed here too, so a run from a foreign producer with literal secrets yields no secret on
        # the deliveries topic (values already sealed are kept as they are).
        notification=seal_notification(notification),
        created_at=time.time() if created_at is None else created_at,
    )
