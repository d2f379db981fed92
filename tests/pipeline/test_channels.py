"""Slack, mail and egress rules driven through the pipeline on the embedded broker."""

from __future__ import annotations

from runherald.publish import Publisher
from runherald.testing.slack import SlackServer
from runherald.testing.smtp import SmtpServer
from runherald.testing.webhook import WebhookReceiver

from .harness import publish_foreign, run_dict, unique, wait_for, webhook


def _status(worker, project: str, uid: str, name: str) -> dict:
    code, body = worker.get(f"/api/v1/runs/{project}/{uid}/notifications")
    return body.get(name, {}) if code == 200 else {}


def _notification(kind: str, name: str, params: dict, **extra) -> dict:
    return {
        "kind": kind,
        "name": name,
        "message": "nightly",
        "severity": "warning",
        "when": ["completed", "error"],
        "params": params,
        **extra,
    }


async def test_slack_webhook_and_bot_modes_with_a_429(start_worker) -> None:
    async with SlackServer() as slack:
        worker = start_worker(RUNHERALD_SLACK_BASE_URL=slack.api_url)
        slack.rate_limit(count=1, retry_after=2)
        project, uid = unique("p"), unique("u")
        notifications = [
            _notification("slack", "incoming", {"webhook": slack.webhook_url}),
            _notification("slack", "bot", {"channel": "#ml"}, secret_params={"token": slack.token}),
        ]
        async with Publisher(worker.settings) as publisher:
            await publisher.publish(run_dict(project, uid, "completed", notifications, results={"acc": 0.9}))
            for name in ("incoming", "bot"):
                await wait_for(
                    lambda name=name: _status(worker, project, uid, name).get("status") == "sent", timeout=30
                )
        assert {m.via for m in slack.messages} == {"webhook", "api"}
        header = f"[warning] Run completed in project {project}: nightly"
        for message in slack.messages:
            assert message.blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": header}}
            assert {"type": "mrkdwn", "text": "acc=0.9"} in message.blocks[-1]["fields"]
        bot = next(m for m in slack.messages if m.via == "api")
        assert bot.channel == "#ml"
        assert bot.metadata and bot.metadata["event_payload"]["delivery_id"]
        attempts = {name: _status(worker, project, uid, name)["attempts"] for name in ("incoming", "bot")}
        assert sorted(attempts.values()) == [1, 2]  # exactly one of them met the 429 and waited


async def test_slack_without_webhook_is_an_error_not_a_silent_send(start_worker) -> None:
    worker = start_worker()
    project, uid = unique("p"), unique("u")
    # runherald's publishers refuse it at the door; another producer's run gets this far.
    await publish_foreign(
        worker.settings, run_dict(project, uid, "completed", [_notification("slack", "s", {})])
    )
    final = await wait_for(
        lambda: (
            _status(worker, project, uid, "s").get("status") == "error" and _status(worker, project, uid, "s")
        )
    )
    assert "webhook" in final["reason"]


async def test_mail_through_the_pipeline(start_worker) -> None:
    async with SmtpServer("plain") as smtp:
        worker = start_worker()
        project, uid = unique("p"), unique("u")
        params = {
            "server_host": smtp.host,
            "server_port": smtp.port,
            "sender_address": "herald@example.com",
            "email_addresses": ["a@example.com", "b@example.com"],
            "use_tls": False,
            "start_tls": False,
            "validate_certs": False,
        }
        async with Publisher(worker.settings) as publisher:
            await publisher.publish(run_dict(project, uid, "error", [_notification("mail", "m", params)]))
            await wait_for(lambda: _status(worker, project, uid, "m").get("status") == "sent", timeout=30)
        mail = smtp.messages[0]
        assert mail.message["Subject"] == f"[warning] Run failed in project {project}: nightly"
        assert sorted(mail.rcpt_tos) == ["a@example.com", "b@example.com"]
        assert mail.message["Message-ID"]
        assert mail.message.is_multipart()


async def test_egress_policy_applies_in_the_pipeline(start_worker, receiver: WebhookReceiver) -> None:
    strict = start_worker(RUNHERALD_ALLOW_LOOPBACK_EGRESS="false")
    project, uid = unique("p"), unique("u")
    async with Publisher(strict.settings) as publisher:
        await publisher.publish(
            run_dict(
                project,
                uid,
                "completed",
                [
                    webhook("loop", receiver.url("/x")),
                    webhook("meta", "http://169.254.169.254/latest/meta-data"),
                ],
            )
        )
        for name in ("loop", "meta"):
            final = await wait_for(
                lambda name=name: (
                    _status(strict, project, uid, name).get("status") == "error"
                    and _status(strict, project, uid, name)
                )
            )
            assert final["reason"].startswith("egress refused") and final["attempts"] == 1
    assert receiver.requests == []
