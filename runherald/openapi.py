"""The OpenAPI 3.1 document of the HTTP API, served at ``/api/v1/openapi.json``.

Written by hand beside `runherald.api`: a route added there is described here (the tests fuzz
every operation of this document against a worker, and check that every route is in it).
"""

from __future__ import annotations

from typing import Any

from runherald.auth import SCOPES

_REF = "#/components/schemas/"
_NULLABLE_TEXT = {"type": ["string", "null"]}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF + name}


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: str) -> dict[str, Any]:
    return {status: {"$ref": f"#/components/responses/{_ERROR_RESPONSES[status][0]}"} for status in statuses}


_ERROR_RESPONSES = {
    "400": ("BadRequest", "the input is invalid; `problems` says where, when it can"),
    "401": ("Unauthorized", "no bearer token, or not a valid one (WWW-Authenticate: Bearer)"),
    "403": ("Forbidden", "the token lacks the scope this operation needs"),
    "404": ("NotFound", "no such run, or no such resource"),
    "413": ("TooLarge", "the request body is larger than the worker accepts"),
    "503": ("Unavailable", "the worker is not ready for this yet (e.g. still reading the rules topic)"),
}

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
                "properties": {"notifications": {"type": "array", "items": _ref("Notification")}},
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
            **{name: _NULLABLE_TEXT for name in ("kind", "name", "message", "severity", "condition")},
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
        },
    },
    "DeliveryStatus": {
        "type": "object",
        "required": ["status", "attempts"],
        "properties": {
            "status": _STATUS,
            "sent_time": _NULLABLE_TEXT,
            "reason": _NULLABLE_TEXT,
            "attempts": {"type": "integer", "minimum": 0},
        },
    },
    "NotificationStatus": {
        "description": "MLRun's view (the delivery of the latest state notified), and one entry per state",
        "allOf": [
            _ref("DeliveryStatus"),
            {
                "type": "object",
                "required": ["states"],
                "properties": {
                    "state": _NULLABLE_TEXT,
                    "kind": _NULLABLE_TEXT,
                    "states": {"type": "object", "additionalProperties": _ref("DeliveryStatus")},
                },
            },
        ],
    },
    "RuleTest": {
        "type": "object",
        "required": ["run"],
        "additionalProperties": False,
        "properties": {
            "run": _ref("Run"),
            "rules": {
                "type": "array",
                "items": {"type": "string"},
                "description": "only these rules, in this order (default: every stored rule, by name)",
            },
        },
    },
    "RuleTestAnswer": {
        "type": "object",
        "required": ["rules"],
        "properties": {
            "rules": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["rule", "matched", "failed_matcher", "receivers"],
                    "properties": {
                        "rule": {"type": "string"},
                        "matched": {"type": "boolean"},
                        "failed_matcher": {
                            **_NULLABLE_TEXT,
                            "description": "the first matcher that did not hold; null when matched",
                        },
                        "receivers": {"type": "array", "items": _ref("RuleTestReceiver")},
                    },
                },
            }
        },
    },
    "RuleTestReceiver": {
        "type": "object",
        "description": "one receiver of a matching rule: would its notification be sent now, and what",
        "required": ["receiver", "notification", "kind", "send", "reason", "silence", "rendered"],
        "properties": {
            "receiver": {"type": "string"},
            "notification": {"type": "string", "description": "{rule}/{receiver}"},
            "kind": {**_NULLABLE_TEXT, "description": "null when the receiver does not exist"},
            "send": {"type": "boolean"},
            "reason": {"type": "string", "description": "the when/condition decision, or why not"},
            "silence": {**_NULLABLE_TEXT, "description": "the id of an active silence matching it"},
            "rendered": {
                "type": ["object", "null"],
                "description": "what the receiver's channel would send: kind, message, severity, and"
                " data and text (the channel's preview), or error; secret_params are never rendered",
            },
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "ledger_view_caught_up", "assigned_partitions"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "starting"]},
            "ledger_view_caught_up": {"type": "boolean"},
            "assigned_partitions": {"type": "integer"},
            "in_flight": {"type": "integer"},
            "runs_known": {"type": "integer"},
        },
    },
}


def _operation(summary: str, scope: str | None, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": responses, **extra}
    if scope is None:
        operation["security"] = []  # public: no token needed
    else:
        operation["security"] = [{"bearer": [scope]}]
        operation["responses"] = {**responses, **_errors("401", "403")}
    return operation


_PATHS: dict[str, Any] = {
    "/api/v1/runs": {
        "post": _operation(
            "Publish a run dict, or a list of them",
            "publish",
            {"202": _json_body(_ref("Accepted"), "published, keyed project/uid"), **_errors("400", "413")},
            operationId="publishRuns",
            requestBody={
                "required": True,
                "description": "one run, a JSON array of runs, or NDJSON (one run per line)",
                "content": {
                    "application/json": {
                        "schema": {"oneOf": [_ref("Run"), {"type": "array", "items": _ref("Run")}]}
                    },
                },
            },
        )
    },
    "/api/v1/runs/{project}/{uid}": {
        "parameters": _RUN_PARAMETERS,
        "get": _operation(
            "The latest run dict, its status.notifications filled from the ledger (secrets redacted)",
            "read",
            {"200": _json_body(_ref("Run"), "the run"), **_errors("404")},
            operationId="getRun",
        ),
    },
    "/api/v1/runs/{project}/{uid}/notifications": {
        "parameters": _RUN_PARAMETERS,
        "get": _operation(
            "The run's notification statuses: MLRun's view per name, and one per state",
            "read",
            {
                "200": _json_body(
                    {"type": "object", "additionalProperties": _ref("NotificationStatus")},
                    "by notification name",
                ),
                **_errors("404"),
            },
            operationId="getRunNotifications",
        ),
    },
    "/api/v1/rules/test": {
        "post": _operation(
            "Dry run of the alert rules for a run: which match, what each receiver would get; nothing is"
            " sent",
            "read",
            {
                "200": _json_body(_ref("RuleTestAnswer"), "one entry per rule"),
                **_errors("400", "413", "503"),
            },
            operationId="testRules",
            requestBody={
                "required": True,
                "content": {"application/json": {"schema": _ref("RuleTest")}},
            },
        )
    },
    "/api/v1/openapi.json": {
        "get": _operation(
            "This document",
            None,
            {"200": _json_body({"type": "object"}, "the OpenAPI document")},
            operationId="getOpenApi",
        )
    },
    "/healthz": {
        "get": _operation(
            "Liveness: 200 while the process serves",
            None,
            {"200": _json_body(_ref("Health"), "alive")},
            operationId="healthz",
        )
    },
    "/readyz": {
        "get": _operation(
            "Readiness: 503 until the worker's ledger view has caught up",
            None,
            {
                "200": _json_body(_ref("Health"), "ready"),
                "503": _json_body(_ref("Health"), "starting"),
            },
            operationId="readyz",
        )
    },
    "/metrics": {
        "get": _operation(
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
        "schemas": _SCHEMAS,
        "responses": {
            name: _json_body(_ref("Error"), description) for name, description in _ERROR_RESPONSES.values()
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
