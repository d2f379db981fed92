"""The OpenAPI document's part for `POST /api/v1/runs` in every shape (runherald.ingress, runherald.adapters):
the shapes' schemas, the query parameters and the hop header, and the operation itself."""

from __future__ import annotations

from typing import Any

from runherald.adapters import ADAPTERS, HOPS_HEADER
from runherald.openapi_parts import errors, json_body, operation, ref

_KEY_PART = {"type": "string", "minLength": 1, "pattern": "^[^/]+$", "description": "no '/'"}
_PROJECT = {"type": "string", "pattern": "^[^/]*$", "description": "no '/'; empty: the default project"}
_OBJECT_OR_NULL = {"type": ["object", "null"]}
_DATA = [ref(name) for name in ("Run", "GenericRun", "MLRunWebhookBody")]  # what a CloudEvent may carry

SCHEMAS: dict[str, Any] = {
    "GenericRun": {
        "type": "object",
        "description": "the generic shape, for CI systems and schedulers; project falls back to ?project=",
        "required": ["uid", "state"],
        "properties": {
            "project": _PROJECT,
            "uid": _KEY_PART,
            "state": {"type": "string", "minLength": 1},
            "name": {"description": "the run's name"},
            "labels": _OBJECT_OR_NULL,
            "results": _OBJECT_OR_NULL,
            "error": {"description": "the error, when the run failed"},
            "last_update": {"description": "RFC 3339: an older state arriving later is ignored"},
        },
    },
    "MLRunWebhookRun": {
        "type": "object",
        "description": "a run in an MLRun webhook body; its own notifications were sent by MLRun",
        "required": ["metadata", "status"],
        "properties": {
            "metadata": {
                "type": "object",
                "required": ["uid"],
                "properties": {"project": _PROJECT, "uid": _KEY_PART, "labels": _OBJECT_OR_NULL},
            },
            "spec": {
                "type": ["object", "null"],
                "properties": {"notifications": {"type": "array", "items": ref("Notification")}},
            },
            "status": {
                "type": "object",
                "required": ["state"],
                "properties": {
                    "state": {"type": "string", "minLength": 1},
                    "notifications": {"type": "object"},
                },
            },
        },
    },
    "MLRunWebhookBody": {
        "type": "object",
        "description": "what MLRun's webhook notification POSTs: {message, severity, runs}",
        "required": ["runs"],
        "properties": {
            "message": {"description": "MLRun's message (not read)"},
            "severity": {"description": "MLRun's severity (not read)"},
            "runs": {"type": "array", "minItems": 1, "items": ref("MLRunWebhookRun")},
        },
    },
    "CloudEvent": {
        "type": "object",
        "description": "CloudEvents 1.0, structured mode; its data is any other shape (or data_base64)",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"const": "1.0"},
            **{name: {"type": "string", "minLength": 1} for name in ("id", "source", "type")},
            "time": {"type": "string", "description": "RFC 3339; the runs' last_update when they have none"},
            "subject": {"type": "string"},
            "datacontenttype": {"type": "string", "description": "JSON: application/json or */*+json"},
            "data": {
                "anyOf": [
                    *_DATA,
                    {"type": "array", "minItems": 1, "items": {"anyOf": _DATA}},
                    {"type": "string", "description": "JSON text of one of these"},
                ]
            },
            "data_base64": {"type": "string"},
        },
    },
}

_ONE = [ref(name) for name in ("Run", "MLRunWebhookBody", "CloudEvent", "GenericRun")]

PATHS: dict[str, Any] = {
    "/api/v1/runs": {
        "post": operation(
            "Publish runs in any shape: run dicts, an MLRun webhook body, CloudEvents, the generic shape",
            "publish",
            {
                "202": json_body(ref("Accepted"), "published, keyed project/uid"),
                **errors("400", "413", "508"),
            },
            operationId="publishRuns",
            description=(
                "One record or a JSON array (or NDJSON, one per line) of: MLRun run dicts (checked at the"
                " door, each problem with its path), MLRun webhook bodies (their runs' own notifications"
                " are not sent again), CloudEvents 1.0 (structured, application/cloudevents+json, or"
                " binary: ce-specversion, ce-id, ce-source, ce-type headers with the data as the body),"
                " or the generic shape. A body no adapter recognises is refused with each adapter's"
                f" reason; a request whose {HOPS_HEADER} is over max_hops with 508 (a loop)."
            ),
            parameters=[
                {
                    "name": "adapter",
                    "in": "query",
                    "schema": {"type": "string", "enum": list(ADAPTERS)},
                    "description": "only this adapter (default: the first that recognises the body)",
                },
                {"name": "project", "in": "query", "schema": _PROJECT},
                {
                    "name": HOPS_HEADER,
                    "in": "header",
                    "schema": {"type": "integer", "minimum": 0},
                    "description": "how often these runs came back through runherald (its webhooks set it)",
                },
            ],
            requestBody={
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"anyOf": [*_ONE, {"type": "array", "items": {"anyOf": _ONE}}]}
                    },
                    "application/cloudevents+json": {"schema": ref("CloudEvent")},
                },
            },
        )
    },
}

__all__ = ["PATHS", "SCHEMAS"]
