"""Slack: MLRun's blocks, webhook and bot delivery against a loopback Slack server, outcomes."""

from __future__ import annotations

from typing import Any

import pytest
from runherald.notifiers import NotifierSettings, SlackNotifier
from runherald.notifiers.slack import METADATA_EVENT_TYPE, render_slack_blocks

from runherald.delivery import OutcomeKind
from runherald.templating import TemplateRenderer
from runherald.testing import SlackServer


def test_blocks_equal_mlrun(slack_case: dict) -> None:
    case = slack_case
    blocks = render_slack_blocks(
        case["message"],
        case["severity"],
        case["runs"],
        name=case["name"],
        ui_url=case.get("ui_url"),
        renderer=TemplateRenderer(),
    )
    assert blocks == case["payload"]["blocks"]


def test_long_header_cut_at_first_comma(reference: dict) -> None:
    case = next(c for c in reference["slack"] if c["id"] == "long-comma")
    header, overflow = case["payload"]["blocks"][:2]
    assert header["text"]["text"] == "[info] " + "x" * 30
    assert overflow["text"]["text"].startswith("y")


def test_five_runs_split_into_sections_of_eight_fields(reference: dict) -> None:
    blocks = render_slack_blocks(
        "m", "info", next(c for c in reference["slack"] if c["id"] == "five-runs-no-ui")["runs"]
    )
    assert [len(b["fields"]) for b in blocks if "fields" in b] == [8, 4]


@pytest.mark.parametrize("case_id", ["five-runs-named-ui", "long-comma", "no-runs"])
async def test_webhook_mode_posts_mlrun_payload(
    case_id: str, settings: NotifierSettings, delivery_for: Any, reference: dict
) -> None:
    case = next(c for c in reference["slack"] if c["id"] == case_id)
    async with SlackServer() as slack:
        settings.ui_url = case.get("ui_url")
        notifier = SlackNotifier(settings)
        delivery = delivery_for(
            "slack", message=case["message"], severity=case["severity"], runs=case["runs"], name=case["name"]
        )
        outcome = await notifier.send(delivery, {"webhook": slack.webhook_url})
        await notifier.close()
    assert outcome.kind is OutcomeKind.SENT
    assert [m.payload for m in slack.messages] == [case["payload"]]


async def test_bot_mode_posts_with_delivery_metadata(settings: NotifierSettings, delivery_for: Any) -> None:
    async with SlackServer(token="xoxb-1", channels={"#runs"}) as slack:
        settings.slack_base_url = slack.api_url
        notifier = SlackNotifier(settings)
        delivery = delivery_for("slack", name="n1")
        outcome = await notifier.send(delivery, {"token": "xoxb-1", "channel": "#runs"})
        await notifier.close()
    assert outcome.kind is OutcomeKind.SENT and outcome.response_code == 200
    (message,) = slack.messages
    assert message.channel == "#runs"
    assert message.blocks == render_slack_blocks("test-message", "info", [], name="n1")
    assert message.metadata is not None
    assert message.metadata["event_type"] == METADATA_EVENT_TYPE
    assert message.metadata["event_payload"]["delivery_id"] == delivery.id


async def test_bot_mode_ratelimited_is_retryable_with_retry_after(
    settings: NotifierSettings, delivery_for: Any
) -> None:
    async with SlackServer(token="xoxb-1") as slack:
        slack.rate_limit(count=1, retry_after=7)
        settings.slack_base_url = slack.api_url
        notifier = SlackNotifier(settings)
        first = await notifier.send(delivery_for("slack"), {"token": "xoxb-1", "channel": "c"})
        second = await notifier.send(delivery_for("slack"), {"token": "xoxb-1", "channel": "c"})
        await notifier.close()
    assert first.kind is OutcomeKind.RETRYABLE
    assert first.retry_after == 7 and first.response_code == 429
    assert "ratelimited" in first.reason
    assert second.kind is OutcomeKind.SENT
    assert len(slack.messages) == 1


