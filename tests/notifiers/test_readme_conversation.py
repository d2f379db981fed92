"""The README's rendering of a failed run's Slack conversation is what the Slack channel really sends.

The conversation (running, then error) goes through SlackNotifier to the loopback Slack server; what
the channel then shows (the parent as it stands after chat.update, and its thread) must equal the JSON
between the README's markers. ``RUNHERALD_TEST_WRITE_README=1`` writes it there instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from runherald.notifiers import NotifierSettings, SlackNotifier

from runherald.delivery import Delivery, delivery_id
from runherald.egress import EgressPolicy
from runherald.testing import SlackServer

README = Path(__file__).parents[2] / "README.md"
BEGIN, END = "<!-- slack-conversation:begin -->\n```json\n", "```\n<!-- slack-conversation:end -->"


def _delivery(state: str, at: float, **status: Any) -> Delivery:
    run = {
        "metadata": {"name": "train-resnet", "uid": "7f3a9c21", "project": "ml"},
        "status": {"state": state, **status},
    }
    return Delivery(
        id=delivery_id("ml", "7f3a9c21", "team-ml", state),
        project="ml",
        uid="7f3a9c21",
        name="team-ml",
        state=state,
        kind="slack",
        message=f"Run {'started' if state == 'running' else 'failed'}",
        severity="info" if state == "running" else "error",
        runs=[run],
        notification={},
        created_at=at,
    )


async def render_failed_run_conversation() -> str:
    params = {"token": "xoxb-1", "channel": "#ml"}
    async with SlackServer(token="xoxb-1") as slack:
        notifier = SlackNotifier(
            NotifierSettings(
                egress=EgressPolicy(allow_loopback=True),
                slack_base_url=slack.api_url,
                ui_url="https://mlrun.example.com",
            )
        )
        thread = None
        for delivery in (_delivery("running", 1), _delivery("error", 2, error="CUDA out of memory")):
            delivery.thread = thread
            outcome = await notifier.send(delivery, params)
            thread = outcome.thread or thread
        await notifier.close()
    (parent,) = slack.parents()
    messages = [
        ("parent", {"channel": parent.channel, "ts": "PARENT_TS"}, slack.current[str(parent.ts)]["blocks"]),
        *(
            ("reply", {"thread_ts": "PARENT_TS", "reply_broadcast": reply.broadcast}, reply.blocks)
            for reply in slack.replies(str(parent.ts))
        ),
    ]
    # One block a line: JSON still, and short enough to read.
    return "[\n" + ",\n".join(_message(*message) for message in messages) + "\n]\n"


def _message(role: str, fields: dict[str, Any], blocks: list[dict[str, Any]]) -> str:
    head = json.dumps({"message": role, **fields})[:-1]
    rows = ",\n".join("    " + json.dumps(block) for block in blocks)
    return f'  {head}, "blocks": [\n{rows}\n  ]}}'


async def test_the_readme_shows_the_real_conversation_of_a_failed_run() -> None:
    rendered = await render_failed_run_conversation()
    text = README.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    if os.environ.get("RUNHERALD_TEST_WRITE_README"):
        README.write_text(text[:start] + rendered + text[end:], encoding="utf-8")
        text = README.read_text(encoding="utf-8")
    assert text[start : text.index(END)] == rendered
    parent, reply = json.loads(rendered)
    assert (parent["message"], reply["message"], reply["reply_broadcast"]) == ("parent", "reply", True)
    assert "CUDA out of memory" in json.dumps(parent["blocks"])
