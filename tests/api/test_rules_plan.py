"""What applying a configuration document writes, decided without Kafka: the order of the changes, what
counts as unchanged (a receiver's sealed secrets compared by what they hold), and what is sealed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from runherald.alerting import check_document
from runherald.api_rules import literal_secret_warnings, plan_document, receiver_change, same_receiver
from runherald.sealing import PRIVATE_KEYS_ENV, generate_key_pair, seal_keys, use_keys

SECRET = "the-receivers-token"
SIGNED = {
    "name": "signed",
    "kind": "webhook",
    "params": {"url": "https://hooks.example.com/runs"},
    "secret_params": {"token": SECRET, "key": {"secret": "hook-key"}},
}
PLAIN = {"name": "plain", "kind": "console"}
RULE = {"name": "r", "matchers": ['project = "a"'], "receivers": ["signed"]}


@pytest.fixture(autouse=True)
def keys() -> Iterator[None]:
    private, _ = generate_key_pair()
    use_keys(seal_keys({PRIVATE_KEYS_ENV: private}))
    yield
    use_keys(None)


def stored(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(receivers, rules) as the rules topic holds them after applying `document` to nothing."""
    changes = plan_document(check_document(document), {}, {})
    by_type: dict[str, dict[str, Any]] = {"receiver": {}, "rule": {}}
    for change in changes:
        assert change.action == "created" and change.value is not None
        by_type[change.type][change.name] = change.value
    return by_type["receiver"], by_type["rule"]


def test_literal_secrets_are_sealed_references_kept_and_unchanged_is_by_content() -> None:
    receivers, rules = stored({"receivers": [SIGNED, PLAIN], "rules": [RULE]})
    written = receivers["signed"]["secret_params"]
    assert set(written["token"]) == {"sealed"} and SECRET not in str(receivers)
    assert written["key"] == {"secret": "hook-key"}
    # The canonical form is stored: a matcher as its text, the default `when` filled in.
    assert rules["r"] == {
        "name": "r",
        "matchers": ['project="a"'],
        "when": ["completed"],
        "receivers": ["signed"],
    }

    again = plan_document(check_document({"receivers": [SIGNED, PLAIN], "rules": [RULE]}), receivers, rules)
    assert [(c.type, c.name, c.action, c.value) for c in again] == [
        ("receiver", "signed", "unchanged", None),
        ("receiver", "plain", "unchanged", None),
        ("rule", "r", "unchanged", None),
    ]
    # Sealed again (a new ciphertext) it is the same receiver; another secret is not.
    resealed = receiver_change(check_document({"receivers": [SIGNED]}).receivers[0], None).value
    assert resealed is not None and resealed != receivers["signed"]
    assert same_receiver(SIGNED, resealed) and same_receiver(resealed, receivers["signed"])
    other = {**SIGNED, "secret_params": {**SIGNED["secret_params"], "token": "another"}}
    assert not same_receiver(other, receivers["signed"])


def test_a_sealed_value_this_worker_cannot_open_is_never_unchanged() -> None:
    receivers, _ = stored({"receivers": [SIGNED]})
    private, _ = generate_key_pair()
    use_keys(seal_keys({PRIVATE_KEYS_ENV: private}))  # the keys were rotated away
    assert not same_receiver(SIGNED, receivers["signed"])
    change = receiver_change(check_document({"receivers": [SIGNED]}).receivers[0], receivers["signed"])
    assert change.action == "updated"


def test_changes_are_ordered_so_no_stored_rule_names_a_missing_receiver() -> None:
    receivers, rules = stored(
        {"receivers": [SIGNED, PLAIN], "rules": [RULE, {**RULE, "name": "q", "receivers": ["plain"]}]}
    )
    smaller = {"receivers": [SIGNED], "rules": [{**RULE, "when": ["error"]}]}
    kept = plan_document(check_document(smaller), receivers, rules)
    assert [(c.type, c.name, c.action) for c in kept] == [
        ("receiver", "signed", "unchanged"),
        ("rule", "r", "updated"),
    ]
    pruned = plan_document(check_document(smaller), receivers, rules, prune=True)
    assert [(c.type, c.name, c.action) for c in pruned] == [
        ("receiver", "signed", "unchanged"),
        ("rule", "r", "updated"),
        ("rule", "q", "deleted"),
        ("receiver", "plain", "deleted"),
    ]
    assert [c.key for c in pruned] == ["receiver/signed", "rule/r", "rule/q", "receiver/plain"]


def test_a_literal_secret_in_the_file_is_a_warning() -> None:
    warnings = literal_secret_warnings(check_document({"receivers": [SIGNED, PLAIN]}))
    assert [warning.path for warning in warnings] == ["receivers.signed.secret_params.token"]
    assert SECRET not in str(warnings)
