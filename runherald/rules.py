"""Whether a notification fires for a run, and what it says: MLRun 1.12.1's rules as pure functions.

Runs and notifications may be plain dicts (``RunObject.to_dict()`` / ``Notification.to_dict()``
shape) or any object with a ``to_dict()`` method. Differences from MLRun, all opt-in or safer:
a condition that fails to render is decided at once (``condition_error_policy``, default ``send``
as in MLRun) instead of after a 5 s stall, its cost is bounded (see ``runherald.sandbox``), and a
per-state status mapping can block a resend of one state without blocking the others.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from runherald.delivery import delivery_id
from runherald.sandbox import (
    DEFAULT_LIMITS,
    ConditionLimits,
    describe_error,
    render_condition,
    validate_condition,
)

__all__ = [
    "FALSY_RENDERS",
    "NOTIFYING_STATES",
    "ConditionLimits",
    "Decision",
    "check_unique_names",
    "compose_message",
    "delivery_id",
    "evaluate",
    "redact_run",
    "severity_of",
    "validate_condition",
    "when_states",
]

#: rendered conditions (lower-cased, compared whole) that mean "do not send"
FALSY_RENDERS = frozenset({"0", "no", "n", "f", "false", "off"})
#: run states that can trigger a notification; only `completed` evaluates the condition
NOTIFYING_STATES = frozenset({"completed", "error", "aborted", "running"})
_STATE_MESSAGES = {
    "completed": "{resource} completed",
    "error": "{resource} failed",
    "aborted": "{resource} aborted",
    "running": "{resource} started",
}
_RETRY_LIMIT_LINE = "\nRetry limit reached - run has failed after all retry attempts."
_REDACTED = "REDACTED"
_MAX_ERROR_TEXT = 200
_EMPTY: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether to send a notification for a run state, and why."""

    send: bool
    reason: str


def as_dict(value: Any) -> Mapping[str, Any]:
    """A run or notification as a mapping: dicts as they are, model objects through to_dict()."""
    if isinstance(value, dict | Mapping):
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        if isinstance(result, Mapping):
            return result
    raise TypeError(f"expected a dict or an object with to_dict(), got {type(value).__name__}")


