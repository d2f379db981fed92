"""Transitions: a rule's `when` checked and split, each name's history ordered by last_update whatever
the arrival order, duplicates ignored, and regressed / recovered / state_changed decided once."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from runherald import ledger
from runherald.alerting import Receiver, check_document, parse_rule
from runherald.cli_rules import _when_text
from runherald.config import Settings
from runherald.evaluation import evaluate_event
from runherald.rule_dry_run import dry_run
from runherald.rule_index import AlertConfig
from runherald.transition_evaluation import evaluate_transitions, outcome_record
from runherald.transitions import StateChanged, between, fires_on, insert, parse_when


def rule(**fields: Any) -> dict[str, Any]:
    return {"name": "r", "matchers": ['project="p"'], "receivers": ["hook"], **fields}


def test_when_splits_into_states_and_transitions() -> None:
    states, transitions, problems = parse_when(
        ["error", "regressed", {"state_changed": {"from": ["completed"], "to": ["error", "aborted"]}}], "w"
    )
    assert problems == []
    assert states == ("error",)
    assert transitions == ("regressed", StateChanged(("completed",), ("error", "aborted")))
    assert parse_when(None, "w")[:2] == (("completed",), ())


def test_a_rule_with_transitions_round_trips_and_is_never_sent_for_a_plain_state() -> None:
    data = rule(when=["regressed", "recovered", {"state_changed": {"from": ["completed"], "to": ["error"]}}])
    parsed, problems, _ = parse_rule(data, "rules.r", ["hook"])
    assert problems == [] and parsed is not None
    assert parsed.when == () and len(parsed.transitions) == 3
    assert parsed.to_dict()["when"] == data["when"]
    assert parse_rule(parsed.to_dict(), "rules.r", ["hook"])[0] == parsed
    notification = parsed.notification(Receiver("hook", "webhook", {"url": "http://x"}))
    # Not empty (that would mean MLRun's default, completed), and no run state is in it.
    assert notification["when"] and not {"completed", "error", "aborted", "running"} & set(
        notification["when"]
    )


@pytest.mark.parametrize(
    ("when", "path", "message"),
    [
        (["error", {"state_changed": {"from": ["complted"]}}], "rules.r.when[1].state_changed.from[0]",
         "unknown state 'complted' (did you mean 'completed'?)"),
        ([{"state_changed": {"from": ["completed"], "to": ["running"]}}],
         "rules.r.when[0].state_changed.to[0]", "not terminal"),
        ([{"state_changed": {"form": ["completed"]}}], "rules.r.when[0].state_changed.form",
         "did you mean 'from'"),
        ([{"state_changed": {"from": ["error"], "to": ["error"]}}], "rules.r.when[0].state_changed",
         "never a change"),
        ([{"state_change": {}}], "rules.r.when[0]", "did you mean 'state_changed'"),
        (["regresed"], "rules.r.when[0]", "did you mean 'regressed'"),
        (["state_changed"], "rules.r.when[0]", "needs from and to"),
        ([{"state_changed": {"from": []}}], "rules.r.when[0].state_changed.from", "must be a list"),
    ],
)  # fmt: skip
def test_a_bad_transition_is_refused_at_its_path(when: list[Any], path: str, message: str) -> None:
    problems = check_document(
        {"receivers": [{"name": "hook", "kind": "console"}], "rules": [rule(when=when)]}
    ).problems
    assert [problem.path for problem in problems] == [path]
    assert message in problems[0].message


def test_state_changed_fires_on_its_labels_only() -> None:
    changed = StateChanged(("completed",), ("error",))
    assert fires_on([changed], "completed>error")
    assert not fires_on([changed], "error>completed") and not fires_on([changed], "regressed")
    assert fires_on(["regressed"], "regressed") and not fires_on(["regressed"], "recovered")


def outcome(uid: str, state: str, at: float) -> dict[str, Any]:
    return {"project": "p", "name": "train", "uid": uid, "state": state, "at": at, "source": [0, int(at)]}


def replay(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Insert each event in turn; the history and every (uid, transition) sent."""
    history: list[dict[str, Any]] = []
    sent: list[tuple[str, str]] = []
    for event in events:
        placed = insert(history, event)
        if placed is None:
            continue
        history, fired = placed
        sent += [(decided.entry["uid"], label) for decided in fired for label in decided.labels]
    return history, sent


SEQUENCE = [outcome("a", "completed", 1), outcome("b", "error", 2), outcome("c", "error", 3),
            outcome("d", "completed", 4)]  # fmt: skip
EXPECTED = [("b", "regressed"), ("b", "completed>error"), ("d", "recovered"), ("d", "error>completed")]


def test_completed_error_error_completed_regresses_once_and_recovers_once() -> None:
    history, sent = replay(SEQUENCE)
    assert sent == EXPECTED
    assert [entry["uid"] for entry in history] == ["a", "b", "c", "d"]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_any_arrival_order_sends_each_transition_once(order: tuple[int, ...]) -> None:
    history, sent = replay([SEQUENCE[i] for i in order])
    assert [entry["uid"] for entry in history] == ["a", "b", "c", "d"]  # ordered by last_update
    labels = sorted(label for _, label in sent)
    assert labels.count("regressed") == 1 and labels.count("recovered") == 1
    assert len(sent) == len(set(sent))  # never the same (run, transition) twice


def test_an_older_event_is_compared_with_its_predecessor_and_its_successor_again() -> None:
    # completed(1), completed(3) arrive; error(2) arrives late: it regressed, and run 3 recovered.
    _, sent = replay([outcome("a", "completed", 1), outcome("c", "completed", 3), outcome("b", "error", 2)])
    assert sent == [
        ("b", "regressed"),
        ("b", "completed>error"),
        ("c", "recovered"),
        ("c", "error>completed"),
    ]


