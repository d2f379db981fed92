"""Webhook subscriptions in the pure core: parsing with paths and did-you-means, what is stored and shown
(the secret sealed or REDACTED), the rules-topic record, and the deliveries a run event makes."""

from __future__ import annotations

from typing import Any

import pytest

from runherald import ledger
from runherald.config import Settings
from runherald.delivery import delivery_id
from runherald.evaluation import candidates, evaluate_event
from runherald.rule_index import AlertConfig, parse_record
from runherald.sealing import SealKeys, generate_key_pair, open_sealed, parse_private_keys, use_keys
from runherald.secret_values import is_sealed
from runherald.subscriptions import KIND, Subscription, check_subscription, new_name, parse_subscription

URL = "https://hooks.example.com/runs"


@pytest.fixture
def keys() -> Any:
    private, _ = generate_key_pair()
    sealing = SealKeys(private=parse_private_keys(private, "test"))
    use_keys(sealing)
    yield sealing
    use_keys(None)


def problems_of(data: Any) -> list[tuple[str, str]]:
    subscription, problems = parse_subscription(data, f"subscriptions.{data.get('name', 'x')}")
    assert subscription is None
    return [(problem.path, problem.message) for problem in problems]


def run(
    state: str, *, project: str = "p", notifications: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"project": project, "uid": "u", "name": "train", "labels": {"team": "vision"}},
        "spec": {"notifications": notifications or []},
        "status": {"state": state},
    }


def config(*subscriptions: dict[str, Any]) -> AlertConfig:
    return AlertConfig.from_records({f"subscription/{s['name']}": s for s in subscriptions})


def test_a_subscription_parses_with_defaults_every_run_and_every_state() -> None:
    subscription = check_subscription({"name": "all", "url": URL}, "subscriptions.all")
    assert (subscription.matchers, subscription.states, subscription.secret) == ((), (), None)
    assert subscription.wants("pending", {"project": "any"}) and subscription.wants("aborting", {})
    assert subscription.to_dict() == {"name": "all", "url": URL, "matchers": [], "states": []}


def test_problems_have_paths_and_did_you_means() -> None:
    found = problems_of(
        {
            "name": "a/b",
            "url": "ftp://x",
            "matchers": ['projct="a"', "project"],
            "states": ["complete", "running", "running"],
            "secrett": "x",
        }
    )
    paths = dict(found)
    assert "did you mean 'secret'" in paths["subscriptions.a/b.secrett"]
    assert "not a valid name" in paths["subscriptions.a/b.name"]
    assert "http:// or https://" in paths["subscriptions.a/b.url"]
    assert "unknown field 'projct'" in paths["subscriptions.a/b.matchers[0]"]
    assert "is not a matcher" in paths["subscriptions.a/b.matchers[1]"]
    assert "did you mean 'completed'" in paths["subscriptions.a/b.states[0]"]
    assert "named twice" in paths["subscriptions.a/b.states[2]"]
    assert problems_of({"name": "n"}) == [
        ("subscriptions.n.url", "a subscription needs a url (http:// or https://)")
    ]
    assert problems_of({"name": "n", "url": URL, "secret": ""})[0][0] == "subscriptions.n.secret"


def test_a_literal_secret_is_sealed_to_store_and_redacted_to_show(keys: SealKeys) -> None:
    subscription = check_subscription({"name": "s", "url": URL, "secret": "whsec_c2VjcmV0"}, "x")
    stored = subscription.sealed()
    assert is_sealed(stored["secret"]) and "whsec_c2VjcmV0" not in str(stored)
    assert open_sealed(stored["secret"], keys) == "whsec_c2VjcmV0"
    assert subscription.public_dict()["secret"] == "REDACTED"
    # what the rules topic holds parses back, its sealed secret shown as it is (sealed, not the secret)
    parsed = parse_record("subscription/s", stored)
    assert isinstance(parsed, Subscription) and parsed.public_dict()["secret"] == stored["secret"]
    reference = check_subscription({"name": "r", "url": URL, "secret": {"secret": "hook-key"}}, "x")
    assert reference.sealed()["secret"] == {"secret": "hook-key"} == reference.public_dict()["secret"]


