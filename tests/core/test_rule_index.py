"""Rules indexed on equality matchers, and what evaluate makes of rules, receivers and silences."""

from __future__ import annotations

import time
from typing import Any

from runherald import ledger
from runherald.alerting import Receiver, Rule
from runherald.config import Settings
from runherald.evaluation import evaluate_event
from runherald.matchers import parse_matcher, run_fields
from runherald.rule_index import AlertConfig, RuleIndex, parse_record
from runherald.silences import Silence, parse_silence

SETTINGS = Settings.from_env({})
HOOK = Receiver("hook", "webhook", {"url": "https://example.com/hook"})
PAGER = Receiver("pager", "console")


def rule(
    name: str, *matchers: str, when: tuple[str, ...] = ("error",), receivers: tuple[str, ...] = ("hook",)
) -> Rule:
    return Rule(name, tuple(parse_matcher(m) for m in matchers), receivers, when)


def run(
    project: str = "prod-a", state: str = "error", notifications: list[Any] | None = None, **labels: str
) -> dict[str, Any]:
    return {
        "metadata": {"project": project, "uid": "u1", "name": "train", "labels": labels, "iteration": 0},
        "spec": {"notifications": notifications or []},
        "status": {"state": state},
    }


def evaluate(config: AlertConfig, event: dict[str, Any]) -> tuple[Any, ledger.Record]:
    record = ledger.new_record("p", "u1")
    return evaluate_event(event, record=record, source=(0, 7), settings=SETTINGS, alerts=config), record


def test_the_index_finds_exactly_the_rules_that_match() -> None:
    rules = [rule(f"r{i}", f'project="proj-{i}"') for i in range(1000)]
    rules += [
        rule("by-label", 'labels.team="vision"', 'project=~"proj-.*"'),
        rule("by-regex", 'project=~"proj-1.*"'),
        rule("by-state", 'state="error"', 'project!="proj-5"'),
    ]
    index = RuleIndex(rules)
    fields = run_fields(run("proj-12", team="vision"))
    assert [r.name for r in index.matching(fields)] == ["by-label", "by-regex", "by-state", "r12"]
    # Only the rules filed under this run's values (and the unindexed one) are checked.
    assert len(index.candidates(fields)) == 4
    assert [r.name for r in index.matching(run_fields(run("proj-5")))] == ["r5"]
    assert index.matching(run_fields(run("other", state="completed"))) == []


def test_each_matching_rule_and_receiver_is_a_notification() -> None:
    config = AlertConfig.from_objects(
        [HOOK, PAGER, rule("prod", 'project=~"prod-.*"', receivers=("hook", "pager"))]
    )
    result, record = evaluate(config, run())
    assert sorted(d.name for d in result.deliveries) == ["prod/hook", "prod/pager"]
    hook = next(d for d in result.deliveries if d.name == "prod/hook")
    assert hook.kind == "webhook" and hook.notification["params"]["url"] == "https://example.com/hook"
    assert {e["name"]: e["status"] for e in record["deliveries"].values()} == {
        "prod/hook": "pending",
        "prod/pager": "pending",
    }
    assert record["run"]["offset"] == [0, 7]  # tracked although the run has no notifications of its own
    nothing, untouched = evaluate(config, run("dev-a"))
    assert nothing.deliveries == [] and untouched["deliveries"] == {}
    assert nothing.record is not None and nothing.record["run"]["state"] == "error"  # known, nothing to send


def test_when_applies_to_rules() -> None:
    config = AlertConfig.from_objects([HOOK, rule("prod", 'project="prod-a"')])
    result, record = evaluate(config, run(state="completed"))
    assert result.deliveries == [] and record["deliveries"] == {}


def test_a_name_clash_with_the_run_s_own_notification_is_an_error_for_the_rule_only() -> None:
    own = {"kind": "console", "name": "prod/hook", "when": ["error"]}
    config = AlertConfig.from_objects([HOOK, rule("prod", 'project="prod-a"')])
    result, record = evaluate(config, run(notifications=[own]))
    assert [d.name for d in result.deliveries] == ["prod/hook"]
    assert result.deliveries[0].kind == "console"  # the run's own
    errors = [e for e in record["deliveries"].values() if e["status"] == "error"]
    assert len(errors) == 1 and "has its own notification named 'prod/hook'" in errors[0]["reason"]


