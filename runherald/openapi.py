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
    "409": ("Conflict", "the change conflicts with what is stored (a receiver that rules still name)"),
    "413": ("TooLarge", "the request body is larger than the worker accepts"),
    "503": ("Unavailable", "not yet: the alert configuration is loading, or a change is not yet read back"),
}

_RUN_PARAMETERS = [
    {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    for name in ("project", "uid")
]

_NAME_PARAMETER = [
    {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"},
    }
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
    "Rule": {
        "type": "object",
        "description": "an alert rule: every run whose fields satisfy all matchers notifies each receiver",
        "properties": {
            "name": {"type": "string", "description": "in a PUT, if given, the name in the path"},
            "matchers": {"type": "array", "items": {"type": "string"}, "description": 'project=~"prod-.*"'},
            "when": {"type": "array", "items": {"type": "string"}},
            "receivers": {"type": "array", "items": {"type": "string"}},
            **{name: {"type": "string"} for name in ("condition", "severity", "message")},
        },
    },
    "Receiver": {
        "type": "object",
        "description": "a destination defined once; literal secret_params values are never shown",
        "properties": {
            "name": {"type": "string", "description": "in a PUT, if given, the name in the path"},
            "kind": {"type": "string"},
            "params": {"type": "object"},
            "secret_params": {"type": "object"},
        },
    },
    "Applied": {
        "type": "object",
        "required": ["name", "action"],
        "properties": {
            "name": {"type": "string"},
            "action": {"type": "string", "enum": ["created", "updated", "unchanged", "deleted"]},
        },
    },
    "Problem": {
        "type": "object",
        "required": ["path", "message"],
        "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
    },
    "ConfigChanges": {
        "type": "object",
        "required": ["changes", "warnings", "dry_run"],
        "properties": {
            "changes": {
                "type": "array",
                "description": "in the order they were written: receivers, rules, pruned rules, receivers",
                "items": {
                    "type": "object",
                    "required": ["type", "name", "action"],
                    "properties": {
                        "type": {"type": "string", "enum": ["receiver", "rule"]},
                        "name": {"type": "string"},
                        "action": {"type": "string", "enum": ["created", "updated", "unchanged", "deleted"]},
                    },
                },
            },
            "warnings": {"type": "array", "items": _ref("Problem")},
            "dry_run": {"type": "boolean"},
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
    **{
        f"/api/v1/{section}": {
            "get": _operation(
                f"Every {kind}, by name",
                "read",
                {
                    "200": _json_body(
                        {
                            "type": "object",
                            "required": [section],
                            "properties": {section: {"type": "array", "items": _ref(schema)}},
                        },
                        f"{{{section!r}: [...]}}: a document `rules apply` takes",
                    ),
                    **_errors("503"),
                },
                operationId=f"list{schema}s",
            )
        }
        for section, kind, schema in (("rules", "rule", "Rule"), ("receivers", "receiver", "Receiver"))
    },
    **{
        f"/api/v1/{section}/{{name}}": {
            "parameters": _NAME_PARAMETER,
            "get": _operation(
                f"One {kind}",
                "read",
                {"200": _json_body(_ref(schema), f"the {kind}"), **_errors("404", "503")},
                operationId=f"get{schema}",
            ),
            "put": _operation(
                f"Create or replace one {kind} (checked first; identical content is left as it is)",
                "admin",
                {
                    "200": _json_body(_ref("Applied"), "stored and in force on this worker"),
                    **_errors("400", "413", "503"),
                },
                operationId=f"put{schema}",
                requestBody=_json_body(_ref(schema), f"the {kind}") | {"required": True},
            ),
            "delete": _operation(
                f"Delete one {kind}",
                "admin",
                {
                    "200": _json_body(_ref("Applied"), "deleted"),
                    **_errors(*(("404", "409", "503") if kind == "receiver" else ("404", "503"))),
                },
                operationId=f"delete{schema}",
            ),
        }
        for section, kind, schema in (("rules", "rule", "Rule"), ("receivers", "receiver", "Receiver"))
    },
    "/api/v1/config": {
        "put": _operation(
            "Apply a configuration document: checked whole first (400 with every problem, nothing"
            " applied), then receivers, rules, and with prune the deletions of what it no longer holds",
            "admin",
            {
                "200": _json_body(_ref("ConfigChanges"), "what changed (with dry_run: what would)"),
                **_errors("400", "413", "503"),
            },
            operationId="applyConfig",
            requestBody=_json_body(
                {
                    "type": "object",
                    "required": ["document"],
                    "additionalProperties": False,
                    "properties": {
                        "document": {
                            "type": "object",
                            "description": "{receivers: [...], rules: [...]}, as `rules apply` reads it",
                        },
                        "prune": {"type": "boolean", "description": "delete what the document does not hold"},
                        "dry_run": {
                            "type": "boolean",
                            "description": "say what would change; change nothing",
                        },
                    },
                },
                "the document and how to apply it",
            )
            | {"required": True},
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
