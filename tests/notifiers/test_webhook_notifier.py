"""Webhook: MLRun's bodies, idempotency key, signing, body templates, sandbox, outcome classification."""

from __future__ import annotations

import asyncio
import json
import time
from email.utils import formatdate
from typing import Any

import pytest
import standardwebhooks
from runherald.notifiers import NotifierSettings, WebhookNotifier

from runherald.delivery import OutcomeKind
from runherald.egress import EgressPolicy
from runherald.signing import WebhookVerificationError, receiver_secret, verify
from runherald.testing import Reply, WebhookReceiver


async def send(settings: NotifierSettings, delivery: Any, params: dict[str, Any]) -> Any:
    notifier = WebhookNotifier(settings)
    try:
        return await notifier.send(delivery, params)
    finally:
        await notifier.close()


async def test_body_and_method_equal_mlrun(
    webhook_case: dict, settings: NotifierSettings, delivery_for: Any
) -> None:
    async with WebhookReceiver() as receiver:
        params = {**webhook_case["params"], "url": receiver.url("/hook")}
        delivery = delivery_for(
            "webhook",
            message=webhook_case["message"],
            severity=webhook_case["severity"],
            runs=webhook_case["runs"],
        )
        outcome = await send(settings, delivery, params)
    assert outcome.kind is OutcomeKind.SENT
    (request,) = receiver.requests
    assert request.text == webhook_case["body"]
    assert request.method == webhook_case["method"]
    for key, value in webhook_case["headers"].items():
        assert request.headers[key] == value
    assert request.headers["Content-Type"] == "application/json"


async def test_override_body_is_not_changed_in_place(settings: NotifierSettings, delivery_for: Any) -> None:
    override = {"message": "runs: {{ runs }}"}
    async with WebhookReceiver() as receiver:
        await send(settings, delivery_for("webhook"), {"url": receiver.url(), "override_body": override})
    assert override == {"message": "runs: {{ runs }}"}
    assert receiver.requests[0].json() == {"message": "runs: []"}


async def test_idempotency_key_is_the_delivery_id(settings: NotifierSettings, delivery_for: Any) -> None:
    async with WebhookReceiver() as receiver:
        delivery = delivery_for("webhook")
        await send(settings, delivery, {"url": receiver.url(), "headers": {"Idempotency-Key": "user"}})
    assert receiver.requests[0].headers.getall("Idempotency-Key") == [delivery.id]


@pytest.mark.parametrize("secret", ["whsec_c2VjcmV0LWJ5dGVzLWZvci10ZXN0aW5n", "plain-secret"])
async def test_signature_verifies_with_the_same_secret(
    secret: str, settings: NotifierSettings, delivery_for: Any
) -> None:
    async with WebhookReceiver() as receiver:
        delivery = delivery_for("webhook")
        await send(settings, delivery, {"url": receiver.url(), "signing_secret": secret})
    request = receiver.requests[0]
    headers = dict(request.headers)
    assert headers["webhook-id"] == delivery.id
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    verify(secret, headers, request.body)
    with pytest.raises(WebhookVerificationError):
        verify("whsec_b3RoZXI=", headers, request.body)
    with pytest.raises(WebhookVerificationError):
        verify(secret, headers, request.body + b" ")
    with pytest.raises(WebhookVerificationError):
        verify(secret, headers, request.body, now=time.time() + 3600)


# Every form of signing secret runherald accepts, with each way a receiver may configure the reference
# library (standardwebhooks) for it: (the secret as given, [what the receiver passes to Webhook()]).
SECRET_FORMS = [
    ("whsec_c2VjcmV0LWJ5dGVzLWZvci10ZXN0aW5n", ["whsec_c2VjcmV0LWJ5dGVzLWZvci10ZXN0aW5n"]),
    (
        "whsec_c2VjcmV0LWJ5dGVzLWZvci10ZXN0aW5nIQ",  # unpadded base64
        ["whsec_c2VjcmV0LWJ5dGVzLWZvci10ZXN0aW5nIQ", "whsec_c2VjcmV0LWJ5dGVzLWZvci10ZXN0aW5nIQ=="],
    ),
    ("plain-secret", ["whsec_cGxhaW4tc2VjcmV0", b"plain-secret"]),
    # Looks like base64, but without the prefix it is the text's bytes all the same.
    ("c2VjcmV0", ["whsec_YzJWamNtVjA=", b"c2VjcmV0"]),
    (
        "pässwort mit leerzeichen",
        [receiver_secret("pässwort mit leerzeichen"), "pässwort mit leerzeichen".encode()],
    ),
]


