"""The dry run of the alert rules (runherald.rule_dry_run), on an AlertConfig built from objects: which
rules match or which matcher did not hold, each receiver's when/condition/silence decision, what its
channel would get, and never a secret."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from runherald.alerting import check_document
from runherald.config import Settings
from runherald.errors import InvalidArgumentError
from runherald.inhibition import start_inhibition
from runherald.rule_dry_run import UnknownRules, dry_run
from runherald.rule_index import AlertConfig
from runherald.silences import parse_silence
from runherald.testing.webhook import WebhookReceiver

SLACK_SECRET = "https://hooks.slack.com/services/T0/B0/receiver-secret"
RUN_SECRET = "run-own-secret-value"
NOW = 1_800_000_000.0

DOCUMENT: dict[str, Any] = {
    "receivers": [
        {"name": "ml-oncall", "kind": "slack", "secret_params": {"webhook": SLACK_SECRET}},
        {"name": "hook", "kind": "webhook", "params": {"url": "http://127.0.0.1:9/hook"}},
        {"name": "log", "kind": "console"},
    ],
    "rules": [
        {
            "name": "prod-failures",
            "matchers": ['project=~"prod-.*"', 'labels.team!="sandbox"'],
            "when": ["error", "aborted"],
            "severity": "error",
            "message": "training failed",
            "receivers": ["ml-oncall", "hook"],
        },
        {
            "name": "low-accuracy",
            "matchers": ['project="prod-a"'],
            "when": ["completed"],
            "condition": "{{ run.status.results.accuracy < 0.8 }}",
            "receivers": ["log"],
        },
        {"name": "sandbox", "matchers": ['labels.team="sandbox"'], "receivers": ["log"]},
    ],
}


def config(*extra: Any, document: dict[str, Any] | None = None) -> AlertConfig:
    doc = check_document(document or DOCUMENT)
    assert not doc.problems, doc.problems
    return AlertConfig.from_objects([*doc.receivers, *doc.rules, *extra])


def run(
    project: str = "prod-a", state: str = "error", accuracy: float = 0.9, **labels: str
) -> dict[str, Any]:
    return {
        "metadata": {"project": project, "uid": "u-1", "name": "train", "labels": {"team": "ml", **labels}},
        "spec": {
            "notifications": [{"kind": "slack", "name": "own", "secret_params": {"webhook": RUN_SECRET}}]
        },
        "status": {"state": state, "results": {"accuracy": accuracy}},
    }


def dry(run_dict: dict[str, Any], alerts: AlertConfig, names: list[str] | None = None) -> dict[str, Any]:
    return dry_run(run_dict, alerts, names, settings=Settings(), now=NOW)


def by_rule(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["rule"]: item for item in answer["rules"]}


def receivers(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {receiver["receiver"]: receiver for receiver in item["receivers"]}


def test_a_matching_rule_says_per_receiver_it_would_send_and_renders_each_channel() -> None:
    answer = by_rule(dry(run(), config()))
    item = answer["prod-failures"]
    assert (item["matched"], item["failed_matcher"]) == (True, None)
    slack, hook = receivers(item)["ml-oncall"], receivers(item)["hook"]
    assert (slack["notification"], slack["kind"], slack["send"]) == ("prod-failures/ml-oncall", "slack", True)
    assert slack["reason"] == "state 'error' matched"
    assert slack["silence"] is None
    rendered = slack["rendered"]
    assert (rendered["kind"], rendered["severity"]) == ("slack", "error")
    assert rendered["message"] == "Run failed in project prod-a: training failed"
    assert (
        rendered["data"]["blocks"][0]["text"]["text"]
        == "[error] Run failed in project prod-a: training failed"
    )
    assert rendered["text"].startswith("slack blocks:")
    body = json.loads(hook["rendered"]["data"]["body"])
    assert body["message"] == "Run failed in project prod-a: training failed"
    assert hook["rendered"]["data"]["content_type"] == "application/json"


def test_a_rule_that_does_not_match_names_the_first_matcher_that_did_not_hold() -> None:
    answer = by_rule(dry(run(project="dev-a"), config()))
    assert answer["prod-failures"] == {
        "rule": "prod-failures",
        "matched": False,
        "failed_matcher": 'project=~"prod-.*"',
        "receivers": [],
    }
    # The second matcher, when the first holds.
    answer = by_rule(dry(run(team="sandbox"), config()))
    assert answer["prod-failures"]["failed_matcher"] == 'labels.team!="sandbox"'
    assert answer["sandbox"]["matched"] is True
    # Every stored rule is answered for, by name.
    assert [item["rule"] for item in dry(run(), config())["rules"]] == [
        "low-accuracy",
        "prod-failures",
        "sandbox",
    ]


def test_a_state_not_in_when_is_not_sent_and_says_so() -> None:
    answer = by_rule(dry(run(state="running"), config()))
    slack = receivers(answer["prod-failures"])["ml-oncall"]
    assert (slack["send"], slack["reason"]) == (False, "state 'running' not in when ['error', 'aborted']")
    assert slack["rendered"]["message"] == "Run started in project prod-a: training failed"


@pytest.mark.parametrize(
    ("accuracy", "send", "reason"),
    [(0.95, False, "condition rendered 'False'"), (0.5, True, "condition passed")],
)
def test_the_condition_decides_for_a_completed_run(accuracy: float, send: bool, reason: str) -> None:
    answer = by_rule(dry(run(state="completed", accuracy=accuracy), config()))
    log = receivers(answer["low-accuracy"])["log"]
    assert (log["send"], log["reason"]) == (send, reason)
    assert log["rendered"]["data"].startswith("[info] Run completed in project prod-a")


def test_an_active_silence_mutes_and_says_which_one_others_do_not() -> None:
    muting = parse_silence(
        {"id": "maint-1", "matchers": ['receiver="hook"'], "duration": "1h", "comment": "maintenance"},
        now=NOW - 60,
    )
    expired = parse_silence(
        {"id": "old", "matchers": ['project="prod-a"'], "duration": "1m", "comment": "over"}, now=NOW - 3600
    )
    pending = parse_silence(
        {
            "id": "later",
            "matchers": ['notification="prod-failures/ml-oncall"'],
            "comment": "soon",
            "starts_at": NOW + 60,
            "duration": "1h",
        },
        now=NOW,
    )
    answer = by_rule(dry(run(), config(muting, expired, pending)))
    hook, slack = receivers(answer["prod-failures"])["hook"], receivers(answer["prod-failures"])["ml-oncall"]
    assert (hook["send"], hook["silence"]) == (False, "maint-1")
    assert hook["reason"] == "muted by silence maint-1 (maintenance); without it: state 'error' matched"
    assert (slack["send"], slack["silence"], slack["reason"]) == (True, None, "state 'error' matched")


def test_an_active_inhibition_mutes_the_rule_it_names_for_the_same_field_values() -> None:
    known = start_inhibition(
        "project-down", ("prod-failures",), ("project",), 600.0, {"project": "prod-a"}, "prod-a/h", NOW - 60
    )
    alerts = config(known)
    hook = receivers(by_rule(dry(run(), alerts))["prod-failures"])["hook"]
    assert hook["send"] is False
    assert hook["reason"] == f"{known.describe()}; without it: state 'error' matched"
    elsewhere = receivers(by_rule(dry(run(project="prod-b"), alerts))["prod-failures"])["hook"]
    assert elsewhere["send"] is True


def test_a_silence_over_a_notification_that_would_not_be_sent_anyway_is_noted() -> None:
    silence = parse_silence(
        {"id": "all-prod", "matchers": ['project="prod-a"'], "duration": "1h", "comment": "quiet"}, now=NOW
    )
    answer = by_rule(dry(run(state="completed", accuracy=0.99), config(silence)))
    log = receivers(answer["low-accuracy"])["log"]
    assert (log["send"], log["silence"]) == (False, "all-prod")
    assert log["reason"] == "condition rendered 'False'; silence all-prod (quiet) would also mute it"


def test_a_receiver_that_does_not_exist_is_said_so_and_not_rendered() -> None:
    alerts = config()
    del alerts.receivers["hook"]  # stored rules outlive a deleted receiver
    hook = receivers(by_rule(dry(run(), alerts))["prod-failures"])["hook"]
    assert hook == {
        "receiver": "hook",
        "notification": "prod-failures/hook",
        "kind": None,
        "send": False,
        "reason": "receiver 'hook' does not exist",
        "silence": None,
        "rendered": None,
    }


def test_a_name_clash_with_the_runs_own_notification_is_not_sent() -> None:
    clashing = run()
    clashing["spec"]["notifications"].append({"kind": "console", "name": "prod-failures/hook"})
    hook = receivers(by_rule(dry(clashing, config()))["prod-failures"])["hook"]
    assert hook["send"] is False
    assert "the run has its own notification named 'prod-failures/hook'" in hook["reason"]


def test_only_the_named_rules_in_the_order_asked_and_unknown_names_are_refused() -> None:
    answer = dry(run(), config(), ["sandbox", "prod-failures", "sandbox"])
    assert [item["rule"] for item in answer["rules"]] == ["sandbox", "prod-failures"]
    with pytest.raises(UnknownRules) as caught:
        dry(run(), config(), ["prod-failure", "nope"])
    assert isinstance(caught.value, InvalidArgumentError) and caught.value.exit_code == 2
    assert caught.value.unknown == ["prod-failure", "nope"]
    assert str(caught.value) == (
        "no rule named 'prod-failure' (did you mean 'prod-failures'?); no rule named 'nope'; "
        "stored rules: low-accuracy, prod-failures, sandbox"
    )
    with pytest.raises(UnknownRules, match="no rules are stored"):
        dry(run(), AlertConfig(), ["any"])
    assert dry(run(), AlertConfig()) == {"rules": []}


def test_many_stored_rules_are_listed_only_in_part() -> None:
    document = {
        "receivers": [{"name": "log", "kind": "console"}],
        "rules": [
            {"name": f"r{i:03d}", "matchers": [f'project="p{i}"'], "receivers": ["log"]} for i in range(50)
        ],
    }
    with pytest.raises(UnknownRules) as caught:
        dry(run(), config(document=document), ["zzz"])
    assert str(caught.value).endswith("r019 and 30 more")


def test_no_secret_is_rendered_or_shown_and_the_condition_sees_none() -> None:
    leaky = {
        "receivers": [{"name": "ml-oncall", "kind": "slack", "secret_params": {"webhook": SLACK_SECRET}}],
        "rules": [
            {
                "name": "leak",
                "matchers": ['project="prod-a"'],
                "when": ["completed"],
                "condition": "{{ 'no' if notification.secret_params.webhook == 'REDACTED'"
                " and run.spec.notifications[0].secret_params.webhook == 'REDACTED' else 'yes' }}",
                "message": "{{ notification.secret_params }}",
                "receivers": ["ml-oncall"],
            }
        ],
    }
    answer = dry(run(state="completed"), config(document=leaky))
    text = json.dumps(answer)
    assert SLACK_SECRET not in text and RUN_SECRET not in text
    assert answer["rules"][0]["receivers"][0]["reason"] == "condition rendered 'no'"  # it saw REDACTED
    assert answer["rules"][0]["receivers"][0]["rendered"]["kind"] == "slack"


async def test_nothing_is_sent() -> None:
    async with WebhookReceiver() as receiver:
        document = {
            "receivers": [{"name": "hook", "kind": "webhook", "params": {"url": receiver.url("/hook")}}],
            "rules": [
                {"name": "all", "matchers": ['state="error"'], "when": ["error"], "receivers": ["hook"]}
            ],
        }
        answer = dry(run(), config(document=document))
        assert answer["rules"][0]["receivers"][0]["send"] is True
        await asyncio.sleep(0.2)
        assert receiver.requests == []
