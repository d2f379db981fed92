"""Runs checked at the door: every problem a publisher's run would meet later, found before it is sent.

`POST /api/v1/runs`, `runherald publish` and `runherald.publish` call `check_runs` before anything
reaches Kafka; a run with a problem is refused whole (and a list of runs with it), each problem with
its path (``spec.notifications[0].kind``, prefixed ``[i].`` for the i-th run of a list) and, where one
is close, a did-you-mean. Runs that other producers write to the runs topic are not checked here:
evaluate records an error per notification, or dead-letters an unusable event, as before.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from runherald import channels, conversation
from runherald.errors import PublishError
from runherald.events import InvalidEvent, validate_run
from runherald.model import NotificationSeverity, RunStates
from runherald.problems import Problem
from runherald.ratelimit import PARAM as RATE_LIMIT
from runherald.ratelimit import rate_limit_problems
from runherald.rules import NOTIFYING_STATES
from runherald.sandbox import validate_condition
from runherald.secret_values import is_reference

SEVERITIES = tuple(severity.value for severity in NotificationSeverity)
# MLRun's run states: a `when` state among them that does not notify is said so, any other is unknown.
RUN_STATES = frozenset(v for k, v in vars(RunStates).items() if not k.startswith("_") and isinstance(v, str))
_PARAMETER = re.compile(r"Parameter '([^']+)'")


class InvalidRuns(PublishError):
    """Runs refused at the door; `problems` lists each one. The message has one problem per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        self.summary = f"the input has {count} problem{'s' if count != 1 else ''}; nothing was published"
        super().__init__("\n".join([self.summary, *(str(problem) for problem in self.problems)]))


def check_runs(runs: Sequence[Any], *, as_list: bool | None = None, slack_fallback: bool = False) -> None:
    """Raise InvalidRuns listing every problem of the runs, or return if there is none.

    `as_list` (default: more than one run) prefixes each path with ``[i].``; `slack_fallback` says a
    fallback Slack webhook is configured, so a slack notification may name none.
    """
    listed = len(runs) > 1 if as_list is None else as_list
    problems: list[Problem] = []
    for i, run in enumerate(runs):
        prefix = f"[{i}]." if listed else ""
        problems += [
            Problem(f"{prefix}{p.path}" if p.path else f"[{i}]" if listed else "", p.message)
            for p in run_problems(run, slack_fallback=slack_fallback)
        ]
    if problems:
        raise InvalidRuns(problems)


def run_problems(run: Any, *, slack_fallback: bool = False) -> list[Problem]:
    """Every problem of one run dict: its shape (as evaluate checks it) and each notification's."""
    if not isinstance(run, Mapping):
        return [Problem("", f"a run must be an object (a run dict), not {type(run).__name__}")]
    problems: list[Problem] = []
    meta = run.get("metadata")
    if not isinstance(meta, Mapping):
        problems.append(Problem("metadata", "missing or not an object"))
    else:
        for name in ("project", "uid"):
            value = meta.get(name)
            if not isinstance(value, str) or not value:
                problems.append(Problem(f"metadata.{name}", "missing or not a non-empty string"))
            elif "/" in value:
                problems.append(Problem(f"metadata.{name}", "must not contain '/'"))
        if meta.get("labels") is not None and not isinstance(meta["labels"], Mapping):
            problems.append(Problem("metadata.labels", "must be an object"))
    status = run.get("status")
    if not isinstance(status, Mapping):
        problems.append(Problem("status", "missing or not an object"))
    else:
        if not isinstance(status.get("state"), str) or not status["state"]:
            problems.append(Problem("status.state", "missing or not a non-empty string"))
        if "notifications" in status and not isinstance(status["notifications"], Mapping):
            problems.append(Problem("status.notifications", "must be an object"))
    spec = run.get("spec", {})
    notifications: Any = []
    if not isinstance(spec, Mapping):
        problems.append(Problem("spec", "must be an object"))
    else:
        notifications = spec.get("notifications", [])
        if notifications is None:
            notifications = []
        if not isinstance(notifications, list):
            problems.append(Problem("spec.notifications", "must be a list"))
            notifications = []
    mark = run.get("runherald")
    if isinstance(mark, Mapping) and mark.get("notified_by_source"):
        notifications = []  # already sent by the run's source (MLRun): runherald never sends them
    names: dict[str, int] = {}
    for i, notification in enumerate(notifications):
        path = f"spec.notifications[{i}]"
        if not isinstance(notification, Mapping):
            problems.append(Problem(path, "must be an object"))
            continue
        problems += notification_problems(notification, path, slack_fallback=slack_fallback)
        name = notification.get("name") or ""
        if isinstance(name, str):
            if name in names:
                where = f"spec.notifications[{names[name]}]"
                problems.append(
                    Problem(f"{path}.name", f"duplicate name {name!r} (also {where}): names must be unique")
                )
            else:
                names[name] = i
    if not problems:
        try:  # what evaluate checks, should it check more than this module knows of
            validate_run(dict(run))
        except InvalidEvent as exc:  # "spec.x must be …": the path, then what is wrong
            path, _, message = str(exc).partition(" ")
            problems.append(Problem(path, message) if message else Problem("", str(exc)))
    return problems


