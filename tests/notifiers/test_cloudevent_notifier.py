"""CloudEvent channel (webhook subscriptions): the structured-mode CloudEvent of a run, signed with
Standard Webhooks (verified by the reference library), its hop count, and the webhook channel's
outcomes; an internal kind no run's own notification can name."""

from __future__ import annotations

import json
from typing import Any

import pytest
import standardwebhooks
from runherald.notifiers import CloudEventNotifier, NotifierSettings, get_notifier

from runherald import channels
from runherald.delivery import Delivery, OutcomeKind, delivery_id
from runherald.testing import WebhookReceiver

RUN = {
    "metadata": {"project": "vision", "uid": "u-1", "name": "train", "labels": {}},
    "spec": {"notifications": [{"kind": "slack", "name": "s", "secret_params": {"webhook": "REDACTED"}}]},
    "status": {"state": "running", "last_update": "2026-12-05T10:00:00+00:00"},
    "runherald": {"hops": 2},
}


def delivery(run: dict[str, Any] = RUN) -> Delivery:
    name = "subscription:all"
    return Delivery(
        id=delivery_id("vision", "u-1", name, "running"),
        project="vision",
        uid="u-1",
        name=name,
        state="running",
        kind="cloudevent",
        message="",
        severity="info",
        runs=[run],
        notification={"kind": "cloudevent", "name": name, "params": {}},
        created_at=1_700_000_000.0,
    )


async def send(settings: NotifierSettings, params: dict[str, Any], sent: Delivery) -> Any:
    notifier = CloudEventNotifier(settings)
    try:
        return await notifier.send(sent, params)
    finally:
        await notifier.close()


async def test_a_signed_cloud_event_of_the_run_verifies_with_the_reference_library(
    settings: NotifierSettings,
) -> None:
    secret = "whsec_c3Vic2NyaXB0aW9uLXNlY3JldA=="
    sent = delivery()
    async with WebhookReceiver() as receiver:
        outcome = await send(settings, {"url": receiver.url("/events"), "signing_secret": secret}, sent)
    assert outcome.kind is OutcomeKind.SENT
    request = receiver.requests[0]
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/cloudevents+json"
    assert request.headers["Idempotency-Key"] == sent.id == request.headers["webhook-id"]
    assert request.headers["X-Runherald-Hops"] == "3"
    event = standardwebhooks.Webhook(secret).verify(request.body, dict(request.headers))
    assert event == json.loads(request.body)
    assert {key: event[key] for key in event if key != "data"} == {
        "specversion": "1.0",
        "id": sent.id,
        "source": "runherald/vision",
        "type": "io.runherald.run.state",
        "subject": "vision/u-1",
        "time": "2026-12-05T10:00:00.000Z",
        "datacontenttype": "application/json",
    }
    assert event["data"] == RUN
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook("whsec_b3RoZXI=").verify(request.body, dict(request.headers))


async def test_unsigned_without_a_secret_and_time_from_the_delivery_without_last_update(
    settings: NotifierSettings,
) -> None:
    run = {**RUN, "status": {"state": "running"}}
    run.pop("runherald")
    async with WebhookReceiver() as receiver:
        outcome = await send(settings, {"url": receiver.url("/events")}, delivery(run))
    assert (outcome.kind, outcome.response_code) == (OutcomeKind.SENT, 200)
    request = receiver.requests[0]
    assert "webhook-signature" not in request.headers
    assert request.headers["X-Runherald-Hops"] == "1"
    assert json.loads(request.body)["time"] == "2023-11-14T22:13:20.000Z"


async def test_a_server_error_is_retryable_with_its_retry_after(settings: NotifierSettings) -> None:
    async with WebhookReceiver() as receiver:
        receiver.fail("/events", 503, retry_after="7")
        outcome = await send(settings, {"url": receiver.url("/events")}, delivery())
    assert outcome.kind is OutcomeKind.RETRYABLE and outcome.retry_after == 7.0
    assert outcome.response_code == 503


def test_an_internal_kind_the_registry_builds_but_no_run_may_name() -> None:
    assert isinstance(get_notifier("cloudevent"), CloudEventNotifier)
    assert "cloudevent" not in channels.KINDS
    with pytest.raises(channels.UnknownKind):
        channels.kind("cloudevent")
