"""Webhook subscriptions' part of the OpenAPI document (see `runherald.api_subscriptions`)."""

from __future__ import annotations

from typing import Any

from runherald.openapi_parts import errors, json_body, operation, ref
from runherald.subscriptions import STATES

_NAME = "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
_FIELDS: dict[str, Any] = {
    "url": {
        "type": "string",
        "description": "http:// or https://: every matching state change is POSTed there",
    },
    "matchers": {
        "type": ["array", "null"],
        "items": {"type": "string", "description": 'Alertmanager syntax: field="v", !=, =~, !~'},
        "description": "fields: project, name, uid, state, iteration, labels.<key>; none: every run",
    },
    "states": {
        "type": ["array", "null"],
        "items": {"type": "string", "enum": list(STATES)},
        "description": "the run states it wants; none: every state",
    },
    "secret": {
        "type": ["string", "object", "null"],
        "description": "Standard Webhooks signing secret (whsec_... or any text), or a reference ({secret:"
        " NAME}, ${VAR}); stored sealed, shown sealed or REDACTED",
    },
}

SCHEMAS: dict[str, Any] = {
    "Subscription": {
        "type": "object",
        "description": "a webhook subscription: each matching run state change POSTed as a CloudEvent",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {
            "name": {
                "type": ["string", "null"],
                "pattern": _NAME,
                "description": "generated when none is given (POST); in a PUT, if given, the path's",
            },
            **_FIELDS,
        },
    },
    "StoredSubscription": {
        "type": "object",
        "required": ["name", "url", "matchers", "states"],
        "properties": {
            "name": {"type": "string"},
            "url": {"type": "string"},
            "matchers": {"type": "array", "items": {"type": "string"}},
            "states": {"type": "array", "items": {"type": "string"}},
            "secret": {"type": ["string", "object"], "description": "sealed or REDACTED"},
            "generated_name": {"type": "boolean", "description": "(POST) whether the name was generated"},
        },
    },
}

_PARAMETERS = [
    {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "pattern": _NAME}}
]
_BODY = {"required": True, "content": {"application/json": {"schema": ref("Subscription")}}}

PATHS: dict[str, Any] = {
    "/api/v1/subscriptions": {
        "get": operation(
            "Every webhook subscription, by name",
            "read",
            {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["subscriptions"],
                        "properties": {
                            "subscriptions": {"type": "array", "items": ref("StoredSubscription")}
                        },
                    },
                    "the subscriptions",
                ),
                **errors("503"),
            },
            operationId="listSubscriptions",
        ),
        "post": operation(
            "Add a webhook subscription (a name is generated when none is given)",
            "admin",
            {
                "201": json_body(ref("StoredSubscription"), "stored and in force on this worker"),
                **errors("400", "409", "413", "503"),
            },
            operationId="addSubscription",
            requestBody=_BODY,
        ),
    },
    "/api/v1/subscriptions/{name}": {
        "parameters": _PARAMETERS,
        "get": operation(
            "One webhook subscription",
            "read",
            {"200": json_body(ref("StoredSubscription"), "the subscription"), **errors("404", "503")},
            operationId="getSubscription",
        ),
        "put": operation(
            "Create or replace one webhook subscription (identical content is left as it is)",
            "admin",
            {
                "200": json_body(ref("Applied"), "stored and in force on this worker"),
                **errors("400", "413", "503"),
            },
            operationId="putSubscription",
            requestBody=_BODY,
        ),
        "delete": operation(
            "Delete one webhook subscription",
            "admin",
            {"200": json_body(ref("Applied"), "deleted"), **errors("404", "503")},
            operationId="deleteSubscription",
        ),
    },
}

__all__ = ["PATHS", "SCHEMAS"]
