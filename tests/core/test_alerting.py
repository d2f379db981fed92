"""The configuration document: every problem with its path, and the objects it holds."""

from __future__ import annotations

from typing import Any

import pytest

from runherald.alerting import (
    InvalidConfig,
    Receiver,
    check_document,
    load_text,
    with_receiver,
)
from runherald.silences import parse_silence

GOOD = """
receivers:
  - name: ml-oncall
    kind: slack
    secret_params: {webhook: {secret: ml-oncall-webhook}}
  - name: hook
    kind: webhook
    params: {url: "https://example.com/hook"}
rules:
  - name: prod-failures
    matchers: ['project=~"prod-.*"', 'labels.team!="sandbox"']
    when: [error, aborted]
    condition: "{{ run.status.results.accuracy | default(1) < 0.8 }}"
    severity: error
    message: "Run {{ run.metadata.name }} failed"
    receivers: [ml-oncall, hook]
"""


def paths(doc: Any, **kwargs: Any) -> dict[str, str]:
    return {problem.path: problem.message for problem in check_document(doc, **kwargs).problems}


def test_the_issue_example_is_valid_and_round_trips() -> None:
    checked = check_document(load_text(GOOD))
    assert checked.problems == [] and checked.warnings == []
    assert [r.name for r in checked.receivers] == ["ml-oncall", "hook"]
    (rule,) = checked.rules
    assert rule.when == ("error", "aborted") and rule.receivers == ("ml-oncall", "hook")
    again = check_document({"receivers": [r.to_dict() for r in checked.receivers], "rules": [rule.to_dict()]})
    assert again.rules == [rule] and again.receivers == checked.receivers


def test_a_rule_notification_is_named_rule_slash_receiver_and_takes_the_receiver() -> None:
    checked = check_document(load_text(GOOD))
    notification = checked.rules[0].notification(checked.receivers[0])
    assert notification["name"] == "prod-failures/ml-oncall"
    assert notification["kind"] == "slack"
    assert notification["secret_params"] == {"webhook": {"secret": "ml-oncall-webhook"}}
    assert notification["when"] == ["error", "aborted"] and notification["severity"] == "error"


@pytest.mark.parametrize(
    ("rule", "path", "message"),
    [
        ({"matchers": ['projekt="x"']}, "rules.r.matchers[0]", "unknown field 'projekt'"),
        ({"matchers": ['name=~"("']}, "rules.r.matchers[0]", "invalid regular expression"),
        ({"matchers": []}, "rules.r.matchers", "at least one matcher"),
        ({"when": ["eror"]}, "rules.r.when[0]", "did you mean 'error'"),
        ({"when": ["pending"]}, "rules.r.when[0]", "never notifies"),
        ({"condition": "{{ run.x < }}"}, "rules.r.condition", "does not compile"),
        ({"message": "Run {{ run.x < }}"}, "rules.r.message", "template does not compile"),
        ({"severity": "loud"}, "rules.r.severity", "unknown severity"),
        ({"receivers": ["hook", "hook"]}, "rules.r.receivers[1]", "named twice"),
        ({"receivers": []}, "rules.r.receivers", "at least one receiver"),
        ({"group_by": ["project"]}, "rules.r.group_by", "groups nothing without group_wait"),
        ({"group_by": ["projekt"], "group_wait": "30s"}, "rules.r.group_by[0]", "unknown field 'projekt'"),
        ({"group_by": "project", "group_wait": "30s"}, "rules.r.group_by", "list of field names"),
        ({"group_wait": "soon"}, "rules.r.group_wait", "not a duration"),
        ({"group_wait": "1s", "group_interval": "0s"}, "rules.r.group_interval", "more than 0s"),
        ({"repeat_interval": -1}, "rules.r.repeat_interval", "text such as 30s"),
        ({"matcher": ['project="x"']}, "rules.r.matcher", "did you mean 'matchers'"),
        ({"name": "a/b"}, "rules[0].name", "not a valid name"),
        ({"name": "test"}, "rules.test.name", "reserved"),
    ],
)
def test_each_bad_rule_field_has_its_path(rule: dict[str, Any], path: str, message: str) -> None:
    doc = {
        "receivers": [{"name": "hook", "kind": "webhook", "params": {"url": "https://example.com"}}],
        "rules": [{"name": "r", "matchers": ['project="x"'], "receivers": ["hook"], **rule}],
    }
    found = paths(doc)
    assert path in found, found
    assert message in found[path]