@pytest.mark.parametrize(("secret", "receiver_forms"), SECRET_FORMS)
async def test_signature_verifies_with_the_reference_library(
    secret: str, receiver_forms: list[str | bytes], settings: NotifierSettings, delivery_for: Any
) -> None:
    async with WebhookReceiver() as receiver:
        outcome = await send(
            settings, delivery_for("webhook"), {"url": receiver.url(), "signing_secret": secret}
        )
    assert outcome.kind is OutcomeKind.SENT
    request = receiver.requests[0]
    headers = dict(request.headers)
    assert receiver_secret(secret) in [form for form in receiver_forms if isinstance(form, str)]
    for form in receiver_forms:
        assert standardwebhooks.Webhook(form).verify(request.body, headers) == json.loads(request.body)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook("whsec_b3RoZXI=").verify(request.body, headers)


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not*base64", ""])
async def test_unusable_signing_secret_is_permanent(
    secret: str, settings: NotifierSettings, delivery_for: Any
) -> None:
    async with WebhookReceiver() as receiver:
        outcome = await send(
            settings, delivery_for("webhook"), {"url": receiver.url(), "signing_secret": secret}
        )
    if secret:
        assert outcome.kind is OutcomeKind.PERMANENT and "signing secret" in outcome.reason
        assert not receiver.requests
    else:  # an empty secret means no signature, as before
        assert "webhook-signature" not in receiver.requests[0].headers


async def test_body_template_renders_message_and_runs_as_json(
    settings: NotifierSettings, delivery_for: Any
) -> None:
    run = {"metadata": {"name": "r1", "uid": "u1", "project": "p1"}, "status": {"state": "completed"}}
    template = (
        '{"text": {{ message | json }}, "sev": "{{ severity }}", '
        '"runs": {{ runs_json }}, "first": "{{ run.metadata.name }}"}'
    )
    async with WebhookReceiver() as receiver:
        delivery = delivery_for("webhook", message='say "hi"', runs=[run])
        outcome = await send(settings, delivery, {"url": receiver.url(), "body_template": template})
    assert outcome.kind is OutcomeKind.SENT
    assert receiver.requests[0].json() == {"text": 'say "hi"', "sev": "info", "runs": [run], "first": "r1"}


async def test_body_template_sandbox_blocks_dunder_access(
    settings: NotifierSettings, delivery_for: Any
) -> None:
    async with WebhookReceiver() as receiver:
        params = {"url": receiver.url(), "body_template": "{{ ''.__class__.__mro__ }}"}
        outcome = await send(settings, delivery_for("webhook"), params)
    assert outcome.kind is OutcomeKind.PERMANENT
    assert "unsafe" in outcome.reason
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("reply", "kind", "retry_after"),
    [
        (Reply(status=500), OutcomeKind.RETRYABLE, None),
        (Reply(status=503, headers={"Retry-After": "120"}), OutcomeKind.RETRYABLE, 120.0),
        (Reply(status=429, headers={"Retry-After": "5"}), OutcomeKind.RETRYABLE, 5.0),
        (Reply(status=408), OutcomeKind.RETRYABLE, None),
        (Reply(status=400, body="bad request body"), OutcomeKind.PERMANENT, None),
        (Reply(status=404), OutcomeKind.PERMANENT, None),
        (Reply(status=508, body='{"error": "loop detected"}'), OutcomeKind.PERMANENT, None),  # no retry
        (Reply(status=204, body=b""), OutcomeKind.SENT, None),
    ],
)
async def test_status_classification(
    reply: Reply, kind: OutcomeKind, retry_after: float | None, settings: NotifierSettings, delivery_for: Any
) -> None:
    async with WebhookReceiver() as receiver:
        receiver.reply("/hook", reply)
        outcome = await send(settings, delivery_for("webhook"), {"url": receiver.url("/hook")})
    assert outcome.kind is kind
    assert outcome.retry_after == retry_after
    assert outcome.response_code == reply.status  # the attempt log records it
    if kind is not OutcomeKind.SENT:
        assert outcome.reason.startswith(f"HTTP {reply.status}")