def test_a_notification_naming_a_receiver_takes_its_kind_and_secrets() -> None:
    secret = Receiver("vault", "webhook", {"url": "https://example.com"}, {"headers": {"secret": "hdr"}})
    own = {
        "kind": "slack",
        "name": "mine",
        "when": ["error"],
        "params": {"receiver": "vault", "method": "PUT"},
    }
    result, _ = evaluate(AlertConfig.from_objects([secret]), run(notifications=[own]))
    (delivery,) = result.deliveries
    assert delivery.kind == "webhook"
    assert delivery.notification["params"] == {"url": "https://example.com", "method": "PUT"}
    assert delivery.notification["secret_params"] == {"headers": {"secret": "hdr"}}
    missing, record = evaluate(AlertConfig(), run(notifications=[own]))
    assert missing.deliveries == []
    (entry,) = record["deliveries"].values()
    assert entry["status"] == "error" and entry["reason"] == "receiver 'vault' does not exist"


def test_a_silence_mutes_what_it_matches_and_names_itself() -> None:
    now = time.time()
    silence = parse_silence(
        {"matchers": ['receiver="pager"', 'project="prod-a"'], "duration": "1h", "comment": "maint"},
        now=now - 1,
    )
    config = AlertConfig.from_objects(
        [HOOK, PAGER, rule("prod", 'project="prod-a"', receivers=("hook", "pager")), silence]
    )
    result, record = evaluate(config, run())
    assert [d.name for d in result.deliveries] == ["prod/hook"]
    muted = next(e for e in record["deliveries"].values() if e["name"] == "prod/pager")
    assert muted["status"] == "skipped" and muted["silence"] == silence.id
    assert muted["reason"] == f"muted by silence {silence.id} (maint)"
    # The run's own notifications too, by notification name.
    own = {"kind": "console", "name": "mine", "when": ["error"]}
    by_name = parse_silence(
        {"matchers": ['notification="mine"'], "duration": "1h", "comment": "x"}, now=now - 1
    )
    result, record = evaluate(AlertConfig.from_objects([by_name]), run(notifications=[own]))
    assert result.deliveries == [] and next(iter(record["deliveries"].values()))["status"] == "skipped"


def test_expired_and_pending_silences_do_not_mute() -> None:
    now = time.time()
    own = {"kind": "console", "name": "mine", "when": ["error"]}
    expired = Silence("old", (parse_matcher('project="prod-a"'),), now - 100, now - 1, "a", "c")
    pending = Silence("later", (parse_matcher('project="prod-a"'),), now + 100, now + 200, "a", "c")
    result, _ = evaluate(AlertConfig.from_objects([expired, pending]), run(notifications=[own]))
    assert [d.name for d in result.deliveries] == ["mine"]


def test_records_that_do_not_parse_are_left_out() -> None:
    assert parse_record("rule/x", {"name": "x", "matchers": ["bad"], "receivers": ["h"]}) is None
    assert parse_record("rule/y", rule("x", 'project="a"').to_dict()) is None  # name is not the key's
    assert parse_record("thing/x", {}) is None
    assert isinstance(parse_record("receiver/hook", HOOK.to_dict()), Receiver)


def test_a_rule_message_is_a_template_rendered_for_the_run() -> None:
    templated = Rule(
        "prod",
        (parse_matcher('project="prod-a"'),),
        ("hook",),
        ("error",),
        message="Run {{ run.metadata.name }} failed",
    )
    result, _ = evaluate(AlertConfig.from_objects([HOOK, templated]), run())
    (delivery,) = result.deliveries
    assert delivery.message == "Run failed in project prod-a: Run train failed"
    broken = Rule(
        "b", templated.matchers, ("hook",), ("error",), message="{{ run.metadata.name | nosuchfilter }}"
    )
    result, _ = evaluate(AlertConfig.from_objects([HOOK, broken]), run())
    assert "message template failed" in result.deliveries[0].message
