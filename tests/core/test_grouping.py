"""The pure part of grouped rules: the rule fields, the group key, the digest id and the window logic."""

from __future__ import annotations

from typing import Any

from runherald import ledger
from runherald.alerting import Receiver, Rule, parse_rule
from runherald.config import Settings
from runherald.evaluation import evaluate_event
from runherald.grouping import (
    add_member,
    close_window,
    digest_id,
    digest_message,
    due_at,
    group_hash,
    group_values,
    new_state,
)
from runherald.matchers import parse_matcher
from runherald.rule_index import AlertConfig


def member(
    uid: str, at: float, *, wait: float = 30.0, interval: float = 300.0, repeat: float = 0.0
) -> dict[str, Any]:
    return {
        "group": group_hash("r", "hook", ["p"]),
        "rule": "r",
        "receiver": "hook",
        "values": ["p"],
        "wait": wait,
        "interval": interval,
        "repeat": repeat,
        "project": "p",
        "uid": uid,
        "delivery_id": f"d-{uid}",
        "partition": 0,
        "message": "Run failed in project p",
        "at": at,
    }


def test_a_rule_reads_its_grouping_fields_and_writes_back_only_those_set() -> None:
    data = {
        "name": "r",
        "matchers": ['project="p"'],
        "receivers": ["hook"],
        "group_by": ["project", "labels.team"],
        "group_wait": "30s",
        "repeat_interval": "1h",
    }
    rule, problems, _ = parse_rule(data, "rules.r", ["hook"])
    assert not problems and rule is not None
    assert (rule.group_by, rule.group_wait, rule.group_interval, rule.repeat_interval) == (
        ("project", "labels.team"),
        30.0,
        300.0,
        3600.0,
    )
    written = rule.to_dict()
    assert written["group_by"] == ["project", "labels.team"]
    assert (written["group_wait"], written["repeat_interval"]) == ("30s", "1h")
    assert "group_interval" not in written  # at its default
    plain, _, _ = parse_rule({"name": "q", "matchers": ['project="p"'], "receivers": ["hook"]}, "rules.q")
    assert plain is not None and not {"group_by", "group_wait", "repeat_interval"} & set(plain.to_dict())


def test_the_group_and_digest_ids_are_stable_and_tell_groups_and_windows_apart() -> None:
    fields = {"project": "p", "labels.team": "ml"}
    assert group_values(("project", "labels.team", "labels.gone"), fields) == ["p", "ml", ""]
    assert group_hash("r", "hook", ["p"]) == group_hash("r", "hook", ["p"])
    assert (
        len({group_hash("r", "hook", ["p"]), group_hash("r", "hook", ["q"]), group_hash("r", "x", ["p"])})
        == 3
    )
    # The values are joined unambiguously: ("a", "b c") is not ("a b", "c").
    assert group_hash("r", "hook", ["a", "b c"]) != group_hash("r", "hook", ["a b", "c"])
    assert digest_id("r", "hook", ["p"], 100.0) == digest_id("r", "hook", ["p"], 100.0)
    assert digest_id("r", "hook", ["p"], 100.0) != digest_id("r", "hook", ["p"], 101.0)


def test_a_window_opens_with_its_first_member_and_closes_group_wait_later() -> None:
    state = new_state(member("a", 100.0))
    assert due_at(state) is None
    assert add_member(state, member("a", 100.0)) == ("joined", "")
    assert add_member(state, member("b", 110.0)) == ("joined", "")
    assert add_member(state, member("a", 100.0)) == ("duplicate", "")  # read again after a restart
    assert due_at(state) == 130.0
    did, members = close_window(state, 131.0)
    assert did == digest_id("r", "hook", ["p"], 100.0)
    assert [m["uid"] for m in members] == ["a", "b"]
    assert due_at(state) is None and state["last"]["id"] == did
    # A member of the closed window read again is not put in the next one.
    assert add_member(state, member("b", 110.0)) == ("duplicate", "")
    # The next window: group_wait after its first member, but not before group_interval after the digest.
    assert add_member(state, member("c", 140.0)) == ("joined", "")
    assert due_at(state) == 131.0 + 300.0
    next_did, _ = close_window(state, 431.0)
    assert next_did == digest_id("r", "hook", ["p"], 140.0) != did
    # Within group_interval of the last digest the next goes at that tick, even before group_wait.
    assert add_member(state, member("d", 720.0)) == ("joined", "")
    assert due_at(state) == 731.0
    close_window(state, 731.0)
    # A group idle for longer than group_interval starts afresh: group_wait from its first member.
    assert add_member(state, member("e", 5000.0)) == ("joined", "")
    assert due_at(state) == 5030.0
    assert digest_message(members) == "Run failed in project p (2 runs)"
    assert digest_message(members[:1]) == "Run failed in project p"


def test_a_repeat_interval_covers_runs_after_a_digest_then_opens_the_next_window() -> None:
    state = new_state(member("a", 100.0, wait=0.0, repeat=60.0))
    assert add_member(state, member("a", 100.0, wait=0.0, repeat=60.0)) == ("joined", "")
    assert due_at(state) == 100.0  # no group_wait: the next look sends it
    did, _ = close_window(state, 100.5)
    assert add_member(state, member("b", 130.0, wait=0.0, repeat=60.0)) == ("covered", did)
    assert due_at(state) is None  # nothing waits: b is skipped, covered by the digest
    assert add_member(state, member("c", 161.0, wait=0.0, repeat=60.0)) == ("joined", "")
    assert due_at(state) == 161.0


def test_a_grouped_rule_s_run_is_a_member_of_its_group_not_a_delivery() -> None:
    hook = Receiver("hook", "webhook", {"url": "https://example.com/hook"})
    grouped = Rule(
        "failures",
        (parse_matcher('project="prod-a"'),),
        ("hook",),
        ("error",),
        group_by=("project",),
        group_wait=30.0,
    )
    run = {
        "metadata": {"project": "prod-a", "uid": "u1", "name": "train", "labels": {}, "iteration": 0},
        "spec": {"notifications": []},
        "status": {"state": "error"},
    }
    record = ledger.new_record("prod-a", "u1")
    result = evaluate_event(
        run,
        record=record,
        source=(2, 7),
        settings=Settings.from_env({}),
        alerts=AlertConfig.from_objects([hook, grouped]),
    )
    assert result.deliveries == []
    (member,) = result.members
    assert member["group"] == group_hash("failures", "hook", ["prod-a"])
    assert (member["project"], member["uid"], member["partition"], member["wait"]) == (
        "prod-a",
        "u1",
        2,
        30.0,
    )
    assert member["run"]["metadata"]["uid"] == "u1" and member["name"] == "failures/hook"
    (entry,) = record["deliveries"].values()
    assert entry["id"] == member["delivery_id"] and entry["status"] == ledger.PENDING
    assert entry["group"] == member["group"] and entry["reason"].startswith("waiting for group ")
