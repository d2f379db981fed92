"""Bearer tokens and scopes on the HTTP API, served on loopback without a broker (nothing is published:
every request here is refused, or fails validation, before the publisher would be used)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from runherald.streams.alert_store import AlertStore
from runherald.streams.run_feed import RunFeed

from runherald.api import create_api
from runherald.config import Settings
from runherald.openapi import OPENAPI
from runherald.publish import Publisher
from runherald.ui_session import is_ui_path

from .test_api import Api, call, serve, token_table

TOKENS = {"pub": "rh_publisher-token", "reader": "rh_reader-token", "root": "rh_admin-token"}
SCOPES = {"pub": {"publish"}, "reader": {"read"}, "root": {"admin"}}


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with serve(Api(token_table(TOKENS, SCOPES))) as served:
        yield served


def bearer(token: str) -> dict[str, dict[str, str]]:
    return {"headers": {"Authorization": f"Bearer {token}"}}


async def test_no_token_or_a_wrong_one_is_401_with_www_authenticate(api: Api) -> None:
    for kwargs in [
        {},
        bearer("rh_wrong"),
        bearer(""),
        {"headers": {"Authorization": f"Basic {TOKENS['root']}"}},
    ]:
        for method, path in [("GET", "/api/v1/runs/p/u"), ("POST", "/api/v1/runs"), ("GET", "/nope")]:
            code, content_type, body, headers = await call(api, method, path, **kwargs)
            assert (code, content_type) == (401, "application/json"), (method, path, kwargs, body)
            assert headers["WWW-Authenticate"].startswith("Bearer")
            assert set(body) == {"error"}
    code, _, body, headers = await call(api, "GET", "/api/v1/runs/p/u", **bearer("rh_wrong"))
    assert (
        body == {"error": "the bearer token is not valid"}
        and 'error="invalid_token"' in headers["WWW-Authenticate"]
    )
    code, _, body, _ = await call(api, "GET", "/api/v1/runs/p/u")
    assert body["error"].startswith("this request needs a bearer token")


async def test_a_token_without_the_scope_is_403_naming_the_scope(api: Api) -> None:
    code, _, body, headers = await call(api, "POST", "/api/v1/runs", data=b"[1]", **bearer(TOKENS["reader"]))
    assert code == 403 and body == {
        "error": "token 'reader' lacks the 'publish' scope that POST /api/v1/runs needs"
    }
    assert 'error="insufficient_scope", scope="publish"' in headers["WWW-Authenticate"]
    code, _, body, _ = await call(
        api, "POST", "/api/v1/dead-letter/replay", data=b'{"all": true}', **bearer(TOKENS["reader"])
    )
    assert code == 403 and "lacks the 'admin' scope" in body["error"]
    for path in [
        "/api/v1/runs/p/u",
        "/api/v1/runs/p/u/notifications",
        "/api/v1/runs",
        "/api/v1/dead-letter",
        "/api/v1/deliveries/per-minute",
    ]:
        code, _, body, _ = await call(api, "GET", path, **bearer(TOKENS["pub"]))
        assert code == 403 and "lacks the 'read' scope" in body["error"]
        assert TOKENS["pub"] not in body["error"]


async def test_the_scope_lets_the_request_through_and_admin_does_everything(api: Api) -> None:
    for name in ["reader", "root"]:
        code, _, body, _ = await call(api, "GET", "/api/v1/runs/p/u", **bearer(TOKENS[name]))
        assert (code, body) == (404, {"error": "run p/u not found"})
    for name in ["pub", "root"]:
        code, _, body, _ = await call(api, "POST", "/api/v1/runs", data=b"[1]", **bearer(TOKENS[name]))
        assert (code, body) == (400, {"error": "item 0 is a int, not a run object"})
    # A valid token meets the usual 404 and 405, whatever its scopes.
    assert (await call(api, "GET", "/nope", **bearer(TOKENS["pub"])))[0] == 404
    assert (await call(api, "DELETE", "/api/v1/runs", **bearer(TOKENS["reader"])))[0] == 405
    # The scheme is case-insensitive (RFC 7235).
    assert (
        await call(api, "GET", "/api/v1/runs/p/u", headers={"Authorization": f"bearer {TOKENS['reader']}"})
    )[0] == 404


async def test_probes_metrics_and_the_openapi_document_need_no_token(api: Api) -> None:
    assert (await call(api, "GET", "/healthz"))[0] == 200
    assert (await call(api, "GET", "/readyz"))[0] == 503  # starting, but not 401
    code, _, body, _ = await call(api, "GET", "/api/v1/openapi.json")
    assert code == 200 and body == OPENAPI
    assert (await call(api, "GET", "/healthz", **bearer("rh_wrong")))[0] == 200


def test_every_route_is_in_the_openapi_document() -> None:
    """Every route of the API; the dashboard's HTML pages (/ui, "The dashboard") are not API routes."""
    app = create_api(
        publisher=Publisher(Settings(), create_topics=False),  # never started
        record_for=lambda key: None,
        run_for=None,  # type: ignore[arg-type]
        health=dict,
        max_body_bytes=1,
        alerts=AlertStore(Settings(), "rules"),  # never started: only its routes are wanted
        feed=RunFeed(Settings()),  # never started either
    )
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD" and not is_ui_path(route.resource.canonical)
    }
    documented = {
        (path, method) for path, item in OPENAPI["paths"].items() for method in item if method != "parameters"
    }
    assert routes == documented
