"""The OpenAPI 3.1 document of the HTTP API, served at ``/api/v1/openapi.json``.

Written by hand beside `runherald.api`: a route added there is described here (the tests fuzz
every operation of this document against a worker, and check that every route is in it).
"""

from __future__ import annotations

from typing import Any

from runherald.auth import SCOPES
from runherald.openapi_alerts import PATHS as ALERT_PATHS
from runherald.openapi_alerts import SCHEMAS as ALERT_SCHEMAS
from runherald.openapi_ingress import PATHS as INGRESS_PATHS
from runherald.openapi_ingress import SCHEMAS as INGRESS_SCHEMAS
from runherald.openapi_integrations import PATHS as INTEGRATION_PATHS
from runherald.openapi_integrations import SCHEMAS as INTEGRATION_SCHEMAS
from runherald.openapi_ledger import PATHS as LEDGER_PATHS
from runherald.openapi_ledger import RUN_LIST
from runherald.openapi_ledger import SCHEMAS as LEDGER_SCHEMAS
from runherald.openapi_parts import ERROR_RESPONSES, NULLABLE_TEXT, errors, json_body, operation, ref
from runherald.openapi_subscribe import PATHS as SUBSCRIBE_PATHS
from runherald.openapi_subscriptions import PATHS as SUBSCRIPTION_PATHS
from runherald.openapi_subscriptions import SCHEMAS as SUBSCRIPTION_SCHEMAS

_RUN_PARAMETERS = [
    {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    for name in ("project", "uid")
]

_KEY_PART = {"type": "string", "minLength": 1, "pattern": "^[^/]+$", "description": "no '/'"}
_STATUS = {"type": "string", "enum": ["pending", "sent", "error", "skipped"]}
_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "what went wrong, in one line"},
            "reasons": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "a body no adapter recognised: why not, by adapter",
            },
            "problems": {
                "type": "array",
                "description": "validation problems, each at a field's path (spec.notifications[0].kind)",
                "items": {
                    "type": "object",
                    "required": ["path", "message"],
                    "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    },
    "Run": {
        "type": "object",
        "description": "a run dict in the shape of MLRun's RunObject.to_dict() (what the pipeline accepts)",
        "required": ["metadata", "status"],
        "properties": {
            "metadata": {
                "type": "object",
                "required": ["project", "uid"],
                "properties": {
                    "project": _KEY_PART,
                    "uid": _KEY_PART,
                    # Described, not checked: the pipeline copes with any value of these two.
                    "name": {"description": "the run's name (text)"},
                    "iteration": {"description": "hyper-parameter iteration: 0 for the parent run"},
                    "labels": {"type": ["object", "null"]},
                },
            },
            "spec": {
                "type": "object",
                "properties": {"notifications": {"type": "array", "items": ref("Notification")}},
            },
            "status": {
                "type": "object",
                "required": ["state"],
                "properties": {
                    "state": {"type": "string", "minLength": 1},
                    "notifications": {
                        "type": "object",
                        "description": "name: {status, sent_time, reason}, or the status alone",
                    },
                },
            },
        },
    },
    "Notification": {
        "type": "object",
        "description": "MLRun's Notification: kind, name, message, severity, when, condition, params, ...",
        "properties": {
            **{name: NULLABLE_TEXT for name in ("kind", "name", "message", "severity", "condition")},
            "when": {"type": "array", "items": {"type": "string"}},
            "params": {"type": ["object", "null"]},
            "secret_params": {"type": ["object", "null"]},
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["accepted", "runs"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "runs": {"type": "array", "items": {"type": "string", "description": "project/uid"}},
            "adapter": {"type": "string", "description": "the adapter(s) that recognised the body"},
        },
    },
    "DeliveryStatus": {
        "type": "object",
        "required": ["status", "attempts"],
        "properties": {
            "status": _STATUS,
            "sent_time": NULLABLE_TEXT,
            "reason": NULLABLE_TEXT,
            "attempts": {"type": "integer", "minimum": 0},
            "queued_at": {**NULLABLE_TEXT, "description": "when the delivery was decided (RFC 3339)"},
            "response_code": {
                "type": ["integer", "null"],
                "description": "the latest attempt's HTTP status or SMTP reply code",
            },
            "attempt_log": {
                "type": "array",
                "description": "the latest attempts (at most 20), oldest first",
                "items": ref("Attempt"),
            },
        },
    },
    "Attempt": {
        "type": "object",
        "required": ["at", "outcome"],
        "properties": {
            "at": {"type": "string", "description": "when the request went out (RFC 3339)"},
            "outcome": {"type": "string", "enum": ["sent", "retryable", "permanent"]},
            "response_code": {"type": ["integer", "null"]},
            "latency_ms": {"type": ["number", "null"]},
            "reason": NULLABLE_TEXT,
        },
    },
    "NotificationStatus": {
        "description": "MLRun's view (the delivery of the latest state notified), and one entry per state",
        "allOf": [
            ref("DeliveryStatus"),
            {
                "type": "object",
                "required": ["states"],
                "properties": {
                    "state": NULLABLE_TEXT,
                    "kind": NULLABLE_TEXT,
                    "states": {"type": "object", "additionalProperties": ref("DeliveryStatus")},
                },
            },
        ],
    },
    "Health": {
        "type": "object",
        "required": ["status", "ledger_view_caught_up", "assigned_partitions"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "starting"]},
            "ledger_view_caught_up": {"type": "boolean"},
            "alert_configuration_loaded": {"type": "boolean"},
            "alert_rules": {"type": "integer"},
            "receivers": {"type": "integer"},
            "silences": {"type": "integer"},
            "assigned_partitions": {"type": "integer"},
            "in_flight": {"type": "integer"},
            "runs_known": {"type": "integer"},
            "ledger_sql": {
                "type": "string",
                "enum": ["off", "catching_up", "caught_up"],
                "description": "the ledger in SQL: caught_up once it holds all the ledger view has read",
            },
        },
    },
}


