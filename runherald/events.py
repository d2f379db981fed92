"""The shape of a run event on the runs topic: parsed and checked before anything reads it."""

from __future__ import annotations

from typing import Any

import orjson

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


__all__ = [
    "INVALID_FIELD",
    "MISSING_FIELD",
    "NOT_A_RUN",
    "NOT_JSON",
    "TOO_LARGE",
    "InvalidEvent",
    "parse_event",
    "validate_run",
]
