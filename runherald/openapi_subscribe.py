"""The OpenAPI description of the live subscription route, ``GET /api/v1/subscribe`` (Server-Sent Events)."""

from __future__ import annotations

from typing import Any

from runherald.openapi_parts import errors, operation

_QUERY = [
    {
        "name": "project",
        "in": "query",
        "description": "only runs of projects matching this shell glob (ml-*)",
        "schema": {"type": "string"},
    },
    {
        "name": "state",
        "in": "query",
        "description": "only these run states (any of; repeat it, or separate with commas)",
        "schema": {"type": "array", "items": {"type": "string"}},
        "style": "form",
        "explode": True,
    },
    {
        "name": "label",
        "in": "query",
        "description": "only runs with these labels (all of), each key=value",
        "schema": {"type": "array", "items": {"type": "string", "pattern": "^[^=]+="}},
        "style": "form",
        "explode": True,
    },
    {
        "name": "since",
        "in": "query",
        "description": "start in the past: RFC 3339 (2026-01-02T03:04:05Z) or a duration back from now (10m)",
        "schema": {"type": "string"},
    },
    {
        "name": "Last-Event-ID",
        "in": "header",
        "description": "resume after this event (its id); `since` is then ignored",
        "schema": {"type": "string"},
    },
]

_STREAM = (
    "Server-Sent Events: each run state change is `event: run`, `id: <cursor>` (opaque; send it back as "
    "Last-Event-ID to resume), `data: <run dict>` (MLRun shape, secret_params redacted). A comment "
    "line every 15 s on a quiet stream; a last comment says why the server ended a stream (a client too "
    "far behind, a worker stopping): reconnect with Last-Event-ID."
)

PATHS: dict[str, Any] = {
    "/api/v1/subscribe": {
        "get": operation(
            "Run state changes as they happen (Server-Sent Events), from now, a cursor or a time",
            "read",
            {
                "200": {
                    "description": _STREAM,
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **errors("400", "503"),
            },
            operationId="subscribe",
            parameters=_QUERY,
        )
    },
}

__all__ = ["PATHS"]
