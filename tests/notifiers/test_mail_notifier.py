"""Mail: MLRun's params and subject, multipart body, Message-ID, SMTP plain / STARTTLS / TLS / AUTH."""

from __future__ import annotations

from typing import Any

import pytest
from runherald.notifiers import MailNotifier, NotifierSettings
from runherald.notifiers.mail import MailParamsError, mail_params, mail_subject

from runherald.delivery import OutcomeKind
from runherald.testing import SmtpServer

RUN = {
    "metadata": {"name": "train", "uid": "abcdef123456", "project": "p1"},
    "status": {"state": "completed", "results": {"acc": 0.9}},
}


def smtp_params(server: SmtpServer, **extra: Any) -> dict[str, Any]:
    return {
        "server_host": server.host,
        "server_port": server.port,
        "sender_address": "runherald@example.com",
        "email_addresses": "a@example.com,b@example.com",
        "use_tls": False,
        "start_tls": False,
        "validate_certs": True,
        **extra,
    }


def test_subject_equals_mlrun(reference: dict) -> None:
    for case in reference["mail"]["subjects"]:
        assert mail_subject(f"[{case['severity']}] {case['message']}") == case["subject"], case["id"]


def test_defaults_equal_mlrun_enrichment(reference: dict) -> None:
    case = next(c for c in reference["mail"]["params"] if c["id"] == "list-addresses-defaults")
    enriched = mail_params(case["params"])
    for key, value in case["enriched"].items():
        assert enriched[key] == value, key
    assert enriched["username"] is None and enriched["password"] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sender_address": "a@b.com", "email_addresses": "c@d.com"}, "Parameter 'server_host' is required"),
        ({"server_host": "h", "sender_address": "a@b.com"}, "Parameter 'email_addresses' is required"),
        (
            {"server_host": "h", "sender_address": "a@b.com", "email_addresses": "c@d.com", "use_tls": "yes"},
            "Parameter 'use_tls' must be a boolean for MailNotification",
        ),
        (
            {"server_host": "h", "sender_address": "a@b.com", "email_addresses": "c@d.com", "password": "p"},
            "Parameter 'username' is required when 'password' is provided for MailNotification",
        ),
        (
            {"server_host": "h", "sender_address": "nope", "email_addresses": "c@d.com"},
            "Invalid email address 'nope'",
        ),
        (
            {"server_host": "h", "sender_address": "a@b.com", "email_addresses": 5},
            "must be a string or a list",
        ),
    ],
)
def test_validation_messages(params: dict, message: str) -> None:
    with pytest.raises(MailParamsError, match=message):
        mail_params(params)


async def test_plain_smtp_multipart_message(delivery_for: Any) -> None:
    async with SmtpServer("plain") as server:
        delivery = delivery_for("mail", message="Run completed in project p1: <done>", runs=[RUN], name="n1")
        outcome = await MailNotifier(NotifierSettings()).send(delivery, smtp_params(server))
    assert (outcome.kind, outcome.response_code) == (OutcomeKind.SENT, 250)  # the reply to DATA
    (mail,) = server.messages
    assert mail.rcpt_tos == ["a@example.com", "b@example.com"]
    assert mail.tls is False
    message = mail.message
    assert message["Subject"] == "[info] Run completed in project p1: <done>"
    assert message["Message-ID"] == f"<{delivery.id}.runherald@example.com>"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert text.startswith("[info] n1: Run completed in project p1: <done>")
    assert "acc=0.9" in text and "..123456" in text
    assert "&lt;done&gt;" in html and "<done>" not in html
    assert "<h2>Run Results</h2>" in html


async def test_starttls_with_auth(delivery_for: Any) -> None:
    async with SmtpServer("starttls", auth={"bot": "pw-123"}) as server:
        notifier = MailNotifier(NotifierSettings(), tls_context=server.client_context())
        params = smtp_params(server, start_tls=True, username="bot", password="pw-123")
        outcome = await notifier.send(delivery_for("mail"), params)
        wrong = await notifier.send(delivery_for("mail"), {**params, "password": "wrong-pass"})
    assert outcome.kind is OutcomeKind.SENT
    (mail,) = server.messages
    assert mail.tls is True
    assert mail.login == "bot"
    assert (wrong.kind, wrong.response_code) == (OutcomeKind.PERMANENT, 535)
    assert "authentication failed" in wrong.reason
    assert "wrong-pass" not in wrong.reason


async def test_implicit_tls(delivery_for: Any) -> None:
    async with SmtpServer("tls") as server:
        notifier = MailNotifier(NotifierSettings(), tls_context=server.client_context())
        outcome = await notifier.send(delivery_for("mail"), smtp_params(server, use_tls=True))
    assert outcome.kind is OutcomeKind.SENT
    assert [m.tls for m in server.messages] == [True]


async def test_untrusted_certificate_is_permanent(delivery_for: Any) -> None:
    async with SmtpServer("tls") as server:
        outcome = await MailNotifier(NotifierSettings()).send(
            delivery_for("mail"), smtp_params(server, use_tls=True)
        )
    assert outcome.kind is OutcomeKind.PERMANENT
    assert server.messages == []


async def test_no_auth_server_and_missing_server_is_retryable(delivery_for: Any) -> None:
    async with SmtpServer("plain") as server:
        params = smtp_params(server, username="", password="")
    outcome = await MailNotifier(NotifierSettings(timeout=2)).send(delivery_for("mail"), params)
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert "SMTP connection error" in outcome.reason and outcome.response_code is None  # no reply
    assert outcome.unreachable  # counts towards the server's circuit breaker


async def test_an_answering_server_is_not_unreachable_and_the_endpoint_is_the_server(
    delivery_for: Any,
) -> None:
    async with SmtpServer("plain") as server:
        notifier = MailNotifier(NotifierSettings())
        delivery = delivery_for("mail")
        outcome = await notifier.send(delivery, smtp_params(server))
        assert notifier.endpoint(delivery, smtp_params(server)) == f"smtp://{server.host}:{server.port}"
    assert outcome.kind is OutcomeKind.SENT and not outcome.unreachable
    assert notifier.endpoint(delivery, {"server_host": "h"}) is None


async def test_invalid_params_are_permanent(delivery_for: Any) -> None:
    outcome = await MailNotifier(NotifierSettings()).send(delivery_for("mail"), {"server_host": "h"})
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.reason == "Parameter 'email_addresses' is required for MailNotification"
