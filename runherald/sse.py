"""Server-Sent Events as runherald speaks them: the wire format, the resume cursor, a resuming client.

The server writes one ``event: run`` per run state change, its ``id:`` an opaque cursor (base64url of
the runs topic's next offset on every partition) and its ``data:`` the run dict as JSON; comment lines
(``: ...``) are heartbeats, and a last comment says why the server ended a stream. A client that
reconnects with ``Last-Event-ID: <cursor>`` gets exactly the events after it.

No Kafka here: `encode_event` and `encode_comment` are what the server writes, `SseParser` and
`iter_events` read it back, `subscribe` is a client that reconnects with the last cursor it saw.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

RUN_EVENT = "run"
CONTENT_TYPE = "text/event-stream"
RECONNECT_DELAY = 1.0  # seconds; the server may change it with a ``retry:`` field


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One event of a stream: its type (``run``), cursor and data (the run dict as JSON text)."""

    event: str
    id: str
    data: str

    def json(self) -> Any:
        """The data decoded as JSON."""
        return json.loads(self.data)


class SubscribeRefused(Exception):
    """The server refused the stream (a 4xx: bad filter, bad cursor, token): reconnecting cannot help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --- server side ---------------------------------------------------------------------------------------


def encode_event(data: str | bytes, *, cursor: str, event: str = RUN_EVENT) -> bytes:
    """One event on the wire; `data` is JSON text (one line, as orjson/json.dumps write it)."""
    text = data.decode() if isinstance(data, bytes) else data
    lines = "".join(f"data: {line}\n" for line in text.split("\n"))
    return f"event: {event}\nid: {cursor}\n{lines}\n".encode()


def encode_comment(text: str) -> bytes:
    """A comment line (heartbeat, or why the stream ends): clients ignore it."""
    return "".join(f": {line}\n" for line in text.split("\n")).encode() + b"\n"


def encode_retry(milliseconds: int) -> bytes:
    """Tells the client how long to wait before reconnecting."""
    return f"retry: {milliseconds}\n\n".encode()


def encode_cursor(offsets: Mapping[int, int]) -> str:
    """The opaque resume cursor: each partition's next offset to read, base64url without padding."""
    text = ",".join(f"{partition}:{offset}" for partition, offset in sorted(offsets.items()))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[int, int]:
    """The offsets of a cursor made by `encode_cursor`; ValueError when it is not one."""
    try:
        padded = cursor.replace("-", "+").replace("_", "/") + "=" * (-len(cursor) % 4)
        text = base64.b64decode(padded, validate=True).decode("ascii")
        offsets: dict[int, int] = {}
        for part in text.split(",") if text else []:
            partition, offset = part.split(":")
            offsets[int(partition)] = int(offset)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ValueError("not a runherald event id (Last-Event-ID)") from None
    if any(partition < 0 or offset < 0 for partition, offset in offsets.items()):
        raise ValueError("not a runherald event id (Last-Event-ID)")
    return offsets


# --- client side ---------------------------------------------------------------------------------------


class SseParser:
    """Reads the event stream line by line (the WHATWG rules runherald needs): `feed` returns an event
    at each blank line that ends one. `last_id` is the last cursor seen, `retry` the server's delay."""

    def __init__(self) -> None:
        self.last_id = ""
        self.retry: float | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> SseEvent | None:
        """One line without its line ending; an event when the line ends one."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value) / 1000
        return None

    def _dispatch(self) -> SseEvent | None:
        event = None
        if self._data:
            event = SseEvent(self._event or "message", self.last_id, "\n".join(self._data))
        self._event, self._data = "", []
        return event


async def iter_events(
    response: aiohttp.ClientResponse, parser: SseParser | None = None
) -> AsyncIterator[SseEvent]:
    """The events of one response, until the server ends it (or the connection breaks)."""
    parser = parser or SseParser()
    buffer = b""
    async for chunk in response.content.iter_any():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            event = parser.feed(raw.removesuffix(b"\r").decode("utf-8", "replace"))
            if event is not None:
                yield event


async def subscribe(
    session: aiohttp.ClientSession,
    url: str,
    *,
    params: Any = None,
    headers: Mapping[str, str] | None = None,
    last_event_id: str = "",
    reconnect: bool = True,
    reconnect_delay: float = RECONNECT_DELAY,
    retry_first: bool = True,
) -> AsyncIterator[SseEvent]:
    """The events of ``GET url``, reconnecting with ``Last-Event-ID`` when the stream ends or breaks.

    A 4xx raises SubscribeRefused (reconnecting would get the same answer); a 5xx or a broken connection
    is retried after the server's ``retry:`` delay (else `reconnect_delay`). With `reconnect` False it
    stops at the end of the first stream, and a connection error propagates; with `retry_first` False
    only the first connection's error does (the server cannot be reached at all).
    """
    parser = SseParser()
    parser.last_id = last_event_id
    first = True
    while True:
        request_headers = {"Accept": CONTENT_TYPE, **(headers or {})}
        if parser.last_id:
            request_headers["Last-Event-ID"] = parser.last_id
            params = _without_since(params)  # the cursor says where to resume; `since` would rewind
        try:
            async with session.get(
                url, params=params, headers=request_headers, timeout=_NO_TIMEOUT
            ) as response:
                if 400 <= response.status < 500:
                    raise SubscribeRefused(response.status, await _error_message(response))
                if response.status == 200:
                    async for event in iter_events(response, parser):
                        yield event
        except (TimeoutError, aiohttp.ClientError):
            if not reconnect or (first and not retry_first):
                raise
        first = False
        if not reconnect:
            return
        await asyncio.sleep(parser.retry if parser.retry is not None else reconnect_delay)


_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)


def _without_since(params: Any) -> Any:
    """The query without `since` (a resumed stream starts at its cursor)."""
    if isinstance(params, Mapping):
        return {key: value for key, value in params.items() if key != "since"}
    if isinstance(params, list | tuple):
        return [(key, value) for key, value in params if key != "since"]
    return params


async def _error_message(response: aiohttp.ClientResponse) -> str:
    """The ``error`` of a JSON error answer, else the status line."""
    try:
        answer = await response.json(content_type=None)
        if isinstance(answer, dict) and answer.get("error"):
            return str(answer["error"])
    except (ValueError, aiohttp.ClientError):
        pass
    return f"the API answered {response.status} {response.reason or ''}".strip()
