"""The registry: one notifier per core kind behind the one interface; unknown kinds refused; closing."""

from __future__ import annotations

from typing import Any

import pytest
from runherald.notifiers import (
    SENDERS,
    Notifier,
    Notifiers,
    NotifierSettings,
    UnknownNotifierKind,
    UnsupportedNotifier,
    WebhookNotifier,
    get_notifier,
)

from runherald import channels
from runherald.delivery import OutcomeKind

SUPPORTED = [name for name, kind in channels.KINDS.items() if kind.supported]
UNSUPPORTED = [name for name, kind in channels.KINDS.items() if not kind.supported]


def test_a_sender_is_registered_for_every_supported_core_kind_and_no_other() -> None:
    assert sorted(SENDERS) == sorted(SUPPORTED) == ["console", "mail", "slack", "webhook"]


@pytest.mark.parametrize("name", list(channels.KINDS))
def test_every_kind_has_a_notifier_behind_the_one_interface(name: str) -> None:
    notifier = get_notifier(name)
    assert isinstance(notifier, Notifier)
    assert notifier.kind == name
    assert isinstance(notifier, UnsupportedNotifier) is (name in UNSUPPORTED)


@pytest.mark.parametrize("name", UNSUPPORTED)
async def test_unsupported_kinds_refuse_every_delivery(name: str, delivery_for: Any) -> None:
    notifier = get_notifier(name)
    outcome = await notifier.send(delivery_for(name), {})
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.reason == f"kind '{name}' is not supported by runherald yet"
    assert notifier.endpoint(delivery_for(name), {}) is None
    assert notifier.preview("m", "info", [], name="n", params={}) is None


def test_an_unknown_kind_is_refused_as_before() -> None:
    with pytest.raises(UnknownNotifierKind, match=r"^unknown notification kind 'carrier-pigeon'$") as info:
        get_notifier("carrier-pigeon")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, channels.UnknownKind)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("slack", {"channel": "#c"}),
        ("webhook", {"method": "post"}),
        ("git", {"repo": "r", "issue": "1"}),
        ("mail", {"server_host": "h", "sender_address": "a@example.com", "email_addresses": "nope"}),
    ],
)
def test_a_notifiers_param_check_is_its_core_kinds(
    name: str, params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_WEBHOOK", raising=False)
    kind = channels.kind(name)
    with pytest.raises(ValueError) as core:
        kind.check_params(kind.with_defaults(params))
    with pytest.raises(ValueError) as notifier:
        get_notifier(name).check_params(params)
    assert str(notifier.value) == str(core.value)


def test_valid_params_pass_the_notifiers_check() -> None:
    get_notifier("webhook").check_params({"url": "https://example.com/hook"})
    get_notifier("mail").check_params(
        {"server_host": "h", "sender_address": "a@example.com", "email_addresses": ["b@example.com"]}
    )
    get_notifier("console").check_params({})


async def test_notifiers_are_built_once_per_kind_and_closed_together() -> None:
    notifiers = Notifiers(NotifierSettings())
    webhook = notifiers("webhook")
    assert notifiers("webhook") is webhook and isinstance(webhook, WebhookNotifier)
    session = webhook.sessions.get()
    slack_session = notifiers("slack").sessions.get()  # type: ignore[attr-defined]
    await notifiers.close()
    assert session.closed and slack_session.closed
    assert notifiers("webhook") is not webhook  # a fresh one after closing
    with pytest.raises(UnknownNotifierKind):
        notifiers("slak")
    await notifiers.close()
