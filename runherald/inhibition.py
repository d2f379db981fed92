"""Inhibition, as Alertmanager has it, made definite for runs that never resolve.

A rule may name the rules it mutes: ``inhibits: [names]``, ``inhibit_equal: [fields]`` (matcher fields),
``inhibit_for: 30m``. Each time it fires for a run (its when/condition decision says send, whether or not
a silence then mutes its own message, as an Alertmanager source alert inhibits while silenced), it starts
an `Inhibition`: for `inhibit_for`, the named rules' deliveries whose runs have the same values of those
fields as that run are skipped. Alertmanager lifts an inhibition when the source alert resolves; a run
never resolves, so here it ends at a time.

Every worker must honour an inhibition started on any other, whatever partition the inhibited runs are
on: inhibitions are records of the compacted rules topic, which every worker follows (see
``streams.alert_store``). A record's key is ``inhibition/<rule>/<hash of the equal values>.<hour>``:
renewals within the hour overwrite it, the one with the latest `until` wins, and a record is deleted
(tombstoned) only once its hour is long over and it has expired, so a delete never races a renewal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from runherald.admission import Problem, did_you_mean
from runherald.matchers import RUN_FIELDS, MatcherError, check_field, format_duration, parse_duration

INHIBIT_KEYS = ("inhibits", "inhibit_equal", "inhibit_for")
MAX_INHIBIT_FOR = 366 * 86400.0
KEY_PREFIX = "inhibition/"
BUCKET = 3600.0  # seconds of one key's window: renewals within it overwrite one record
CLOCK_SKEW = 300.0  # how far workers' clocks may disagree: a record is deleted this long after its window


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def duration_text(seconds: float) -> str:
    """A duration as stored: Alertmanager's form when whole seconds, else seconds."""
    return format_duration(seconds) if seconds == int(seconds) else f"{int(seconds * 1000)}ms"


def parse_inhibits(
    data: Mapping[str, Any], path: str, rules: Collection[str] | None = None
) -> tuple[dict[str, Any], list[Problem]]:
    """A rule's inhibits, inhibit_equal and inhibit_for as `Rule` fields, or their problems (each with its
    path). `rules` are the names a rule may inhibit (None: not known here, offline or stored)."""
    problems: list[Problem] = []
    if not any(key in data for key in INHIBIT_KEYS):
        return {}, problems
    if "inhibits" not in data:
        for key in ("inhibit_equal", "inhibit_for"):
            if key in data:
                problems.append(Problem(f"{path}.{key}", "is only meaningful with inhibits"))
        return {}, problems
    names = data.get("inhibits")
    if not isinstance(names, list) or not names or not all(isinstance(name, str) and name for name in names):
        problems.append(Problem(f"{path}.inhibits", "needs a list of at least one rule name"))
        names = []
    own = data.get("name")
    for i, name in enumerate(names):
        where = f"{path}.inhibits[{i}]"
        if names.index(name) != i:
            problems.append(Problem(where, f"rule {name!r} is named twice"))
        elif name == own:
            problems.append(Problem(where, "a rule cannot inhibit itself"))
        elif rules is not None and name not in rules:
            close = did_you_mean(name, sorted(rule for rule in rules if rule != own))
            problems.append(Problem(where, f"unknown rule {name!r}{close}"))
    equal = data.get("inhibit_equal") or []
    if not isinstance(equal, list) or not all(isinstance(item, str) for item in equal):
        problems.append(Problem(f"{path}.inhibit_equal", "needs a list of fields, such as [project]"))
        equal = []
    for i, item in enumerate(equal):
        where = f"{path}.inhibit_equal[{i}]"
        try:
            check_field(item, RUN_FIELDS)
        except MatcherError as exc:
            problems.append(Problem(where, str(exc)))
            continue
        if equal.index(item) != i:
            problems.append(Problem(where, f"field {item!r} is named twice"))
    length = 0.0
    if data.get("inhibit_for") is None:
        problems.append(Problem(f"{path}.inhibit_for", "inhibits needs inhibit_for: how long, e.g. 30m"))
    else:
        try:
            length = parse_duration(data["inhibit_for"])
        except ValueError as exc:
            problems.append(Problem(f"{path}.inhibit_for", str(exc)))
        else:
            if length <= 0:
                problems.append(Problem(f"{path}.inhibit_for", "must be longer than 0s"))
            elif length > MAX_INHIBIT_FOR:
                problems.append(Problem(f"{path}.inhibit_for", "must be at most 366d"))
    if problems:
        return {}, problems
    return {"inhibits": tuple(names), "inhibit_equal": tuple(equal), "inhibit_for": length}, []


def inhibits_dict(inhibits: tuple[str, ...], equal: tuple[str, ...], length: float) -> dict[str, Any]:
    """A rule's inhibition fields as stored (nothing when it inhibits nothing)."""
    if not inhibits:
        return {}
    data: dict[str, Any] = {"inhibits": list(inhibits)}
    if equal:
        data["inhibit_equal"] = list(equal)
    data["inhibit_for"] = duration_text(length)
    return data


