"""SlackServer: a loopback server speaking Slack's incoming-webhook and chat.postMessage protocol."""

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
    def metadata(self) -> dict[str, Any] | None:
        """The message metadata (chat.postMessage only)."""
        metadata = self.payload.get("metadata")
        return orjson.loads(metadata) if isinstance(metadata, str) else metadata


class SlackServer(LoopbackServer):
    """Accepts webhook posts on ``/services/…`` and ``POST /api/chat.postMessage``; records messages.

    ``token`` is the bot token chat.postMessage accepts; ``channels``, when given, are the only
    channels that exist. ``rate_limit(n, retry_after)`` answers the next n requests with 429.
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
        self.requests: list[RecordedRequest] = []
        self._rate_limited = 0
        self._retry_after = 1
        self._failures: list[int] = []

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/services/{tail:.*}", self._webhook)
        app.router.add_post("/api/chat.postMessage", self._post_message)
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

    async def _post_message(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        self.requests.append(recorded)
        refusal = self._refusal(api=True)
        if refusal is not None:
            await self.notify_changed()
            return refusal
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if request.content_type == "application/json":
            payload = recorded.json()
        else:
            payload = dict(parse_qsl(recorded.text))
        for key in ("blocks", "metadata"):
            if isinstance(payload.get(key), str):
                payload[key] = orjson.loads(payload[key])
        channel = payload.get("channel")
        if not channel or (self.channels is not None and channel not in self.channels):
            return web.json_response({"ok": False, "error": "channel_not_found"})
        ts = f"{time.time():.6f}"
        self.messages.append(SlackMessage("api", payload, recorded, channel=channel, ts=ts))
        await self.notify_changed()
        return web.json_response({"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts}})
