"""Alert rules, receivers and silences: the configuration document, checked, and the objects it holds.

Pure: `check_document` finds every problem of a document (each with its path, ``rules.<name>.<field>``),
and the objects turn into the notifications the pipeline sends. The integrations and subscriptions
sections are parsed by their own modules (`runherald.integrations`, `runherald.subscriptions`), over the
helpers all share (`runherald.documents`). Silences are `runherald.silences`; what a worker holds of them
all, with the rules indexed, is `runherald.rule_index.AlertConfig`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from runherald.admission import Problem, did_you_mean, notification_problems, text_problems
from runherald.documents import (
    NAME,
    NAME_RULE,
    InvalidConfig,
    matcher_list,
    name_problem,
    record_key,
    unknown_keys,
)
from runherald.grouping import DEFAULT_GROUP_INTERVAL, GROUP_KEYS, grouping_dict, parse_grouping
from runherald.inhibition import INHIBIT_KEYS, inhibits_dict, parse_inhibits
from runherald.integrations import Integration, parse_integrations
from runherald.matchers import (
    RUN_FIELDS,
    Matcher,
)
from runherald.ratelimit import PARAM as RATE_LIMIT
from runherald.ratelimit import RateLimit, parse_rate_limit, rate_limit_problems, with_limit
from runherald.sandbox import describe_error, render_condition, validate_condition
from runherald.secrets import redact_secret_params
from runherald.subscriptions import Subscription, parse_subscriptions
from runherald.transitions import Transition, parse_when, when_items, when_labels

TYPES = ("receiver", "rule", "silence")
DOCUMENT_KEYS = ("receivers", "rules", "integrations", "subscriptions")
LATER_DOCUMENT_KEYS: tuple[str, ...] = ()  # sections a later version takes: refused, never ignored
RECEIVER_KEYS = ("name", "kind", "params", "secret_params", "rate_limit")
RULE_KEYS = (
    "name",
    "matchers",
    "when",
    "condition",
    "severity",
    "message",
    "receivers",
    *INHIBIT_KEYS,
    *GROUP_KEYS,
)
LATER_RULE_KEYS: tuple[str, ...] = ()  # fields a later version takes: refused, never ignored
RESERVED_RULE_NAMES = frozenset({"test"})


@dataclass(frozen=True, slots=True)
class Receiver:
    """A destination defined once: a channel kind and what that channel takes."""

    name: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    secret_params: Mapping[str, Any] = field(default_factory=dict)
    rate_limit: RateLimit | None = None  # None: the channel's default (runherald.ratelimit)

    def to_dict(self) -> dict[str, Any]:
        """As stored on the rules topic (secret_params as given: sealed before they are written)."""
        data = {
            "name": self.name,
            "kind": self.kind,
            "params": dict(self.params),
            "secret_params": dict(self.secret_params),
        }
        return {**data, RATE_LIMIT: self.rate_limit.to_dict()} if self.rate_limit else data

    def public_dict(self) -> dict[str, Any]:
        """As the API and CLI show it: secret values REDACTED, references kept."""
        return redact_secret_params(self.to_dict())


@dataclass(frozen=True, slots=True)
class Rule:
    """For every run whose fields satisfy all matchers, one notification per receiver."""

    name: str
    matchers: tuple[Matcher, ...]
    receivers: tuple[str, ...]
    when: tuple[str, ...] = ("completed",)
    condition: str = ""
    severity: str = ""
    message: str = ""
    inhibits: tuple[str, ...] = ()  # the rules it mutes (runherald.inhibition)
    inhibit_equal: tuple[str, ...] = ()
    inhibit_for: float = 0.0
    transitions: tuple[Transition, ...] = ()  # regressed, recovered, state_changed (runherald.transitions)
    group_by: tuple[str, ...] = ()
    group_wait: float = 0.0  # 0: no grouping, each run its own message
    group_interval: float = DEFAULT_GROUP_INTERVAL
    repeat_interval: float = 0.0  # 0: no limit

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "matchers": [str(matcher) for matcher in self.matchers],
            "when": list(self.when),
            "receivers": list(self.receivers),
        }
        for key in ("condition", "severity", "message"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        data.update(inhibits_dict(self.inhibits, self.inhibit_equal, self.inhibit_for))
        if self.transitions:
            data["when"] = when_items(self.when, self.transitions)
        data.update(grouping_dict(self.group_by, self.group_wait, self.group_interval, self.repeat_interval))
        return data

    def notification(self, receiver: Receiver, run: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The notification this rule sends to `receiver`, named ``"{rule}/{receiver}"``; with `run`
        (redacted: receivers may see it), its message template rendered for that run."""
        notification: dict[str, Any] = {
            "kind": receiver.kind,
            "name": notification_name(self.name, receiver.name),
            # A transition in `when` as a string no run state equals: a rule with transitions only is
            # never sent for a plain state (an empty `when` would mean MLRun's default, completed).
            "when": [*self.when, *when_labels(self.transitions)],
            "params": with_limit(receiver.params, receiver.rate_limit),
            "secret_params": dict(receiver.secret_params),
        }
        for key in ("condition", "severity", "message"):
            if getattr(self, key):
                notification[key] = getattr(self, key)
        if run is not None and self.message:
            notification["message"] = render_message(self.message, run)
        return notification


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def render_message(message: str, run: Mapping[str, Any]) -> str:
    """A rule's message for a run: a Jinja2 template (``Run {{ run.metadata.name }} failed``), rendered
    in the conditions' sandbox within their limits. A message that fails to render is sent as written,
    with why (an alert is better sent rough than not at all)."""
    if not is_template(message):
        return message
    try:
        return render_condition(message, {"run": run}).strip()
    except Exception as exc:
        return f"{message} (message template failed: {describe_error(exc)[:200]})"


