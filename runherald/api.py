"""The HTTP API every worker serves: publish runs, read runs and their notification statuses.

Every error is JSON ``{"error": "..."}``, aiohttp's own (404, 405, 413) included. With a tokens
file, every request but the public ones (PUBLIC_PATHS) needs a bearer token with the route's scope
(`required_scope`), except an integration's ingress (SELF_AUTHENTICATED), which its integration's own
auth checks (runherald.api_integrations) whether or not there is a tokens file; the document of it all
is `runherald.openapi`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware
from prometheus_client.aiohttp import make_aiohttp_handler

from runherald import ledger, metrics
from runherald.api_admit import Refusal, admit_and_send
from runherald.api_dead_letter import add_dead_letter_routes
from runherald.api_deliveries import add_delivery_routes
from runherald.api_integrations import add_integration_routes
from runherald.api_rule_test import add_rule_test_routes
from runherald.api_rules import add_rule_routes
from runherald.api_silences import add_silence_routes
from runherald.api_subscribe import add_subscribe_routes
from runherald.api_subscriptions import add_subscription_routes
from runherald.auth import TokenTable
from runherald.delivery import run_key as delivery_key
from runherald.ingress import Refused, request_runs
from runherald.ledger_projection import LedgerProjection
from runherald.openapi import OPENAPI
from runherald.publish import Publisher
from runherald.streams.alert_store import AlertStore
from runherald.streams.run_feed import RunFeed
from runherald.ui import add_ui_routes
from runherald.ui_session import csrf_refusal, is_ui_path, presented_token

log = logging.getLogger("runherald.api")

RecordLookup = Callable[[str], bytes | None]
RunLookup = Callable[[ledger.Record], Awaitable[dict[str, Any] | None]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Answered without a token: probes, scrapers and clients reading the API's description.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"})
# POSTs that are not configuration changes; every other change needs admin.
_POST_SCOPES = {
    "/api/v1/runs": "publish",
    "/api/v1/rules/test": "read",
}
# Checked by the integration's own auth (a sender such as GitHub cannot send a bearer token of ours).
SELF_AUTHENTICATED = frozenset({("POST", "/api/v1/integrations/{name}")})
_HEADERS_KEPT = ("Allow", "WWW-Authenticate")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(message: str, status: int) -> web.Response:
    return _json({"error": message}, status)


def _error_message(exc: web.HTTPException, request: web.Request) -> str:
    if isinstance(exc, web.HTTPNotFound) and exc.text == "404: Not Found":  # no route (not ours)
        return f"no such resource: {request.path}"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"method {request.method} is not allowed on {request.path} (allowed: {allowed})"
    return exc.reason if not exc.text or exc.text.startswith(f"{exc.status}:") else exc.text


class MalformedRequestLog(logging.Filter):
    """aiohttp logs a request it cannot parse with the offending raw line, which may be a header
    carrying a bearer token: keep only the first line of why, without the traceback or the bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            why = (str(error.message).splitlines() or [""])[0]
            record.msg, record.args = "malformed HTTP request refused (%d): %s", (error.code, why)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's plain-text errors (no route, wrong method, body too large) and crashes into JSON."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error(_error_message(exc, request), exc.status)
        for header in _HEADERS_KEPT:
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
        return response
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return _error("internal error", 500)


def required_scope(request: web.Request) -> str | None:
    """The scope the matched route needs (admin for any change not listed), "" for a request that
    matched no route (a token, any scope, before 404 or 405), None for the public paths and for those
    the route authenticates itself (SELF_AUTHENTICATED), and the dashboard's pages (runherald.ui)."""
    if request.path in PUBLIC_PATHS or is_ui_path(request.path):  # the dashboard checks its own
        return None
    resource = request.match_info.route.resource
    if resource is None or request.match_info.http_exception is not None:
        return ""
    if (request.method, resource.canonical) in SELF_AUTHENTICATED:
        return None
    if request.method in {"GET", "HEAD"}:
        return "read"
    return _POST_SCOPES.get(resource.canonical, "admin") if request.method == "POST" else "admin"