@pytest.mark.parametrize(
    ("receiver", "path", "message"),
    [
        ({"kind": "slak"}, "receivers.x.kind", "did you mean 'slack'"),
        ({"kind": "webhook"}, "receivers.x.params.url", "url"),
        (
            {
                "kind": "mail",
                "params": {"server_host": "smtp", "sender_address": "a@b.c", "email_addresses": "nope"},
            },
            "receivers.x.params",
            "nope",
        ),
        ({"kind": "slack", "params": {"receiver": "y"}}, "receivers.x.params.receiver", "another receiver"),
        ({"kind": "slack", "colour": "red"}, "receivers.x.colour", "unknown field"),
    ],
)
def test_each_bad_receiver_has_its_path(receiver: dict[str, Any], path: str, message: str) -> None:
    found = paths({"receivers": [{"name": "x", **receiver}]})
    hits = {p: m for p, m in found.items() if p.startswith(path)}
    assert hits, found
    assert any(message in m for m in hits.values()), found


def test_duplicates_are_refused() -> None:
    hook = {"name": "hook", "kind": "console"}
    rule = {"name": "r", "matchers": ['project="x"'], "receivers": ["hook"]}
    found = paths({"receivers": [hook, hook], "rules": [rule, rule]})
    assert "defined twice" in found["receivers.hook.name"]
    assert "defined twice" in found["rules.r.name"]


def test_an_undefined_receiver_is_a_warning_offline_and_a_problem_when_applied() -> None:
    doc = {"rules": [{"name": "r", "matchers": ['project="x"'], "receivers": ["elsewhere"]}]}
    offline = check_document(doc)
    assert offline.problems == []
    assert [w.path for w in offline.warnings] == ["rules.r.receivers[0]"]
    assert "must exist when applied" in offline.warnings[0].message
    assert [r.name for r in offline.rules] == ["r"]
    assert check_document(doc, stored_receivers={"elsewhere"}).problems == []
    applied = check_document(doc, stored_receivers={"elsewere"})
    assert [p.path for p in applied.problems] == ["rules.r.receivers[0]"]
    assert "did you mean 'elsewere'" in applied.problems[0].message


def test_top_level_problems() -> None:
    assert "must be an object" in paths(["x"])[""]
    assert "must map each name" in paths({"subscriptions": "all"})["subscriptions"]
    assert "must be a list" in paths({"integrations": {}})["integrations"]
    assert "unknown field" in paths({"rulez": []})["rulez"]
    assert "must be a list" in paths({"rules": {}})["rules"]
    with pytest.raises(InvalidConfig, match="line 1"):
        load_text("rules: [")


def test_a_notification_naming_a_receiver_takes_it_with_its_own_params_on_top() -> None:
    receiver = Receiver("hook", "webhook", {"url": "https://a", "method": "POST"}, {"token": {"secret": "t"}})
    merged = with_receiver(
        {"name": "n", "kind": "slack", "params": {"receiver": "hook", "method": "PUT"}}, receiver
    )
    assert merged["kind"] == "webhook"
    assert merged["params"] == {"url": "https://a", "method": "PUT"}
    assert merged["secret_params"] == {"token": {"secret": "t"}}


def test_silences() -> None:
    silence = parse_silence(
        {"matchers": ['project="alpha"', 'receiver="hook"'], "duration": "2h", "comment": "maintenance"},
        now=1000,
    )
    assert (silence.starts_at, silence.ends_at) == (1000, 1000 + 7200)
    assert [silence.state(t) for t in (999, 1000, 8199, 8200)] == ["pending", "active", "active", "expired"]
    assert parse_silence(silence.to_dict(), now=0) == silence
    with pytest.raises(InvalidConfig) as refused:
        parse_silence({"matchers": ['projekt="x"'], "duration": "soon", "author": "a b"})
    found = {p.path for p in refused.value.problems}
    assert found == {"silence.matchers[0]", "silence.duration", "silence.comment", "silence.author"}
    with pytest.raises(InvalidConfig, match="after starts_at"):
        parse_silence({"matchers": ['project="x"'], "comment": "c", "starts_at": 10, "ends_at": 5})