async def test_429_with_http_date_retry_after(settings: NotifierSettings, delivery_for: Any) -> None:
    async with WebhookReceiver() as receiver:
        receiver.reply(
            "/hook", Reply(status=429, headers={"Retry-After": formatdate(time.time() + 30, usegmt=True)})
        )
        outcome = await send(settings, delivery_for("webhook"), {"url": receiver.url("/hook")})
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert outcome.retry_after is not None and 25 <= outcome.retry_after <= 31


async def test_each_request_carries_the_runs_hops_plus_one(
    settings: NotifierSettings, delivery_for: Any
) -> None:
    fresh = {"metadata": {"project": "p1", "uid": "uid-1"}, "status": {"state": "completed"}}
    returned = {**fresh, "runherald": {"hops": 2, "adapter": "mlrun-webhook"}}
    async with WebhookReceiver() as receiver:
        await send(settings, delivery_for("webhook", runs=[fresh]), {"url": receiver.url()})
        await send(settings, delivery_for("webhook", runs=[returned]), {"url": receiver.url()})
        await send(
            settings, delivery_for("webhook"), {"url": receiver.url(), "headers": {"x-runherald-hops": "0"}}
        )
    assert [r.headers.getall("X-Runherald-Hops") for r in receiver.requests] == [["1"], ["3"], ["1"]]


async def test_scripted_replies_then_success(settings: NotifierSettings, delivery_for: Any) -> None:
    async with WebhookReceiver() as receiver:
        receiver.script("/hook", Reply(status=500), Reply(status=429, headers={"Retry-After": "1"}))
        notifier = WebhookNotifier(settings)
        delivery = delivery_for("webhook")
        kinds = [(await notifier.send(delivery, {"url": receiver.url("/hook")})).kind for _ in range(3)]
        await notifier.close()
    assert kinds == [OutcomeKind.RETRYABLE, OutcomeKind.RETRYABLE, OutcomeKind.SENT]
    assert len({r.headers["Idempotency-Key"] for r in receiver.requests}) == 1


async def test_timeout_is_retryable(settings: NotifierSettings, delivery_for: Any) -> None:
    async with WebhookReceiver() as receiver:
        receiver.hang("/slow")
        started = time.monotonic()
        outcome = await send(
            settings, delivery_for("webhook"), {"url": receiver.url("/slow"), "timeout": 0.3}
        )
        elapsed = time.monotonic() - started
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert outcome.reason == "timed out after 0.3s"
    assert elapsed < 2


async def test_connection_refused_is_retryable(settings: NotifierSettings, delivery_for: Any) -> None:
    async with WebhookReceiver() as receiver:
        url = receiver.url("/hook")
    outcome = await send(settings, delivery_for("webhook"), {"url": url})
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert "cannot connect to 127.0.0.1" in outcome.reason


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({}, "Parameter 'url' is required for WebhookNotification"),
        ({"url": None}, "Parameter 'url' is required for WebhookNotification"),
        ({"url": "ftp://x"}, "Parameter 'url' must be an http or https URL for WebhookNotification"),
        ({"url": "http://x", "method": "fetch"}, "must be one of"),
    ],
)
async def test_invalid_params_are_permanent(
    params: dict, reason: str, settings: NotifierSettings, delivery_for: Any
) -> None:
    outcome = await send(settings, delivery_for("webhook"), params)
    assert outcome.kind is OutcomeKind.PERMANENT
    assert reason in outcome.reason