def _section(run: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = run.get(key)
    return value if isinstance(value, dict | Mapping) else _EMPTY


def _run_state(run: Mapping[str, Any], state: str | None) -> str:
    return state or _section(run, "status").get("state") or "unknown"


def when_states(notification: Mapping[str, Any]) -> list[str]:
    """The run states a notification is sent for (``when``; MLRun's default is completed only)."""
    when = notification.get("when") or ["completed"]
    if isinstance(when, list):
        return when  # not copied: callers only read it
    return [when] if isinstance(when, str) else list(when)


def _prior_status(value: Any) -> str | None:
    """The status out of a status entry, which may be the status itself or {status: …}."""
    if isinstance(value, Mapping):
        value = value.get("status")
    return value if isinstance(value, str) and value else None


def _already_done(status: str | None) -> bool:
    return status is not None and status != "pending"


def evaluate(
    run: Any,
    notification: Any,
    *,
    state: str | None = None,
    condition_error_policy: str = "send",
    notify_iterations: bool = False,
    state_statuses: Mapping[str, Any] | None = None,
    limits: ConditionLimits = DEFAULT_LIMITS,
) -> Decision:
    """Decide whether `notification` is sent for `run` in `state` (default: the run's status.state).

    `state_statuses` maps run states to this notification's status for that state (a status
    string or a {status: …} entry); a non-pending entry for `state` blocks the send, as does a
    non-pending ``status.notifications[name].status`` in the run dict.
    """
    if condition_error_policy not in ("send", "skip"):
        raise ValueError(f"condition_error_policy must be 'send' or 'skip', not {condition_error_policy!r}")
    run_dict = as_dict(run)
    notification_dict = as_dict(notification)
    run_state = _run_state(run_dict, state)

    iteration = _section(run_dict, "metadata").get("iteration") or 0
    if not notify_iterations and isinstance(iteration, int) and iteration > 0:
        return Decision(False, f"child iteration {iteration} is not notified")

    name = notification_dict.get("name") or ""
    recorded = _section(_section(run_dict, "status"), "notifications").get(name)
    status = _prior_status(recorded)
    if _already_done(status):
        return Decision(False, f"already {status}")
    if state_statuses is not None:
        status = _prior_status(state_statuses.get(run_state))
        if _already_done(status):
            return Decision(False, f"already {status} for state {run_state!r}")

    if run_state not in NOTIFYING_STATES:
        return Decision(False, f"state {run_state!r} never notifies")
    when = when_states(notification_dict)
    if run_state not in when:
        return Decision(False, f"state {run_state!r} not in when {when}")

    condition = notification_dict.get("condition") or ""
    if run_state != "completed" or not condition:
        ignored = " (condition applies to completed only)" if condition else ""
        return Decision(True, f"state {run_state!r} matched{ignored}")
    try:
        rendered = render_condition(condition, {"run": run_dict, "notification": notification_dict}, limits)
    except Exception as exc:  # every render failure is decided by the policy, never raised
        error = describe_error(exc)[:_MAX_ERROR_TEXT]
        verdict = "sent" if condition_error_policy == "send" else "skipped"
        return Decision(condition_error_policy == "send", f"condition error ({error}); {verdict} by policy")
    if rendered.lower() in FALSY_RENDERS:
        return Decision(False, f"condition rendered {rendered!r}")
    return Decision(True, "condition passed")


def compose_message(run: Any, notification: Any, *, state: str | None = None) -> str:
    """The text MLRun 1.12.1 pushes for this run and notification (its `message` argument)."""
    run_dict = as_dict(run)
    notification_dict = as_dict(notification)
    run_state = _run_state(run_dict, state)
    metadata = _section(run_dict, "metadata")

    custom = notification_dict.get("message") or ""
    suffix = f": {custom}" if custom else ""
    resource = "Run"
    labels = metadata.get("labels") or {}
    if "workflow" in labels:
        resource = "workflow"
        suffix = f" (workflow: {labels['workflow']}){suffix}"
    message = _STATE_MESSAGES.get(run_state, "").format(resource=resource)
    message += f" in project {metadata.get('project')}{suffix}"

    retry_count = _section(run_dict, "status").get("retry_count") or 0
    max_retries = _section(_section(run_dict, "spec"), "retry").get("count") or 0
    if retry_count > 0:
        message += f"\nRetries attempted: {retry_count}"
        if run_state == "error" and retry_count >= max_retries:
            message += _RETRY_LIMIT_LINE
    return message


def severity_of(notification: Any) -> str:
    """The notification's severity, `info` when unset."""
    return str(as_dict(notification).get("severity") or "info")


def redact_run(run: Any, *, parsed_json: bool = False) -> dict[str, Any]:
    """A copy of the run dict as receivers may see it: notification secret_params values REDACTED.

    A secret_params dict that is only a reference, ``{"secret": key}``, is kept as it is. With
    ``parsed_json`` (the run was just parsed from JSON by orjson, as in the pipeline) the copy is a
    JSON round trip, exact for such a run and several times cheaper than a deep copy.
    """
    source = dict(as_dict(run))
    redacted = orjson.loads(orjson.dumps(source)) if parsed_json else copy.deepcopy(source)
    spec = redacted.get("spec")
    for notification in (spec.get("notifications") or []) if isinstance(spec, dict) else []:
        secret_params = notification.get("secret_params") if isinstance(notification, dict) else None
        if isinstance(secret_params, dict) and secret_params and set(secret_params) != {"secret"}:
            notification["secret_params"] = dict.fromkeys(secret_params, _REDACTED)
    return redacted


def check_unique_names(notifications: Iterable[Any]) -> str | None:
    """MLRun's uniqueness rule: an error message if two notifications share a name, else None."""
    names = [as_dict(notification).get("name") or "" for notification in notifications]
    if len(names) != len(set(names)):
        return "Notification names must be unique"
    return None
