"""The dry run of the alert rules for one run (`runherald rules test`, ``POST /api/v1/rules/test``):
which rules match and, when one does not, which of its matchers did not hold; for each receiver of a
matching rule, whether its notification would be sent now (``when``, condition, silences) and what its
channel would get, rendered by the notifier itself. Nothing is sent.

Secrets stay out of the answer: the run is seen with its notifications' secret_params REDACTED, a
receiver's notification with its secret_params REDACTED (references kept), and channels render from
params alone.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runherald import rules
from runherald.alerting import Receiver, Rule, notification_name
from runherald.config import Settings
from runherald.errors import InvalidArgumentError
from runherald.matchers import matches_all, run_fields
from runherald.notifiers import Notifiers, NotifierSettings
from runherald.rule_index import AlertConfig
from runherald.sandbox import describe_error

_MAX_ERROR_TEXT = 200
_NAMES_SHOWN = 20  # stored names an unknown-rule error lists


class UnknownRules(InvalidArgumentError):
    """Rules asked for by name that are not stored; the message lists the names that are."""

    def __init__(self, unknown: Sequence[str], known: Iterable[str]) -> None:
        self.unknown = list(unknown)
        self.known = sorted(known)
        self.messages = []
        for name in self.unknown:
            close = difflib.get_close_matches(name, self.known, n=1)
            self.messages.append(
                f"no rule named {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            )
        super().__init__("; ".join(self.messages) + f"; {self.stored()}")

    def stored(self) -> str:
        """The stored rules' names (the first few when there are many)."""
        if not self.known:
            return "no rules are stored"
        shown = ", ".join(self.known[:_NAMES_SHOWN])
        more = f" and {len(self.known) - _NAMES_SHOWN} more" if len(self.known) > _NAMES_SHOWN else ""
        return f"stored rules: {shown}{more}"


def _own_names(run: Mapping[str, Any]) -> set[str]:
    spec = run.get("spec")
    notifications = (spec.get("notifications") or []) if isinstance(spec, Mapping) else []
    return {str(item.get("name") or "") for item in notifications if isinstance(item, Mapping)}


def _selected(config: AlertConfig, rule_names: Sequence[str] | None) -> list[Rule]:
    if rule_names is None:
        return [config.rules[name] for name in sorted(config.rules)]
    wanted = list(dict.fromkeys(rule_names))
    unknown = [name for name in wanted if name not in config.rules]
    if unknown:
        raise UnknownRules(unknown, config.rules)
    return [config.rules[name] for name in wanted]


def public_notification(rule: Rule, receiver: Receiver, run: Mapping[str, Any]) -> dict[str, Any]:
    """The notification the rule sends to the receiver for this (redacted) run, its message template
    rendered, its secret_params as the API shows them."""
    notification = rule.notification(receiver, run)
    notification["secret_params"] = receiver.public_dict()["secret_params"]
    return notification


def render(run: Mapping[str, Any], notification: Mapping[str, Any], notifiers: Notifiers) -> dict[str, Any]:
    """What the notification's own channel would send for the run: the message, the severity, and the
    channel's preview as data and as text (or why it cannot be rendered). Uses params only."""
    kind = str(notification.get("kind") or "slack")
    message = rules.compose_message(run, notification)
    severity = rules.severity_of(notification)
    rendered: dict[str, Any] = {"kind": kind, "message": message, "severity": severity}
    try:
        preview = notifiers(kind).preview(
            message,
            severity,
            [dict(run)],
            name=str(notification.get("name") or ""),
            params=dict(notification.get("params") or {}),
        )
    except Exception as exc:  # a dry run explains, it does not fail
        rendered["error"] = f"cannot render for {kind}: {describe_error(exc)[:_MAX_ERROR_TEXT]}"
        return rendered
    if preview is None:
        rendered["error"] = f"kind {kind!r} has no preview"
        return rendered
    rendered["data"] = preview.data
    rendered["text"] = preview.text
    return rendered


