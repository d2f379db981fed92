"""SlackServer: a loopback server speaking Slack's incoming-webhook, chat.postMessage and chat.update
protocol: threads (``thread_ts``, ``reply_broadcast``), and ``message_not_found`` for deleted messages."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from runherald.testing._server import LoopbackServer, RecordedRequest

WEBHOOK_PATH = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"


@dataclass(slots=True)
class SlackMessage:
    """One message Slack accepted: how it came (``webhook`` or ``api``), its payload and request."""

    via: str
    payload: dict[str, Any]
    request: RecordedRequest
    channel: str | None = None
    ts: str | None = None

    @property
    def blocks(self) -> list[dict[str, Any]]:
        """The message's Block Kit blocks."""
        return list(self.payload.get("blocks") or [])

    @property
    def thread_ts(self) -> str | None:
        """The parent's ts when this is a reply in a thread."""
        thread_ts = self.payload.get("thread_ts")
        return str(thread_ts) if thread_ts else None

    @property
    def broadcast(self) -> bool:
        """A thread reply also sent to the channel (``reply_broadcast``)."""
        return self.payload.get("reply_broadcast") in (True, "true", "1", 1)

    @property
    def metadata(self) -> dict[str, Any] | None:
        """The message metadata (chat.postMessage only)."""
        metadata = self.payload.get("metadata")
        return orjson.loads(metadata) if isinstance(metadata, str) else metadata


class SlackServer(LoopbackServer):
    """Accepts webhook posts on ``/services/…``, ``POST /api/chat.postMessage`` and
    ``POST /api/chat.update``; records messages (posts) and updates.

    ``token`` is the bot token the Web API accepts; ``channels``, when given, are the only channels that
    exist. ``rate_limit(n, retry_after)`` answers the next n requests with 429; ``delete(ts)`` deletes a
    message, so updating it answers ``message_not_found``.
    """

    def __init__(
        self,
        token: str = "xoxb-test-token",
        channels: set[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.token = token
        self.channels = channels
        self.messages: list[SlackMessage] = []
        self.updates: list[SlackMessage] = []  # chat.update calls Slack accepted, in order
        self.current: dict[str, dict[str, Any]] = {}  # ts -> the message's payload as it stands now
        self.deleted: set[str] = set()
        self.requests: list[RecordedRequest] = []
        self._rate_limited = 0
        self._retry_after = 1
        self._failures: list[int] = []

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/services/{tail:.*}", self._webhook)
        app.router.add_post("/api/chat.postMessage", self._post_message)
        app.router.add_post("/api/chat.update", self._update)
        return app

    async def __aenter__(self) -> SlackServer:
        await self.start()
        return self

    @property
    def webhook_url(self) -> str:
        """An incoming-webhook URL on this server."""
        return self.base_url + WEBHOOK_PATH

    @property
    def api_url(self) -> str:
        """The Web API base URL, for ``AsyncWebClient(base_url=…)``."""
        return self.base_url + "/api/"

    def rate_limit(self, count: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``count`` requests with 429 and ``Retry-After: retry_after``."""
        self._rate_limited = count
        self._retry_after = retry_after

    def fail_next(self, status: int = 500, count: int = 1) -> None:
        """Answer the next ``count`` requests with an HTTP error status."""
        self._failures.extend([status] * count)

    def delete(self, ts: str) -> None:
        """Delete a message, as a user in Slack would: updating it now answers message_not_found."""
        self.deleted.add(ts)
        self.current.pop(ts, None)

    def parents(self) -> list[SlackMessage]:
        """Messages posted to a channel, not in a thread."""
        return [message for message in self.messages if message.via == "api" and not message.thread_ts]

    def replies(self, ts: str) -> list[SlackMessage]:
        """The replies in the thread of the message `ts`, in order."""
        return [message for message in self.messages if message.thread_ts == ts]

    async def wait_for_messages(self, count: int, within: float = 5.0) -> None:
        """Wait until at least ``count`` messages were accepted."""
        await self.wait_until(lambda: len(self.messages) >= count, within)

    def _refusal(self, api: bool) -> web.Response | None:
        if self._rate_limited > 0:
            self._rate_limited -= 1
            headers = {"Retry-After": str(self._retry_after)}
            if api:
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers=headers)
            return web.Response(status=429, text="rate_limited", headers=headers)
        if self._failures:
            status = self._failures.pop(0)
            if api:
                return web.json_response({"ok": False, "error": "internal_error"}, status=status)
            return web.Response(status=status, text="internal_error")
        return None

    async def _webhook(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        self.requests.append(recorded)
        refusal = self._refusal(api=False)
        if refusal is not None:
            await self.notify_changed()
            return refusal
        if request.path != WEBHOOK_PATH:
            await self.notify_changed()
            return web.Response(status=404, text="no_service")
        try:
            payload = recorded.json()
        except orjson.JSONDecodeError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
            return web.Response(status=400, text="no_text")
        self.messages.append(SlackMessage("webhook", payload, recorded))
        await self.notify_changed()
        return web.Response(text="ok")

    async def _api_payload(
        self, request: web.Request
    ) -> tuple[RecordedRequest, dict[str, Any] | None, web.Response | None]:
        """The Web API call's payload, or the answer refusing it."""
        recorded = await self.record(request)
        self.requests.append(recorded)
        refusal = self._refusal(api=True)
        if refusal is not None:
            await self.notify_changed()
            return recorded, None, refusal
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return recorded, None, web.json_response({"ok": False, "error": "invalid_auth"})
        if request.content_type == "application/json":
            payload = recorded.json()
        else:
            payload = dict(parse_qsl(recorded.text))
        for key in ("blocks", "metadata"):
            if isinstance(payload.get(key), str):
                payload[key] = orjson.loads(payload[key])
        channel = payload.get("channel")
        if not channel or (self.channels is not None and channel not in self.channels):
            return recorded, None, web.json_response({"ok": False, "error": "channel_not_found"})
        return recorded, payload, None

    async def _post_message(self, request: web.Request) -> web.Response:
        recorded, payload, refusal = await self._api_payload(request)
        if payload is None:
            assert refusal is not None
            return refusal
        channel = str(payload["channel"])
        ts = f"{time.time():.6f}"
        while ts in self.current or ts in self.deleted:  # two posts in one microsecond
            ts = f"{float(ts) + 0.000001:.6f}"
        self.messages.append(SlackMessage("api", payload, recorded, channel=channel, ts=ts))
        self.current[ts] = payload
        await self.notify_changed()
        message = {"ts": ts, **({"thread_ts": payload["thread_ts"]} if payload.get("thread_ts") else {})}
        return web.json_response({"ok": True, "channel": channel, "ts": ts, "message": message})

    async def _update(self, request: web.Request) -> web.Response:
        recorded, payload, refusal = await self._api_payload(request)
        if payload is None:
            assert refusal is not None
            return refusal
        ts = str(payload.get("ts") or "")
        if ts not in self.current:
            await self.notify_changed()
            return web.json_response({"ok": False, "error": "message_not_found"})
        channel = str(payload["channel"])
        self.current[ts] = {**self.current[ts], **payload}
        self.updates.append(SlackMessage("update", payload, recorded, channel=channel, ts=ts))
        await self.notify_changed()
        return web.json_response({"ok": True, "channel": channel, "ts": ts, "text": payload.get("text", "")})
