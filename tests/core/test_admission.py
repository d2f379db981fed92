"""The validation corpus: each kind of problem a run can have at the door, with its exact path and message."""

from __future__ import annotations

from typing import Any

import pytest

from runherald.admission import InvalidRuns, Problem, check_runs

URL = "https://hooks.example.com/h"


def run(*notifications: Any, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "metadata": {"project": "p", "uid": "u", "name": "train"},
        "spec": {"notifications": list(notifications)},
        "status": {"state": "completed"},
    }
    base.update(overrides)
    return base


def hook(**fields: Any) -> dict[str, Any]:
    return {"kind": "webhook", "name": "hook", "params": {"url": URL}, **fields}


N0 = "spec.notifications[0]"
CORPUS: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    ("unknown kind", run(hook(kind="slak")), [(f"{N0}.kind", "unknown kind 'slak' (did you mean 'slack'?)")]),
    (
        "unknown kind, nothing close",
        run(hook(kind="pager")),
        [(f"{N0}.kind", "unknown kind 'pager' (known kinds: console, git, ipython, mail, slack, webhook)")],
    ),
    ("kind not a string", run(hook(kind=3)), [(f"{N0}.kind", "must be a string")]),
    (
        "git",
        run({"kind": "git", "name": "g", "params": {"repo": "o/r", "token": "t", "issue": 1}}),
        [(f"{N0}.kind", "kind 'git' is not supported yet")],
    ),
    (
        "ipython",
        run({"kind": "ipython", "name": "i"}),
        [(f"{N0}.kind", "kind 'ipython' is not supported yet")],
    ),
    (
        "when: a typo",
        run(hook(when=["complete"])),
        [(f"{N0}.when[0]", "unknown state 'complete' (did you mean 'completed'?)")],
    ),
    (
        "when: a state that never notifies",
        run(hook(when=["completed", "pending"])),
        [
            (
                f"{N0}.when[1]",
                "state 'pending' never notifies (states that notify: aborted, completed, error, running)",
            )
        ],
    ),
    ("when: not a list", run(hook(when="completed")), [(f"{N0}.when", "must be a list of run states")]),
    ("when: null", run(hook(when=None)), [(f"{N0}.when", "must be a list of run states")]),
    ("when: not strings", run(hook(when=[1])), [(f"{N0}.when[0]", "must be a string (a run state)")]),
    (
        "severity",
        run(hook(severity="warn")),
        [(f"{N0}.severity", "unknown severity 'warn' (did you mean 'warning'?)")],
    ),
    (
        "condition that does not compile",
        run(hook(condition="{{ run.status.state ==")),
        [(f"{N0}.condition", "does not compile: TemplateSyntaxError: unexpected 'end of template'")],
    ),
    (
        "condition not a string",
        run(hook(condition=True)),
        [(f"{N0}.condition", "must be a string (a Jinja2 expression)")],
    ),
    ("message not a string", run(hook(message=["a"])), [(f"{N0}.message", "must be a string")]),
    (
        "duplicate names",
        run(hook(), hook(), hook(name="other")),
        [
            (
                "spec.notifications[1].name",
                "duplicate name 'hook' (also spec.notifications[0]): names must be unique",
            )
        ],
    ),
    (
        "slack without webhook",
        run({"kind": "slack", "name": "s", "params": {}}),
        [
            (
                f"{N0}.params.webhook",
                "Parameter 'webhook' is required for SlackNotification"
                " (or 'token' and 'channel' to send as a bot)",
            )
        ],
    ),
    (
        "slack with an unknown slack_mode",
        run(
            {
                "kind": "slack",
                "name": "s",
                "params": {"webhook": "https://hooks.example/x", "slack_mode": "edit"},
            }
        ),
        [
            (
                f"{N0}.params.slack_mode",
                "Parameter 'slack_mode' must be one of new, update, thread, update+thread",
            )
        ],
    ),
    (
        "slack bot without channel",
        run({"kind": "slack", "name": "s", "secret_params": {"token": "${RUNHERALD_SECRET_BOT}"}}),
        [(f"{N0}.params.channel", "Parameter 'channel' is required with 'token' for SlackNotification")],
    ),
    (
        "webhook without url",
        run({"kind": "webhook", "name": "w", "params": {"method": "post"}}),
        [(f"{N0}.params.url", "Parameter 'url' is required for WebhookNotification")],
    ),
    (
        "mail address",
        run(
            {
                "kind": "mail",
                "name": "m",
                "params": {"server_host": "smtp", "sender_address": "me", "email_addresses": "a@b.example"},
            }
        ),
        [(f"{N0}.params.sender_address", "Invalid email address 'me'")],
    ),
    ("params not an object", run(hook(params="x")), [(f"{N0}.params", "must be an object")]),
    (
        "secret_params not an object",
        run(hook(secret_params=["x"])),
        [(f"{N0}.secret_params", "must be an object")],
    ),
    ("notification not an object", run("hook"), [(N0, "must be an object")]),
    ("notifications not a list", run(spec={"notifications": {}}), [("spec.notifications", "must be a list")]),
    ("spec not an object", run(spec=[]), [("spec", "must be an object")]),
    (
        "no uid, no status",
        {"metadata": {"project": "p"}},
        [("metadata.uid", "missing or not a non-empty string"), ("status", "missing or not an object")],
    ),
    (
        "slash in project",
        run(metadata={"project": "a/b", "uid": "u"}),
        [("metadata.project", "must not contain '/'")],
    ),
    ("no state", run(status={"state": ""}), [("status.state", "missing or not a non-empty string")]),
    ("no metadata", run(metadata=None), [("metadata", "missing or not an object")]),
    (
        "several problems in one notification",
        run(hook(kind="slak", when=["complete"], condition="{% if %}")),
        [
            (f"{N0}.kind", "unknown kind 'slak' (did you mean 'slack'?)"),
            (f"{N0}.when[0]", "unknown state 'complete' (did you mean 'completed'?)"),
            (
                f"{N0}.condition",
                "does not compile: TemplateSyntaxError: Expected an expression, got 'end of statement block'",
            ),
        ],
    ),
]