def test_a_record_under_another_name_or_unparseable_is_left_out() -> None:
    assert parse_record("subscription/other", {"name": "s", "url": URL}) is None
    assert parse_record("subscription/s", {"name": "s", "url": "nowhere"}) is None


def test_generated_names_are_valid_and_distinct() -> None:
    names = {new_name() for _ in range(50)}
    assert len(names) == 50
    assert all(parse_subscription({"name": name, "url": URL}, "x")[0] is not None for name in names)


def test_candidates_one_per_matching_subscription_in_every_state_it_wants() -> None:
    alerts = config(
        {"name": "all", "url": URL},
        {"name": "vision-done", "url": URL, "matchers": ['labels.team="vision"'], "states": ["completed"]},
        {"name": "elsewhere", "url": URL, "matchers": ['project="q"']},
    )
    found = candidates(run("pending"), alerts)
    assert [(c.name, c.subscription, c.notification["kind"]) for c in found] == [
        ("subscription:all", "all", KIND)
    ]
    assert [c.name for c in candidates(run("completed"), alerts)] == [
        "subscription:all",
        "subscription:vision-done",
    ]
    assert [c.name for c in candidates(run("completed", project="q"), alerts)] == [
        "subscription:all",
        "subscription:elsewhere",
        "subscription:vision-done",
    ]


def test_every_state_change_is_a_delivery_even_states_that_never_notify() -> None:
    alerts = config({"name": "all", "url": URL, "secret": {"secret": "k"}})
    record = ledger.new_record("p", "u")
    states = ["created", "pending", "running", "completed"]
    sent = []
    for offset, state in enumerate(states):
        result = evaluate_event(
            run(state), record=record, source=(0, offset), settings=Settings(), alerts=alerts
        )
        sent += result.deliveries
    assert [(d.state, d.kind, d.name) for d in sent] == [(s, KIND, "subscription:all") for s in states]
    assert [d.id for d in sent] == [delivery_id("p", "u", "subscription:all", s) for s in states]
    assert sent[0].notification["secret_params"] == {"signing_secret": {"secret": "k"}}
    assert sent[0].notification["params"] == {"url": URL}
    assert {entry["status"] for entry in record["deliveries"].values()} == {"pending"}


def test_a_run_with_only_a_subscription_is_recorded_and_one_without_is_not() -> None:
    alerts = config({"name": "p-only", "url": URL, "matchers": ['project="p"']})
    seen = evaluate_event(
        run("running"), record=ledger.new_record("p", "u"), source=(0, 1), settings=Settings(), alerts=alerts
    )
    assert seen.record is not None and seen.record["run"]["state"] == "running"
    other = evaluate_event(
        run("running", project="q"),
        record=ledger.new_record("q", "u"),
        source=(0, 2),
        settings=Settings(),
        alerts=alerts,
    )
    assert other.deliveries == []


def test_a_child_iteration_is_not_sent_and_a_name_clash_is_an_error() -> None:
    alerts = config({"name": "all", "url": URL})
    child = run("running")
    child["metadata"]["iteration"] = 2
    result = evaluate_event(
        child, record=ledger.new_record("p", "u"), source=(0, 1), settings=Settings(), alerts=alerts
    )
    assert result.deliveries == [] and "child iteration 2" in dict(result.skipped)["subscription:all"]

    own = {"kind": "console", "name": "subscription:all", "when": ["running"]}
    clash = evaluate_event(
        run("running", notifications=[own]),
        record=ledger.new_record("p", "u"),
        source=(0, 1),
        settings=Settings(),
        alerts=alerts,
    )
    assert "own notification named 'subscription:all'" in clash.skipped[-1][1]
    # the run's own notification under that name is sent; the subscription's is not
    assert [(d.kind, d.name) for d in clash.deliveries] == [("console", "subscription:all")]
