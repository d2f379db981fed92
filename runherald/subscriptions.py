"""Webhook subscriptions: every state change of the runs a subscription matches, POSTed to its URL.

A subscription ``{name, url, matchers, states, secret}`` is stored on the rules topic as
``subscription/<name>``. For each run event whose fields satisfy its matchers (Alertmanager syntax, as a
rule's) and whose state it wants (`states`; none: every state), the pipeline sends one delivery named
``subscription:<name>`` (a name no rule's ``{rule}/{receiver}`` can take), of the internal kind
``cloudevent``: a CloudEvent of the run, signed with Standard Webhooks when `secret` is set. It goes
through the same delivery ids, retries, circuit breakers, rate limits, ledger and dead letter as a
notification. Pure: parsing, checking and what a subscription sends; the sender is
``runherald.notifiers.cloudevent``.
"""

from __future__ import annotations

import secrets as random
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from runherald.admission import RUN_STATES, Problem, did_you_mean
from runherald.documents import (
    NAME,
    InvalidConfig,
    literal_secret,
    matcher_list,
    name_problem,
    shown_secret,
    stored_secret,
    unknown_keys,
)
from runherald.matchers import RUN_FIELDS, Matcher, matches_all
from runherald.rules import Decision
from runherald.sealing import open_sealed
from runherald.secret_values import SecretResolutionError, is_reference, is_sealed

KIND = "cloudevent"  # the notifier kind of a subscription's deliveries: never a run's own notification kind
NAME_PREFIX = "subscription:"
SECRET_PARAM = "signing_secret"  # as the webhook notifier names it
KEYS = ("name", "url", "matchers", "states", "secret")
STATES = tuple(sorted(RUN_STATES))
EVENT_TYPE = "io.runherald.run.state"


@dataclass(frozen=True, slots=True)
class Subscription:
    """Where every matching run state change goes; `secret` signs it (a literal is sealed before it is
    stored, a reference or a sealed value is kept as it is; None: unsigned)."""

    name: str
    url: str
    matchers: tuple[Matcher, ...] = ()
    states: tuple[str, ...] = ()  # () = every state
    secret: Any = None

    @property
    def notification_name(self) -> str:
        return NAME_PREFIX + self.name

    def wants(self, state: str, fields: Mapping[str, str]) -> bool:
        """Whether a run in `state` with these matcher fields is sent to this subscription."""
        if self.states and state not in self.states:
            return False
        return matches_all(self.matchers, fields) is None

    def to_dict(self) -> dict[str, Any]:
        """As stored on the rules topic (`secret` as held: `sealed` seals a literal first)."""
        data: dict[str, Any] = {
            "name": self.name,
            "url": self.url,
            "matchers": [str(matcher) for matcher in self.matchers],
            "states": list(self.states),
        }
        if self.secret is not None:
            data["secret"] = self.secret
        return data

    def sealed(self) -> dict[str, Any]:
        """`to_dict` with a literal secret sealed (runherald.sealing; SealKeyError without a key)."""
        data = self.to_dict()
        if self.secret is not None:
            data["secret"] = stored_secret(self.secret)
        return data

    def public_dict(self) -> dict[str, Any]:
        """As the API and CLI show it: a literal secret REDACTED; references and sealed values kept."""
        data = self.to_dict()
        if self.secret is not None:
            data["secret"] = shown_secret(self.secret)
        return data

    def notification(self, state: str) -> dict[str, Any]:
        """The notification a run in `state` sends to this subscription (its `when` is that state)."""
        notification: dict[str, Any] = {
            "kind": KIND,
            "name": self.notification_name,
            "when": [state],
            "params": {"url": self.url},
        }
        if self.secret is not None:
            notification["secret_params"] = {SECRET_PARAM: self.secret}
        return notification


def new_name() -> str:
    """A generated subscription name: ``sub-`` and 12 hex digits."""
    return "sub-" + random.token_hex(6)


def _url_problems(url: Any, path: str) -> list[Problem]:
    if not isinstance(url, str) or not url:
        return [Problem(path, "a subscription needs a url (http:// or https://)")]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as exc:
        return [Problem(path, f"is not a URL: {exc}")]
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return [Problem(path, f"{url!r} is not an http:// or https:// URL with a host")]
    if any(char.isspace() for char in url):
        return [Problem(path, "a URL cannot hold whitespace")]
    return []


def _states(value: Any, path: str, problems: list[Problem]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(state, str) for state in value):
        problems.append(Problem(path, f"must be a list of run states ({', '.join(STATES)})"))
        return ()
    for i, state in enumerate(value):
        if state not in RUN_STATES:
            problems.append(Problem(f"{path}[{i}]", f"unknown state {state!r}{did_you_mean(state, STATES)}"))
        elif value.index(state) != i:
            problems.append(Problem(f"{path}[{i}]", f"state {state!r} is named twice"))
    return tuple(value)


