"""Slack through the Web API as one conversation per run and notification (runherald.conversation).

The first state posts the parent message (MLRun's blocks, exactly as ``slack_mode: new`` posts every
state). Each later state, by ``slack_mode``:

- ``update``: ``chat.update`` the parent, so it shows the run's current state, results and link;
- ``thread``: reply in the parent's thread (``thread_ts``) with that state's message; an ``error``
  reply is broadcast to the channel too (``reply_broadcast``), so a failure is not hidden in a thread;
- ``update+thread`` (the default): both.

A parent deleted meanwhile (``message_not_found``) is posted anew, and the new one is recorded. An older
state that comes late (a retry) never overwrites a newer one in the parent: it only replies.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from runherald.notifiers._http import classify_status
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from runherald import conversation
from runherald.delivery import Delivery, DeliveryOutcome

RETRYABLE_API_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
GONE_ERRORS = frozenset({"message_not_found", "thread_not_found"})  # the parent was deleted


def api_error(exc: SlackApiError) -> str:
    """The ``error`` of a Web API answer (``ratelimited``, ``message_not_found``, …)."""
    data = getattr(exc.response, "data", None)
    return str(data.get("error", "")) if isinstance(data, dict) else ""


def classify_api_error(exc: SlackApiError) -> DeliveryOutcome:
    """429, 5xx, timeouts and Slack's transient errors are retryable (with Retry-After); others not."""
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    error = api_error(exc)
    headers = dict(getattr(response, "headers", None) or {})
    if status == 429 or status >= 500 or status == 408 or error in RETRYABLE_API_ERRORS:
        base = classify_status(status if status >= 400 else 503, headers, what="Slack")
        return DeliveryOutcome.retryable(
            f"Slack API error: {error or status}", base.retry_after, response_code=status or None
        )
    return DeliveryOutcome.permanent(f"Slack API error: {error or status}", response_code=status or None)


class SlackConversation:
    """One send of a delivery through the Web API, starting or continuing its conversation."""

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        blocks: list[dict[str, Any]],
        metadata: dict[str, Any],
        delivery: Delivery,
    ) -> None:
        self.client = client
        self.channel = channel
        self.blocks = blocks
        self.text = str(blocks[0]["text"]["text"])
        self.metadata = metadata
        self.delivery = delivery
        self.code: int | None = None

    async def send(self, mode: str) -> DeliveryOutcome:
        """Post, update and reply as `mode` says; the outcome carries the conversation as it now stands
        (none for ``new``, which keeps no conversation)."""
        thread = self.delivery.thread
        if thread is not None and (thread.get("kind") != "slack" or thread.get("to") != self.channel):
            thread = None  # started elsewhere (the notification's channel changed): start anew
        changed: conversation.Thread | None = None
        try:
            if mode == "new":
                await self._post()
                return DeliveryOutcome.sent(response_code=self.code)
            if thread is None:
                return await self._new_parent()
            if conversation.is_newer(thread, self.delivery.created_at) and "update" in mode:
                try:
                    await self._call("chat_update", channel=thread["channel"], ts=thread["ts"])
                except SlackApiError as exc:
                    if api_error(exc) not in GONE_ERRORS:
                        raise
                    return await self._new_parent()
                changed = {**thread, "latest": self.delivery.created_at, "state": self.delivery.state}
            if "thread" in mode:
                await self._post(thread_ts=thread["ts"], reply_broadcast=self.delivery.state == "error")
        except SlackApiError as exc:
            return dataclasses.replace(classify_api_error(exc), thread=changed)
        return DeliveryOutcome.sent(response_code=self.code, thread=changed)

    async def _new_parent(self) -> DeliveryOutcome:
        response = await self._post()
        thread = {
            "kind": "slack",
            "to": self.channel,
            "channel": str(response.get("channel") or self.channel),
            "ts": str(response["ts"]),
            "latest": self.delivery.created_at,
            "state": self.delivery.state,
        }
        return DeliveryOutcome.sent(response_code=self.code, thread=thread)

    async def _post(self, **thread: Any) -> Any:
        return await self._call("chat_postMessage", channel=self.channel, **thread)

    async def _call(self, method: str, **args: Any) -> Any:
        response = await getattr(self.client, method)(
            blocks=self.blocks, text=self.text, metadata=self.metadata, **args
        )
        self.code = int(response.status_code or 0) or None
        return response


__all__ = ["GONE_ERRORS", "RETRYABLE_API_ERRORS", "SlackConversation", "api_error", "classify_api_error"]
