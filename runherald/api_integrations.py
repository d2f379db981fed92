"""The HTTP API's named integrations: managed like receivers, and each one's inbound webhook.

``GET /api/v1/integrations``, ``GET|PUT|DELETE /api/v1/integrations/{name}`` (admin to change: the
tokens file's scopes apply), and ``POST /api/v1/integrations/{name}``, the ingress, which the tokens file
does NOT authenticate (runherald.api leaves it to this module): the integration's own auth does
(runherald.integration_auth). Every refusal there is JSON, logged without any secret, and publishes
nothing; an accepted body is adapted (runherald.adapters, by the integration's adapter and default
project), checked and sealed as ``POST /api/v1/runs`` does, and published: 202 ``{accepted, runs}``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from runherald.adapters import adapt, hops_from, stamp_hops
from runherald.api_admit import Refusal, admit_and_send
from runherald.api_rules import integration_change
from runherald.api_store import (
    Refused,
    answering,
    delete_named,
    get_named,
    json_response,
    list_named,
    loaded,
    object_problems,
    read_json,
)
from runherald.events import InvalidEvent
from runherald.integration_auth import AuthRefused, ReplayGuard, authenticate
from runherald.integrations import (
    GITHUB_SECRET,
    TOKEN_SHA256,
    Integration,
    parse_integration,
    resolve_secret,
    unresolved_secret_problems,
)
from runherald.publish import Publisher
from runherald.secret_values import SecretResolutionError
from runherald.streams.alert_store import AlertStore

log = logging.getLogger("runherald.api")

GITHUB_PING = "ping"
GITHUB_WORKFLOW_RUN = "workflow_run"


def add_integration_routes(app: web.Application, alerts: AlertStore, publisher: Publisher) -> None:
    """Register GET /api/v1/integrations, GET|PUT|DELETE|POST /api/v1/integrations/{name}."""
    writing = asyncio.Lock()
    replays = ReplayGuard()  # this worker's: see runherald.integration_auth
    settings = publisher.settings

    answers = answering("the integration's secret")

    async def put_integration(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        path = f"integrations.{name}"
        data, problems = object_problems("integration", name, await read_json(request))
        async with writing:
            await loaded(alerts)
            integration = None
            if not problems:
                integration, problems = parse_integration(data, path)
            if integration is not None:
                problems = unresolved_secret_problems(
                    [integration],
                    secrets_dir=settings.secrets_dir or None,
                    env_allow=settings.secret_env_names,
                )
                integration = None if problems else integration
            if integration is None:
                summary = f"integration {name!r} is not valid; nothing was stored"
                raise Refused(400, {"error": summary, "problems": [p.as_dict() for p in problems]})
            change = integration_change(integration, alerts.value(f"integration/{name}"))
            if change.action != "unchanged":
                await alerts.put(change.key, change.value)
        return json_response({"name": name, "action": change.action})

    def refuse(request: web.Request, status: int, error: str, **extra: Any) -> web.Response:
        """A refusal at the ingress: logged (the message holds no secret: see integration_auth), JSON."""
        log.info("%s %s refused (%d): %s", request.method, request.path, status, error)
        return json_response({"error": error, **extra}, status)

    async def receive(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            config = await loaded(alerts)
        except Refused as exc:
            return refuse(request, exc.status, str(exc.body["error"]))
        integration = config.integrations.get(name)
        if integration is None:
            return refuse(request, 404, f"no integration named {name!r}")
        limit = settings.max_event_bytes
        too_large = f"the body is larger than this integration accepts ({limit} bytes)"
        if (request.content_length or 0) > limit:
            return refuse(request, 413, too_large)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return refuse(request, 413, too_large)
        if len(body) > limit:
            return refuse(request, 413, too_large)
        try:
            secret = (
                ""
                if integration.auth_kind == TOKEN_SHA256
                else resolve_secret(
                    integration, secrets_dir=settings.secrets_dir or None, env_allow=settings.secret_env_names
                )
            )
        except SecretResolutionError as exc:  # the worker's secrets, not the request, are at fault
            log.error("integration %r: its %s cannot be resolved: %s", name, integration.auth_kind, exc)
            return json_response({"error": f"integration {name!r} cannot check requests on this worker"}, 500)
        try:
            message_id, event = authenticate(integration, secret, request.headers, body, replays)
        except AuthRefused as exc:
            return refuse(request, exc.status, exc.message)
        accepted = False
        try:
            if integration.auth_kind == GITHUB_SECRET and event != GITHUB_WORKFLOW_RUN:
                if event == GITHUB_PING:
                    log.info("integration %r: GitHub's ping answered", name)
                    return json_response({"accepted": 0, "runs": [], "event": GITHUB_PING})
                return refuse(
                    request,
                    400,
                    f"X-GitHub-Event {event[:40]!r} is not taken: this integration takes workflow_run events"
                    " (choose only 'Workflow runs' among the webhook's events)",
                )
            response = await publish(request, body, integration.adapter, integration.project)
            accepted = response.status == 202
            return response
        finally:
            if message_id and not accepted:
                replays.release(name, message_id)  # not done: the sender's retry is welcome

    async def publish(request: web.Request, body: bytes, adapter: str, project: str) -> web.Response:
        try:
            adapted = adapt(body, request.headers, adapter=adapter, project=project)
            runs = stamp_hops(adapted.runs, hops_from(request.headers), settings.max_hops)
        except InvalidEvent as exc:
            return refuse(request, 422, str(exc))
        try:  # the request was fine (authenticated, a shape the adapter takes): invalid runs are a 422
            keys = await admit_and_send(
                publisher, runs, as_list=len(runs) > 1, receivers=alerts.config.receivers, invalid_status=422
            )
        except Refusal as exc:
            if exc.status >= 500:
                return json_response(exc.body, exc.status)
            return refuse(
                request,
                exc.status,
                str(exc.body["error"]),
                **{k: v for k, v in exc.body.items() if k != "error"},
            )
        log.info(
            "integration %s: accepted %d run(s) (%s)", request.match_info["name"], len(keys), adapted.adapter
        )
        return json_response({"accepted": len(keys), "runs": keys}, 202)

    app.router.add_get("/api/v1/integrations", answers(list_named(alerts, "integration", _shown)))
    one = "/api/v1/integrations/{name}"
    app.router.add_get(one, answers(get_named(alerts, "integration", _shown)))
    app.router.add_put(one, answers(put_integration))
    app.router.add_delete(one, answers(delete_named(alerts, "integration", writing)))
    app.router.add_post(one, receive)


def _shown(integration: Integration) -> dict[str, Any]:
    return integration.public_dict()


__all__ = ["add_integration_routes"]
