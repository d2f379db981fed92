"""What a worker holds of the alert configuration, with the rules indexed for matching.

Matching must not scan every rule for every run event: each rule is filed under one of its equality
matchers (the most selective field it has: uid, project, name, a label, iteration, then state), so an
event looks up one bucket per indexed field and checks only the rules found there, plus the few rules
without any equality matcher.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runherald.alerting import InvalidConfig, Receiver, Rule, parse_receiver, parse_rule
from runherald.inhibition import KEY_PREFIX, Inhibition, Inhibitions
from runherald.matchers import LABEL_PREFIX, Matcher, matches_all
from runherald.silences import Silence, parse_silence
from runherald.subscriptions import Subscription, parse_subscription

log = logging.getLogger("runherald.rules")

_FIELD_ORDER = {"uid": 0, "project": 1, "name": 2, "iteration": 4, "state": 5}


def _selectivity(matcher: Matcher) -> int:
    if matcher.field.startswith(LABEL_PREFIX):
        return 3
    return _FIELD_ORDER.get(matcher.field, 6)


class RuleIndex:
    """Rules filed by one equality matcher each; `matching` returns the rules whose matchers all hold."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        by_field: dict[str, dict[str, list[Rule]]] = {}
        self._unindexed: list[Rule] = []
        self.size = 0
        for rule in rules:
            self.size += 1
            equalities = [matcher for matcher in rule.matchers if matcher.is_equality]
            if not equalities:
                self._unindexed.append(rule)
                continue
            key = min(equalities, key=_selectivity)
            by_field.setdefault(key.field, {}).setdefault(key.value, []).append(rule)
        self._fields = list(by_field.items())

    def candidates(self, fields: Mapping[str, str]) -> list[Rule]:
        """The rules that may match: those filed under one of the run's values, and the unindexed."""
        found = list(self._unindexed)
        for name, buckets in self._fields:
            hit = buckets.get(fields.get(name, ""))
            if hit:
                found.extend(hit)
        return found

    def matching(self, fields: Mapping[str, str]) -> list[Rule]:
        """The rules whose matchers all hold for these fields, by name."""
        matched = [rule for rule in self.candidates(fields) if matches_all(rule.matchers, fields) is None]
        matched.sort(key=lambda rule: rule.name)
        return matched


def parse_inhibition(key: str, value: Mapping[str, Any]) -> Inhibition | None:
    """The inhibition a rules-topic record holds, or None (logged) when it is not one."""
    try:
        inhibition = Inhibition.from_record(value)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("rules topic: ignored the record %r: not an inhibition (%s)", key, exc)
        return None
    if inhibition.key != key:
        log.warning("rules topic: ignored the record %r: its key is not the inhibition's", key)
        return None
    return inhibition


def parse_record(
    key: str, value: Mapping[str, Any]
) -> Receiver | Rule | Silence | Inhibition | Subscription | None:
    """The object a rules-topic record holds; a value that no longer parses (written by another
    version, or by hand) is logged and left out, never fatal."""
    kind, _, name = key.partition("/")
    problems: list[Any] = []
    try:
        if kind == "receiver":
            receiver, problems = parse_receiver(value, f"receivers.{name}")
            if receiver is not None and receiver.name == name:
                return receiver
        elif kind == "rule":
            rule, problems, _ = parse_rule(value, f"rules.{name}")
            if rule is not None and rule.name == name:
                return rule
        elif key.startswith(KEY_PREFIX):
            return parse_inhibition(key, value)
        elif kind == "silence":
            silence = parse_silence(value, now=0.0)
            if silence.id == name:
                return silence
        elif kind == "subscription":
            subscription, problems = parse_subscription(value, f"subscriptions.{name}")
            if subscription is not None and subscription.name == name:
                return subscription
        else:
            problems = ["unknown type"]
    except InvalidConfig as exc:
        problems = exc.problems
    why = "; ".join(str(problem) for problem in problems) or "its name is not its key's"
    log.warning("rules topic: ignored the record %r: %s", key, why)
    return None


@dataclass
class AlertConfig:
    """Receivers, rules and silences as the rules topic holds them, with the rules indexed."""

    receivers: dict[str, Receiver] = field(default_factory=dict)
    rules: dict[str, Rule] = field(default_factory=dict)
    silences: dict[str, Silence] = field(default_factory=dict)
    index: RuleIndex = field(default_factory=lambda: RuleIndex(()))
    rule_states: frozenset[str] = frozenset()  # the states some rule is sent in: others match nothing
    inhibitions: Inhibitions = field(default_factory=Inhibitions)  # the AlertStore's own, kept up to date
    inhibiting: frozenset[str] = frozenset()  # the rules that inhibit others
    uses_transitions: bool = False  # some rule's `when` names a transition: terminal states make history
    subscriptions: dict[str, Subscription] = field(default_factory=dict)  # runherald.subscriptions

    @classmethod
    def from_objects(
        cls, objects: Iterable[Receiver | Rule | Silence | Inhibition | Subscription | None]
    ) -> AlertConfig:
        config = cls()
        for obj in objects:
            if isinstance(obj, Receiver):
                config.receivers[obj.name] = obj
            elif isinstance(obj, Rule):
                config.rules[obj.name] = obj
            elif isinstance(obj, Silence):
                config.silences[obj.id] = obj
            elif isinstance(obj, Inhibition):
                config.inhibitions.put(obj.key, obj)
            elif isinstance(obj, Subscription):
                config.subscriptions[obj.name] = obj
        config.index = RuleIndex(config.rules.values())
        config.rule_states = frozenset(state for rule in config.rules.values() for state in rule.when)
        config.inhibiting = frozenset(rule.name for rule in config.rules.values() if rule.inhibits)
        config.uses_transitions = any(rule.transitions for rule in config.rules.values())
        return config

    @classmethod
    def from_records(cls, records: Mapping[str, Mapping[str, Any]]) -> AlertConfig:
        """From the rules topic's latest values by key (``"{type}/{name}"``)."""
        return cls.from_objects(parse_record(key, value) for key, value in records.items())

    def matching_rules(self, fields: Mapping[str, str]) -> list[Rule]:
        return self.index.matching(fields) if self.rules else []

    def silence_for(self, fields: Mapping[str, str], now: float) -> Silence | None:
        """The active silence that mutes a delivery with these fields (notification and receiver
        included), the one ending last when several do; None when none does."""
        found: Silence | None = None
        for silence in self.silences.values():
            if silence.state(now) != "active" or matches_all(silence.matchers, fields) is not None:
                continue
            if found is None or silence.ends_at > found.ends_at:
                found = silence
        return found

    def inhibition_for(self, rule_name: str, fields: Mapping[str, str], now: float) -> Inhibition | None:
        """The active inhibition that mutes `rule_name`'s deliveries for a run with these fields."""
        return self.inhibitions.muting(rule_name, fields, now)


__all__ = ["AlertConfig", "RuleIndex", "parse_inhibition", "parse_record"]
