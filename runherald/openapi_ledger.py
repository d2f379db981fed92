"""The OpenAPI description of the ledger queries (DESIGN.md "Ledger queries"): ``GET /api/v1/deliveries``,
the dead letter (``GET /api/v1/dead-letter``, ``POST /api/v1/dead-letter/replay``)."""

from __future__ import annotations

from typing import Any

from runherald.openapi_parts import NULLABLE_TEXT, errors, json_body, operation, ref

_TIME = "RFC 3339 (2026-01-02T03:04:05Z) or a duration back from now (10m, 2h, 1d)"


def _text(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string"}}


def _repeated(name: str, description: str) -> dict[str, Any]:
    """A query parameter of several values: repeated, or comma-separated."""
    return {
        "name": name,
        "in": "query",
        "description": f"{description}: repeated, or comma-separated",
        "schema": {"type": "array", "items": {"type": "string"}},
        "style": "form",
        "explode": True,
    }


_PAGE_PARAMETERS = [
    {
        "name": "limit",
        "in": "query",
        "description": "items per page (default 100)",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    _text("cursor", "the next page: the `next` of the page before (opaque)"),
]

_QUERY = [
    _text("project", "only this project's deliveries"),
    _text("uid", "only this run's (its uid)"),
    _text("name", "only this notification's: its name, or `{rule}/{receiver}` for a rule's"),
    _text("kind", "only this kind's (slack, mail, webhook, ...)"),
    {
        "name": "status",
        "in": "query",
        "description": "only deliveries with this status",
        "schema": {"type": "string", "enum": ["pending", "sent", "error", "skipped"]},
    },
    _text("since", f"only deliveries queued at or after this: {_TIME}"),
    _text("until", f"only deliveries queued before this: {_TIME}"),
    *_PAGE_PARAMETERS,
]

SCHEMAS: dict[str, Any] = {
    "LedgerDelivery": {
        "type": "object",
        "required": ["id", "project", "uid", "notification", "kind", "state", "status", "attempts"],
        "properties": {
            "id": {"type": "string", "description": "the delivery's id (its idempotency key)"},
            "project": {"type": "string"},
            "uid": {"type": "string"},
            "run_name": NULLABLE_TEXT,
            "notification": {**NULLABLE_TEXT, "description": "its name, or `{rule}/{receiver}`"},
            "kind": NULLABLE_TEXT,
            "state": {**NULLABLE_TEXT, "description": "the run state it notifies of"},
            "status": {"type": "string", "enum": ["pending", "sent", "error", "skipped"]},
            "attempts": {
                "type": "array",
                "description": "the latest attempts (at most 20), oldest first",
                "items": ref("Attempt"),
            },
            "attempt_count": {"type": "integer", "description": "every attempt, the ones no longer kept too"},
            "queued_at": {**NULLABLE_TEXT, "description": "when the delivery was decided (RFC 3339)"},
            "sent_time": NULLABLE_TEXT,
            "reason": NULLABLE_TEXT,
            "response_code": {"type": ["integer", "null"], "description": "the latest attempt's"},
            "latency_ms": {"type": ["number", "null"], "description": "the latest attempt's"},
        },
    },
}


def _page(item: str, description: str) -> dict[str, Any]:
    return json_body(
        {
            "type": "object",
            "required": ["items", "next"],
            "properties": {
                "items": {"type": "array", "items": ref(item)},
                "next": {**NULLABLE_TEXT, "description": "the cursor of the next page; null: no more"},
            },
        },
        description,
    )


SCHEMAS["DeadLetter"] = {
    "type": "object",
    "description": "a dead-letter record as `runherald dead-letter list --json` prints it (secrets redacted)",
    "required": ["id", "partition", "offset", "key", "replayable", "not_replayable", "at"],
    "properties": {
        "id": {"type": "string", "description": "`<partition>:<offset>` on the dead-letter topic"},
        "partition": {"type": "integer"},
        "offset": {"type": "integer"},
        "key": {**NULLABLE_TEXT, "description": "the record's key: `{project}/{uid}` for a run's"},
        "at": {**NULLABLE_TEXT, "description": "when it was dead-lettered (RFC 3339)"},
        "time": {"type": "string", "description": "the same, as the record has it"},
        "stage": {
            "type": "string",
            "description": "the stage that dead-lettered it: evaluate, dispatch, ...",
        },
        "reason": {"type": "string"},
        "source": {"type": "object", "description": "where it came from (topic, partition, offset, ...)"},
        "payload": {"description": "what can be replayed: a delivery or a run dict (secrets redacted)"},
        "replayable": {"type": "boolean"},
        "not_replayable": {**NULLABLE_TEXT, "description": "why it cannot be replayed; null when it can"},
    },
}

SCHEMAS["LedgerRun"] = {
    "type": "object",
    "required": ["project", "uid", "name", "state", "last_update", "updated", "notifications"],
    "properties": {
        "project": {"type": "string"},
        "uid": {"type": "string"},
        "name": NULLABLE_TEXT,
        "state": {**NULLABLE_TEXT, "description": "the run's state, as last recorded"},
        "last_update": {**NULLABLE_TEXT, "description": "the run's own last_update (RFC 3339)"},
        "updated": {**NULLABLE_TEXT, "description": "when runherald last recorded the run (RFC 3339)"},
        "notifications": {
            "type": "object",
            "description": "the run's deliveries counted by status",
            "required": ["pending", "sent", "error", "skipped"],
            "additionalProperties": {"type": "integer"},
        },
    },
}

# GET beside the publishing POST of /api/v1/runs (runherald.openapi puts the two together).
RUN_LIST: dict[str, Any] = {
    "get": operation(
        "Runs the ledger knows (with or without notifications), last recorded first, a page at a time",
        "read",
        {"200": _page("LedgerRun", "one page of runs"), **errors("400", "503")},
        operationId="listRuns",
        parameters=[
            _repeated("project", "only these projects' runs"),
            _repeated("state", "only runs in one of these states"),
            _text("since", f"only runs recorded at or after this: {_TIME}"),
            *_PAGE_PARAMETERS,
        ],
    )
}

_COUNTS = {
    "type": "object",
    "description": "attempts by outcome: sent, retryable, permanent, deferred (zeros included)",
    "required": ["sent", "retryable", "permanent", "deferred"],
    "additionalProperties": {"type": "integer"},
}

_PER_MINUTE = {
    "type": "object",
    "required": ["step_seconds", "since", "until", "buckets"],
    "properties": {
        "step_seconds": {"type": "integer", "description": "60: one bucket a minute"},
        "since": {"type": "string", "description": "the range's start (RFC 3339)"},
        "until": {"type": "string", "description": "the range's end, excluded (RFC 3339)"},
        "buckets": {
            "type": "array",
            "description": "every minute of the range, oldest first",
            "items": {
                "type": "object",
                "required": ["at", "counts"],
                "properties": {
                    "at": {"type": "string", "description": "the minute's start (RFC 3339)"},
                    "counts": _COUNTS,
                },
            },
        },
    },
}

_REPLAY_BODY = {
    "oneOf": [
        {
            "type": "object",
            "required": ["ids"],
            "additionalProperties": False,
            "properties": {
                "ids": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "minLength": 1},
                    "description": "record ids (`<partition>:<offset>`)",
                },
                "all": {"const": False},
            },
        },
        {
            "type": "object",
            "required": ["all"],
            "additionalProperties": False,
            "properties": {"all": {"const": True, "description": "every record"}},
        },
    ]
}

