"""The HTTP API's webhook subscriptions: ``GET|POST /api/v1/subscriptions``,
``GET|PUT|DELETE /api/v1/subscriptions/{name}``.

A subscription is stored on the rules topic as ``subscription/<name>`` through the worker's AlertStore,
and answered once this worker has read it back. A literal secret is sealed before it is written, and a
subscription is only ever shown as `Subscription.public_dict` gives it (sealed or REDACTED).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from runherald.admission import Problem
from runherald.alerting import record_key
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
from runherald.streams.alert_store import AlertStore
from runherald.subscriptions import Subscription, new_name, parse_subscription, same_subscription

PATH = "/api/v1/subscriptions"


def _invalid(name: str, problems: list[Problem]) -> Refused:
    count = len(problems)
    summary = f"subscription {name!r} has {count} problem{'s' if count != 1 else ''}; nothing was stored"
    return Refused(400, {"error": summary, "problems": [problem.as_dict() for problem in problems]})


async def _read_object(request: web.Request, name: str | None) -> dict[str, Any]:
    body, problems = object_problems("subscription", name, await read_json(request))
    if problems:
        raise _invalid(name or "new", problems)
    return body


def add_subscription_routes(app: web.Application, alerts: AlertStore) -> None:
    """Register GET|POST /api/v1/subscriptions and GET|PUT|DELETE /api/v1/subscriptions/{name}."""
    writing = asyncio.Lock()  # one change at a time on this worker: what is stored is read, then written
    answers = answering("the secret")

    def parsed(body: dict[str, Any], name: Any) -> Subscription:
        subscription, problems = parse_subscription({**body, "name": name}, f"subscriptions.{name}")
        if subscription is None:
            raise _invalid(str(name), problems)
        return subscription

    async def create_subscription(request: web.Request) -> web.Response:
        body = await _read_object(request, None)
        generated = body.get("name") is None
        subscription = parsed(body, new_name() if generated else body["name"])
        async with writing:
            config = await loaded(alerts)
            if subscription.name in config.subscriptions:
                error = (
                    f"subscription {subscription.name!r} exists: PUT {PATH}/{subscription.name} replaces it"
                )
                raise Refused(409, {"error": error})
            await alerts.put(record_key("subscription", subscription.name), subscription.sealed())
        return json_response({**subscription.public_dict(), "generated_name": generated}, 201)

    async def put_subscription(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        subscription = parsed(await _read_object(request, name), name)
        async with writing:
            await loaded(alerts)
            stored = alerts.value(record_key("subscription", name))
            if same_subscription(subscription, stored):
                action = "unchanged"
            else:
                action = "created" if stored is None else "updated"
                await alerts.put(record_key("subscription", name), subscription.sealed())
        return json_response({"name": name, "action": action})

    app.router.add_get(PATH, answers(list_named(alerts, "subscription", _shown)))
    app.router.add_post(PATH, answers(create_subscription))
    app.router.add_get(PATH + "/{name}", answers(get_named(alerts, "subscription", _shown)))
    app.router.add_put(PATH + "/{name}", answers(put_subscription))
    app.router.add_delete(PATH + "/{name}", answers(delete_named(alerts, "subscription", writing)))


def _shown(subscription: Subscription) -> dict[str, Any]:
    return subscription.public_dict()


__all__ = ["add_subscription_routes", "same_subscription"]
