"""WebhookReceiver: a loopback HTTP endpoint that records requests and answers as scripted."""

from __future__ import annotations

from collections import defaultdict, deque

from aiohttp import web

from runherald.testing._server import LoopbackServer, RecordedRequest, Reply


class WebhookReceiver(LoopbackServer):
    """Records every request; per path it answers 200 "ok", a fixed Reply, or a scripted sequence."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.requests: list[RecordedRequest] = []
        self._fixed: dict[str, Reply] = {}
        self._scripts: defaultdict[str, deque[Reply]] = defaultdict(deque)

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    def url(self, path: str = "/hook") -> str:
        """Full URL of a path on this receiver."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def reply(self, path: str, reply: Reply) -> None:
        """Answer every request to ``path`` with ``reply`` (after any scripted replies)."""
        self._fixed[path] = reply

    def script(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``path`` with these replies, in order, then fall back."""
        self._scripts[path].extend(replies)

    def fail(self, path: str, status: int = 500, retry_after: str | None = None) -> None:
        """Answer every request to ``path`` with ``status`` (and a Retry-After header if given)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.reply(path, Reply(status=status, body=f"status {status}", headers=headers))

    def hang(self, path: str) -> None:
        """Never answer requests to ``path`` (until the receiver stops)."""
        self.reply(path, Reply(hang=True))

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests to one path."""
        return [request for request in self.requests if request.path == path]

    async def wait_for_requests(self, count: int, path: str | None = None, within: float = 5.0) -> None:
        """Wait until at least ``count`` requests (to ``path``, if given) have arrived."""

        def enough() -> bool:
            seen = self.requests if path is None else self.requests_to(path)
            return len(seen) >= count

        await self.wait_until(enough, within)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await self.record(request))
        await self.notify_changed()
        script = self._scripts.get(request.path)
        if script:
            return await self.answer(script.popleft())
        return await self.answer(self._fixed.get(request.path, Reply()))
