"""Turn one run event into deliveries: validate, order, check names, apply the rules, de-duplicate.

Pure: it reads the run's ledger record and latest indexed run, and returns what to write; the stage
in ``streams.app`` does the writing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from runherald import grouping, ledger, rules
from runherald.alerting import is_template, notification_name, with_receiver
from runherald.config import Settings
from runherald.delivery import Delivery, delivery_id, run_key
from runherald.events import (  # noqa: F401 (re-exported: the stage and the API read them here)
    INVALID_FIELD,
    MISSING_FIELD,
    NOT_A_RUN,
    NOT_JSON,
    TOO_LARGE,
    InvalidEvent,
    parse_event,
    validate_run,
)
from runherald.inhibition import Inhibition, muting, start_inhibition
from runherald.matchers import run_fields
from runherald.rule_index import AlertConfig
from runherald.sealing import seal_notification
from runherald.subscriptions import decide as subscription_decision
from runherald.subscriptions import matching
from runherald.transitions import when_labels

NOTIFYING_STATES = frozenset({"completed", "error", "aborted", "running"})


@dataclass
class Evaluation:
    """What one run event leads to."""

    key: str = ""
    run: dict[str, Any] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    record: ledger.Record | None = None  # the run's ledger record, when it changed
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (notification name, why)
    dropped: str = ""  # why the whole event was ignored (e.g. out of order)
    inhibitions: list[Inhibition] = field(default_factory=list)  # started by its rules' firing
    members: list[dict[str, Any]] = field(default_factory=list)  # for the groups topic (runherald.grouping)


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


timestamp = _timestamp  # a run's last_update as epoch seconds, None when unset or unreadable


class Candidate(NamedTuple):
    """One notification a run event may send: the run's own (its receiver resolved) or a rule's.

    `error` says why it cannot be sent at all (a receiver that does not exist, a name clash). A named
    tuple: one is made per notification of every run event, and a frozen dataclass costs twice as much.
    """

    notification: dict[str, Any]
    name: str
    receiver: str = ""
    rule: str = ""
    error: str = ""
    subscription: str = ""  # a webhook subscription's (runherald.subscriptions)


def candidates(
    run: dict[str, Any], alerts: AlertConfig | None, fields: dict[str, str] | None = None
) -> list[Candidate]:
    """The run's own notifications, then one per (matching rule, receiver), each with what it needs to
    be sent; rules are matched against the alert configuration in force now."""
    own: list[dict[str, Any]] = (run.get("spec") or {}).get("notifications") or []
    mark = run.get("runherald")
    if isinstance(mark, dict) and mark.get("notified_by_source"):
        own = []  # the source (MLRun, for a webhook body's runs) already sent the run's own notifications
    found: list[Candidate] = []
    for notification in own:
        name = str(notification.get("name") or "")
        params = notification.get("params")
        receiver_name = params.get("receiver") if params else None
        if receiver_name is None:
            found.append(Candidate(notification, name))
            continue
        receiver = alerts.receivers.get(str(receiver_name)) if alerts is not None else None
        if receiver is None:
            error = f"receiver {receiver_name!r} does not exist"
            found.append(Candidate(notification, name, str(receiver_name), error=error))
        else:
            found.append(Candidate(with_receiver(notification, receiver), name, receiver.name))
    if alerts is not None and alerts.subscriptions:
        found += _subscribed(run, alerts, fields, {candidate.name for candidate in found})
    if alerts is None or run["status"]["state"] not in alerts.rule_states:
        return found  # no rule is sent in this state, whatever it matches
    own_names = {candidate.name for candidate in found}
    redacted: dict[str, Any] | None = None  # what a rule's message template may read
    for rule in alerts.matching_rules(fields if fields is not None else run_fields(run)):
        for receiver_name in rule.receivers:
            name = notification_name(rule.name, receiver_name)
            receiver = alerts.receivers.get(receiver_name)
            when = [*rule.when, *when_labels(rule.transitions)]  # as rule.notification has it
            placeholder = {"name": name, "when": when, "kind": receiver.kind if receiver else ""}
            if name in own_names:
                error = (
                    f"rule {rule.name!r} cannot notify {receiver_name!r}: "
                    f"the run has its own notification named {name!r}"
                )
                found.append(Candidate(placeholder, name, receiver_name, rule.name, error))
            elif receiver is None:
                error = f"rule {rule.name!r} names receiver {receiver_name!r}, which does not exist"
                found.append(Candidate(placeholder, name, receiver_name, rule.name, error))
            else:
                if redacted is None and is_template(rule.message):
                    redacted = rules.redact_run(run)
                notification = rule.notification(receiver, redacted)
                found.append(Candidate(notification, name, receiver_name, rule.name))
    return found


def _subscribed(
    run: dict[str, Any], alerts: AlertConfig, fields: dict[str, str] | None, own_names: set[str]
) -> list[Candidate]:
    """One candidate per webhook subscription that wants the run in its state (its `when` is that state)."""
    state = run["status"]["state"]
    wanted = alerts.subscriptions.values()
    found = []
    for subscription in matching(wanted, state, fields if fields is not None else run_fields(run)):
        notification, name = subscription.notification(state), subscription.notification_name
        clash = f"subscription {subscription.name!r}: the run has its own notification named {name!r}"
        error = clash if name in own_names else ""
        found.append(Candidate(notification, name, error=error, subscription=subscription.name))
    return found


def evaluate_event(
    run: dict[str, Any],
    *,
    record: ledger.Record,
    source: tuple[int, int],
    settings: Settings,
    alerts: AlertConfig | None = None,
) -> Evaluation:
    """Decide, for a validated run dict, which deliveries to emit and what to record.

    The record always changes, with or without notifications (its own, or an alert rule's): it remembers
    the latest accepted event (its state, last_update and offset on the runs topic) for ordering and for
    the API, which reads the run itself back from the runs topic, so every run seen is known to the API.
    `alerts` is the alert configuration in force: its rules add notifications, its silences mute deliveries.
    """
    meta, status = run["metadata"], run["status"]
    project, uid, state = meta["project"], meta["uid"], status["state"]
    result = Evaluation(key=run_key(project, uid), run=run)
    found = candidates(run, alerts)
    if alerts is not None and alerts.inhibiting:
        # A rule that inhibits others decides first: what it mutes is muted for this run too.
        found.sort(key=lambda candidate: candidate.rule not in alerts.inhibiting)

    latest = record.get("run") or {}
    seen = _timestamp(latest.get("last_update"))
    this = _timestamp(status.get("last_update"))
    if seen is not None and this is not None and this < seen:
        result.dropped = (
            f"out of order: last_update {status.get('last_update')} is older than "
            f"{latest.get('last_update')} already seen"
        )
        return result
    record["run"] = {
        "state": state,
        "last_update": status.get("last_update"),
        "offset": list(source),
        "recorded": round(time.time(), 3),  # when runherald recorded it (the SQL runs list's `updated`)
    }
    if meta.get("name"):
        record["run"]["name"] = meta["name"]  # the ledger's run name (ledger.delivery_items)
    result.record = record
    if not found:
        return result  # nothing to send, but the API knows the run
    redacted: dict[str, Any] | None = None

    duplicate_names = rules.check_unique_names((run.get("spec") or {}).get("notifications") or [])
    now = time.time()
    fields: dict[str, str] = {}  # the run's matcher fields, made when a silence or rule first needs them
    for candidate in found:
        notification, name = candidate.notification, candidate.name
        when = rules.when_states(notification)
        error = candidate.error or (
            duplicate_names if not (candidate.rule or candidate.subscription) else None
        )
        if state not in when and not error:
            # Never sent in this state whatever else holds (rules.evaluate says the same, later and
            # dearer): most events of a run take this path.
            result.skipped.append((name, f"state {state!r} not in when {when}"))
            continue
        did = delivery_id(project, uid, name, state)
        entry = ledger.entry(record, did)
        if error:
            if state in when and not ledger.is_terminal(entry):
                ledger.put_entry(
                    record,
                    did,
                    name=name,
                    state=state,
                    kind=notification.get("kind", "slack"),
                    status=ledger.ERROR,
                    reason=ledger.short_reason(error),
                )
            result.skipped.append((name, error))
            continue
        if ledger.is_terminal(entry):
            result.skipped.append((name, f"already {entry['status']} for state {state!r}"))  # type: ignore[index]
            continue
        if entry is not None and entry.get("retry"):
            result.skipped.append((name, "waiting for its retry"))
            continue
        if entry is not None and entry.get("source") != list(source):
            # An earlier event already emitted this delivery; the dispatcher owns it now.
            result.skipped.append((name, "already queued"))
            continue
        decision = (
            subscription_decision(run, settings.notify_iterations)
            if candidate.subscription
            else rules.evaluate(
                run,
                notification,
                condition_error_policy=settings.condition_error_policy,
                notify_iterations=settings.notify_iterations,
            )
        )
        if not decision.send:
            result.skipped.append((name, decision.reason))
            continue
        if alerts is not None and (alerts.silences or candidate.rule):
            fields = fields or run_fields(run)  # once per event, and only for who needs them
        if alerts is not None and candidate.rule in alerts.inhibiting:
            _start_inhibition(result, alerts, candidate.rule, fields, now)
        if alerts is not None and alerts.silences:
            muted_by = {**fields, "notification": name, "receiver": candidate.receiver}
            silence = alerts.silence_for(muted_by, now)
            if silence is not None:
                why = f"muted by {silence.describe()}"
                _skip(result, record, did, candidate, state, why, silence=silence.id)
                continue
        if (
            candidate.rule
            and alerts is not None
            and alerts.inhibitions.may_mute(candidate.rule, result.inhibitions)
        ):
            inhibition = muting(alerts.inhibitions, result.inhibitions, candidate.rule, fields, now)
            if inhibition is not None:
                _skip(result, record, did, candidate, state, inhibition.describe(), inhibition=inhibition.key)
                continue
        if redacted is None:
            redacted = rules.redact_run(run, parsed_json=True)
        rule = alerts.rules.get(candidate.rule) if alerts is not None and candidate.rule else None
        if rule is not None and (rule.group_wait or rule.repeat_interval):
            # Its group's owner sends it, in a digest (runherald.grouping, streams.groups).
            member = grouping.make_member(
                run, notification, rule, candidate.receiver, fields=fields, redacted=redacted,
                delivery_id=did, source=source, now=now,
            )  # fmt: skip
            result.members.append(member)
            ledger.put_entry(
                record, did, name=name, state=state, kind=member["kind"], status=ledger.PENDING,
                source=list(source), group=member["group"],
                reason=grouping.describe(member["group"], rule.group_wait),
            )  # fmt: skip
            continue
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


def _skip(
    result: Evaluation,
    record: ledger.Record,
    did: str,
    candidate: Candidate,
    state: str,
    why: str,
    **extra: Any,
) -> None:
    """Record a delivery decided against (silenced, inhibited) as `skipped`, the reason saying why."""
    ledger.put_entry(
        record,
        did,
        name=candidate.name,
        state=state,
        kind=candidate.notification.get("kind", "slack"),
        status=ledger.SKIPPED,
        reason=ledger.short_reason(why),
        **extra,
    )
    result.skipped.append((candidate.name, why))


def _start_inhibition(
    result: Evaluation, alerts: AlertConfig, rule_name: str, fields: dict[str, str], now: float
) -> None:
    """Rule `rule_name` fired for the run: it inhibits (once per event, whatever its receivers)."""
    if any(inhibition.source == rule_name for inhibition in result.inhibitions):
        return
    rule = alerts.rules[rule_name]
    result.inhibitions.append(
        start_inhibition(
            rule.name, rule.inhibits, rule.inhibit_equal, rule.inhibit_for, fields, result.key, now
        )
    )


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
