"""``GET /api/v1/subscribe``: run state changes as Server-Sent Events, from the worker's shared reader.

Query: ``project`` (shell glob), ``state`` (repeatable: any of), ``label`` (``k=v``, repeatable: all of),
``since`` (RFC 3339 or a duration back from now). ``Last-Event-ID`` resumes after that event (``since`` is
then ignored). Each event is ``event: run``, ``id: <cursor>``, ``data: <run dict>`` (secrets redacted); a
comment every HEARTBEAT seconds keeps proxies from closing a quiet stream, and a last comment says why
the server ended one (a client too far behind, a worker stopping).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

import orjson
from aiohttp import web
from aiokafka.errors import KafkaError

from runherald.admission import Problem
from runherald.live import parse_query
from runherald.sse import CONTENT_TYPE, decode_cursor, encode_comment, encode_retry
from runherald.streams.run_feed import RunFeed, Subscriber

log = logging.getLogger("runherald.api")

HEARTBEAT = 15.0  # seconds between comments on a quiet stream
RECONNECT_MS = 1000  # the client's wait before reconnecting (SSE ``retry:``)
SUBSCRIBE_PATH = "/api/v1/subscribe"
SEND_BUFFER_BYTES = 256 * 1024  # per stream; ample for events, a bound for a client that stops reading


def _problems(message: str, problems: list[Problem], status: int = 400) -> web.Response:
    body = {"error": message, "problems": [problem.as_dict() for problem in problems]}
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def add_subscribe_routes(app: web.Application, feed: RunFeed, *, heartbeat: float = HEARTBEAT) -> None:
    """Register the SSE route over the worker's run feed."""

    async def subscribe(request: web.Request) -> web.StreamResponse:
        run_filter, since, problems = parse_query(request.query.items(), time.time())
        if problems:
            return _problems("the subscription's query is not valid", problems)
        cursor = None
        last_event_id = request.headers.get("Last-Event-ID", "").strip()
        if last_event_id:
            try:
                cursor = decode_cursor(last_event_id)
            except ValueError as exc:
                return _problems(str(exc), [Problem("Last-Event-ID", str(exc))])
            since = None  # the cursor says where to resume
        try:
            subscriber = await feed.subscribe(run_filter, cursor=cursor, since=since)
        except (KafkaError, OSError, RuntimeError) as exc:
            log.warning("cannot start a live subscription: %r", exc)
            body = {"error": f"live subscriptions are not available now: {exc}"}
            return web.Response(body=orjson.dumps(body), status=503, content_type="application/json")
        response = web.StreamResponse(
            headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        _bound_send_buffer(request)
        try:
            await response.prepare(request)
            await response.write(encode_retry(RECONNECT_MS))
            await _stream(response, subscriber, heartbeat)
        except ConnectionResetError:
            pass  # the client went away
        finally:
            feed.unsubscribe(subscriber)
        return response

    app.router.add_get(SUBSCRIBE_PATH, subscribe)


def _bound_send_buffer(request: web.Request) -> None:
    """Cap the kernel's send buffer of a stream's connection (else it grows to megabytes): a client that
    stops reading then soon has `subscribe_queue` events waiting and is dropped, instead of pinning that
    memory per client."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)


async def _stream(response: web.StreamResponse, subscriber: Subscriber, heartbeat: float) -> None:
    """Write the subscriber's frames as they come, a heartbeat on a quiet stream, a comment at its end."""
    while True:
        waiting = subscriber.waiting()
        if waiting:
            subscriber.writing = True
            try:
                await response.write(waiting)
            finally:
                subscriber.writing = False
            continue
        if subscriber.ended:
            await response.write(encode_comment(subscriber.ended))
            return
        subscriber.ready.clear()  # no await since nothing was found waiting: a later wake sets it
        try:
            async with asyncio.timeout(heartbeat):
                await subscriber.ready.wait()
        except TimeoutError:
            await response.write(encode_comment("heartbeat"))