@pytest.mark.parametrize(("case", "value", "expected"), CORPUS, ids=[case for case, _, _ in CORPUS])
def test_each_problem_with_its_path_and_message(
    case: str, value: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    with pytest.raises(InvalidRuns) as caught:
        check_runs([value])
    assert [(p.path, p.message) for p in caught.value.problems] == expected
    lines = str(caught.value).splitlines()
    count = len(expected)
    assert lines[0] == f"the input has {count} problem{'s' if count > 1 else ''}; nothing was published"
    assert lines[1:] == [f"{path}: {message}" for path, message in expected]


GOOD = [
    run(hook()),
    run(
        hook(
            when=["completed", "error", "aborted", "running"],
            severity="error",
            condition="{{ run.status.state }}",
        )
    ),
    run({"kind": "slack", "name": "webhook", "params": {"webhook": URL}}),
    # runherald's bot mode: token and channel instead of a webhook
    run(
        {
            "kind": "slack",
            "name": "bot",
            "params": {"channel": "#ml"},
            "secret_params": {"token": {"secret": "bot"}},
        }
    ),
    # a reference stands for a value known only at send time
    run({"kind": "webhook", "name": "ref", "secret_params": {"url": "${RUNHERALD_SECRET_HOOK}"}}),
    run({"kind": "webhook", "name": "sealed", "secret_params": {"url": {"sealed": "rhs1.x"}}}),
    run({"kind": "slack", "name": "whole", "secret_params": {"secret": "slack-creds"}}),
    run(
        {
            "kind": "mail",
            "name": "m",
            "params": {"server_host": "smtp", "email_addresses": ["a@b.example"]},
            "secret_params": {"sender_address": "${RUNHERALD_SECRET_FROM}"},
        }
    ),
    run({"kind": "console", "name": "c"}),
    run(spec={}),
    run(hook(severity=None, condition="", message=None)),
]


@pytest.mark.parametrize("value", GOOD)
def test_good_runs_pass(value: dict[str, Any]) -> None:
    check_runs([value])


def test_slack_may_name_no_webhook_when_a_fallback_is_configured() -> None:
    check_runs([run({"kind": "slack", "name": "s"})], slack_fallback=True)


def test_a_list_prefixes_each_path_with_its_index() -> None:
    with pytest.raises(InvalidRuns) as caught:
        check_runs([run(hook()), run(hook(kind="slak")), "x"])
    assert caught.value.problems == [
        Problem("[1].spec.notifications[0].kind", "unknown kind 'slak' (did you mean 'slack'?)"),
        Problem("[2]", "a run must be an object (a run dict), not str"),
    ]
    with pytest.raises(InvalidRuns) as single:
        check_runs([run(hook(kind="slak"))], as_list=True)
    assert single.value.problems[0].path == "[0].spec.notifications[0].kind"
