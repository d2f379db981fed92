"""A small base for loopback aiohttp servers used as test peers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict


@dataclass(slots=True)
class RecordedRequest:
    """One request as it arrived: method, path, query, headers, raw body and arrival times."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes
    arrived_at: float  # time.time()
    arrived_monotonic: float  # time.monotonic(), for measuring gaps between attempts

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return orjson.loads(self.body)


@dataclass(slots=True)
class Reply:
    """How to answer a request: status, body, headers, an optional delay, or hang until shutdown."""

    status: int = 200
    body: str | bytes = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False
    content_type: str | None = None


class LoopbackServer:
    """An aiohttp server on 127.0.0.1 with a random port, run as an async context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._changed = asyncio.Condition()

    def build_app(self) -> web.Application:
        """The aiohttp application; subclasses add their routes."""
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Start listening; the port is known afterwards."""
        self._stopping = asyncio.Event()
        self._changed = asyncio.Condition()
        self._runner = web.AppRunner(self.build_app(), handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Release hanging handlers and stop the server."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LoopbackServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def record(self, request: web.Request) -> RecordedRequest:
        """Read a request fully into a RecordedRequest."""
        body = await request.read()
        return RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=CIMultiDict(request.headers),
            body=body,
            arrived_at=time.time(),
            arrived_monotonic=time.monotonic(),
        )

    async def notify_changed(self) -> None:
        """Wake waiters after something was recorded."""
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Any, within: float = 5.0) -> None:
        """Wait until ``predicate()`` is true; TimeoutError after ``within`` seconds."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def answer(self, reply: Reply) -> web.StreamResponse:
        """Turn a Reply into a response, honouring delay and hang."""
        if reply.hang:
            await self._stopping.wait()
            raise web.HTTPServiceUnavailable()
        if reply.delay:
            try:
                await asyncio.wait_for(self._stopping.wait(), reply.delay)
            except TimeoutError:
                pass
        body = reply.body.encode("utf-8") if isinstance(reply.body, str) else reply.body
        return web.Response(
            status=reply.status, body=body, headers=reply.headers, content_type=reply.content_type
        )
