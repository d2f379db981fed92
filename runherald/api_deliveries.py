"""The ledger in SQL queried across runs (DESIGN.md "Ledger queries"): ``GET /api/v1/deliveries`` and
``GET /api/v1/runs`` (runherald.ledger_runs), cursor-paged, and ``GET /api/v1/deliveries/per-minute``
(runherald.ledger_rates: attempts per minute by outcome)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web
from multidict import MultiMapping

from runherald import ledger_rates, ledger_runs, ledger_sql
from runherald.api_store import json_response
from runherald.ledger import PENDING, TERMINAL
from runherald.ledger_projection import LedgerProjection
from runherald.live import parse_since, unknown_state

STATUSES = frozenset({PENDING, *TERMINAL})
FILTERS = ("project", "uid", "name", "kind", "status")
Problems = list[dict[str, str]]
Q = TypeVar("Q")


def _given(params: Mapping[str, str], names: tuple[str, ...], problems: Problems) -> dict[str, str | None]:
    given: dict[str, str | None] = {}
    for name in names:
        value = params.get(name)
        if value is not None and "\x00" in value:
            problems.append({"path": name, "message": "must not contain NUL characters"})
            value = None
        # An empty filter is no filter; an empty status or limit is not one (their schema says so).
        given[name] = None if value == "" and name not in {"status", "limit"} else value
    return given


def _time(given: dict[str, str | None], name: str, now: float, problems: Problems) -> float | None:
    text = given[name]
    try:
        return None if text is None else parse_since(text, now)
    except ValueError as exc:
        problems.append({"path": name, "message": str(exc)})
        return None


def _page(given: dict[str, str | None], problems: Problems) -> int:
    """The page size asked for (checked); the cursor is checked too."""
    limit = ledger_sql.DEFAULT_LIMIT
    if given["limit"] is not None:
        try:
            limit = int(given["limit"] or "")
        except ValueError:
            limit = 0
        if not 1 <= limit <= ledger_sql.MAX_LIMIT:
            problems.append(
                {"path": "limit", "message": f"must be a whole number 1 to {ledger_sql.MAX_LIMIT}"}
            )
    if given["cursor"] is not None:
        try:
            ledger_sql.decode_cursor(given["cursor"])
        except ValueError as exc:
            problems.append({"path": "cursor", "message": str(exc)})
    return limit


def parse_query(params: Mapping[str, str], now: float) -> tuple[ledger_sql.Query, Problems]:
    """The query the parameters ask for, and the problems with them (each at its parameter's name)."""
    problems: Problems = []
    given = _given(params, (*FILTERS, "since", "until", "cursor", "limit"), problems)
    if given["status"] is not None and given["status"] not in STATUSES:
        problems.append({"path": "status", "message": f"must be one of {', '.join(sorted(STATUSES))}"})
    asked = ledger_sql.Query(
        project=given["project"],
        uid=given["uid"],
        name=given["name"],
        kind=given["kind"],
        status=given["status"],
        since=_time(given, "since", now, problems),
        until=_time(given, "until", now, problems),
        limit=_page(given, problems),
        cursor=given["cursor"],
    )
    return asked, problems


def _values(params: MultiMapping[str], name: str, problems: Problems) -> tuple[str, ...]:
    """Every value of a filter that may repeat, each also a comma-separated list (as the live stream's
    ``state``); empty parts are none."""
    found: list[str] = []
    for value in params.getall(name, []):
        if "\x00" in value:
            problems.append({"path": name, "message": "must not contain NUL characters"})
            continue
        found.extend(part.strip() for part in value.split(",") if part.strip())
    return tuple(dict.fromkeys(found))


def parse_runs_query(params: MultiMapping[str], now: float) -> tuple[ledger_runs.RunQuery, Problems]:
    """The runs list's query, and the problems with it: `project` and `state` repeated or comma-separated
    (any of them), `since` (on when the run was last recorded), `limit`, `cursor`."""
    problems: Problems = []
    given = _given(params, ("since", "cursor", "limit"), problems)
    states = _values(params, "state", problems)
    for state in states:
        if (unknown := unknown_state(state)) is not None:
            problems.append({"path": "state", "message": unknown})
    asked = ledger_runs.RunQuery(
        projects=_values(params, "project", problems),
        states=states,
        since=_time(given, "since", now, problems),
        limit=_page(given, problems),
        cursor=given["cursor"],
    )
    return asked, problems


def parse_rates_query(params: MultiMapping[str], now: float) -> tuple[ledger_rates.RateQuery, Problems]:
    """Attempts per minute's query: `since` (default an hour back) and `until` (default now), RFC 3339 or
    a duration back, at most a week of minutes apart; `project` as the runs list's."""
    problems: Problems = []
    given = _given(params, ("since", "until"), problems)
    since = _time(given, "since", now, problems)
    until = _time(given, "until", now, problems)
    since = now - ledger_rates.DEFAULT_SINCE if since is None else since
    until = now if until is None else until
    if not problems and until <= since:
        problems.append({"path": "until", "message": "must be after since"})
    elif (
        not problems
        and math.ceil(until / ledger_rates.STEP) - math.floor(since / ledger_rates.STEP)
        > ledger_rates.MAX_BUCKETS
    ):
        problems.append(
            {"path": "since", "message": f"at most {ledger_rates.MAX_BUCKETS} minutes before until"}
        )
    asked = ledger_rates.RateQuery(since=since, until=until, projects=_values(params, "project", problems))
    return asked, problems


def add_delivery_routes(app: web.Application, projection: LedgerProjection | None) -> None:
    async def answer(asked: Q, problems: Problems, work: Callable[[Any, Q], dict[str, Any]]) -> web.Response:
        if problems:
            return json_response({"error": "invalid query", "problems": problems}, 400)
        if projection is None:
            return json_response({"error": "the ledger in SQL is off on this worker (ledger_db=off)"}, 503)
        page = await projection.ask(work, asked)
        if page is None:
            return json_response(
                {"error": "the ledger in SQL is not ready: its database has not answered"}, 503
            )
        return json_response(page)

    async def list_deliveries(request: web.Request) -> web.Response:
        return await answer(*parse_query(request.query, time.time()), ledger_sql.query)

    async def list_runs(request: web.Request) -> web.Response:
        return await answer(*parse_runs_query(request.query, time.time()), ledger_runs.query)

    async def per_minute(request: web.Request) -> web.Response:
        return await answer(*parse_rates_query(request.query, time.time()), ledger_rates.per_minute)

    app.router.add_get("/api/v1/deliveries", list_deliveries)
    app.router.add_get("/api/v1/deliveries/per-minute", per_minute)
    app.router.add_get("/api/v1/runs", list_runs)


__all__ = ["add_delivery_routes", "parse_query", "parse_rates_query", "parse_runs_query"]