def notification_name(rule: str, receiver: str) -> str:
    return f"{rule}/{receiver}"


def with_receiver(notification: Mapping[str, Any], receiver: Receiver) -> dict[str, Any]:
    """A run's own notification that says ``params: {receiver: NAME}``: the receiver's kind, params
    and secret_params, with the notification's own params and secret_params over them."""
    params = {key: value for key, value in (notification.get("params") or {}).items() if key != "receiver"}
    merged = dict(notification)
    merged["kind"] = receiver.kind
    merged["params"] = with_limit({**receiver.params, **params}, receiver.rate_limit)
    merged["secret_params"] = {**receiver.secret_params, **(notification.get("secret_params") or {})}
    return merged


@dataclass
class Document:
    """What a checked configuration document holds, and what is wrong with it."""

    receivers: list[Receiver] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    integrations: list[Integration] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def raise_problems(self) -> None:
        if self.problems:
            raise InvalidConfig(self.problems, self.warnings)


def load_text(text: str | bytes, source: str = "the document") -> Any:
    """A YAML or JSON document, or InvalidConfig saying where it does not parse."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidConfig([Problem("", f"{source} is not YAML or JSON{at}: {problem}")]) from None


def _item_path(section: str, index: int, data: Any) -> str:
    name = data.get("name") if isinstance(data, Mapping) else None
    if isinstance(name, str) and NAME.match(name):
        return f"{section}.{name}"
    return f"{section}[{index}]"


def parse_receiver(data: Any, path: str) -> tuple[Receiver | None, list[Problem]]:
    """A receiver from its dict, or the problems that keep it from being one."""
    if not isinstance(data, Mapping):
        return None, [Problem(path, "a receiver must be an object with name, kind, params, secret_params")]
    problems = unknown_keys(data, RECEIVER_KEYS, path)
    named = name_problem("receiver", data.get("name"), path)
    problems += [named] if named else []
    if not data.get("kind"):
        problems.append(Problem(f"{path}.kind", "a receiver needs a kind (slack, mail, webhook, console)"))
    params = data.get("params")
    if isinstance(params, Mapping) and "receiver" in params:
        problems.append(Problem(f"{path}.params.receiver", "a receiver cannot name another receiver"))
    elif isinstance(params, Mapping) and RATE_LIMIT in params:
        problems.append(Problem(f"{path}.params.{RATE_LIMIT}", "set the receiver's own rate_limit instead"))
    else:
        problems += notification_problems({key: data.get(key) for key in RECEIVER_KEYS if key in data}, path)
    if data.get(RATE_LIMIT) is not None:
        checked = rate_limit_problems(data[RATE_LIMIT], f"{path}.{RATE_LIMIT}")
        problems += [Problem(where, message) for where, message in checked]
    if problems:
        return None, problems
    return Receiver(
        name=data["name"],
        kind=data["kind"],
        params=dict(data.get("params") or {}),
        secret_params=dict(data.get("secret_params") or {}),
        rate_limit=parse_rate_limit(data.get(RATE_LIMIT)),
    ), []


def parse_matchers(
    value: Any, path: str, allowed: Collection[str], problems: list[Problem]
) -> tuple[Matcher, ...]:
    if not isinstance(value, list) or not value:
        problems.append(Problem(path, "needs a list of at least one matcher, such as 'project=\"alpha\"'"))
        return ()
    return matcher_list(value, path, allowed, problems)


def parse_rule(
    data: Any, path: str, receivers: Collection[str] | None = None, *, rules: Collection[str] | None = None
) -> tuple[Rule | None, list[Problem], list[Problem]]:
    """A rule from its dict, or its problems; `receivers` are the names a rule may send to, `rules` those
    it may inhibit (None: not known, offline: an undefined one is then a warning). Returns (rule,
    problems, warnings)."""
    if not isinstance(data, Mapping):
        return None, [Problem(path, "a rule must be an object with name, matchers, when, receivers")], []
    problems = unknown_keys(data, RULE_KEYS, path, LATER_RULE_KEYS)
    warnings: list[Problem] = []
    named = name_problem("rule", data.get("name"), path)
    if named is None and data.get("name") in RESERVED_RULE_NAMES:
        reserved = "is reserved (POST /api/v1/rules/test is the dry run)"
        named = Problem(f"{path}.name", f"{data['name']!r} {reserved}")
    problems += [named] if named else []
    matchers = parse_matchers(data.get("matchers"), f"{path}.matchers", RUN_FIELDS, problems)
    states, transitions, when_problems = parse_when(data.get("when"), f"{path}.when")
    problems += when_problems
    problems += text_problems({key: value for key, value in data.items() if key != "when"}, path)
    grouping, grouping_problems = parse_grouping(data, path)
    problems += grouping_problems
    message = data.get("message")
    if isinstance(message, str) and is_template(message):
        why = validate_condition(message)
        if why:
            problems.append(Problem(f"{path}.message", f"the message template does not compile: {why}"))
    names = data.get("receivers")
    if not isinstance(names, list) or not names or not all(isinstance(name, str) and name for name in names):
        problems.append(Problem(f"{path}.receivers", "needs a list of at least one receiver name"))
        names = []
    for i, name in enumerate(names):
        where = f"{path}.receivers[{i}]"
        if names.index(name) != i:
            problems.append(Problem(where, f"receiver {name!r} is named twice"))
        elif receivers is None:
            continue
        elif name not in receivers:
            problems.append(
                Problem(where, f"no receiver {name!r} is defined{did_you_mean(name, sorted(receivers))}")
            )
    inhibition, inhibit_problems = parse_inhibits(data, path, rules)
    problems += inhibit_problems
    if problems:
        return None, problems, warnings
    return (
        Rule(
            name=data["name"],
            matchers=matchers,
            receivers=tuple(names),
            when=states,
            condition=data.get("condition") or "",
            severity=data.get("severity") or "",
            message=data.get("message") or "",
            **inhibition,
            transitions=transitions,
            **grouping,
        ),
        [],
        warnings,
    )


def check_document(
    doc: Any, *, stored_receivers: Collection[str] | None = None, stored_rules: Collection[str] = ()
) -> Document:
    """Every problem of a configuration document, each with its path.

    A rule may name a receiver the document defines or, when `stored_receivers` is given (apply), one
    already stored; offline (None) a receiver the document does not define is only a warning. The same
    goes for the rules a rule inhibits, with `stored_rules`.
    """
    result = Document()
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        result.problems.append(Problem("", "the document must be an object with receivers and rules"))
        return result
    result.problems += unknown_keys(doc, DOCUMENT_KEYS, "", LATER_DOCUMENT_KEYS)
    result.problems = [Problem(problem.path.lstrip("."), problem.message) for problem in result.problems]
    result.integrations, integration_problems = parse_integrations(doc.get("integrations"))
    result.problems += integration_problems
    result.subscriptions, subscription_problems = parse_subscriptions(doc.get("subscriptions"))
    result.problems += subscription_problems
    sections = {key: [] if doc.get(key) is None else doc[key] for key in ("receivers", "rules")}
    for key, items in sections.items():
        if not isinstance(items, list):
            result.problems.append(Problem(key, f"{key} must be a list"))
            sections[key] = []
    seen: set[str] = set()
    for i, data in enumerate(sections["receivers"]):
        path = _item_path("receivers", i, data)
        receiver, problems = parse_receiver(data, path)
        result.problems += problems
        name = data.get("name") if isinstance(data, Mapping) else None
        if isinstance(name, str) and name in seen:
            result.problems.append(Problem(f"{path}.name", f"receiver {name!r} is defined twice"))
        elif receiver is not None:
            result.receivers.append(receiver)
        if isinstance(name, str):
            seen.add(name)
    defined = seen | set(stored_receivers or ())
    rule_names: set[str] = set()
    named = [data.get("name") for data in sections["rules"] if isinstance(data, Mapping)]
    known_rules = {name for name in named if isinstance(name, str)} | set(stored_rules)
    for i, data in enumerate(sections["rules"]):
        path = _item_path("rules", i, data)
        rule, problems, _ = parse_rule(data, path, defined, rules=known_rules)
        name = data.get("name") if isinstance(data, Mapping) else None
        if stored_receivers is None:
            # Offline: a receiver defined elsewhere (already stored) may be meant; say so, do not refuse.
            kept = []
            for problem in problems:
                if (".receivers[" in problem.path and problem.message.startswith("no receiver")) or (
                    ".inhibits[" in problem.path and problem.message.startswith("unknown rule")
                ):
                    result.warnings.append(
                        Problem(problem.path, problem.message + "; it must exist when applied")
                    )
                else:
                    kept.append(problem)
            problems = kept
            if rule is None and not problems:
                rule, _, _ = parse_rule(data, path, None)
        result.problems += problems
        if isinstance(name, str) and name in rule_names:
            result.problems.append(Problem(f"{path}.name", f"rule {name!r} is defined twice"))
        elif rule is not None:
            result.rules.append(rule)
        if isinstance(name, str):
            rule_names.add(name)
    return result


__all__ = [
    "NAME",
    "NAME_RULE",
    "TYPES",
    "Document",
    "InvalidConfig",
    "Receiver",
    "Rule",
    "check_document",
    "is_template",
    "load_text",
    "notification_name",
    "parse_matchers",
    "parse_receiver",
    "parse_rule",
    "record_key",
    "render_message",
    "unknown_keys",
    "with_receiver",
]