@dataclass(frozen=True, slots=True)
class Inhibition:
    """Rule `source` fired for run `run`: until `until`, the `inhibited` rules' deliveries for runs whose
    fields have these `equal` values are skipped."""

    source: str
    inhibited: tuple[str, ...]
    equal: tuple[tuple[str, str], ...]
    run: str
    until: float
    started: float

    @property
    def key(self) -> str:
        """Its key on the rules topic: one per (rule, equal values, hour of the start)."""
        digest = hashlib.sha256(orjson.dumps([self.source, self.equal])).hexdigest()[:16]
        return f"{KEY_PREFIX}{self.source}/{digest}.{int(self.started // BUCKET)}"

    def active(self, now: float) -> bool:
        return self.started <= now + CLOCK_SKEW and now < self.until

    def mutes(self, rule: str, fields: Mapping[str, str]) -> bool:
        return rule in self.inhibited and all(fields.get(name, "") == value for name, value in self.equal)

    def deletable(self, now: float) -> bool:
        """Expired, and its key's hour long over: no worker renews this record any more."""
        window_end = (int(self.started // BUCKET) + 1) * BUCKET
        return now >= self.until and now >= window_end + CLOCK_SKEW

    def describe(self) -> str:
        """The reason a delivery it mutes is recorded with."""
        return f"inhibited by rule {self.source} (run {self.run}) until {_iso(self.until)}"

    def to_dict(self) -> dict[str, Any]:
        """As the API shows it."""
        return {
            "source": self.source,
            "inhibited": list(self.inhibited),
            "equal": dict(self.equal),
            "run": self.run,
            "started": _iso(self.started),
            "until": _iso(self.until),
        }

    def to_record(self) -> dict[str, Any]:
        """As stored on the rules topic: the times exact too (the key depends on the start)."""
        return {**self.to_dict(), "started_at": self.started, "until_at": self.until}

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> Inhibition:
        """From a rules-topic record; ValueError (or KeyError, TypeError) when it is not one."""
        equal = data["equal"]
        if not isinstance(equal, Mapping):
            raise ValueError("equal is not an object")
        inhibited = data["inhibited"]
        if not isinstance(inhibited, list) or not all(isinstance(name, str) for name in inhibited):
            raise ValueError("inhibited is not a list of rule names")
        return cls(
            source=str(data["source"]),
            inhibited=tuple(inhibited),
            equal=tuple(sorted((str(key), str(value)) for key, value in equal.items())),
            run=str(data["run"]),
            until=float(data["until_at"]),
            started=float(data["started_at"]),
        )


def start_inhibition(
    source: str,
    inhibits: tuple[str, ...],
    equal: tuple[str, ...],
    length: float,
    fields: Mapping[str, str],
    run: str,
    now: float,
) -> Inhibition:
    """The inhibition rule `source` starts by firing for a run with these fields."""
    values = tuple(sorted((name, fields.get(name, "")) for name in equal))
    return Inhibition(source, tuple(inhibits), values, run, now + length, now)


class Inhibitions:
    """The inhibitions a worker knows, by key, looked up by the rule they mute."""

    def __init__(self, found: Iterable[tuple[str, Inhibition]] = ()) -> None:
        self._by_key: dict[str, Inhibition] = {}
        self._by_rule: dict[str, dict[str, Inhibition]] = {}
        for key, inhibition in found:
            self.put(key, inhibition)

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, key: str) -> Inhibition | None:
        return self._by_key.get(key)

    def put(self, key: str, inhibition: Inhibition | None) -> None:
        """Store one record (None deletes it); of two for one key, the one lasting longer is kept (a
        renewal read back after a later one written here)."""
        current = self._by_key.get(key)
        if inhibition is None:
            self._by_key.pop(key, None)
        elif current is None or inhibition.until >= current.until:
            self._by_key[key] = inhibition
        else:
            return
        for rule in current.inhibited if current is not None else ():
            self._by_rule.get(rule, {}).pop(key, None)
        if inhibition is not None:
            for rule in inhibition.inhibited:
                self._by_rule.setdefault(rule, {})[key] = inhibition

    def may_mute(self, rule: str, started: Iterable[Inhibition] = ()) -> bool:
        """Whether any inhibition known here, or `started`, names `rule` (cheap: before the fields)."""
        return bool(self._by_rule.get(rule)) or any(rule in inhibition.inhibited for inhibition in started)

    def muting(self, rule: str, fields: Mapping[str, str], now: float) -> Inhibition | None:
        """The active inhibition muting `rule`'s deliveries for a run with these fields, the one ending
        last when several do."""
        found: Inhibition | None = None
        for inhibition in self._by_rule.get(rule, {}).values():
            if inhibition.active(now) and inhibition.mutes(rule, fields):
                if found is None or inhibition.until > found.until:
                    found = inhibition
        return found

    def active(self, now: float) -> list[Inhibition]:
        """The active ones, by rule and then end."""
        live = [inhibition for inhibition in self._by_key.values() if inhibition.active(now)]
        return sorted(live, key=lambda inhibition: (inhibition.source, inhibition.until, inhibition.equal))

    def deletable(self, now: float) -> list[str]:
        """The keys whose records may be tombstoned now."""
        return [key for key, inhibition in self._by_key.items() if inhibition.deletable(now)]


def muting(
    known: Inhibitions | None, started: Iterable[Inhibition], rule: str, fields: Mapping[str, str], now: float
) -> Inhibition | None:
    """What mutes a rule's delivery: an inhibition `known` (from the rules topic, or started here
    earlier) or one `started` by the same run event."""
    found = known.muting(rule, fields, now) if known is not None else None
    for inhibition in started:
        if inhibition.active(now) and inhibition.mutes(rule, fields):
            if found is None or inhibition.until > found.until:
                found = inhibition
    return found


__all__ = [
    "INHIBIT_KEYS",
    "KEY_PREFIX",
    "Inhibition",
    "Inhibitions",
    "inhibits_dict",
    "muting",
    "parse_inhibits",
    "start_inhibition",
]
