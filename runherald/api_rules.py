"""The HTTP API's alert configuration: rules and receivers one by one, and a whole document applied.

``GET /api/v1/rules``, ``GET|PUT|DELETE /api/v1/rules/{name}``, the same under ``/api/v1/receivers``,
and ``PUT /api/v1/config`` (``{"document", "prune", "dry_run"}``). Every write goes to the compacted
rules topic through the worker's AlertStore and is answered once this worker has read it back: in force
here, and on the other workers within a fetch wait. A receiver's literal secret_params values are sealed
before they are written, and a receiver is only ever shown as `Receiver.public_dict` gives it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from runherald.admission import Problem
from runherald.alerting import (
    Document,
    InvalidConfig,
    Receiver,
    Rule,
    check_document,
    parse_receiver,
    parse_rule,
    record_key,
)
from runherald.api_store import (
    Refused,
    answering,
    delete_named,
    get_named,
    json_response,
    list_named,
    loaded,
    object_problems,
    read_json,
)
from runherald.documents import literal_secret
from runherald.integrations import Integration, record_value, same_integration, unresolved_secret_problems
from runherald.integrations import literal_secret_warnings as integration_secret_warnings
from runherald.rule_index import AlertConfig
from runherald.sealing import open_sealed, seal_notification
from runherald.secret_values import SecretResolutionError, is_reference, is_sealed
from runherald.streams.alert_store import AlertStore
from runherald.subscriptions import Subscription, same_subscription
from runherald.subscriptions import literal_secret_warnings as subscription_secret_warnings

CONFIG_KEYS = ("document", "prune", "dry_run")


def _invalid(summary: str, problems: Iterable[Problem], warnings: Iterable[Problem] = ()) -> Refused:
    body: dict[str, Any] = {"error": summary, "problems": [problem.as_dict() for problem in problems]}
    shown = [problem.as_dict() for problem in warnings]
    if shown:
        body["warnings"] = shown
    return Refused(400, body)


@dataclass(frozen=True, slots=True)
class Change:
    """What applying one object does: ``created``, ``updated``, ``unchanged`` or ``deleted``; `value`
    is what is written (receivers sealed; None deletes)."""

    type: str
    name: str
    action: str
    value: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return record_key(self.type, self.name)

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "name": self.name, "action": self.action}


def _opened(secret_params: Any) -> Any:
    """secret_params with each sealed value opened, to compare what they hold (sealing is randomized);
    None when one does not open here."""
    if not isinstance(secret_params, Mapping):
        return secret_params
    opened = {}
    for key, value in secret_params.items():
        if is_sealed(value):
            try:
                opened[key] = open_sealed(value)
            except SecretResolutionError:
                return None
        else:
            opened[key] = value
    return opened


def same_receiver(new: Mapping[str, Any], stored: Mapping[str, Any] | None) -> bool:
    """Whether a stored receiver (secret_params sealed) holds what `new` says."""
    if stored is None:
        return False
    rest = {key: value for key, value in new.items() if key != "secret_params"}
    if rest != {key: value for key, value in stored.items() if key != "secret_params"}:
        return False
    mine = _opened(new.get("secret_params") or {})
    theirs = _opened(stored.get("secret_params") or {})
    return mine is not None and mine == theirs


def receiver_change(receiver: Receiver, stored: Mapping[str, Any] | None) -> Change:
    """Applying one receiver; the value to write has its literal secret_params sealed (SealKeyError)."""
    new = receiver.to_dict()
    if same_receiver(new, stored):
        return Change("receiver", receiver.name, "unchanged")
    action = "created" if stored is None else "updated"
    return Change("receiver", receiver.name, action, seal_notification(new))


def rule_change(rule: Rule, stored: Mapping[str, Any] | None) -> Change:
    """Applying one rule, stored as `Rule.to_dict` gives it (matchers in their canonical form)."""
    new = rule.to_dict()
    if stored is not None and dict(stored) == new:
        return Change("rule", rule.name, "unchanged")
    return Change("rule", rule.name, "created" if stored is None else "updated", new)


def integration_change(integration: Integration, stored: Mapping[str, Any] | None) -> Change:
    """Applying one integration; the value to write has a literal secret sealed (SealKeyError)."""
    if same_integration(integration.to_dict(), stored):
        return Change("integration", integration.name, "unchanged")
    action = "created" if stored is None else "updated"
    return Change("integration", integration.name, action, record_value(integration))


def subscription_change(subscription: Subscription, stored: Mapping[str, Any] | None) -> Change:
    """Applying one webhook subscription; the value to write has a literal secret sealed (SealKeyError)."""
    if same_subscription(subscription, stored):
        return Change("subscription", subscription.name, "unchanged")
    action = "created" if stored is None else "updated"
    return Change("subscription", subscription.name, action, subscription.sealed())


def plan_document(
    document: Document,
    stored_receivers: Mapping[str, Mapping[str, Any]],
    stored_rules: Mapping[str, Mapping[str, Any]],
    *,
    prune: bool = False,
    stored_integrations: Mapping[str, Mapping[str, Any]] | None = None,
    stored_subscriptions: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Change]:
    """The changes that apply a checked document, in the order they are written: receivers, rules,
    integrations, subscriptions, then (with prune) the rules, the receivers, the integrations and the
    subscriptions the document no longer holds, so that no stored rule ever names a receiver that is not
    stored."""
    stored_integrations = stored_integrations or {}
    stored_subscriptions = stored_subscriptions or {}
    changes = [receiver_change(r, stored_receivers.get(r.name)) for r in document.receivers]
    changes += [rule_change(rule, stored_rules.get(rule.name)) for rule in document.rules]
    changes += [integration_change(i, stored_integrations.get(i.name)) for i in document.integrations]
    changes += [subscription_change(s, stored_subscriptions.get(s.name)) for s in document.subscriptions]
    if prune:
        for kind, stored, kept in (
            ("rule", stored_rules, {rule.name for rule in document.rules}),
            ("receiver", stored_receivers, {receiver.name for receiver in document.receivers}),
            ("integration", stored_integrations, {i.name for i in document.integrations}),
            ("subscription", stored_subscriptions, {s.name for s in document.subscriptions}),
        ):
            changes += [Change(kind, name, "deleted") for name in sorted(stored) if name not in kept]
    return changes


def literal_secret_warnings(document: Document) -> list[Problem]:
    """A receiver whose secret_params hold a literal value (or an integration or a subscription whose
    secret is one): stored sealed, but the file holds the secret."""
    return [
        *integration_secret_warnings(document.integrations),
        *subscription_secret_warnings(document.subscriptions),
    ] + [
        literal_secret(f"receivers.{receiver.name}.secret_params.{key}")
        for receiver in document.receivers
        if isinstance(receiver.secret_params, Mapping) and set(receiver.secret_params) != {"secret"}
        for key, value in receiver.secret_params.items()
        if not is_reference(value)
    ]


def rules_naming(config: AlertConfig, receiver: str) -> list[str]:
    """The stored rules that send to a receiver, by name."""
    return sorted(rule.name for rule in config.rules.values() if receiver in rule.receivers)


def _with_prune_hint(problems: list[Problem], stored: Collection[str]) -> list[Problem]:
    """With prune, a rule may name only the document's receivers: say so where a stored one is named."""
    hinted = []
    for problem in problems:
        named = [name for name in stored if f"no receiver {name!r} is defined" in problem.message]
        if ".receivers[" in problem.path and named:
            problem = Problem(
                problem.path,
                f"receiver {named[0]!r} is stored, but prune deletes every receiver the document does not"
                " define",
            )
        hinted.append(problem)
    return hinted


