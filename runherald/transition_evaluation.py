"""Transitions into deliveries: the records that carry a run's terminal state to its name's history and
a transition back to the run, and the rules' deliveries for a transition.

Pure, as ``runherald.evaluation``. A transition's delivery is a rule's delivery like any other (matchers,
condition as for the run's state, silences, the ledger), except that the state part of its id and its
ledger entry is the transition (``regressed``, ``recovered``, ``completed>error``): it never collides
with the delivery for the run's plain state.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from runherald import ledger, rules
from runherald.alerting import Rule, notification_name
from runherald.config import Settings
from runherald.delivery import Delivery, delivery_id, run_key
from runherald.evaluation import Evaluation, make_delivery, timestamp
from runherald.matchers import run_fields
from runherald.rule_index import AlertConfig
from runherald.transitions import RECOVERED, REGRESSED, TERMINAL_STATES, Fired, fires_on


def history_key(project: str, name: str) -> str:
    """The key of a run name's history (and of the outcomes that feed it): ``"{project}/{name}"``."""
    return f"{project}/{name}"


def outcome_record(run: Mapping[str, Any], source: tuple[int, int], arrived: float) -> dict[str, Any] | None:
    """What a run event in a terminal state adds to its name's history (None for any other event, and
    for a child iteration: the parent run is the one of that name). `arrived`: when it was published,
    the order used when the run has no last_update."""
    meta, status = run["metadata"], run["status"]
    if status["state"] not in TERMINAL_STATES or meta.get("iteration"):
        return None
    at = timestamp(status.get("last_update"))
    return {
        "project": meta["project"],
        "name": str(meta.get("name") or ""),
        "uid": meta["uid"],
        "state": status["state"],
        "at": arrived if at is None else at,
        "source": list(source),
    }


def transition_record(project: str, name: str, fired: Fired) -> dict[str, Any]:
    """A run's transitions, sent keyed by its run key to the worker that owns the run."""
    entry, previous = fired.entry, fired.previous or {}
    return {
        "project": project,
        "name": name,
        "uid": entry["uid"],
        "state": entry["state"],
        "at": entry["at"],
        "source": entry["source"],
        "transitions": list(fired.labels),
        "previous": {"uid": previous.get("uid"), "state": previous.get("state")},
    }


def describe(label: str, name: str, previous: Mapping[str, Any]) -> str:
    """One line for the message: what the transition is, and which run came before."""
    before = (
        f"run {previous.get('uid')} ({previous.get('state')})" if previous.get("uid") else "the run before"
    )
    if label == REGRESSED:
        return f"Regressed: {name} failed after {before} of that name"
    if label == RECOVERED:
        return f"Recovered: {name} completed after {before} of that name"
    return f"State changed ({label}) after {before} of {name}"


def transition_delivery(
    run: dict[str, Any],
    notification: dict[str, Any],
    label: str,
    previous: Mapping[str, Any] | None = None,
    *,
    redacted: dict[str, Any] | None = None,
    created_at: float | None = None,
) -> Delivery:
    """The delivery of a rule's notification for a run's transition: its id and state name the
    transition. The same record always gives the same delivery."""
    meta = run["metadata"]
    plain = make_delivery(run, notification, redacted=redacted, created_at=created_at)
    name = str(notification.get("name") or "")
    line = describe(label, str(meta.get("name") or ""), previous or {})
    return dataclasses.replace(
        plain,
        id=delivery_id(meta["project"], meta["uid"], name, label),
        state=label,
        message=f"{plain.message}\n{line}",
    )


def rebuild(run: dict[str, Any], found: ledger.Entry, alerts: AlertConfig | None) -> Delivery | None:
    """A stranded transition delivery again (the crash re-drive), from its run event and ledger entry,
    if a rule in force still sends it."""
    label, name = str(found.get("transition") or ""), str(found.get("name") or "")
    for rule, receiver, notification in _notifications(run, label, alerts):
        if notification and notification_name(rule.name, receiver) == name:
            return transition_delivery(run, notification, label, found.get("previous") or {})
    return None


