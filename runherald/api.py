"""The HTTP API every worker serves: publish runs, read runs and their notification statuses.

Every error is JSON ``{"error": "..."}``, aiohttp's own (404, 405, 413) included.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from runherald import ledger, metrics
from runherald.delivery import run_key as delivery_key
from runherald.publish import InvalidRuns, Publisher, PublishError, is_list_input, parse_runs
from runherald.sealing import SealKeyError

log = logging.getLogger("runherald.api")

RecordLookup = Callable[[str], bytes | None]
RunLookup = Callable[[ledger.Record], Awaitable[dict[str, Any] | None]]


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


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn aiohttp's plain-text errors (no route, wrong method, body too large) and crashes into JSON."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error(_error_message(exc, request), exc.status)
        if isinstance(exc, web.HTTPMethodNotAllowed):
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return _error("internal error", 500)


def create_api(
    *,
    publisher: Publisher,
    record_for: RecordLookup,
    run_for: RunLookup,
    health: Callable[[], dict[str, Any]],
    max_body_bytes: int,
) -> web.Application:
    """An aiohttp application over a publisher, the ledger (by run key) and a reader of runs by record."""

    async def post_runs(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            runs = parse_runs(body)
            # Checked whole before anything is sent (runherald.admission): all the runs or none.
            keys = await publisher.publish_many(runs, as_list=len(runs) > 1 or is_list_input(body))
        except InvalidRuns as exc:
            problems = [problem.as_dict() for problem in exc.problems]
            return _json({"error": exc.summary, "problems": problems}, 400)
        except PublishError as exc:
            return _error(str(exc), 400)
        except SealKeyError as exc:  # this worker's keys, not the request, are at fault
            return _error(f"cannot seal secret_params: {exc}", 500)
        return _json({"accepted": len(keys), "runs": keys}, 202)

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
        notifications = dict(status.get("notifications") or {})
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

    app = web.Application(client_max_size=max_body_bytes, middlewares=[json_errors])
    app.router.add_post("/api/v1/runs", post_runs)
    app.router.add_get("/api/v1/runs/{project}/{uid}", get_run)
    app.router.add_get("/api/v1/runs/{project}/{uid}/notifications", get_notifications)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", make_aiohttp_handler(metrics.REGISTRY))
    return app