async def test_bot_mode_unknown_channel_and_bad_token_are_permanent(
    settings: NotifierSettings, delivery_for: Any
) -> None:
    async with SlackServer(token="xoxb-1", channels={"#runs"}) as slack:
        settings.slack_base_url = slack.api_url
        notifier = SlackNotifier(settings)
        missing = await notifier.send(delivery_for("slack"), {"token": "xoxb-1", "channel": "#nope"})
        bad_auth = await notifier.send(delivery_for("slack"), {"token": "xoxb-wrong", "channel": "#runs"})
        await notifier.close()
    assert (missing.kind, missing.reason) == (OutcomeKind.PERMANENT, "Slack API error: channel_not_found")
    assert (bad_auth.kind, bad_auth.reason) == (OutcomeKind.PERMANENT, "Slack API error: invalid_auth")
    assert "xoxb-wrong" not in bad_auth.reason


async def test_webhook_429_and_500_are_retryable(settings: NotifierSettings, delivery_for: Any) -> None:
    async with SlackServer() as slack:
        slack.rate_limit(count=1, retry_after=3)
        slack.fail_next(500)
        notifier = SlackNotifier(settings)
        limited = await notifier.send(delivery_for("slack"), {"webhook": slack.webhook_url})
        failed = await notifier.send(delivery_for("slack"), {"webhook": slack.webhook_url})
        await notifier.close()
    assert (limited.kind, limited.retry_after, limited.response_code) == (OutcomeKind.RETRYABLE, 3, 429)
    assert (failed.kind, failed.response_code) == (OutcomeKind.RETRYABLE, 500)
    assert failed.reason.startswith("Slack 500")
    assert slack.messages == []


async def test_webhook_404_is_permanent_and_reason_hides_the_url(
    settings: NotifierSettings, delivery_for: Any
) -> None:
    async with SlackServer() as slack:
        secret_url = slack.base_url + "/services/T1/B1/very-secret-token"
        notifier = SlackNotifier(settings)
        outcome = await notifier.send(delivery_for("slack"), {"webhook": secret_url})
        await notifier.close()
    assert (outcome.kind, outcome.response_code) == (OutcomeKind.PERMANENT, 404)
    assert "no_service" in outcome.reason
    assert "very-secret-token" not in outcome.reason


async def test_missing_webhook_is_permanent_not_sent(settings: NotifierSettings, delivery_for: Any) -> None:
    outcome = await SlackNotifier(settings).send(delivery_for("slack"), {})
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.reason == "Parameter 'webhook' is required for SlackNotification"


async def test_webhook_from_settings_fallback(settings: NotifierSettings, delivery_for: Any) -> None:
    async with SlackServer() as slack:
        settings.slack_webhook = slack.webhook_url
        notifier = SlackNotifier(settings)
        outcome = await notifier.send(delivery_for("slack"), {})
        await notifier.close()
    assert outcome.kind is OutcomeKind.SENT
    assert len(slack.messages) == 1


async def test_connection_refused_is_retryable(settings: NotifierSettings, delivery_for: Any) -> None:
    async with SlackServer() as slack:
        url = slack.webhook_url
    outcome = await SlackNotifier(settings).send(delivery_for("slack"), {"webhook": url})
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert "cannot connect" in outcome.reason


async def test_loopback_refused_by_default_policy(delivery_for: Any) -> None:
    async with SlackServer() as slack:
        notifier = SlackNotifier(NotifierSettings())
        outcome = await notifier.send(delivery_for("slack"), {"webhook": slack.webhook_url})
        await notifier.close()
    assert outcome.kind is OutcomeKind.PERMANENT
    assert "loopback" in outcome.reason
    assert slack.requests == []


def test_breaker_endpoint_is_the_webhook_or_the_web_api_method(
    settings: NotifierSettings, delivery_for: Any
) -> None:
    notifier = SlackNotifier(settings)
    delivery = delivery_for("slack")
    hook = {"webhook": "https://hooks.slack.com/services/T0/B0/tok?x=1"}
    assert notifier.endpoint(delivery, hook) == "https://hooks.slack.com:443/services/T0/B0/tok"
    settings.slack_base_url = "https://slack.com/api/"
    bot = {"token": "xoxb-1", "channel": "#c"}
    assert notifier.endpoint(delivery, bot) == "https://slack.com:443/api/chat.postMessage"
