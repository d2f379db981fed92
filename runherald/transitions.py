"""Transitions: what a run's terminal state means next to the runs of the same name before it.

A rule's ``when`` may name ``regressed`` (the first ``error`` after a ``completed``), ``recovered`` (the
first ``completed`` after one or more ``error``s) and ``{state_changed: {from: [..], to: [..]}}``, for
the runs of one project and run name. Which one a run makes depends on the run of that name before it
by ``status.last_update``, not by arrival: runs of one name live on different partitions and may arrive
in any order. Pure: the rule's ``when`` checked and split (`parse_when`), and the history of one name
(`insert`): the last terminal states, ordered by last_update, with the transitions each one fired.

``aborted`` is neither a success nor a failure: ``regressed`` and ``recovered`` look past it to the last
completed or error run; ``state_changed`` compares with the run right before, whatever its state.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runherald.admission import RUN_STATES, Problem, did_you_mean
from runherald.rules import NOTIFYING_STATES

REGRESSED, RECOVERED, STATE_CHANGED = "regressed", "recovered", "state_changed"
NAMED = (REGRESSED, RECOVERED)
TERMINAL_STATES = ("completed", "error", "aborted")
HISTORY_LENGTH = 20  # terminal states kept per project and run name
_RANK = {state: rank for rank, state in enumerate(TERMINAL_STATES)}


@dataclass(frozen=True, slots=True)
class StateChanged:
    """``{state_changed: {from: [..], to: [..]}}``: the run before was in one of `from_states`, this one
    is in one of `to_states`, and they differ. Its transitions are labelled ``"{from}>{to}"``."""

    from_states: tuple[str, ...] = TERMINAL_STATES
    to_states: tuple[str, ...] = TERMINAL_STATES

    def fires_on(self, label: str) -> bool:
        before, sep, after = label.partition(">")
        return bool(sep) and before in self.from_states and after in self.to_states

    def to_item(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.from_states != TERMINAL_STATES:
            body["from"] = list(self.from_states)
        if self.to_states != TERMINAL_STATES:
            body["to"] = list(self.to_states)
        return {STATE_CHANGED: body}

    def __str__(self) -> str:
        return f"state_changed({'|'.join(self.from_states)}>{'|'.join(self.to_states)})"


Transition = str | StateChanged  # regressed, recovered, or a StateChanged


def fires_on(transitions: Iterable[Transition], label: str) -> bool:
    """Whether a rule with these transitions in its ``when`` is sent for a transition labelled so."""
    for transition in transitions:
        if transition == label if isinstance(transition, str) else transition.fires_on(label):
            return True
    return False


def when_items(states: Sequence[str], transitions: Sequence[Transition]) -> list[Any]:
    """A rule's ``when`` as written: its states, then its transitions."""
    return [*states, *(t if isinstance(t, str) else t.to_item() for t in transitions)]


def when_labels(transitions: Sequence[Transition]) -> list[str]:
    """The transitions as strings no run state equals, for a notification's ``when``."""
    return [str(transition) for transition in transitions]


