"""``GET /api/v1/deliveries``: the ledger in SQL, queried across runs (DESIGN.md "Ledger queries")."""

from __future__ import annotations

import time
from collections.abc import Mapping

from aiohttp import web

from runherald import ledger_sql
from runherald.api_store import json_response
from runherald.ledger import PENDING, TERMINAL
from runherald.ledger_projection import LedgerProjection
from runherald.live import parse_since

STATUSES = frozenset({PENDING, *TERMINAL})
FILTERS = ("project", "uid", "name", "kind", "status")


def parse_query(params: Mapping[str, str], now: float) -> tuple[ledger_sql.Query, list[dict[str, str]]]:
    """The query the parameters ask for, and the problems with them (each at its parameter's name)."""
    problems: list[dict[str, str]] = []
    given: dict[str, str | None] = {}
    for name in (*FILTERS, "since", "until", "cursor", "limit"):
        value = params.get(name)
        if value is not None and "\x00" in value:
            problems.append({"path": name, "message": "must not contain NUL characters"})
            value = None
        # An empty filter is no filter; an empty status or limit is not one (their schema says so).
        given[name] = None if value == "" and name not in {"status", "limit"} else value
    if given["status"] is not None and given["status"] not in STATUSES:
        problems.append({"path": "status", "message": f"must be one of {', '.join(sorted(STATUSES))}"})
    times: dict[str, float | None] = {}
    for name in ("since", "until"):
        text = given[name]
        try:
            times[name] = None if text is None else parse_since(text, now)
        except ValueError as exc:
            problems.append({"path": name, "message": str(exc)})
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
    asked = ledger_sql.Query(
        project=given["project"],
        uid=given["uid"],
        name=given["name"],
        kind=given["kind"],
        status=given["status"],
        since=times.get("since"),
        until=times.get("until"),
        limit=limit,
        cursor=given["cursor"],
    )
    return asked, problems


def add_delivery_routes(app: web.Application, projection: LedgerProjection | None) -> None:
    async def list_deliveries(request: web.Request) -> web.Response:
        asked, problems = parse_query(request.query, time.time())
        if problems:
            return json_response({"error": "invalid query", "problems": problems}, 400)
        if projection is None:
            return json_response({"error": "the ledger in SQL is off on this worker (ledger_db=off)"}, 503)
        page = await projection.query(asked)
        if page is None:
            return json_response(
                {"error": "the ledger in SQL is not ready: its database has not answered"}, 503
            )
        return json_response(page)

    app.router.add_get("/api/v1/deliveries", list_deliveries)


__all__ = ["add_delivery_routes", "parse_query"]
