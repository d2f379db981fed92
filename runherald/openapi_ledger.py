"""The OpenAPI description of the ledger queries: ``GET /api/v1/deliveries`` (DESIGN.md "Ledger queries")."""

from __future__ import annotations

from typing import Any

from runherald.openapi_parts import NULLABLE_TEXT, errors, json_body, operation, ref

_TIME = "RFC 3339 (2026-01-02T03:04:05Z) or a duration back from now (10m, 2h, 1d)"


def _text(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string"}}


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
    {
        "name": "limit",
        "in": "query",
        "description": "items per page (default 100)",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    _text("cursor", "the next page: the `next` of the page before (opaque)"),
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

PATHS: dict[str, Any] = {
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

__all__ = ["PATHS", "SCHEMAS"]