def bearer_auth(tokens: TokenTable) -> Middleware:
    """Middleware: 401 (WWW-Authenticate: Bearer) without a known token, 403 without the route's scope.
    The dashboard's session cookie (runherald.ui_session) is taken as the bearer token, and a change
    authenticated by it needs the dashboard's header too (403 without)."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        scope = required_scope(request)
        if scope is None:
            return await handler(request)
        presented, by_cookie = presented_token(request)
        if not presented:
            raise web.HTTPUnauthorized(
                text="this request needs a bearer token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": 'Bearer realm="runherald"'},
            )
        token = tokens.find(presented)
        if token is None:
            log.info("%s %s: refused an unknown bearer token", request.method, request.path)
            raise web.HTTPUnauthorized(
                text="the bearer token is not valid",
                headers={"WWW-Authenticate": 'Bearer realm="runherald", error="invalid_token"'},
            )
        if scope and not token.allows(scope):
            log.info("%s %s: token %r lacks scope %s", request.method, request.path, token.name, scope)
            raise web.HTTPForbidden(
                text=f"token {token.name!r} lacks the {scope!r} scope that {request.method} {request.path}"
                " needs",
                headers={
                    "WWW-Authenticate": f'Bearer realm="runherald", error="insufficient_scope", '
                    f'scope="{scope}"'
                },
            )
        refusal = csrf_refusal(request) if by_cookie else None
        if refusal:
            raise web.HTTPForbidden(text=refusal)
        return await handler(request)

    return authenticate


def create_api(
    *,
    publisher: Publisher,
    record_for: RecordLookup,
    run_for: RunLookup,
    health: Callable[[], dict[str, Any]],
    max_body_bytes: int,
    tokens: TokenTable | None = None,
    alerts: AlertStore | None = None,
    feed: RunFeed | None = None,
    deliveries: LedgerProjection | None = None,
) -> web.Application:
    """An aiohttp application over a publisher, the ledger (by run key) and a reader of runs by record;
    with `tokens`, every request but the public ones needs one of them (without, it is all open);
    with `alerts` (the worker's copy of the rules topic), the alert configuration routes too; with
    `feed` (the worker's shared reader of the runs topic), the live subscription (SSE) route; the ledger
    queries over `deliveries` (the SQL ledger; without it they answer 503)."""

    async def post_runs(request: web.Request) -> web.Response:
        body = await request.read()
        try:  # any shape runherald adapts (runherald.ingress); a loop refused with 508
            given = request_runs(
                body,
                request.headers,
                max_hops=publisher.settings.max_hops,
                adapter=request.query.get("adapter") or None,
                project=request.query.get("project", ""),
            )
        except Refused as exc:
            return _json(exc.body, exc.status)
        loaded = alerts is not None and alerts.ready.is_set()
        try:  # checked whole before anything is sent: all the runs or none
            keys = await admit_and_send(
                publisher,
                given.runs,
                as_list=given.as_list,
                receivers=alerts.config.receivers if alerts is not None and loaded else None,
            )
        except Refusal as exc:
            return _json(exc.body, exc.status)
        return _json({"accepted": len(keys), "runs": keys, "adapter": given.adapter}, 202)

    def key_of(request: web.Request) -> str:
        return delivery_key(request.match_info["project"], request.match_info["uid"])

    async def get_run(request: web.Request) -> web.Response:
        key = key_of(request)
        raw_record = record_for(key)
        record = ledger.load(raw_record)
        run = await run_for(record) if raw_record else None
        if run is None:
            return _error(f"run {key} not found", 404)
        status = run.setdefault("status", {})
        given = status.get("notifications")
        notifications = dict(given) if isinstance(given, dict) else {}
        notifications.update(ledger.mlrun_status_notifications(record))
        if notifications:
            status["notifications"] = notifications
        return _json(run)

    async def get_notifications(request: web.Request) -> web.Response:
        key = key_of(request)
        raw_record = record_for(key)
        if raw_record is None:
            return _error(f"run {key} not found", 404)
        return _json(ledger.notifications_view(ledger.load(raw_record)))

    async def healthz(request: web.Request) -> web.Response:
        """Liveness: 200 while the process serves, whatever it is doing."""
        return _json(health())

    async def readyz(request: web.Request) -> web.Response:
        """Readiness: 503 until the ledger view has caught up (the same body as /healthz)."""
        info = health()
        return _json(info, 200 if info.get("status") == "ok" else 503)

    async def get_openapi(request: web.Request) -> web.Response:
        return _json(OPENAPI)

    middlewares: list[Middleware] = [json_errors] if tokens is None else [json_errors, bearer_auth(tokens)]
    app = web.Application(client_max_size=max_body_bytes, middlewares=middlewares)
    app.router.add_get("/api/v1/openapi.json", get_openapi)
    app.router.add_post("/api/v1/runs", post_runs)
    app.router.add_get("/api/v1/runs/{project}/{uid}", get_run)
    app.router.add_get("/api/v1/runs/{project}/{uid}/notifications", get_notifications)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", make_aiohttp_handler(metrics.REGISTRY))
    add_delivery_routes(app, deliveries)
    add_dead_letter_routes(app, publisher.settings)
    if alerts is not None:
        add_rule_routes(app, alerts)
        add_silence_routes(app, alerts)
        add_subscription_routes(app, alerts)
        add_rule_test_routes(app, alerts, publisher.settings)
        add_integration_routes(app, alerts, publisher)
    if feed is not None:
        add_subscribe_routes(app, feed)
    add_ui_routes(app, tokens)
    return app
