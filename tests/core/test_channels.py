"""The core's notification kinds: names, MLRun's param checks (the ones model validation runs), lookup."""

from __future__ import annotations

from typing import Any

import pytest

from runherald import channels, model
from runherald.errors import InvalidArgumentError

# One failing params dict per kind that checks any, with MLRun's message for it.
FAILING = [
    ("slack", {"channel": "#c"}, "Parameter 'webhook' is required for SlackNotification"),
    ("webhook", {"method": "post"}, "Parameter 'url' is required for WebhookNotification"),
    ("git", {"repo": "r", "issue": "1"}, "Parameter 'token' is required for GitNotification"),
    ("mail", {"server_host": "h"}, "Parameter 'sender_address' is required for MailNotification"),
]


def test_the_kinds_are_mlruns_and_git_and_ipython_are_not_sent_yet() -> None:
    assert set(channels.KINDS) == {kind.value for kind in model.NotificationKind}
    assert {name for name, kind in channels.KINDS.items() if not kind.supported} == {"git", "ipython"}
    assert all(channels.kind(name).name == name for name in channels.KINDS)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("slak", "unknown kind 'slak' (did you mean 'slack'?)"),
        ("e-mail", "unknown kind 'e-mail' (did you mean 'mail'?)"),
        ("Webhook", "unknown kind 'Webhook' (did you mean 'webhook'?)"),
        (
            "carrier-pigeon",
            "unknown kind 'carrier-pigeon' (known kinds: console, git, ipython, mail, slack, webhook)",
        ),
        ("", "unknown kind '' (known kinds: console, git, ipython, mail, slack, webhook)"),
    ],
)
def test_an_unknown_kind_names_the_nearest_known_one(name: str, message: str) -> None:
    with pytest.raises(channels.UnknownKind) as info:
        channels.kind(name)
    assert str(info.value) == message
    assert isinstance(info.value, InvalidArgumentError) and isinstance(info.value, ValueError)


def test_a_kind_that_is_not_a_string_is_unknown() -> None:
    with pytest.raises(channels.UnknownKind, match=r"^unknown kind None \(known kinds: "):
        channels.kind(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "params", "message"), FAILING, ids=[case[0] for case in FAILING])
def test_model_validation_runs_the_kinds_check(
    name: str, params: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_WEBHOOK", raising=False)
    with pytest.raises(ValueError) as direct:
        channels.kind(name).check_params(channels.kind(name).with_defaults(params))
    notification = model.Notification(kind=name, name="n", params=params)
    with pytest.raises(ValueError) as through_model:
        notification.validate_notification_params()
    assert str(direct.value) == str(through_model.value) == message


@pytest.mark.parametrize("name", ["console", "ipython"])
def test_kinds_without_params_to_check_accept_anything(name: str) -> None:
    channels.kind(name).check_params({"anything": object()})


def test_checks_leave_the_callers_params_alone() -> None:
    params = {"server_host": "h", "sender_address": "a@example.com", "email_addresses": "b@example.com"}
    enriched = channels.MAIL.with_defaults(params)
    channels.MAIL.check_params(enriched)
    assert params == {
        "server_host": "h",
        "sender_address": "a@example.com",
        "email_addresses": "b@example.com",
    }
    assert "username" not in enriched


def test_mail_defaults_are_mlruns() -> None:
    enriched = channels.MAIL.with_defaults(
        {"email_addresses": ["a@example.com"], "default_email_addresses": "b@example.com,c@example.com"}
    )
    assert enriched == {
        "email_addresses": "a@example.com,b@example.com,c@example.com",
        "use_tls": True,
        "start_tls": False,
        "validate_certs": True,
        "server_port": 587,
    }
    assert channels.WEBHOOK.with_defaults({"url": "u"}) == {"url": "u"}
