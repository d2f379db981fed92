"""The `subscriptions:` section of the configuration document, without Kafka: each problem with its path
``subscriptions.<name>.<field>``, the mapping and list forms, and what applying it writes (the secret
sealed, a re-apply `unchanged` by what the sealed secret holds, `prune` deleting what the file no longer
holds)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from runherald.alerting import check_document
from runherald.api_rules import literal_secret_warnings, plan_document
from runherald.rule_index import AlertConfig
from runherald.sealing import PRIVATE_KEYS_ENV, generate_key_pair, open_sealed, seal_keys, use_keys
from runherald.secret_values import is_sealed

URL = "https://hooks.example.com/runs"
SECRET = "whsec_c3Vic2NyaXB0aW9uLWluLWEtZG9jdW1lbnQ="


@pytest.fixture(autouse=True)
def keys() -> Iterator[None]:
    private, _ = generate_key_pair()
    use_keys(seal_keys({PRIVATE_KEYS_ENV: private}))
    yield
    use_keys(None)


def problems(doc: Any) -> dict[str, str]:
    return {problem.path: problem.message for problem in check_document(doc).problems}


def test_the_section_maps_names_to_subscriptions() -> None:
    document = check_document(
        {
            "subscriptions": {
                "ci": {"url": URL, "matchers": ['project=~"prod-.*"'], "states": ["completed", "error"]},
                "all": {"url": URL, "secret": {"secret": "hook"}},
                "named": {"name": "named", "url": URL},
            }
        }
    )
    assert document.problems == [] and document.warnings == []
    found = {subscription.name: subscription for subscription in document.subscriptions}
    assert set(found) == {"ci", "all", "named"}
    assert found["ci"].to_dict() == {
        "name": "ci",
        "url": URL,
        "matchers": ['project=~"prod-.*"'],
        "states": ["completed", "error"],
    }
    assert found["all"].secret == {"secret": "hook"} and found["all"].states == ()
    # As `subscriptions list -o yaml` prints them: a list of objects with their names.
    listed = check_document({"subscriptions": [{"name": "ci", "url": URL, "states": ["completed"]}]})
    assert listed.problems == [] and [s.name for s in listed.subscriptions] == ["ci"]


def test_each_problem_has_its_path_under_subscriptions_name() -> None:
    found = problems(
        {
            "subscriptions": {
                "a": {"url": "ftp://x", "matchers": ["projekt=1"], "states": ["completed", "don"]},
                "b": {"url": URL, "statez": ["error"], "secret": ""},
                "c": {"name": "other", "url": URL},
                "bad/name": {"url": URL},
                "d": "https://not-an-object",
                "e": {"url": URL, "matchers": 'project="p"'},
            }
        }
    )
    assert "not an http:// or https:// URL" in found["subscriptions.a.url"]
    assert "projekt" in found["subscriptions.a.matchers[0]"]
    assert "unknown state 'don'" in found["subscriptions.a.states[1]"]
    assert "did you mean 'states'" in found["subscriptions.b.statez"]
    assert "non-empty string" in found["subscriptions.b.secret"]
    assert "'other' is not its key, 'c'" in found["subscriptions.c.name"]
    assert "not a valid name" in found["subscriptions.bad/name.name"]
    assert "must be an object" in found["subscriptions.d"]
    assert "list of matchers" in found["subscriptions.e.matchers"]
    assert len(found) == 9
    assert "must map each name" in problems({"subscriptions": "x"})["subscriptions"]
    twice = problems({"subscriptions": [{"name": "x", "url": URL}, {"name": "x", "url": URL}]})
    assert "defined twice" in twice["subscriptions.x.name"]
    assert "needs a url" in problems({"subscriptions": [{"name": "y"}]})["subscriptions.y.url"]


def _applied(changes: Any) -> dict[str, dict[str, Any]]:
    """The subscriptions the rules topic holds after these changes were written to nothing."""
    return {c.name: c.value for c in changes if c.type == "subscription" and c.value is not None}


def test_applying_seals_the_secret_and_a_reapply_is_unchanged() -> None:
    doc = {
        "subscriptions": {
            "signed": {"url": URL, "states": ["completed"], "secret": SECRET},
            "by-ref": {"url": URL, "secret": "${RUNHERALD_SECRET_HOOK}"},
        }
    }
    document = check_document(doc)
    changes = plan_document(document, {}, {})
    assert [(c.type, c.name, c.action) for c in changes] == [
        ("subscription", "signed", "created"),
        ("subscription", "by-ref", "created"),
    ]
    stored = _applied(changes)
    assert is_sealed(stored["signed"]["secret"]) and SECRET not in str(stored)
    assert open_sealed(stored["signed"]["secret"]) == SECRET
    assert stored["by-ref"]["secret"] == "${RUNHERALD_SECRET_HOOK}"
    # What a worker reads back is the subscription, its secret sealed.
    held = AlertConfig.from_records({f"subscription/{name}": value for name, value in stored.items()})
    assert held.subscriptions["signed"].states == ("completed",)
    assert [w.path for w in literal_secret_warnings(document)] == ["subscriptions.signed.secret"]

    # Sealing is randomized: the same document again compares what the sealed secret holds.
    again = plan_document(check_document(doc), {}, {}, stored_subscriptions=stored)
    assert [(c.name, c.action, c.value) for c in again] == [
        ("signed", "unchanged", None),
        ("by-ref", "unchanged", None),
    ]

    changed = {"subscriptions": {**doc["subscriptions"], "signed": {"url": URL, "secret": "another"}}}
    updated = plan_document(check_document(changed), {}, {}, stored_subscriptions=stored)
    assert [(c.name, c.action) for c in updated] == [("signed", "updated"), ("by-ref", "unchanged")]

    # Prune deletes the stored subscriptions the document no longer holds, after everything it writes.
    rest = {"subscriptions": {"by-ref": doc["subscriptions"]["by-ref"]}}
    kept = plan_document(check_document(rest), {}, {}, stored_subscriptions=stored)
    assert [(c.name, c.action) for c in kept] == [("by-ref", "unchanged")]
    pruned = plan_document(check_document(rest), {}, {}, prune=True, stored_subscriptions=stored)
    assert [(c.name, c.action, c.value) for c in pruned] == [
        ("by-ref", "unchanged", None),
        ("signed", "deleted", None),
    ]
