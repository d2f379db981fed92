"""Grouping and repeat intervals of alert rules: the rule fields, the group key, the digest id and the
window logic, pure.

A rule with `group_wait` (or `repeat_interval`) does not send a run's notification itself: the run is a
*member* of its group, (rule, receiver, the run's values of `group_by`), and the worker owning the
group's partition sends one *digest* per window with every member in it. The group's state lives in
its ledger record (key ``"group/{group hash}"``, on the compacted status topic): members waiting, the
window's start, the last digest. These functions change that state; ``streams.groups`` stores it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from runherald.admission import Problem
from runherald.matchers import LABEL_PREFIX, RUN_FIELDS, format_duration, parse_duration
from runherald.rules import compose_message, severity_of
from runherald.sealing import seal_notification

GROUP_PROJECT = "group"  # the project part of a group's ledger key: "group/{group hash}"
GROUP_KEYS = ("group_by", "group_wait", "group_interval", "repeat_interval")
DEFAULT_GROUP_INTERVAL = 300.0
KEEP_DIGESTS = 10  # digest entries a group's record keeps once their members are told


def parse_grouping(data: Mapping[str, Any], path: str) -> tuple[dict[str, Any], list[Problem]]:
    """A rule's grouping fields as `Rule` keyword arguments (only those given), or their problems."""
    found: dict[str, Any] = {}
    problems: list[Problem] = []
    if "group_by" in data:
        fields = data["group_by"]
        if not isinstance(fields, list) or not all(isinstance(item, str) and item for item in fields):
            problems.append(Problem(f"{path}.group_by", "needs a list of field names, e.g. [project]"))
        else:
            for i, name in enumerate(fields):
                if name not in RUN_FIELDS and not (name.startswith(LABEL_PREFIX) and len(name) > 7):
                    known = ", ".join(RUN_FIELDS)
                    why = f"unknown field {name!r}: one of {known} or labels.<key>"
                    problems.append(Problem(f"{path}.group_by[{i}]", why))
                elif fields.index(name) != i:
                    problems.append(Problem(f"{path}.group_by[{i}]", f"{name!r} is named twice"))
            found["group_by"] = tuple(fields)
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if key in data and data[key] is not None:
            try:
                if not isinstance(data[key], str):
                    raise ValueError("a duration is text such as 30s, 5m, 2h or 1h30m")
                found[key] = parse_duration(data[key])
            except ValueError as exc:
                problems.append(Problem(f"{path}.{key}", str(exc)))
    if "group_interval" in found and found["group_interval"] <= 0:
        problems.append(Problem(f"{path}.group_interval", "must be more than 0s"))
    if found.get("group_by") and not found.get("group_wait") and not found.get("repeat_interval"):
        problems.append(Problem(f"{path}.group_by", "groups nothing without group_wait (or repeat_interval)"))
    return (found if not problems else {}), problems


def grouping_dict(group_by: tuple[str, ...], wait: float, interval: float, repeat: float) -> dict[str, Any]:
    """The grouping fields of a rule's dict, only those not at their default."""
    data: dict[str, Any] = {}
    if group_by:
        data["group_by"] = list(group_by)
    if wait:
        data["group_wait"] = format_duration(wait)
    if interval != DEFAULT_GROUP_INTERVAL:
        data["group_interval"] = format_duration(interval)
    if repeat:
        data["repeat_interval"] = format_duration(repeat)
    return data


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def group_values(group_by: tuple[str, ...], fields: Mapping[str, str]) -> list[str]:
    """The run's values of the group's fields (a field the run lacks counts as empty)."""
    return [fields.get(name, "") for name in group_by]


def group_hash(rule: str, receiver: str, values: list[str]) -> str:
    """The stable id of a group: (rule, receiver, group values)."""
    return _hash("group", rule, receiver, *values)


def group_key(group: str) -> str:
    """The key of a group's ledger record, member records and digests (as a run key)."""
    return f"{GROUP_PROJECT}/{group}"


def digest_id(rule: str, receiver: str, values: list[str], window_start: float) -> str:
    """The stable delivery id of one window's digest: (rule, receiver, group values, window start)."""
    return _hash("digest", rule, receiver, *values, str(round(window_start * 1000)))