def _matchers(value: Any, path: str, problems: list[Problem]) -> tuple[Matcher, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append(Problem(path, "must be a list of matchers, such as 'project=\"alpha\"'"))
        return ()
    return matcher_list(value, path, RUN_FIELDS, problems)


def _secret_problems(secret: Any, path: str) -> list[Problem]:
    if secret is None or is_reference(secret):
        return []
    if not isinstance(secret, str) or not secret:
        why = "must be a non-empty string, a reference (${VAR}, {secret: NAME}) or a sealed value"
        return [Problem(path, why)]
    return []


def parse_subscription(data: Any, path: str) -> tuple[Subscription | None, list[Problem]]:
    """A subscription from its dict, or every problem that keeps it from being one (paths under `path`,
    e.g. ``subscriptions.<name>.url``)."""
    if not isinstance(data, Mapping):
        return None, [Problem(path, "a subscription must be an object with name, url, matchers, states")]
    problems = unknown_keys(data, KEYS, path)
    name = data.get("name")
    named = name_problem("subscription", name, path)
    problems += [named] if named else []
    problems += _url_problems(data.get("url"), f"{path}.url")
    matchers = _matchers(data.get("matchers"), f"{path}.matchers", problems)
    states = _states(data.get("states"), f"{path}.states", problems)
    problems += _secret_problems(data.get("secret"), f"{path}.secret")
    if problems:
        return None, problems
    return Subscription(str(name), str(data["url"]), matchers, states, data.get("secret")), []


def check_subscription(data: Any, path: str) -> Subscription:
    """parse_subscription, raising InvalidConfig with the problems."""
    subscription, problems = parse_subscription(data, path)
    if subscription is None:
        raise InvalidConfig(problems)
    return subscription


def parse_subscriptions(
    items: Any, section: str = "subscriptions"
) -> tuple[list[Subscription], list[Problem]]:
    """The subscriptions of a document's section, or their problems (paths ``subscriptions.<name>...``).

    The section maps each name to ``{url, matchers, states, secret}`` (a `name` inside, if given, must be
    the key); a list of objects with their `name`, as `subscriptions list -o yaml` prints them, is taken
    too, each named once."""
    if items is None:
        return [], []
    named: list[tuple[str, Any]] = []  # (path, the object with its name)
    problems: list[Problem] = []
    if isinstance(items, Mapping):
        for key, data in items.items():
            name, path = str(key), f"{section}.{key}"
            if isinstance(data, Mapping) and "name" in data and data["name"] != name:
                problems.append(Problem(f"{path}.name", f"{data['name']!r} is not its key, {name!r}"))
                continue
            named.append((path, {**data, "name": name} if isinstance(data, Mapping) else data))
    elif isinstance(items, list):
        for i, data in enumerate(items):
            given = data.get("name") if isinstance(data, Mapping) else None
            ok = isinstance(given, str) and NAME.match(given)
            named.append((f"{section}.{given}" if ok else f"{section}[{i}]", data))
    else:
        why = f"{section} must map each name to {{url, matchers, states, secret}}"
        return [], [Problem(section, why)]
    found: list[Subscription] = []
    seen: set[str] = set()
    for path, data in named:
        subscription, wrong = parse_subscription(data, path)
        problems += wrong
        if subscription is not None and subscription.name in seen:
            problems.append(Problem(f"{path}.name", f"subscription {subscription.name!r} is defined twice"))
        elif subscription is not None:
            found.append(subscription)
            seen.add(subscription.name)
    return found, problems


def _opened(secret: Any) -> Any:
    """A sealed secret opened, to compare what it holds (sealing is randomized); others as they are."""
    if not is_sealed(secret):
        return secret
    try:
        return open_sealed(secret)
    except SecretResolutionError:
        return object()  # equal to nothing: written again


def same_subscription(new: Subscription, stored: Mapping[str, Any] | None) -> bool:
    """Whether the stored subscription (its secret sealed) holds what `new` says."""
    if stored is None:
        return False
    mine = new.to_dict()
    if {k: v for k, v in mine.items() if k != "secret"} != {k: v for k, v in stored.items() if k != "secret"}:
        return False
    return bool(_opened(mine.get("secret")) == _opened(stored.get("secret")))


def literal_secret_warnings(subscriptions: Collection[Subscription]) -> list[Problem]:
    """A subscription whose secret is a literal: stored sealed, but the file holds it."""
    return [
        literal_secret(f"subscriptions.{subscription.name}.secret")
        for subscription in subscriptions
        if subscription.secret is not None and not is_reference(subscription.secret)
    ]


def decide(run: Mapping[str, Any], notify_iterations: bool) -> Decision:
    """Whether a subscription's delivery is sent: always, but for a child iteration (as notifications,
    unless notify_iterations), since an iteration shares its parent's delivery ids."""
    iteration = (run.get("metadata") or {}).get("iteration") or 0
    if not notify_iterations and isinstance(iteration, int) and iteration > 0:
        return Decision(False, f"child iteration {iteration} is not notified")
    return Decision(True, "subscribed")


def matching(
    subscriptions: Collection[Subscription], state: str, fields: Mapping[str, str]
) -> list[Subscription]:
    """The subscriptions a run in `state` with these fields is sent to, by name."""
    return sorted((s for s in subscriptions if s.wants(state, fields)), key=lambda s: s.name)


__all__ = [
    "EVENT_TYPE",
    "KIND",
    "NAME_PREFIX",
    "SECRET_PARAM",
    "STATES",
    "Subscription",
    "check_subscription",
    "decide",
    "literal_secret_warnings",
    "matching",
    "new_name",
    "parse_subscription",
    "parse_subscriptions",
    "same_subscription",
]