def _config_request(body: Any) -> tuple[Any, bool, bool]:
    """(document, prune, dry_run) of a ``PUT /api/v1/config`` body, or Refused saying what is wrong."""
    if not isinstance(body, dict):
        raise _invalid("the body must be an object", [Problem("", "expected {document, prune, dry_run}")])
    problems = [Problem(str(key), f"unknown field {key!r}") for key in body if key not in CONFIG_KEYS]
    if not isinstance(body.get("document"), dict):
        problems.append(Problem("document", "needs the configuration document: an object"))
    for flag in ("prune", "dry_run"):
        if not isinstance(body.get(flag, False), bool):
            problems.append(Problem(flag, "must be true or false"))
    if problems:
        raise _invalid("the request is not valid; nothing was applied", problems)
    return body["document"], bool(body.get("prune")), bool(body.get("dry_run"))


def add_rule_routes(app: web.Application, alerts: AlertStore) -> None:
    """Register GET /api/v1/rules, GET|PUT|DELETE /api/v1/rules/{name}, the same for receivers, and
    PUT /api/v1/config."""
    writing = asyncio.Lock()  # one change at a time on this worker: its plan is read, then written
    answers = answering("secret_params")

    async def write(changes: list[Change]) -> None:
        """Write the changes that change something, phase by phase (receivers, rules, deletions)."""
        for phase in _phases(changes):
            await asyncio.gather(*(alerts.put(change.key, change.value) for change in phase))

    async def put_rule(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        data, problems = object_problems("rule", name, await read_json(request))
        async with writing:
            config = await loaded(alerts)
            rule = None
            if not problems:
                rule, problems, _ = parse_rule(
                    data, f"rules.{name}", set(config.receivers), rules=set(config.rules)
                )
            if rule is None:
                raise _invalid(f"rule {name!r} is not valid; nothing was stored", problems)
            change = rule_change(rule, alerts.value(record_key("rule", name)))
            await write([change])
        return json_response({"name": name, "action": change.action})

    async def put_receiver(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        data, problems = object_problems("receiver", name, await read_json(request))
        async with writing:
            await loaded(alerts)
            receiver = None
            if not problems:
                receiver, problems = parse_receiver(data, f"receivers.{name}")
            if receiver is None:
                raise _invalid(f"receiver {name!r} is not valid; nothing was stored", problems)
            change = receiver_change(receiver, alerts.value(record_key("receiver", name)))
            await write([change])
        return json_response({"name": name, "action": change.action})

    async def put_config(request: web.Request) -> web.Response:
        data, prune, dry_run = _config_request(await read_json(request))
        async with writing:
            config = await loaded(alerts)
            # With prune, the receivers the document does not define are deleted: rules may not name them.
            document = check_document(
                data,
                stored_receivers=() if prune else set(config.receivers),
                stored_rules=() if prune else set(config.rules),
            )
            document.problems += unresolved_secret_problems(
                document.integrations,
                secrets_dir=alerts.settings.secrets_dir or None,
                env_allow=alerts.settings.secret_env_names,
            )
            if document.problems:
                problems = (
                    _with_prune_hint(document.problems, config.receivers) if prune else document.problems
                )
                raise _invalid(InvalidConfig(problems).summary, problems, document.warnings)
            changes = plan_document(
                document,
                alerts.values("receiver"),
                alerts.values("rule"),
                prune=prune,
                stored_integrations=alerts.values("integration"),
                stored_subscriptions=alerts.values("subscription"),
            )
            if not dry_run:
                await write(changes)
        warnings = [*document.warnings, *literal_secret_warnings(document)]
        return json_response(
            {
                "changes": [change.as_dict() for change in changes],
                "warnings": [warning.as_dict() for warning in warnings],
                "dry_run": dry_run,
            }
        )

    for path, section in (("/api/v1/rules", "rule"), ("/api/v1/receivers", "receiver")):
        shown = _show_rule if section == "rule" else _show_receiver
        listing, getting = list_named(alerts, section, shown), get_named(alerts, section, shown)
        putting = put_rule if section == "rule" else put_receiver
        deleting = delete_named(alerts, section, writing, _inhibited if section == "rule" else _named)
        # /api/v1/rules/test is the dry run's (a rule cannot be named test): keep it out of {name}
        one = path + ("/{name:(?!test$)[^/]+}" if section == "rule" else "/{name}")
        app.router.add_get(path, answers(listing))
        app.router.add_get(one, answers(getting))
        app.router.add_put(one, answers(putting))
        app.router.add_delete(one, answers(deleting))
    app.router.add_put("/api/v1/config", answers(put_config))


def _show_rule(rule: Rule) -> dict[str, Any]:
    return rule.to_dict()


def _show_receiver(receiver: Receiver) -> dict[str, Any]:
    return receiver.public_dict()


def _inhibited(config: AlertConfig, name: str) -> None:
    """A rule other rules inhibit is not deleted (409)."""
    users = sorted(rule.name for rule in config.rules.values() if name in rule.inhibits)
    if users:
        said = ", ".join(users)
        error = f"rule {name!r} is inhibited by the rules {said}: change or delete them first"
        raise Refused(409, {"error": error, "rules": users})


def _named(config: AlertConfig, name: str) -> None:
    """A receiver rules name is not deleted (409)."""
    users = rules_naming(config, name)
    if users:
        said = ", ".join(users)
        error = f"receiver {name!r} is named by the rules {said}: change or delete them first"
        raise Refused(409, {"error": error, "rules": users})


def _phases(changes: Iterable[Change]) -> list[list[Change]]:
    """The changes that change something, grouped in the order they must be in force: the writes of
    receivers, of rules, then the deletions of rules, of receivers. Each group is written at once."""
    order = {
        ("receiver", False): 0,
        ("integration", False): 0,
        ("subscription", False): 0,
        ("rule", False): 1,
        ("rule", True): 2,
        ("receiver", True): 3,
        ("integration", True): 3,
        ("subscription", True): 3,
    }
    groups: list[list[Change]] = [[], [], [], []]
    for change in changes:
        if change.action != "unchanged":
            groups[order[change.type, change.action == "deleted"]].append(change)
    return [group for group in groups if group]


__all__ = [
    "Change",
    "Refused",
    "add_rule_routes",
    "integration_change",
    "literal_secret_warnings",
    "plan_document",
    "receiver_change",
    "rule_change",
    "same_receiver",
    "subscription_change",
]