def _receiver_answer(
    rule: Rule,
    receiver_name: str,
    *,
    run: Mapping[str, Any],
    fields: Mapping[str, str],
    own_names: set[str],
    config: AlertConfig,
    settings: Settings,
    notifiers: Notifiers,
    now: float,
) -> dict[str, Any]:
    name = notification_name(rule.name, receiver_name)
    answer: dict[str, Any] = {
        "receiver": receiver_name,
        "notification": name,
        "kind": None,
        "send": False,
        "reason": "",
        "silence": None,
        "rendered": None,
    }
    receiver = config.receivers.get(receiver_name)
    if receiver is None:
        answer["reason"] = f"receiver {receiver_name!r} does not exist"
        return answer
    answer["kind"] = receiver.kind
    notification = public_notification(rule, receiver, run)
    answer["rendered"] = render(run, notification, notifiers)
    if name in own_names:
        answer["reason"] = (
            f"rule {rule.name!r} cannot notify {receiver_name!r}: "
            f"the run has its own notification named {name!r}"
        )
        return answer
    decision = rules.evaluate(
        run,
        notification,
        condition_error_policy=settings.condition_error_policy,
        notify_iterations=settings.notify_iterations,
    )
    answer["send"], answer["reason"] = decision.send, decision.reason
    if rule.transitions:
        named = ", ".join(str(transition) for transition in rule.transitions)
        answer["reason"] += f"; its transitions ({named}) depend on the earlier runs of that name: not tried"
    silence = config.silence_for({**fields, "notification": name, "receiver": receiver_name}, now)
    if silence is not None:
        answer["silence"] = silence.id
        if decision.send:
            answer["send"] = False
            answer["reason"] = f"muted by {silence.describe()}; without it: {decision.reason}"
        else:
            answer["reason"] = f"{decision.reason}; {silence.describe()} would also mute it"
    inhibition = config.inhibition_for(rule.name, fields, now) if answer["send"] else None
    if inhibition is not None:
        answer["send"] = False
        answer["reason"] = f"{inhibition.describe()}; without it: {decision.reason}"
    return answer


def dry_run(
    run: Mapping[str, Any],
    config: AlertConfig,
    rule_names: Sequence[str] | None = None,
    *,
    settings: Settings,
    now: float | None = None,
    notifiers: Notifiers | None = None,
) -> dict[str, Any]:
    """For every stored rule (or the ones named, in that order), against a validated run dict::

        {"rules": [{"rule", "matched", "failed_matcher",
                    "receivers": [{"receiver", "notification", "kind", "send", "reason", "silence",
                                   "rendered"}]}]}

    `failed_matcher` is the first matcher (as text) that does not hold, null when the rule matched; a
    rule that does not match has no receivers listed. `send`/`reason` are `runherald.rules.evaluate`'s
    decision for the rule's notification to that receiver, then an active silence's (`silence` is its
    id). Raises UnknownRules when a name is not a stored rule's.
    """
    selected = _selected(config, rule_names)
    notifiers = notifiers if notifiers is not None else Notifiers(NotifierSettings.from_settings(settings))
    now = time.time() if now is None else now
    fields = run_fields(run)
    redacted = rules.redact_run(run)  # what a receiver sees, and all a condition may show
    own_names = _own_names(run)
    answers = []
    for rule in selected:
        failed = matches_all(rule.matchers, fields)
        receivers = []
        if failed is None:
            for receiver_name in rule.receivers:
                receivers.append(
                    _receiver_answer(
                        rule,
                        receiver_name,
                        run=redacted,
                        fields=fields,
                        own_names=own_names,
                        config=config,
                        settings=settings,
                        notifiers=notifiers,
                        now=now,
                    )
                )
        answers.append(
            {
                "rule": rule.name,
                "matched": failed is None,
                "failed_matcher": None if failed is None else str(failed),
                "receivers": receivers,
            }
        )
    return {"rules": answers}


__all__ = ["UnknownRules", "dry_run", "public_notification", "render"]