def _notifications(
    run: dict[str, Any], label: str, alerts: AlertConfig | None
) -> list[tuple[Rule, str, dict[str, Any]]]:
    if alerts is None or not alerts.uses_transitions:
        return []
    found: list[tuple[Rule, str, dict[str, Any]]] = []
    redacted: dict[str, Any] | None = None
    for rule in alerts.matching_rules(run_fields(run)):
        if not fires_on(rule.transitions, label):
            continue
        for receiver_name in rule.receivers:
            receiver = alerts.receivers.get(receiver_name)
            if receiver is None:
                found.append((rule, receiver_name, {}))
                continue
            if redacted is None and rule.message:
                redacted = rules.redact_run(run)
            found.append((rule, receiver_name, rule.notification(receiver, redacted)))
    return found


def evaluate_transitions(
    run: dict[str, Any],
    transitions: list[str],
    *,
    previous: Mapping[str, Any],
    record: ledger.Record,
    source: tuple[int, int],
    settings: Settings,
    alerts: AlertConfig | None,
) -> Evaluation:
    """The deliveries of the rules whose ``when`` names one of a run's transitions, and their ledger
    entries (in `record`, the run's ledger record). A delivery already in the ledger is not made again:
    a transition announced twice (a record read again after a crash) sends once."""
    meta = run["metadata"]
    project, uid, state = meta["project"], meta["uid"], run["status"]["state"]
    result = Evaluation(key=run_key(project, uid), run=run)
    own = {str(n.get("name") or "") for n in (run.get("spec") or {}).get("notifications") or []}
    now = time.time()
    redacted: dict[str, Any] | None = None
    changed = False
    for label in transitions:
        for rule, receiver, notification in _notifications(run, label, alerts):
            name = notification_name(rule.name, receiver)
            did = delivery_id(project, uid, name, label)
            found = ledger.entry(record, did)
            if found is not None:
                why = f"already {found['status']}" if ledger.is_terminal(found) else "already queued"
                result.skipped.append((name, f"{why} for {label!r}"))
                continue
            fields: dict[str, Any] = {
                "name": name,
                "state": label,
                "transition": label,
                "previous": dict(previous),
            }
            error = ""
            if not notification:
                error = f"rule {rule.name!r} names receiver {receiver!r}, which does not exist"
            elif name in own:
                error = (
                    f"rule {rule.name!r} cannot notify {receiver!r}: "
                    f"the run has its own notification named {name!r}"
                )
            if error:
                changed = True
                ledger.put_entry(
                    record, did, **fields, kind="", status=ledger.ERROR, reason=ledger.short_reason(error)
                )
                result.skipped.append((name, error))
                continue
            kind = str(notification.get("kind") or "slack")
            # when/condition as for the run's own state: the condition applies to a completed run only.
            decision = rules.evaluate(
                run,
                {**notification, "when": [state]},
                condition_error_policy=settings.condition_error_policy,
                notify_iterations=settings.notify_iterations,
            )
            if not decision.send:
                result.skipped.append((name, decision.reason))
                continue
            if alerts is not None and alerts.silences:
                silence = alerts.silence_for(
                    {**run_fields(run), "notification": name, "receiver": receiver}, now
                )
                if silence is not None:
                    changed = True
                    why = f"muted by {silence.describe()}"
                    ledger.put_entry(
                        record,
                        did,
                        **fields,
                        kind=kind,
                        status=ledger.SKIPPED,
                        reason=ledger.short_reason(why),
                        silence=silence.id,
                    )
                    result.skipped.append((name, why))
                    continue
            if redacted is None:
                redacted = rules.redact_run(run, parsed_json=True)
            delivery = transition_delivery(
                run, notification, label, previous, redacted=redacted, created_at=now
            )
            result.deliveries.append(delivery)
            changed = True
            ledger.put_entry(
                record,
                did,
                **fields,
                kind=kind,
                status=ledger.PENDING,
                source=list(source),
                note=decision.reason or None,
            )
    if changed:
        record.setdefault(
            "run", {"state": state, "last_update": run["status"].get("last_update"), "offset": list(source)}
        )
        result.record = record
    return result


__all__ = [
    "describe",
    "evaluate_transitions",
    "history_key",
    "outcome_record",
    "rebuild",
    "transition_delivery",
    "transition_record",
]