def did_you_mean(value: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (one of: {', '.join(sorted(known))})"


def notification_problems(
    notification: Mapping[str, Any], path: str, *, slack_fallback: bool = False
) -> list[Problem]:
    """Every problem of one notification: kind, when, severity, condition, message, params."""
    problems: list[Problem] = []
    kind_name = notification.get("kind") or "slack"  # MLRun's default kind
    kind: channels.ChannelKind | None = None
    params = notification.get("params")
    if isinstance(params, Mapping) and params.get("receiver") is not None:
        kind_name = "console"  # the receiver's kind applies, checked where the receiver is
    if not isinstance(kind_name, str):
        problems.append(Problem(f"{path}.kind", "must be a string"))
    else:
        try:
            kind = channels.kind(kind_name)
        except channels.UnknownKind as exc:
            problems.append(Problem(f"{path}.kind", str(exc)))
        else:
            if not kind.supported:
                problems.append(Problem(f"{path}.kind", f"kind {kind_name!r} is not supported yet"))
                kind = None
    if "name" in notification and not isinstance(notification["name"], str | None):
        problems.append(Problem(f"{path}.name", "must be a string"))
    problems += text_problems(notification, path)
    shapes_ok = True
    for field in ("params", "secret_params"):
        value = notification.get(field)
        if value is not None and not isinstance(value, Mapping):
            problems.append(Problem(f"{path}.{field}", "must be an object"))
            shapes_ok = False
    if shapes_ok and (notification.get("params") or {}).get(RATE_LIMIT) is not None:
        checked = rate_limit_problems(notification["params"][RATE_LIMIT], f"{path}.params.{RATE_LIMIT}")
        problems += [Problem(where, message) for where, message in checked]
    if shapes_ok and (notification.get("params") or {}).get("receiver") is not None:
        return problems + _receiver_reference_problems(notification, path)
    if kind is not None and shapes_ok:
        problems += _params_problems(kind, notification, path, slack_fallback=slack_fallback)
    return problems


def _receiver_reference_problems(notification: Mapping[str, Any], path: str) -> list[Problem]:
    """A notification naming a receiver takes its kind and params from it at evaluate time."""
    name = notification["params"]["receiver"]
    if not isinstance(name, str) or not name:
        return [Problem(f"{path}.params.receiver", "must be the name of a receiver")]
    return []


def text_problems(notification: Mapping[str, Any], path: str) -> list[Problem]:
    """Problems of the fields a notification and an alert rule share: when, severity, condition, message."""
    problems: list[Problem] = []
    if "when" in notification:  # absent: MLRun's default, completed
        problems += _when_problems(notification["when"], f"{path}.when")
    severity = notification.get("severity")
    if severity is not None and severity != "":
        if not isinstance(severity, str):
            problems.append(Problem(f"{path}.severity", "must be a string"))
        elif severity not in SEVERITIES:
            problems.append(
                Problem(
                    f"{path}.severity", f"unknown severity {severity!r}{did_you_mean(severity, SEVERITIES)}"
                )
            )
    condition = notification.get("condition")
    if condition is not None and condition != "":
        if not isinstance(condition, str):
            problems.append(Problem(f"{path}.condition", "must be a string (a Jinja2 expression)"))
        else:
            why = validate_condition(condition)
            if why:
                problems.append(Problem(f"{path}.condition", f"does not compile: {why}"))
    message = notification.get("message")
    if message is not None and not isinstance(message, str):
        problems.append(Problem(f"{path}.message", "must be a string"))
    return problems


def _when_problems(when: Any, path: str) -> list[Problem]:
    if not isinstance(when, list):
        return [Problem(path, "must be a list of run states")]
    problems = []
    known = sorted(NOTIFYING_STATES)
    for i, state in enumerate(when):
        if not isinstance(state, str):
            problems.append(Problem(f"{path}[{i}]", "must be a string (a run state)"))
        elif state in RUN_STATES - NOTIFYING_STATES:
            problems.append(
                Problem(
                    f"{path}[{i}]", f"state {state!r} never notifies (states that notify: {', '.join(known)})"
                )
            )
        elif state not in NOTIFYING_STATES:
            problems.append(Problem(f"{path}[{i}]", f"unknown state {state!r}{did_you_mean(state, known)}"))
    return problems


def _params_problems(
    kind: channels.ChannelKind, notification: Mapping[str, Any], path: str, *, slack_fallback: bool
) -> list[Problem]:
    """The kind's own check of its params, secret_params included; what references hold is unknown
    until send time, so a problem about a referenced (or sealed) value is not one here."""
    params = dict(notification.get("params") or {})
    secret_params = dict(notification.get("secret_params") or {})
    if set(secret_params) == {"secret"}:
        return []  # a whole project secret: its keys are known only at send time
    merged = {**secret_params, **params}
    unknown = {key for key, value in secret_params.items() if key not in params and is_reference(value)}
    if kind is channels.SLACK:
        return _slack_problems(merged, path, slack_fallback=slack_fallback)
    try:
        kind.check_params(kind.with_defaults(merged))
    except ValueError as exc:
        text = str(exc)
        named = _PARAMETER.search(text)
        key = named.group(1) if named else _key_of_value(merged, text)
        if key in unknown or any(repr(merged[k]) in text or str(merged[k]) in text for k in unknown):
            return []
        where = f"{path}.params.{key}" if key else f"{path}.params"
        return [Problem(where, text)]
    return []


def _key_of_value(params: Mapping[str, Any], text: str) -> str | None:
    """The param whose value a message quotes (``Invalid email address 'x'``), if one does."""
    for key, value in params.items():
        values = value if isinstance(value, list) else str(value).split(",")
        if any(isinstance(item, str) and item and f"'{item}'" in text for item in values):
            return str(key)
    return None


def _slack_problems(params: Mapping[str, Any], path: str, *, slack_fallback: bool) -> list[Problem]:
    """MLRun requires a webhook; runherald also sends as a bot, with token and channel (and a known
    ``slack_mode``)."""
    try:
        conversation.slack_mode(params)
    except ValueError as exc:
        return [Problem(f"{path}.params.slack_mode", str(exc))]
    if params.get("webhook") or slack_fallback:
        return []
    if params.get("token"):
        if params.get("channel"):
            return []
        return [
            Problem(
                f"{path}.params.channel", "Parameter 'channel' is required with 'token' for SlackNotification"
            )
        ]
    return [
        Problem(
            f"{path}.params.webhook",
            "Parameter 'webhook' is required for SlackNotification"
            " (or 'token' and 'channel' to send as a bot)",
        )
    ]


__all__ = [
    "SEVERITIES",
    "InvalidRuns",
    "Problem",
    "check_runs",
    "did_you_mean",
    "notification_problems",
    "run_problems",
    "text_problems",
]