async def test_reason_never_contains_secret_values(settings: NotifierSettings, delivery_for: Any) -> None:
    async with WebhookReceiver() as receiver:
        receiver.reply("/hook", Reply(status=400, body="echo: token=sekrit-value-123"))
        secret_params = {"headers": {"X-Token": "sekrit-value-123"}}
        delivery = delivery_for("webhook", secret_params=secret_params)
        outcome = await send(settings, delivery, {**secret_params, "url": receiver.url("/hook")})
    assert receiver.requests[0].headers["X-Token"] == "sekrit-value-123"
    assert outcome.kind is OutcomeKind.PERMANENT
    assert "sekrit-value-123" not in outcome.reason
    assert "REDACTED" in outcome.reason


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.10.1/hook",
        "http://[fe80::1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
    ],
)
async def test_egress_refusals_are_permanent(url: str, delivery_for: Any) -> None:
    settings = NotifierSettings(timeout=1.0)
    outcome = await send(settings, delivery_for("webhook"), {"url": url})
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.reason.startswith("egress refused")


async def test_loopback_needs_allow_loopback(delivery_for: Any) -> None:
    async with WebhookReceiver() as receiver:
        refused = await send(NotifierSettings(), delivery_for("webhook"), {"url": receiver.url()})
        allowed = await send(
            NotifierSettings(egress=EgressPolicy(allow_loopback=True)),
            delivery_for("webhook"),
            {"url": receiver.url()},
        )
    assert refused.kind is OutcomeKind.PERMANENT
    assert "loopback" in refused.reason
    assert allowed.kind is OutcomeKind.SENT
    assert len(receiver.requests) == 1


async def test_localhost_name_is_checked_after_resolution(delivery_for: Any) -> None:
    async with WebhookReceiver() as receiver:
        url = f"http://localhost:{receiver.port}/hook"
        outcome = await send(NotifierSettings(), delivery_for("webhook"), {"url": url})
    assert outcome.kind is OutcomeKind.PERMANENT
    assert "resolves only to refused addresses" in outcome.reason
    assert receiver.requests == []


async def test_redirect_to_refused_address_is_not_followed(
    settings: NotifierSettings, delivery_for: Any
) -> None:
    async with WebhookReceiver() as receiver:
        receiver.reply("/hook", Reply(status=307, headers={"Location": "http://169.254.169.254/latest/"}))
        outcome = await send(settings, delivery_for("webhook"), {"url": receiver.url("/hook")})
    assert outcome.kind is OutcomeKind.PERMANENT
    assert "metadata" in outcome.reason
    assert [r.path for r in receiver.requests] == ["/hook"]


async def test_redirect_to_allowed_address_is_followed(settings: NotifierSettings, delivery_for: Any) -> None:
    async with WebhookReceiver() as receiver:
        receiver.reply("/old", Reply(status=308, headers={"Location": receiver.url("/new")}))
        outcome = await send(settings, delivery_for("webhook"), {"url": receiver.url("/old")})
    assert outcome.kind is OutcomeKind.SENT
    assert [r.path for r in receiver.requests] == ["/old", "/new"]
    assert json.loads(receiver.requests[1].body)["message"] == "test-message"


async def test_receiver_records_arrival_order(settings: NotifierSettings, delivery_for: Any) -> None:
    async with WebhookReceiver() as receiver:
        notifier = WebhookNotifier(settings)
        await asyncio.gather(
            *(notifier.send(delivery_for("webhook"), {"url": receiver.url(f"/p{i}")}) for i in range(3))
        )
        await notifier.close()
        await receiver.wait_for_requests(3)
    assert sorted(r.path for r in receiver.requests) == ["/p0", "/p1", "/p2"]
    assert all(r.arrived_monotonic > 0 for r in receiver.requests)


def test_breaker_endpoint_is_the_url_without_credentials_or_query(delivery_for: Any) -> None:
    notifier = WebhookNotifier(NotifierSettings())
    delivery = delivery_for("webhook")
    assert notifier.endpoint(delivery, {"url": "https://u:pw@hooks.example.com/a/b?token=x"}) == (
        "https://hooks.example.com:443/a/b"
    )
    assert notifier.endpoint(delivery, {}) is None
