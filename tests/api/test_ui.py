"""The dashboard's session cookie on the API, and its pages' answers, without a browser or a broker
(tests/pipeline/test_ui.py drives the pages in Chromium against a real worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from runherald.ui import CSP
from runherald.ui_session import COOKIE, UI_HEADER

from .test_api import Api, serve, token_table

TOKENS = {"reader": "rh_ui-reader", "root": "rh_ui-admin", "pub": "rh_ui-publisher"}
SCOPES = {"reader": {"read"}, "root": {"admin"}, "pub": {"publish"}}


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with serve(Api(token_table(TOKENS, SCOPES))) as served:
        yield served


async def fetch(api: Api, method: str, path: str, cookie: str | None = None, **kwargs: Any) -> Any:
    """(status, headers, text) of one request, redirects not followed, with the session cookie if given."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        if cookie is not None:
            kwargs.setdefault("headers", {})["Cookie"] = f"{COOKIE}={cookie}"
        async with session.request(method, api.url + path, allow_redirects=False, **kwargs) as response:
            return response.status, response.headers, await response.text()


async def test_a_page_without_the_cookie_redirects_to_the_login_page(api: Api) -> None:
    status, headers, _ = await fetch(api, "GET", "/ui/dead-letter")
    assert status == 303 and headers["Location"] == "/ui/login?next=/ui/dead-letter"
    status, headers, _ = await fetch(api, "GET", "/ui/runs/p/u", cookie="rh_wrong")
    assert status == 303 and headers["Location"] == "/ui/login?next=/ui/runs/p/u"
    status, headers, _ = await fetch(api, "GET", "/ui/runs", cookie=TOKENS["pub"])  # no read scope
    assert status == 303
    status, headers, body = await fetch(api, "GET", "/ui/runs", cookie=TOKENS["reader"])
    assert status == 200 and headers["Content-Security-Policy"] == CSP and "script-src 'self'" in CSP
    assert TOKENS["reader"] not in body and "reader (read)" in body


async def test_login_sets_the_cookie_and_refuses_a_wrong_token(api: Api) -> None:
    form = {"token": TOKENS["reader"], "next": "/ui/config"}
    status, headers, _ = await fetch(api, "POST", "/ui/login", data=form)
    assert status == 303 and headers["Location"] == "/ui/config"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/" in cookie and "Secure" not in cookie  # plain http here
    # Elsewhere than the dashboard's pages is never where a login leads.
    for elsewhere in ["https://evil.example/", "//evil.example/ui/", "/api/v1/runs"]:
        status, headers, _ = await fetch(api, "POST", "/ui/login", data={**form, "next": elsewhere})
        assert headers["Location"] == "/ui/runs"
    status, headers, body = await fetch(api, "POST", "/ui/login", data={"token": "rh_wrong"})
    assert status == 401 and "That token is not valid." in body and "Set-Cookie" not in headers
    status, _, body = await fetch(api, "POST", "/ui/login", data={"token": TOKENS["pub"]})
    assert status == 403 and "lacks the read scope" in body
    status, _, body = await fetch(
        api, "POST", "/ui/login", data=form, headers={"Origin": "https://evil.example"}
    )
    assert status == 403 and "not sent from this dashboard" in body


async def test_the_api_takes_the_cookie_and_a_change_by_it_needs_the_dashboard_header(api: Api) -> None:
    status, _, body = await fetch(api, "GET", "/api/v1/runs/p/u", cookie=TOKENS["reader"])
    assert (status, body) == (404, '{"error":"run p/u not found"}')
    status, _, _ = await fetch(api, "GET", "/api/v1/runs/p/u", cookie="rh_wrong")
    assert status == 401
    status, _, body = await fetch(api, "POST", "/api/v1/runs", cookie=TOKENS["root"], data=b"[1]")
    assert status == 403 and UI_HEADER in body
    status, _, body = await fetch(
        api, "POST", "/api/v1/runs", cookie=TOKENS["root"], data=b"[1]", headers={UI_HEADER: "1"}
    )
    assert (status, body) == (400, '{"error":"item 0 is a int, not a run object"}')
    # A bearer token needs no dashboard header (a client, not a browser's cookie).
    status, _, _ = await fetch(
        api, "POST", "/api/v1/runs", data=b"[1]", headers={"Authorization": f"Bearer {TOKENS['root']}"}
    )
    assert status == 400
    # The scope is the token's, whether it came by cookie or header.
    status, _, body = await fetch(api, "GET", "/api/v1/runs/p/u", cookie=TOKENS["pub"])
    assert status == 403 and "token 'pub' lacks the 'read' scope" in body and TOKENS["pub"] not in body


async def test_logout_removes_the_cookie_and_static_files_are_served(api: Api) -> None:
    status, headers, _ = await fetch(api, "POST", "/ui/logout", cookie=TOKENS["reader"])
    assert status == 303 and headers["Location"] == "/ui/login"
    assert headers["Set-Cookie"].startswith(f'{COOKIE}=""') and "Max-Age=0" in headers["Set-Cookie"]
    status, headers, body = await fetch(api, "GET", "/ui/static/ui.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript") and "textContent" in body
    assert "innerHTML" not in body.replace("never innerHTML", "")
    status, headers, _ = await fetch(api, "GET", "/ui/static/ui.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert (await fetch(api, "GET", "/ui/static/base.html"))[0] == 404


async def test_without_tokens_the_pages_are_open() -> None:
    async with serve(Api(None)) as open_api:
        status, _, body = await fetch(open_api, "GET", "/ui/runs")
        assert status == 200 and "no tokens file" in body
        status, headers, _ = await fetch(open_api, "GET", "/ui/login")
        assert status == 303 and headers["Location"] == "/ui/runs"