def test_a_late_error_already_announced_by_the_next_error_is_not_sent_again() -> None:
    # In order it is b that regressed; c announced it first (b came late): b's is not sent again.
    _, sent = replay([outcome("a", "completed", 1), outcome("c", "error", 3), outcome("b", "error", 2)])
    assert sent == [("c", "regressed"), ("c", "completed>error")]


def test_duplicates_of_a_uid_and_state_are_ignored() -> None:
    history, _ = replay(SEQUENCE)
    assert insert(history, outcome("b", "error", 2)) is None
    assert insert(history, outcome("b", "error", 9)) is None  # a later status update of the same state


def test_aborted_is_looked_past_by_regressed_and_recovered_not_by_state_changed() -> None:
    before = [outcome("a", "completed", 1), outcome("b", "aborted", 2)]
    assert between(before, "error") == ["regressed", "aborted>error"]
    assert between(before, "aborted") == []
    assert between([], "error") == []


def test_the_history_keeps_the_newest_and_ignores_what_is_older_than_all_of_it() -> None:
    history: list[dict[str, Any]] = []
    for i in range(5):
        placed = insert(history, outcome(f"u{i}", "completed", 10 + i), keep=3)
        assert placed is not None
        history = placed[0]
    assert [entry["uid"] for entry in history] == ["u2", "u3", "u4"]
    assert insert(history, outcome("old", "error", 1), keep=3) is None


def test_an_outcome_is_made_of_terminal_parent_runs_only() -> None:
    run = {"metadata": {"project": "p", "uid": "u", "name": "train", "iteration": 0},
           "status": {"state": "error", "last_update": "2026-12-05T10:00:00+00:00"}}  # fmt: skip
    made = outcome_record(run, (2, 7), arrived=5.0)
    assert made is not None and made["at"] == 1796464800.0 and made["source"] == [2, 7]
    assert outcome_record({**run, "status": {"state": "running"}}, (0, 0), 1.0) is None
    del run["status"]["last_update"]
    assert outcome_record(run, (0, 0), 5.0)["at"] == 5.0  # type: ignore[index]
    run["metadata"]["iteration"] = 2
    assert outcome_record(run, (0, 0), 1.0) is None


def test_a_transition_delivery_names_the_transition_and_is_made_once() -> None:
    config = check_document(
        {
            "receivers": [{"name": "hook", "kind": "webhook", "params": {"url": "http://127.0.0.1:9/x"}}],
            "rules": [rule(when=["error", "regressed", {"state_changed": {"to": ["error"]}}])],
        }
    )
    alerts = AlertConfig.from_objects([*config.receivers, *config.rules])
    assert alerts.uses_transitions
    run = {"metadata": {"project": "p", "uid": "u", "name": "train", "iteration": 0, "labels": {}},
           "spec": {"notifications": []}, "status": {"state": "error"}}  # fmt: skip
    record = ledger.new_record("p", "u")
    labels = ["regressed", "completed>error"]
    result = evaluate_transitions(
        run, labels, previous={"uid": "a", "state": "completed"}, record=record, source=(0, 3),
        settings=Settings(), alerts=alerts,
    )  # fmt: skip
    assert sorted(delivery.state for delivery in result.deliveries) == sorted(labels)
    assert "Regressed: train failed after run a (completed)" in result.deliveries[0].message
    assert result.record is not None
    states = {entry["state"]: entry["status"] for entry in record["deliveries"].values()}
    assert states == {"regressed": "pending", "completed>error": "pending"}
    again = evaluate_transitions(
        run, labels, previous={}, record=record, source=(0, 3), settings=Settings(), alerts=alerts
    )
    assert again.deliveries == [] and len(again.skipped) == 2


def test_a_rule_with_transitions_only_records_nothing_for_a_plain_state() -> None:
    flips, _, _ = parse_rule(rule(when=["regressed"], receivers=["gone"]), "rules.r", None)
    plain, _, _ = parse_rule(rule(name="plain", when=["completed"], receivers=["gone"]), "rules.plain", None)
    alerts = AlertConfig.from_objects([flips, plain])
    run = {"metadata": {"project": "p", "uid": "u", "name": "train", "iteration": 0, "labels": {}},
           "spec": {"notifications": []}, "status": {"state": "completed"}}  # fmt: skip
    record = ledger.new_record("p", "u")
    evaluate_event(run, record=record, source=(0, 1), settings=Settings(), alerts=alerts)
    # The plain rule's missing receiver is recorded; the transitions-only rule is not sent for completed.
    assert [entry["name"] for entry in record["deliveries"].values()] == ["plain/gone"]


def test_the_dry_run_says_a_rules_transitions_are_not_tried() -> None:
    config = check_document(
        {"receivers": [{"name": "hook", "kind": "console"}], "rules": [rule(when=["error", "regressed"])]}
    )
    alerts = AlertConfig.from_objects([*config.receivers, *config.rules])
    run = {"metadata": {"project": "p", "uid": "u", "name": "train", "iteration": 0, "labels": {}},
           "spec": {"notifications": []}, "status": {"state": "error"}}  # fmt: skip
    [answer] = dry_run(run, alerts, settings=Settings())["rules"][0]["receivers"]
    assert answer["send"] is True
    assert "its transitions (regressed) depend on the earlier runs of that name" in answer["reason"]


def test_rules_list_shows_transitions_as_text() -> None:
    when = ["error", "regressed", {"state_changed": {"from": ["completed"], "to": ["error"]}}]
    assert _when_text(when) == ["error", "regressed", "state_changed(completed>error)"]
    assert _when_text(None) == ["completed"]