_PATHS: dict[str, Any] = {
    **INGRESS_PATHS,
    "/api/v1/runs": {**INGRESS_PATHS["/api/v1/runs"], **RUN_LIST},
    "/api/v1/runs/{project}/{uid}": {
        "parameters": _RUN_PARAMETERS,
        "get": operation(
            "The latest run dict, its status.notifications filled from the ledger (secrets redacted)",
            "read",
            {"200": json_body(ref("Run"), "the run"), **errors("404")},
            operationId="getRun",
        ),
    },
    "/api/v1/runs/{project}/{uid}/notifications": {
        "parameters": _RUN_PARAMETERS,
        "get": operation(
            "The run's notification statuses: MLRun's view per name, and one per state",
            "read",
            {
                "200": json_body(
                    {"type": "object", "additionalProperties": ref("NotificationStatus")},
                    "by notification name",
                ),
                **errors("404"),
            },
            operationId="getRunNotifications",
        ),
    },
    **ALERT_PATHS,
    **SUBSCRIPTION_PATHS,
    **INTEGRATION_PATHS,
    **SUBSCRIBE_PATHS,
    **LEDGER_PATHS,
    "/api/v1/openapi.json": {
        "get": operation(
            "This document",
            None,
            {"200": json_body({"type": "object"}, "the OpenAPI document")},
            operationId="getOpenApi",
        )
    },
    "/healthz": {
        "get": operation(
            "Liveness: 200 while the process serves",
            None,
            {"200": json_body(ref("Health"), "alive")},
            operationId="healthz",
        )
    },
    "/readyz": {
        "get": operation(
            "Readiness: 503 until the worker's ledger view has caught up",
            None,
            {
                "200": json_body(ref("Health"), "ready"),
                "503": json_body(ref("Health"), "starting"),
            },
            operationId="readyz",
        )
    },
    "/metrics": {
        "get": operation(
            "Prometheus metrics",
            None,
            {
                "200": {
                    "description": "text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
            operationId="metrics",
        )
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "runherald",
        "version": "1",
        "description": 'Run-state notifications on Kafka. Every error is JSON {"error": ...}.',
    },
    "paths": _PATHS,
    "components": {
        "schemas": {
            **_SCHEMAS,
            **ALERT_SCHEMAS,
            **SUBSCRIPTION_SCHEMAS,
            **INTEGRATION_SCHEMAS,
            **INGRESS_SCHEMAS,
            **LEDGER_SCHEMAS,
        },
        "responses": {
            name: json_body(ref("Error"), description) for name, description in ERROR_RESPONSES.values()
        },
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": (
                    "A token from the tokens file (RUNHERALD_API_TOKENS_FILE; `runherald token create`)."
                    f" Scopes, named in each operation's security requirement: {', '.join(SCOPES)};"
                    " admin implies the others. Without a tokens file the API serves loopback only,"
                    " and needs no token."
                ),
            }
        },
    },
    "security": [{"bearer": []}],
}

__all__ = ["OPENAPI"]
