"""What the routes of the stored alert configuration share: receivers, rules, integrations, subscriptions.

A refusal (`Refused`) answered as JSON by `answering`'s wrapper, with the failures of a write (not in force
yet: 503; this worker's sealing keys: 500); `loaded`, the worker's copy of the rules topic once read (503
while it loads); reading a JSON body and the object a PUT names; and the list, get and delete routes of
objects stored by name (``{kind}/{name}`` on the rules topic).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from runherald.admission import Problem
from runherald.documents import record_key
from runherald.rule_index import AlertConfig
from runherald.sealing import SealKeyError
from runherald.streams.alert_store import AlertStore, NotInForce

READY_TIMEOUT = 10.0  # how long a request waits for a starting worker to load the rules topic

Handler = Callable[[web.Request], Awaitable[web.Response]]
Shown = Callable[[Any], dict[str, Any]]  # how a stored object is shown (never a secret)
InUse = Callable[[AlertConfig, str], None]  # raises Refused (409) where deleting would break something


class Refused(Exception):
    """A request answered with an error: its status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error"))
        self.status = status
        self.body = body


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def answering(sealed: str) -> Callable[[Handler], Handler]:
    """A wrapper answering a handler's Refused, NotInForce and SealKeyError as JSON; `sealed` says what
    could not be sealed ("secret_params", "the secret")."""

    def answers(handler: Handler) -> Handler:
        async def answer(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except Refused as exc:
                return json_response(exc.body, exc.status)
            except NotInForce as exc:
                return json_response({"error": f"the change was {exc}; it will be in force shortly"}, 503)
            except SealKeyError as exc:  # this worker's keys, not the request, are at fault
                return json_response({"error": f"cannot seal {sealed}: {exc}"}, 500)

        return answer

    return answers


async def loaded(alerts: AlertStore) -> AlertConfig:
    """This worker's alert configuration once the rules topic is read, or Refused (503) while it loads."""
    try:
        await asyncio.wait_for(alerts.ready.wait(), READY_TIMEOUT)
    except TimeoutError:
        raise Refused(503, {"error": "the alert configuration is still loading; try again"}) from None
    return alerts.config


async def read_json(request: web.Request) -> Any:
    """The request's body as JSON, or Refused (400)."""
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, {"error": f"the body is not JSON: {exc}"}) from None


def object_problems(kind: str, name: str | None, body: Any) -> tuple[dict[str, Any], list[Problem]]:
    """The body of a PUT as the object to parse, named by the path unless it names itself the same
    (no `name`: a POST's new object, named by itself or not at all)."""
    path = f"{kind}s.{name or 'new'}"
    if not isinstance(body, dict):
        article = "an" if kind[0] in "aeiou" else "a"
        return {}, [Problem(path, f"the body must be {article} {kind} object")]
    if name is None:
        return body, []
    if "name" in body and body["name"] != name:
        return {}, [Problem(f"{path}.name", f"{body['name']!r} is not the name in the path, {name!r}")]
    return {**body, "name": name}, []


def _stored(config: AlertConfig, kind: str) -> Mapping[str, Any]:
    found: Mapping[str, Any] = getattr(config, f"{kind}s")
    return found


def list_named(alerts: AlertStore, kind: str, shown: Shown) -> Handler:
    """``GET`` of every stored object of a kind: ``{"<kind>s": [...]}``, by name."""

    async def listing(request: web.Request) -> web.Response:
        found = _stored(await loaded(alerts), kind)
        return json_response({f"{kind}s": [shown(found[name]) for name in sorted(found)]})

    return listing


def get_named(alerts: AlertStore, kind: str, shown: Shown) -> Handler:
    """``GET`` of one stored object by the name in the path, or 404."""

    async def getting(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        found = _stored(await loaded(alerts), kind).get(name)
        if found is None:
            raise Refused(404, {"error": f"no {kind} named {name!r}"})
        return json_response(shown(found))

    return getting


def delete_named(
    alerts: AlertStore, kind: str, writing: asyncio.Lock, in_use: InUse | None = None
) -> Handler:
    """``DELETE`` of one stored object by the name in the path (tombstoned), or 404, or `in_use`'s 409."""

    async def deleting(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        async with writing:
            config = await loaded(alerts)
            if name not in _stored(config, kind):
                raise Refused(404, {"error": f"no {kind} named {name!r}"})
            if in_use is not None:
                in_use(config, name)
            await alerts.put(record_key(kind, name), None)
        return json_response({"name": name, "action": "deleted"})

    return deleting


__all__ = [
    "READY_TIMEOUT",
    "Handler",
    "Refused",
    "answering",
    "delete_named",
    "get_named",
    "json_response",
    "list_named",
    "loaded",
    "object_problems",
    "read_json",
]
