"""The SSE wire format, the cursor, and the resuming client against a loopback aiohttp server."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp import web

from runherald import sse


def parse_all(payload: bytes) -> list[sse.SseEvent]:
    parser = sse.SseParser()
    events = [parser.feed(line) for line in payload.decode().split("\n")]
    return [event for event in events if event is not None]


def test_an_encoded_event_parses_back() -> None:
    data = json.dumps({"metadata": {"uid": "u1"}, "text": "a\nb"})
    wire = sse.encode_event(data, cursor="abc") + sse.encode_comment("heartbeat")
    assert wire.startswith(b"event: run\nid: abc\ndata: ")
    [event] = parse_all(wire)
    assert (event.event, event.id) == ("run", "abc")
    assert event.json()["text"] == "a\nb"


def test_multi_line_data_and_retry() -> None:
    parser = sse.SseParser()
    events = [parser.feed(line) for line in ["retry: 250", "data: one", "data:two", "", ": note", ""]]
    assert [event for event in events if event] == [sse.SseEvent("message", "", "one\ntwo")]
    assert parser.retry == 0.25


def test_cursor_round_trip_and_refusal() -> None:
    cursor = sse.encode_cursor({2: 10, 0: 5})
    assert "=" not in cursor
    assert sse.decode_cursor(cursor) == {0: 5, 2: 10}
    assert sse.decode_cursor(sse.encode_cursor({})) == {}
    for bad in ["!!", sse.encode_cursor({0: 1}) + "x", "MTp4", "LTE6Mg"]:  # "1:x", "-1:2"
        with pytest.raises(ValueError):
            sse.decode_cursor(bad)


async def test_subscribe_resumes_with_last_event_id(unused_tcp_port: int) -> None:
    seen_ids: list[str] = []

    async def stream(request: web.Request) -> web.StreamResponse:
        last = request.headers.get("Last-Event-ID", "")
        seen_ids.append(last)
        if request.query.get("project") != "p":
            return web.json_response({"error": "bad project"}, status=400)
        start = int(last or 0)
        response = web.StreamResponse(headers={"Content-Type": sse.CONTENT_TYPE})
        await response.prepare(request)
        await response.write(sse.encode_retry(10))
        for number in range(start + 1, start + 3):  # two events per connection, then the server ends it
            await response.write(sse.encode_event(json.dumps({"n": number}), cursor=str(number)))
        await response.write(sse.encode_comment("bye"))
        return response

    app = web.Application()
    app.router.add_get("/s", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    url = f"http://127.0.0.1:{unused_tcp_port}/s"
    try:
        async with aiohttp.ClientSession() as session:
            got = []
            async for event in sse.subscribe(session, url, params={"project": "p", "since": "1h"}):
                got.append(event.json()["n"])
                if len(got) == 5:
                    break
            assert got == [1, 2, 3, 4, 5]
            assert seen_ids[:3] == ["", "2", "4"]
            with pytest.raises(sse.SubscribeRefused) as refused:
                async for _ in sse.subscribe(session, url, params={"project": "q"}):
                    pass
            assert (refused.value.status, str(refused.value)) == (400, "bad project")
    finally:
        await runner.cleanup()
