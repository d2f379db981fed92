"""``GET /api/v1/dead-letter`` and ``POST /api/v1/dead-letter/replay``: the dead-letter topic over HTTP.

The records as ``runherald dead-letter list --json`` shows them (runherald.deadletter.listed: payloads
redacted as the pipeline wrote them), newest first, cursor-paged; replay shares the CLI's code
(deadletter.chosen, replay, replay_report). Each request reads the topic from the beginning: the
dead-letter topic is for exceptions, not traffic.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from aiohttp import web
from aiokafka.errors import KafkaError

from runherald import deadletter
from runherald.api_store import Refused, answering, json_response, read_json
from runherald.config import Settings
from runherald.ledger_sql import DEFAULT_LIMIT, MAX_LIMIT

Position = tuple[str, int, int]  # (time, partition, offset): the order of the list, newest first


def encode_cursor(position: Position) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(position))).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position of the last item of the page before; ValueError if it is not a cursor of ours."""
    try:
        at, partition, offset = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except Exception:
        raise ValueError("cursor is not one this API gave") from None
    if not isinstance(at, str) or not isinstance(partition, int) or not isinstance(offset, int):
        raise ValueError("cursor is not one this API gave")
    return at, partition, offset


def _position(letter: deadletter.DeadLetter) -> Position:
    return letter.time, letter.partition, letter.offset


def parse_list_query(params: Any) -> tuple[int, Position | None, str | None]:
    """(limit, cursor position, stage) the query asks for, or Refused (400) with each problem."""
    problems: list[dict[str, str]] = []
    limit, position = DEFAULT_LIMIT, None
    given = {name: params.get(name) for name in ("limit", "cursor", "stage")}
    for name, value in given.items():
        if value is not None and "\x00" in value:
            problems.append({"path": name, "message": "must not contain NUL characters"})
            given[name] = None
    if given["limit"] is not None:
        try:
            limit = int(given["limit"])
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            problems.append({"path": "limit", "message": f"must be a whole number 1 to {MAX_LIMIT}"})
    if given["cursor"]:
        try:
            position = decode_cursor(given["cursor"])
        except ValueError as exc:
            problems.append({"path": "cursor", "message": str(exc)})
    if problems:
        raise Refused(400, {"error": "invalid query", "problems": problems})
    return limit, position, given["stage"] or None


def parse_replay_body(body: Any) -> list[str] | None:
    """The ids a replay body names, None for ``{"all": true}``; Refused (400) for anything else."""
    usage = 'the body must be {"ids": ["<partition>:<offset>", ...]} or {"all": true}'
    if not isinstance(body, dict) or set(body) - {"ids", "all"}:
        raise Refused(400, {"error": usage})
    ids, every = body.get("ids"), body.get("all", False)
    if not isinstance(every, bool):
        raise Refused(
            400, {"error": usage, "problems": [{"path": "all", "message": "must be true or false"}]}
        )
    if every == (ids is not None):
        raise Refused(400, {"error": usage})
    if ids is None:
        return None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        message = "must be a non-empty list of record ids (strings)"
        raise Refused(400, {"error": usage, "problems": [{"path": "ids", "message": message}]})
    return ids


async def _letters(settings: Settings) -> list[deadletter.DeadLetter]:
    try:
        return await deadletter.read_dead_letters(settings)
    except (KafkaError, TimeoutError, OSError) as exc:
        topic = settings.topic("dead-letter")
        raise Refused(503, {"error": f"cannot read {topic}: {exc or type(exc).__name__}"}) from None


def page_of(
    letters: list[deadletter.DeadLetter], limit: int, after: Position | None, stage: str | None
) -> dict[str, Any]:
    """``{"items": [...], "next": cursor | None}``: the records (oldest first as read), newest first."""
    found = [
        letter
        for letter in reversed(letters)
        if (stage is None or letter.stage == stage) and (after is None or _position(letter) < after)
    ]
    page = found[:limit]
    more = len(found) > limit
    return {
        "items": [deadletter.listed(letter) for letter in page],
        "next": encode_cursor(_position(page[-1])) if more and page else None,
    }


def add_dead_letter_routes(app: web.Application, settings: Settings) -> None:
    @answering("the record")
    async def list_letters(request: web.Request) -> web.Response:
        limit, after, stage = parse_list_query(request.query)
        return json_response(page_of(await _letters(settings), limit, after, stage))

    @answering("the record")
    async def replay_letters(request: web.Request) -> web.Response:
        ids = parse_replay_body(await read_json(request))
        letters = await _letters(settings)
        wanted, unknown = deadletter.chosen(letters, ids)
        try:
            results = await deadletter.replay(settings, wanted)
        except (KafkaError, TimeoutError, OSError) as exc:
            raise Refused(503, {"error": f"cannot replay: {exc or type(exc).__name__}"}) from None
        report = deadletter.replay_report(settings, unknown, results)
        return json_response(
            {
                "replayed": sum(1 for result in results if result.replayed),
                "unknown": unknown,
                "not_replayed": [{"id": r.id, "reason": r.detail} for r in results if not r.replayed],
                "results": report,
            }
        )

    app.router.add_get("/api/v1/dead-letter", list_letters)
    app.router.add_post("/api/v1/dead-letter/replay", replay_letters)


__all__ = ["add_dead_letter_routes", "decode_cursor", "encode_cursor", "page_of", "parse_replay_body"]
