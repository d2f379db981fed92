"""The HTTP API's webhook subscriptions: ``GET|POST /api/v1/subscriptions``,
``GET|PUT|DELETE /api/v1/subscriptions/{name}``.

A subscription is stored on the rules topic as ``subscription/<name>`` through the worker's AlertStore,
and answered once this worker has read it back. A literal secret is sealed before it is written, and a
subscription is only ever shown as `Subscription.public_dict` gives it (sealed or REDACTED).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from runherald.admission import Problem
from runherald.alerting import record_key
from runherald.rule_index import AlertConfig
from runherald.sealing import SealKeyError
from runherald.streams.alert_store import AlertStore, NotInForce
from runherald.subscriptions import Subscription, new_name, parse_subscription, same_subscription

READY_TIMEOUT = 10.0  # how long a request waits for a starting worker to load the rules topic
PATH = "/api/v1/subscriptions"

Handler = Callable[[web.Request], Awaitable[web.Response]]


class Refused(Exception):
    """A request answered with an error: its status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error"))
        self.status = status
        self.body = body


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _invalid(name: str, problems: list[Problem]) -> Refused:
    count = len(problems)
    summary = f"subscription {name!r} has {count} problem{'s' if count != 1 else ''}; nothing was stored"
    return Refused(400, {"error": summary, "problems": [problem.as_dict() for problem in problems]})


async def _read_object(request: web.Request, name: str | None) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, {"error": f"the body is not JSON: {exc}"}) from None
    path = f"subscriptions.{name or 'new'}"
    if not isinstance(body, dict):
        raise _invalid(name or "new", [Problem(path, "the body must be a subscription object")])
    if name is not None and "name" in body and body["name"] != name:
        message = f"{body['name']!r} is not the name in the path, {name!r}"
        raise _invalid(name, [Problem(f"{path}.name", message)])
    return body


def add_subscription_routes(app: web.Application, alerts: AlertStore) -> None:
    """Register GET|POST /api/v1/subscriptions and GET|PUT|DELETE /api/v1/subscriptions/{name}."""
    writing = asyncio.Lock()  # one change at a time on this worker: what is stored is read, then written

    def answers(handler: Handler) -> Handler:
        async def answer(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except Refused as exc:
                return _json(exc.body, exc.status)
            except NotInForce as exc:
                return _json({"error": f"the change was {exc}; it will be in force shortly"}, 503)
            except SealKeyError as exc:  # this worker's keys, not the request, are at fault
                return _json({"error": f"cannot seal the secret: {exc}"}, 500)

        return answer

    async def loaded() -> AlertConfig:
        try:
            await asyncio.wait_for(alerts.ready.wait(), READY_TIMEOUT)
        except TimeoutError:
            raise Refused(503, {"error": "the alert configuration is still loading; try again"}) from None
        return alerts.config

    def parsed(body: dict[str, Any], name: Any) -> Subscription:
        subscription, problems = parse_subscription({**body, "name": name}, f"subscriptions.{name}")
        if subscription is None:
            raise _invalid(str(name), problems)
        return subscription

    async def list_subscriptions(request: web.Request) -> web.Response:
        found = (await loaded()).subscriptions
        return _json({"subscriptions": [found[name].public_dict() for name in sorted(found)]})

    async def create_subscription(request: web.Request) -> web.Response:
        body = await _read_object(request, None)
        generated = body.get("name") is None
        subscription = parsed(body, new_name() if generated else body["name"])
        async with writing:
            config = await loaded()
            if subscription.name in config.subscriptions:
                error = (
                    f"subscription {subscription.name!r} exists: PUT {PATH}/{subscription.name} replaces it"
                )
                raise Refused(409, {"error": error})
            await alerts.put(record_key("subscription", subscription.name), subscription.sealed())
        return _json({**subscription.public_dict(), "generated_name": generated}, 201)

    async def get_subscription(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        subscription = (await loaded()).subscriptions.get(name)
        if subscription is None:
            raise Refused(404, {"error": f"no subscription named {name!r}"})
        return _json(subscription.public_dict())

    async def put_subscription(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        subscription = parsed(await _read_object(request, name), name)
        async with writing:
            await loaded()
            stored = alerts.value(record_key("subscription", name))
            if same_subscription(subscription, stored):
                action = "unchanged"
            else:
                action = "created" if stored is None else "updated"
                await alerts.put(record_key("subscription", name), subscription.sealed())
        return _json({"name": name, "action": action})

    async def delete_subscription(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        async with writing:
            if name not in (await loaded()).subscriptions:
                raise Refused(404, {"error": f"no subscription named {name!r}"})
            await alerts.put(record_key("subscription", name), None)
        return _json({"name": name, "action": "deleted"})

    app.router.add_get(PATH, answers(list_subscriptions))
    app.router.add_post(PATH, answers(create_subscription))
    app.router.add_get(PATH + "/{name}", answers(get_subscription))
    app.router.add_put(PATH + "/{name}", answers(put_subscription))
    app.router.add_delete(PATH + "/{name}", answers(delete_subscription))


__all__ = ["add_subscription_routes", "same_subscription"]
