"""The HTTP API's silences: GET|POST /api/v1/silences, GET|DELETE /api/v1/silences/{id}; the inhibitions in
force, GET /api/v1/inhibitions; and the check that a run's notification names only receivers that are
stored (POST /api/v1/runs).

A silence is stored on the rules topic as ``silence/<id>``. Expiring one (DELETE) stores it again,
ending now, so it stays listed (``?expired=true``) until it is more than `KEEP_EXPIRED` old; reading
the list tombstones those.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Collection, Sequence
from typing import Any

import orjson
from aiohttp import web

from runherald.admission import Problem
from runherald.alerting import InvalidConfig, record_key
from runherald.api_store import json_response as _json
from runherald.silences import MAX_SILENCE, Silence, parse_silence
from runherald.streams.alert_store import AlertStore, NotInForce

log = logging.getLogger("runherald.api")

KEEP_EXPIRED = 5 * 86400.0  # an expired silence is listed this long, then deleted
READY_WAIT = 5.0  # how long a request waits for the worker's copy of the rules topic to load
_SET_BY_SERVER = ("id", "created_at")
_TEXT_FIELDS = ("duration", "starts_at", "ends_at", "author", "comment")
_background: set[asyncio.Task[None]] = set()


def _error(message: str, status: int, problems: Sequence[Problem] = ()) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if problems:
        body["problems"] = [problem.as_dict() for problem in problems]
    return _json(body, status)


def _time_problems(silence: Silence, now: float) -> list[Problem]:
    """What parse_silence leaves to the API: a silence added now must end in the future, within bounds."""
    if not (math.isfinite(silence.starts_at) and math.isfinite(silence.ends_at)):
        return [Problem("silence.ends_at", "is not a time")]
    problems = []
    if silence.starts_at > now + MAX_SILENCE:
        problems.append(Problem("silence.starts_at", "must be at most 366d from now"))
    if silence.ends_at <= now:
        problems.append(Problem("silence.ends_at", "is in the past: a silence must end after now"))
    elif silence.ends_at - silence.starts_at > MAX_SILENCE:
        problems.append(Problem("silence.ends_at", "must be at most 366d after starts_at"))
    return problems


def _new_silence(body: Any, now: float) -> tuple[Silence | None, list[Problem]]:
    """The silence a POST body asks for, or every problem with it (one per field at most)."""
    mine: list[Problem] = []
    if isinstance(body, dict):
        mine += [Problem(f"silence.{key}", "is set by the server") for key in _SET_BY_SERVER if key in body]
        # parse_silence also takes numbers (epoch seconds, duration seconds) and null; the API does not
        mine += [
            Problem(f"silence.{key}", "must be a string")
            for key in _TEXT_FIELDS
            if key in body and not isinstance(body[key], str)
        ]
    try:
        silence = parse_silence(body, now)
        problems = _time_problems(silence, now)
    except InvalidConfig as exc:
        silence, problems = None, exc.problems
    taken = {problem.path for problem in mine}
    problems = mine + [problem for problem in problems if problem.path not in taken]
    return (None if problems else silence), problems


def expired_now(silence: Silence, now: float) -> Silence:
    """The silence ending now (and, if it had not started, starting just before: a start must come
    before the end)."""
    return dataclasses.replace(silence, starts_at=min(silence.starts_at, now - 0.001), ends_at=now)


def add_silence_routes(app: web.Application, alerts: AlertStore) -> None:
    """Register the silence routes."""

    async def loaded() -> bool:
        try:
            await asyncio.wait_for(alerts.ready.wait(), READY_WAIT)
        except TimeoutError:
            return False
        return True

    async def store(silence: Silence) -> web.Response | None:
        try:
            await alerts.put(record_key("silence", silence.id), silence.to_dict())
        except NotInForce as exc:
            return _error(f"silence {silence.id} was written but is not in force here yet: {exc}", 503)
        return None

    forgetting: set[str] = set()

    async def forget(silence_id: str) -> None:
        try:
            await alerts.put(record_key("silence", silence_id), None)
        except Exception as exc:  # the next read of the list tries again
            log.warning("could not delete the old silence %s: %r", silence_id, exc)
        finally:
            forgetting.discard(silence_id)

    def forget_old(silences: Collection[Silence], now: float) -> None:
        """Tombstone silences expired more than KEEP_EXPIRED ago, without keeping the reader waiting."""
        for silence in silences:
            if silence.ends_at < now - KEEP_EXPIRED and silence.id not in forgetting:
                forgetting.add(silence.id)
                task = asyncio.ensure_future(forget(silence.id))
                _background.add(task)
                task.add_done_callback(_background.discard)

    async def list_silences(request: web.Request) -> web.Response:
        flag = request.query.get("expired", "false")
        if flag not in ("true", "false"):
            return _error(f"expired must be true or false, not {flag!r}", 400)
        if not await loaded():
            return _error("the alert configuration is still loading; try again", 503)
        now = time.time()
        silences = list(alerts.config.silences.values())
        forget_old(silences, now)
        if flag == "true":
            shown = [s for s in silences if s.state(now) == "expired" and s.ends_at >= now - KEEP_EXPIRED]
            shown.sort(key=lambda s: (-s.ends_at, s.id))
        else:
            shown = [s for s in silences if s.state(now) != "expired"]
            shown.sort(key=lambda s: (s.ends_at, s.id))
        return _json({"silences": [silence.to_dict(now) for silence in shown]})

    async def add_silence(request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return _error(f"the body is not JSON: {exc}", 400)
        now = time.time()
        silence, problems = _new_silence(body, now)
        if problems:
            count = len(problems)
            return _error(
                f"the silence has {count} problem{'s' if count != 1 else ''}; not added", 400, problems
            )
        if not await loaded():
            return _error("the alert configuration is still loading; try again", 503)
        assert silence is not None
        refused = await store(silence)
        return refused or _json(silence.to_dict(now), 201)

    async def get_silence(request: web.Request) -> web.Response:
        silence_id = request.match_info["id"]
        if not await loaded():
            return _error("the alert configuration is still loading; try again", 503)
        silence = alerts.config.silences.get(silence_id)
        if silence is None:
            return _error(f"silence {silence_id} not found", 404)
        return _json(silence.to_dict(time.time()))

    async def expire_silence(request: web.Request) -> web.Response:
        silence_id = request.match_info["id"]
        if not await loaded():
            return _error("the alert configuration is still loading; try again", 503)
        silence = alerts.config.silences.get(silence_id)
        if silence is None:
            return _error(f"silence {silence_id} not found", 404)
        now = time.time()
        if silence.state(now) == "expired":
            return _json({**silence.to_dict(now), "already_expired": True})
        expired = expired_now(silence, now)
        refused = await store(expired)
        return refused or _json({**expired.to_dict(now), "already_expired": False})

    async def list_inhibitions(request: web.Request) -> web.Response:
        """The inhibitions in force now (runherald.inhibition): read here, beside the silences."""
        if not await loaded():
            return _error("the alert configuration is still loading; try again", 503)
        active = alerts.inhibitions.active(time.time())
        return _json({"inhibitions": [inhibition.to_dict() for inhibition in active]})

    app.router.add_get("/api/v1/inhibitions", list_inhibitions)
    app.router.add_get("/api/v1/silences", list_silences)
    app.router.add_post("/api/v1/silences", add_silence)
    app.router.add_get("/api/v1/silences/{id}", get_silence)
    app.router.add_delete("/api/v1/silences/{id}", expire_silence)


__all__ = ["KEEP_EXPIRED", "add_silence_routes", "expired_now"]