def make_member(
    run: Mapping[str, Any],
    notification: Mapping[str, Any],
    rule: Any,  # runherald.alerting.Rule (not imported: alerting imports this module)
    receiver: str,
    *,
    fields: Mapping[str, str],
    redacted: dict[str, Any],
    delivery_id: str,
    source: tuple[int, int],
    now: float,
) -> dict[str, Any]:
    """What a grouped rule's notification of one run sends to its group's owner (the groups topic)."""
    meta = run["metadata"]
    values = group_values(rule.group_by, fields)
    return {
        "group": group_hash(rule.name, receiver, values),
        "rule": rule.name,
        "receiver": receiver,
        "values": values,
        "wait": rule.group_wait,
        "interval": rule.group_interval,
        "repeat": rule.repeat_interval,
        "project": meta["project"],
        "uid": meta["uid"],
        "state": run["status"]["state"],
        "delivery_id": delivery_id,
        "partition": source[0],
        "name": str(notification.get("name") or ""),
        "kind": str(notification.get("kind") or "slack"),
        "message": compose_message(run, notification),
        "severity": severity_of(notification),
        "notification": seal_notification(dict(notification)),
        "run": redacted,
        "at": now,
    }


def new_state(member: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "rule": member["rule"],
        "receiver": member["receiver"],
        "values": list(member["values"]),
        "members": [],
        "start": None,
        "last": None,  # {"id": digest id, "at": epoch seconds} of the latest digest
    }


def member_id(member: Mapping[str, Any]) -> str:
    return f"{member['project']}/{member['uid']}/{member['delivery_id']}"


def add_member(state: dict[str, Any], member: dict[str, Any]) -> tuple[str, str]:
    """Put one member run into its group's state. Returns (what happened, digest id):

    - ("joined", "") it waits for the window's digest;
    - ("duplicate", "") already waiting (an event read again after a restart);
    - ("covered", id) within the repeat interval of digest `id`: not sent again.
    """
    state["wait"], state["interval"] = float(member["wait"]), float(member["interval"])
    state["repeat"] = float(member.get("repeat") or 0.0)
    ident = member_id(member)
    if any(member_id(waiting) == ident for waiting in state["members"]):
        return "duplicate", ""
    last = state.get("last")
    if last and ident in last.get("members", ()):
        return "duplicate", ""
    at = float(member["at"])
    if not state["members"] and last and state["repeat"] and at < float(last["at"]) + state["repeat"]:
        return "covered", str(last["id"])
    state["members"].append(member)
    if state["start"] is None:
        state["start"] = at
    return "joined", ""


def due_at(state: Mapping[str, Any]) -> float | None:
    """When the open window's digest goes; None when nobody waits.

    As Alertmanager's: a group's first window waits `group_wait` from its first member; while the group
    is active, the next one goes `group_interval` after the last digest. A member arriving later than
    that (the group idle) starts afresh with `group_wait`. Without `group_wait` (a repeat_interval
    alone) there is no group_interval: a window goes as soon as it opens.
    """
    if not state.get("members") or state.get("start") is None:
        return None
    start, wait = float(state["start"]), float(state.get("wait") or 0.0)
    last = state.get("last")
    if last and wait:
        next_tick = float(last["at"]) + float(state.get("interval") or DEFAULT_GROUP_INTERVAL)
        if start < next_tick:
            return next_tick
    return start + wait


def close_window(state: dict[str, Any], now: float) -> tuple[str, list[dict[str, Any]]]:
    """Close the open window: (its digest id, its members, in arrival order); the state then waits for
    the next window's first member."""
    members = state["members"]
    did = digest_id(state["rule"], state["receiver"], state["values"], float(state["start"]))
    state["members"], state["start"] = [], None
    state["last"] = {"id": did, "at": now, "members": [member_id(m) for m in members]}
    return did, members


def digest_message(members: Sequence[Mapping[str, Any]]) -> str:
    """The digest's text: the first member's message, with how many runs the digest lists."""
    first = str(members[0].get("message") or "") if members else ""
    return first if len(members) == 1 else f"{first} ({len(members)} runs)"


def describe(group: str, wait: float) -> str:
    waiting = f"waiting for group {group[:12]}"
    return f"{waiting} (group_wait {format_duration(wait)})" if wait else waiting


__all__ = [
    "DEFAULT_GROUP_INTERVAL",
    "GROUP_KEYS",
    "GROUP_PROJECT",
    "add_member",
    "close_window",
    "digest_id",
    "due_at",
    "group_hash",
    "group_key",
    "group_values",
    "parse_grouping",
]