_REPLAYED = {
    "type": "object",
    "required": ["replayed", "unknown", "not_replayed", "results"],
    "properties": {
        "replayed": {"type": "integer", "description": "how many records were re-published"},
        "unknown": {"type": "array", "items": {"type": "string"}, "description": "ids that name no record"},
        "not_replayed": {
            "type": "array",
            "description": "records found that cannot be replayed, and why",
            "items": {
                "type": "object",
                "required": ["id", "reason"],
                "properties": {"id": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
        "results": {
            "type": "array",
            "description": "each id asked (unknown ones first), as `runherald dead-letter replay -o json`",
            "items": {
                "type": "object",
                "required": ["id", "replayed", "detail"],
                "properties": {
                    "id": {"type": "string"},
                    "replayed": {"type": "boolean"},
                    "detail": {"type": "string", "description": "where it went, or why not"},
                },
            },
        },
    },
}

PATHS: dict[str, Any] = {
    "/api/v1/deliveries/per-minute": {
        "get": operation(
            "Delivery attempts per minute by outcome, from the ledger in SQL (what a chart draws)",
            "read",
            {"200": json_body(_PER_MINUTE, "every minute of the range"), **errors("400", "503")},
            operationId="deliveriesPerMinute",
            parameters=[
                _text("since", f"attempts at or after this (default 1h): {_TIME}"),
                _text("until", f"attempts before this (default now): {_TIME}; at most 7 days after since"),
                _repeated("project", "only these projects' deliveries"),
            ],
        )
    },
    "/api/v1/dead-letter": {
        "get": operation(
            "The dead-letter topic's records, newest first, a page at a time",
            "read",
            {"200": _page("DeadLetter", "one page of dead-letter records"), **errors("400", "503")},
            operationId="listDeadLetters",
            parameters=[
                _text("stage", "only records of this stage (evaluate, dispatch, ...)"),
                *_PAGE_PARAMETERS,
            ],
        )
    },
    "/api/v1/dead-letter/replay": {
        "post": operation(
            "Re-publish dead-letter records (as `runherald dead-letter replay`): by id, or all",
            "admin",
            {"200": json_body(_REPLAYED, "what was replayed"), **errors("400", "413", "503")},
            operationId="replayDeadLetters",
            requestBody={"required": True, "content": {"application/json": {"schema": _REPLAY_BODY}}},
        )
    },
    "/api/v1/deliveries": {
        "get": operation(
            "Deliveries across runs from the ledger in SQL, newest queued first, a page at a time",
            "read",
            {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["items", "next"],
                        "properties": {
                            "items": {"type": "array", "items": ref("LedgerDelivery")},
                            "next": {
                                **NULLABLE_TEXT,
                                "description": "the cursor of the next page; null: no more",
                            },
                        },
                    },
                    "one page of deliveries",
                ),
                **errors("400", "503"),
            },
            operationId="listDeliveries",
            parameters=_QUERY,
        )
    },
}

__all__ = ["PATHS", "RUN_LIST", "SCHEMAS"]
