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

import orjson
from aiohttp import web

from runherald.adapters import adapt, hops_from, stamp_hops
from runherald.admission import Problem
from runherald.api_admit import Refusal, admit_and_send
from runherald.api_rules import Refused, integration_change
from runherald.events import InvalidEvent
from runherald.integration_auth import AuthRefused, ReplayGuard, authenticate
from runherald.integrations import (
    GITHUB_SECRET,
    TOKEN_SHA256,
    parse_integration,
    resolve_secret,
    unresolved_secret_problems,
)
from runherald.publish import Publisher
from runherald.rule_index import AlertConfig
from runherald.sealing import SealKeyError
from runherald.secret_values import SecretResolutionError
from runherald.streams.alert_store import AlertStore, NotInForce

log = logging.getLogger("runherald.api")

READY_TIMEOUT = 10.0  # how long a request waits for a starting worker to load the rules topic
GITHUB_PING = "ping"
GITHUB_WORKFLOW_RUN = "workflow_run"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def add_integration_routes(app: web.Application, alerts: AlertStore, publisher: Publisher) -> None:
    """Register GET /api/v1/integrations, GET|PUT|DELETE|POST /api/v1/integrations/{name}."""
    writing = asyncio.Lock()
    replays = ReplayGuard()  # this worker's: see runherald.integration_auth
    settings = publisher.settings

    async def loaded() -> AlertConfig:
        try:
            await asyncio.wait_for(alerts.ready.wait(), READY_TIMEOUT)
        except TimeoutError:
            raise Refused(503, {"error": "the alert configuration is still loading; try again"}) from None
        return alerts.config

    def answers(handler: Any) -> Any:
        async def answer(request: web.Request) -> web.Response:
            try:
                response: web.Response = await handler(request)
                return response
            except Refused as exc:
                return _json(exc.body, exc.status)
            except NotInForce as exc:
                return _json({"error": f"the change was {exc}; it will be in force shortly"}, 503)
            except SealKeyError as exc:  # this worker's keys, not the request, are at fault
                return _json({"error": f"cannot seal the integration's secret: {exc}"}, 500)

        return answer

    async def list_integrations(request: web.Request) -> web.Response:
        found = (await loaded()).integrations
        return _json({"integrations": [found[name].public_dict() for name in sorted(found)]})

    async def get_integration(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        integration = (await loaded()).integrations.get(name)
        if integration is None:
            raise Refused(404, {"error": f"no integration named {name!r}"})
        return _json(integration.public_dict())

    async def put_integration(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        path = f"integrations.{name}"
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise Refused(400, {"error": f"the body is not JSON: {exc}"}) from None
        if not isinstance(body, dict):
            problems = [Problem(path, "the body must be an integration object")]
        elif "name" in body and body["name"] != name:
            problems = [Problem(f"{path}.name", f"{body['name']!r} is not the name in the path, {name!r}")]
        else:
            problems = []
        async with writing:
            await loaded()
            integration = None
            if not problems:
                integration, problems = parse_integration({**body, "name": name}, path)
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
        return _json({"name": name, "action": change.action})

    async def delete_integration(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        async with writing:
            if name not in (await loaded()).integrations:
                raise Refused(404, {"error": f"no integration named {name!r}"})
            await alerts.put(f"integration/{name}", None)
        return _json({"name": name, "action": "deleted"})

    def refuse(request: web.Request, status: int, error: str, **extra: Any) -> web.Response:
        """A refusal at the ingress: logged (the message holds no secret: see integration_auth), JSON."""
        log.info("%s %s refused (%d): %s", request.method, request.path, status, error)
        return _json({"error": error, **extra}, status)

    async def receive(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            config = await loaded()
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
            return _json({"error": f"integration {name!r} cannot check requests on this worker"}, 500)
        try:
            message_id, event = authenticate(integration, secret, request.headers, body, replays)
        except AuthRefused as exc:
            return refuse(request, exc.status, exc.message)
        accepted = False
        try:
            if integration.auth_kind == GITHUB_SECRET and event != GITHUB_WORKFLOW_RUN:
                if event == GITHUB_PING:
                    log.info("integration %r: GitHub's ping answered", name)
                    return _json({"accepted": 0, "runs": [], "event": GITHUB_PING})
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
                return _json(exc.body, exc.status)
            return refuse(
                request,
                exc.status,
                str(exc.body["error"]),
                **{k: v for k, v in exc.body.items() if k != "error"},
            )
        log.info(
            "integration %s: accepted %d run(s) (%s)", request.match_info["name"], len(keys), adapted.adapter
        )
        return _json({"accepted": len(keys), "runs": keys}, 202)

    app.router.add_get("/api/v1/integrations", answers(list_integrations))
    one = "/api/v1/integrations/{name}"
    app.router.add_get(one, answers(get_integration))
    app.router.add_put(one, answers(put_integration))
    app.router.add_delete(one, answers(delete_integration))
    app.router.add_post(one, receive)


__all__ = ["add_integration_routes"]
