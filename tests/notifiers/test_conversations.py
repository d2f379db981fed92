"""One conversation per run: Slack parent updated in place and threaded, mail threaded, against the
loopback Slack and SMTP servers. The dispatcher's part (reading the conversation from the ledger before
a send, recording what the outcome carries) is played here by `converse`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from runherald.notifiers import MailNotifier, NotifierSettings, SlackNotifier
from runherald.notifiers.slack import render_slack_blocks
from test_mail_notifier import smtp_params  # tests/notifiers is no package: pytest puts it on sys.path

from runherald.delivery import Delivery, DeliveryOutcome, OutcomeKind, delivery_id
from runherald.templating import TemplateRenderer
from runherald.testing import SlackServer, SmtpServer

Builder = Callable[..., Delivery]  # conftest's make_delivery (the delivery_for fixture), and state_delivery


def run_in(state: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "train", "uid": "uid-1", "project": "p1"},
        "status": {"state": state, **status},
    }


@pytest.fixture
def state_delivery(delivery_for: Builder) -> Builder:
    """A slack or mail delivery of notification n1 for the run in `state`, created at `at`."""

    def build(kind: str, state: str, at: float, **status: Any) -> Delivery:
        delivery = delivery_for(kind, name="n1", state=state, runs=[run_in(state, **status)])
        delivery.created_at = at
        return delivery

    return build


STATES = [
    ("running", {}),
    ("completed", {"results": {"accuracy": 0.93}}),
]


async def converse(
    notifier: Any, deliveries: list[Delivery], params: dict[str, Any], thread: dict[str, Any] | None = None
) -> tuple[list[DeliveryOutcome], dict[str, Any] | None]:
    """Send each delivery as the dispatcher would: with the conversation recorded so far."""
    outcomes = []
    for delivery in deliveries:
        delivery.thread = thread
        outcome = await notifier.send(delivery, params)
        outcomes.append(outcome)
        thread = outcome.thread or thread
    return outcomes, thread


def blocks_of(delivery: Delivery) -> list[dict[str, Any]]:
    return render_slack_blocks(
        delivery.message, delivery.severity, delivery.runs, name=delivery.name, renderer=TemplateRenderer()
    )


BOT = {"token": "xoxb-1", "channel": "#runs"}


async def test_running_then_completed_is_one_parent_updated_and_one_reply(
    settings: NotifierSettings, state_delivery: Builder
) -> None:
    deliveries = [
        state_delivery("slack", state, at, **status) for at, (state, status) in enumerate(STATES, 1)
    ]
    async with SlackServer(token="xoxb-1") as slack:
        settings.slack_base_url = slack.api_url
        notifier = SlackNotifier(settings)
        outcomes, thread = await converse(notifier, deliveries, BOT)
        await notifier.close()
    assert [o.kind for o in outcomes] == [OutcomeKind.SENT] * 2
    (parent,) = slack.parents()
    assert parent.blocks == blocks_of(deliveries[0])  # the first post is MLRun's message
    assert thread is not None and (thread["channel"], thread["ts"]) == ("#runs", parent.ts)
    assert thread["state"] == "completed" and thread["latest"] == 2
    (update,) = slack.updates
    assert update.ts == parent.ts and update.payload["ts"] == parent.ts
    assert slack.current[str(parent.ts)]["blocks"] == blocks_of(deliveries[1])  # shows the current state
    (reply,) = slack.replies(str(parent.ts))
    assert reply.blocks == blocks_of(deliveries[1]) and not reply.broadcast
    assert "accuracy=0.93" in str(reply.blocks)


async def test_an_error_reply_is_broadcast(settings: NotifierSettings, state_delivery: Builder) -> None:
    deliveries = [
        state_delivery("slack", "running", 1),
        state_delivery("slack", "completed", 2),
        state_delivery("slack", "error", 3, error="OOMKilled"),
    ]
    async with SlackServer(token="xoxb-1") as slack:
        settings.slack_base_url = slack.api_url
        notifier = SlackNotifier(settings)
        await converse(notifier, deliveries, BOT)
        await notifier.close()
    (parent,) = slack.parents()
    replies = slack.replies(str(parent.ts))
    assert [r.metadata["event_payload"]["state"] for r in replies] == ["completed", "error"]  # type: ignore[index]
    assert [r.broadcast for r in replies] == [False, True]
    assert "*OOMKilled*" in str(slack.current[str(parent.ts)]["blocks"])


async def test_slack_mode_new_gives_mlruns_messages_exactly(
    settings: NotifierSettings, reference: dict[str, Any], delivery_for: Builder
) -> None:
    case = next(c for c in reference["slack"] if c["id"] == "five-runs-named-ui")
    settings.ui_url = case.get("ui_url")
    deliveries = []
    for at, state in enumerate(("running", "completed", "error"), 1):
        delivery = delivery_for(
            "slack", message=case["message"], severity=case["severity"], runs=case["runs"], name=case["name"]
        )
        delivery.id = delivery_id("p1", "uid-1", case["name"], state)
        delivery.state, delivery.created_at = state, float(at)
        deliveries.append(delivery)
    async with SlackServer(token="xoxb-1") as slack:
        settings.slack_base_url = slack.api_url
        notifier = SlackNotifier(settings)
        outcomes, thread = await converse(notifier, deliveries, {**BOT, "slack_mode": "new"})
        await notifier.close()
    assert thread is None and all(o.kind is OutcomeKind.SENT for o in outcomes)
    assert [m.blocks for m in slack.messages] == [case["payload"]["blocks"]] * 3
    assert not slack.updates
    assert not any({"thread_ts", "reply_broadcast", "ts"} & set(m.payload) for m in slack.messages)


@pytest.mark.parametrize(("mode", "updates", "replies"), [("update", 2, 0), ("thread", 0, 2)])
async def test_update_or_thread_alone(
    mode: str, updates: int, replies: int, settings: NotifierSettings, state_delivery: Builder
) -> None:
    deliveries = [state_delivery("slack", s, at) for at, s in enumerate(("running", "completed", "error"), 1)]
    async with SlackServer(token="xoxb-1") as slack:
        settings.slack_base_url = slack.api_url
        notifier = SlackNotifier(settings)
        await converse(notifier, deliveries, {**BOT, "slack_mode": mode})
        await notifier.close()
    (parent,) = slack.parents()
    assert len(slack.updates) == updates and len(slack.replies(str(parent.ts))) == replies


async def test_webhooks_keep_posting_new_messages(
    settings: NotifierSettings, state_delivery: Builder
) -> None:
    deliveries = [state_delivery("slack", s, at) for at, s in enumerate(("running", "completed"), 1)]
    async with SlackServer() as slack:
        notifier = SlackNotifier(settings)
        outcomes, thread = await converse(notifier, deliveries, {"webhook": slack.webhook_url})
        await notifier.close()
    assert thread is None and [o.kind for o in outcomes] == [OutcomeKind.SENT] * 2
    assert [m.via for m in slack.messages] == ["webhook", "webhook"] and not slack.updates


async def test_a_deleted_parent_is_posted_anew_and_the_new_one_returned(
    settings: NotifierSettings, state_delivery: Builder
) -> None:
    async with SlackServer(token="xoxb-1") as slack:
        settings.slack_base_url = slack.api_url
        notifier = SlackNotifier(settings)
        _, first = await converse(notifier, [state_delivery("slack", "running", 1)], BOT)
        assert first is not None
        slack.delete(first["ts"])
        outcomes, second = await converse(notifier, [state_delivery("slack", "completed", 2)], BOT, first)
        await notifier.close()
    assert outcomes[0].kind is OutcomeKind.SENT
    assert second is not None and second["ts"] != first["ts"]
    assert [p.ts for p in slack.parents()] == [first["ts"], second["ts"]]
    assert not slack.updates and not slack.replies(first["ts"])


async def test_a_ratelimited_update_is_retryable_with_retry_after(
    settings: NotifierSettings, state_delivery: Builder
) -> None:
    async with SlackServer(token="xoxb-1") as slack:
        settings.slack_base_url = slack.api_url
        notifier = SlackNotifier(settings)
        _, thread = await converse(notifier, [state_delivery("slack", "running", 1)], BOT)
        slack.rate_limit(1, retry_after=7)
        completed = state_delivery("slack", "completed", 2)
        (refused,), after_refusal = await converse(notifier, [completed], BOT, thread)
        (retried,), _ = await converse(notifier, [completed], BOT, after_refusal)
        await notifier.close()
    assert refused.kind is OutcomeKind.RETRYABLE and refused.retry_after == 7
    assert after_refusal == thread  # nothing changed
    assert retried.kind is OutcomeKind.SENT
    assert thread is not None and [u.ts for u in slack.updates] == [thread["ts"]]
    assert len(slack.replies(thread["ts"])) == 1


async def test_an_older_state_retried_late_replies_but_leaves_the_parent(
    settings: NotifierSettings, state_delivery: Builder
) -> None:
    running, completed = state_delivery("slack", "running", 1), state_delivery("slack", "completed", 2)
    async with SlackServer(token="xoxb-1") as slack:
        settings.slack_base_url = slack.api_url
        notifier = SlackNotifier(settings)
        _, thread = await converse(notifier, [completed, running], BOT)
        await notifier.close()
    assert thread is not None and thread["state"] == "completed"
    assert not slack.updates and len(slack.replies(thread["ts"])) == 1
    assert slack.current[thread["ts"]]["blocks"] == blocks_of(completed)


async def test_an_unknown_slack_mode_is_permanent(
    settings: NotifierSettings, state_delivery: Builder
) -> None:
    notifier = SlackNotifier(settings)
    outcome = await notifier.send(state_delivery("slack", "running", 1), {**BOT, "slack_mode": "edit"})
    assert outcome.kind is OutcomeKind.PERMANENT and "slack_mode" in outcome.reason


async def test_mails_of_one_run_thread_in_order(state_delivery: Builder) -> None:
    deliveries = [
        state_delivery("mail", state, at) for at, state in enumerate(("running", "completed", "error"), 1)
    ]
    async with SmtpServer("plain") as server:
        outcomes, thread = await converse(
            MailNotifier(NotifierSettings()), deliveries, smtp_params(server, email_addresses="a@example.com")
        )
    assert [o.kind for o in outcomes] == [OutcomeKind.SENT] * 3
    first, *later = [mail.message for mail in server.messages]
    root = f"<{deliveries[0].id}.runherald@example.com>"
    assert first["Message-ID"] == root and first["In-Reply-To"] is None
    assert thread == {
        "kind": "mail",
        "message_id": root,
        "subject": first["Subject"],
        "latest": 1.0,
        "state": "running",
    }
    assert [m["Message-ID"] for m in later] == [f"<{d.id}.runherald@example.com>" for d in deliveries[1:]]
    assert [(m["In-Reply-To"], m["References"]) for m in later] == [(root, root)] * 2
    assert [m["Subject"] for m in later] == [f"Re: {first['Subject']}"] * 2