def _state_list(value: Any, path: str, problems: list[Problem]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        problems.append(Problem(path, f"must be a list of terminal states ({', '.join(TERMINAL_STATES)})"))
        return ()
    for i, state in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(state, str):
            problems.append(Problem(where, "must be a string (a terminal run state)"))
        elif state in RUN_STATES and state not in TERMINAL_STATES:
            terminal = ", ".join(TERMINAL_STATES)
            problems.append(
                Problem(where, f"state {state!r} is not terminal: a run's history holds {terminal}")
            )
        elif state not in TERMINAL_STATES:
            problems.append(Problem(where, f"unknown state {state!r}{did_you_mean(state, TERMINAL_STATES)}"))
    return tuple(dict.fromkeys(value))


def _state_changed(value: Any, path: str, problems: list[Problem]) -> StateChanged | None:
    if not isinstance(value, Mapping):
        problems.append(Problem(path, "must be an object with from and to (lists of terminal states)"))
        return None
    before = len(problems)
    for key in value:
        if key not in ("from", "to"):
            problems.append(
                Problem(f"{path}.{key}", f"unknown field {key!r}{did_you_mean(str(key), ['from', 'to'])}")
            )
    if "from" not in value and "to" not in value and len(problems) == before:
        problems.append(Problem(path, "needs from or to (or both): lists of terminal states"))
    from_states = _state_list(value["from"], f"{path}.from", problems) if "from" in value else TERMINAL_STATES
    to_states = _state_list(value["to"], f"{path}.to", problems) if "to" in value else TERMINAL_STATES
    if len(problems) > before:
        return None
    if len(from_states) == 1 and from_states == to_states:
        problems.append(Problem(path, f"from and to are both {from_states[0]!r}: that is never a change"))
        return None
    return StateChanged(from_states, to_states)


def parse_when(when: Any, path: str) -> tuple[tuple[str, ...], tuple[Transition, ...], list[Problem]]:
    """A rule's ``when``: (its run states, its transitions, problems at ``{path}[i]...``). Absent or empty:
    completed only, as MLRun's default."""
    if when is None or when == []:
        return ("completed",), (), []
    if not isinstance(when, list):
        return (), (), [Problem(path, "must be a list of run states or transitions")]
    states: list[str] = []
    transitions: list[Transition] = []
    problems: list[Problem] = []
    notifying = sorted(NOTIFYING_STATES)
    known = [*notifying, *NAMED, STATE_CHANGED]
    for i, item in enumerate(when):
        where = f"{path}[{i}]"
        if isinstance(item, Mapping):
            if list(item) != [STATE_CHANGED]:
                keys = ", ".join(repr(str(key)) for key in item)
                close = did_you_mean(str(next(iter(item), "")), [STATE_CHANGED])
                problems.append(
                    Problem(where, f"an object in when must be {{state_changed: ...}}, not {keys}{close}")
                )
                continue
            changed = _state_changed(item[STATE_CHANGED], f"{where}.{STATE_CHANGED}", problems)
            if changed is not None:
                transitions.append(changed)
        elif not isinstance(item, str):
            problems.append(Problem(where, "must be a run state, a transition or {state_changed: ...}"))
        elif item in NAMED:
            transitions.append(item)
        elif item == STATE_CHANGED:
            problems.append(
                Problem(where, "state_changed needs from and to: {state_changed: {from: [..], to: [..]}}")
            )
        elif item in RUN_STATES - NOTIFYING_STATES:
            problems.append(
                Problem(where, f"state {item!r} never notifies (states that notify: {', '.join(notifying)})")
            )
        elif item not in NOTIFYING_STATES:
            problems.append(Problem(where, f"unknown state {item!r}{did_you_mean(item, known)}"))
        else:
            states.append(item)
    return tuple(dict.fromkeys(states)), tuple(dict.fromkeys(transitions)), problems


# The history of one project and run name: entries {uid, state, at, source, fired}, oldest first, where
# `at` is the run's last_update (epoch seconds), `source` its event's [partition, offset] on the runs
# topic and `fired` the transitions already decided for it (sent, or covered by an earlier decision).

Entry = dict[str, Any]


def _order(entry: Mapping[str, Any]) -> tuple[float, str, int]:
    return (float(entry["at"]), str(entry["uid"]), _RANK.get(str(entry["state"]), 9))


def between(before: Sequence[Mapping[str, Any]], state: str) -> list[str]:
    """The transitions a run in `state` makes after the runs `before` it (oldest first)."""
    if not before:
        return []
    labels = []
    decisive = next((e["state"] for e in reversed(before) if e["state"] in ("completed", "error")), None)
    if state == "error" and decisive == "completed":
        labels.append(REGRESSED)
    elif state == "completed" and decisive == "error":
        labels.append(RECOVERED)
    previous = before[-1]["state"]
    if previous != state:
        labels.append(f"{previous}>{state}")
    return labels


@dataclass(frozen=True, slots=True)
class Fired:
    """Transitions a run makes, decided now: send them to that run's owner."""

    entry: Entry
    labels: tuple[str, ...]
    previous: Entry | None


def insert(
    history: list[Entry], event: Mapping[str, Any], keep: int = HISTORY_LENGTH
) -> tuple[list[Entry], list[Fired]] | None:
    """Place a terminal run event in its name's history by last_update; returns (the new history, the
    transitions to send) or None when the history does not change (the same uid and state again, or an
    event older than every one kept while the history is full: its predecessor is not known).

    The event is compared with the run before it; the runs after it are compared again with what is now
    before them, and each transition they make that was not decided yet is sent. A transition the event
    makes that the next run already announced, and no longer makes (it arrived before its predecessor,
    out of order), was announced there: it is not sent twice.
    """
    if any(e["uid"] == event["uid"] and e["state"] == event["state"] for e in history):
        return None
    entry: Entry = {
        "uid": event["uid"],
        "state": event["state"],
        "at": float(event["at"]),
        "source": list(event.get("source") or []),
        "fired": [],
    }
    entries = [dict(e, fired=list(e.get("fired") or [])) for e in history]
    keys = [_order(e) for e in entries]
    index = bisect.bisect_right(keys, _order(entry))
    if index == 0 and len(entries) >= keep:
        return None
    entries.insert(index, entry)
    after = {j: between(entries[:j], entries[j]["state"]) for j in range(index + 1, len(entries))}
    fired: list[Fired] = []
    own = []
    for label in between(entries[:index], entry["state"]):
        entry["fired"].append(label)
        announced = next((j for j in after if label in entries[j]["fired"]), None)
        if announced is None or label in after[announced]:
            own.append(label)
    if own:
        fired.append(Fired(entry, tuple(own), entries[index - 1]))
    for j, labels in after.items():
        new = [label for label in labels if label not in entries[j]["fired"]]
        if new:
            entries[j]["fired"].extend(new)
            fired.append(Fired(entries[j], tuple(new), entries[j - 1]))
    return entries[-keep:], fired


__all__ = [
    "HISTORY_LENGTH",
    "RECOVERED",
    "REGRESSED",
    "STATE_CHANGED",
    "TERMINAL_STATES",
    "Fired",
    "StateChanged",
    "Transition",
    "between",
    "fires_on",
    "insert",
    "parse_when",
    "when_items",
    "when_labels",
]
