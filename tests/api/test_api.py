"""The HTTP API's conventions, served on loopback without a broker: every error is JSON, and
/healthz (liveness) is not /readyz (the ledger view has caught up)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from runherald import ledger
from runherald.api import create_api
from runherald.auth import ApiToken, TokenTable, hash_token
from runherald.broker import free_port
from runherald.config import Settings
from runherald.publish import Publisher

MAX_BODY = 1000


class Api:
    """create_api over a ledger holding one run, whose run reader fails, and a health we can change."""

    def __init__(self, tokens: TokenTable | None = None) -> None:
        self.tokens = tokens
        self.info: dict[str, Any] = {
            "status": "starting",
            "ledger_view_caught_up": False,
            "assigned_partitions": 0,
        }
        self.url = ""

    def record_for(self, key: str) -> bytes | None:
        return ledger.dump(ledger.new_record("p", "broken")) if key == "p/broken" else None

    async def run_for(self, record: ledger.Record) -> dict[str, Any] | None:
        raise RuntimeError("the runs topic read failed")

    def app(self) -> web.Application:
        return create_api(
            publisher=Publisher(Settings(), create_topics=False),  # never started: nothing is published
            record_for=self.record_for,
            run_for=self.run_for,
            health=lambda: dict(self.info),
            max_body_bytes=MAX_BODY,
            tokens=self.tokens,
        )


def token_table(tokens: Mapping[str, str], scopes: Mapping[str, Iterable[str]]) -> TokenTable:
    """A table of `tokens` (name -> token), each name with its `scopes`."""
    return TokenTable(
        ApiToken(name, hash_token(token), frozenset(scopes[name])) for name, token in tokens.items()
    )


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with serve(Api()) as served:
        yield served


@contextlib.asynccontextmanager
async def serve(served: Api) -> AsyncIterator[Api]:
    """The API on a free loopback port (served.url) for as long as the block runs."""
    runner = web.AppRunner(served.app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    served.url = f"http://127.0.0.1:{port}"
    try:
        yield served
    finally:
        await runner.cleanup()


async def call(api: Api, method: str, path: str, **kwargs: Any) -> tuple[int, str, Any, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, api.url + path, **kwargs) as response,
    ):
        return (
            response.status,
            response.content_type,
            await response.json(content_type=None),
            response.headers,
        )


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "error"),
    [
        ("GET", "/nope", {}, 404, "no such resource: /nope"),
        ("GET", "/api/v1/runs/p/u/notifications", {}, 404, "run p/u not found"),
        ("DELETE", "/healthz", {}, 405, "method DELETE is not allowed on /healthz (allowed: GET, HEAD)"),
        (
            "POST",
            "/api/v1/runs",
            {"data": b"x" * (MAX_BODY + 1)},
            413,
            "Maximum request body size 1000 exceeded",
        ),
        ("POST", "/api/v1/runs", {"data": b"[1]"}, 400, "item 0 is a int, not a run object"),
        ("GET", "/api/v1/runs/p/broken", {}, 500, "internal error"),
    ],
)
async def test_every_error_is_json(
    api: Api, method: str, path: str, kwargs: dict[str, Any], status: int, error: str
) -> None:
    code, content_type, body, headers = await call(api, method, path, **kwargs)
    assert (code, content_type) == (status, "application/json")
    assert set(body) == {"error"} and body["error"].startswith(error)
    if status == 405:
        assert headers["Allow"] == "GET,HEAD"


async def test_runs_the_pipeline_would_dead_letter_are_refused_with_problems(api: Api) -> None:
    good = {"metadata": {"project": "p", "uid": "u"}, "status": {"state": "completed"}}
    bad_state = {"metadata": {"project": "p", "uid": "u"}, "status": {"state": ""}}
    bad_key = {"metadata": {"project": "p/q", "uid": "u"}, "status": {"state": "completed"}}
    code, _, body, _ = await call(api, "POST", "/api/v1/runs", json=bad_state)
    assert code == 400 and body == {
        "error": "the input has 1 problem; nothing was published",
        "problems": [{"path": "status.state", "message": "missing or not a non-empty string"}],
    }
    listed = [good, bad_key, {**good, "status": {"state": "running", "notifications": [1]}}]
    code, _, body, _ = await call(api, "POST", "/api/v1/runs", json=listed)
    assert code == 400 and body["problems"] == [
        {"path": "[1].metadata.project", "message": "must not contain '/'"},
        {"path": "[2].status.notifications", "message": "must be an object"},
    ]
    poison = {**good, "spec": {"notifications": [{"kind": "console", "name": {"a": 1}}]}}
    code, _, body, _ = await call(api, "POST", "/api/v1/runs", json=poison)
    assert code == 400 and body["problems"] == [
        {"path": "spec.notifications[0].name", "message": "must be a string"}
    ]
    code, _, body, _ = await call(api, "POST", "/api/v1/runs", json=[{"status": {"state": "x"}}])
    assert code == 400 and body["problems"] == [
        {"path": "[0].metadata", "message": "missing or not an object"}
    ]


async def test_healthz_is_liveness_and_readyz_waits_for_the_ledger_view(api: Api) -> None:
    code, _, body, _ = await call(api, "GET", "/healthz")
    assert code == 200 and body["status"] == "starting"
    code, _, body, _ = await call(api, "GET", "/readyz")
    assert code == 503 and body == api.info
    api.info.update(status="ok", ledger_view_caught_up=True, assigned_partitions=4)
    code, _, body, _ = await call(api, "GET", "/readyz")
    assert code == 200 and body["assigned_partitions"] == 4
    assert (await call(api, "GET", "/healthz"))[0] == 200
