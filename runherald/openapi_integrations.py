"""The named integrations' part of the OpenAPI document (see `runherald.api_integrations`)."""

from __future__ import annotations

from typing import Any

from runherald.integrations import ADAPTER_NAMES
from runherald.openapi_parts import errors, json_body, operation, ref

_NAME_PARAMETER = [
    {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"},
    }
]
_SECRET = {
    "description": "text (sealed before it is stored, shown sealed or REDACTED), or a reference:"
    " ${RUNHERALD_SECRET_NAME} or {secret: NAME}",
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "object", "required": ["secret"], "properties": {"secret": {"type": "string"}}},
        {"type": "object", "required": ["sealed"], "properties": {"sealed": {"type": "string"}}},
    ],
}

SCHEMAS: dict[str, Any] = {
    "Integration": {
        "type": "object",
        "description": "an inbound webhook: its adapter, the default project of shapes naming none, its auth",
        "required": ["adapter", "auth"],
        "properties": {
            "name": {"type": "string", "description": "in a PUT, if given, the name in the path"},
            "adapter": {"type": "string", "enum": list(ADAPTER_NAMES)},
            "project": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"},
            "auth": {
                "type": "object",
                "description": "exactly one of token_sha256, hmac_secret (Standard Webhooks), github_secret"
                " (X-Hub-Signature-256; the github-workflow-run adapter's, and only its)",
                "minProperties": 1,
                "maxProperties": 1,
                "properties": {
                    "token_sha256": {
                        "type": "string",
                        "pattern": "^[0-9a-f]{64}$",
                        "description": "the lowercase hex SHA-256 of the bearer token",
                    },
                    "hmac_secret": _SECRET,
                    "github_secret": _SECRET,
                },
            },
        },
    },
}

PATHS: dict[str, Any] = {
    "/api/v1/integrations": {
        "get": operation(
            "Every integration, by name (secrets never shown)",
            "read",
            {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["integrations"],
                        "properties": {"integrations": {"type": "array", "items": ref("Integration")}},
                    },
                    "{'integrations': [...]}",
                ),
                **errors("503"),
            },
            operationId="listIntegrations",
        )
    },
    "/api/v1/integrations/{name}": {
        "parameters": _NAME_PARAMETER,
        "get": operation(
            "One integration (secrets never shown)",
            "read",
            {"200": json_body(ref("Integration"), "the integration"), **errors("404", "503")},
            operationId="getIntegration",
        ),
        "put": operation(
            "Create or replace one integration (checked first; identical content is left as it is)",
            "admin",
            {
                "200": json_body(ref("Applied"), "stored and in force on this worker"),
                **errors("400", "413", "503"),
            },
            operationId="putIntegration",
            requestBody=json_body(ref("Integration"), "the integration") | {"required": True},
        ),
        "delete": operation(
            "Delete one integration",
            "admin",
            {"200": json_body(ref("Applied"), "deleted"), **errors("404", "503")},
            operationId="deleteIntegration",
        ),
        "post": operation(
            "The integration's inbound webhook: NOT authenticated by the tokens file but by the"
            " integration's own auth (Authorization: Bearer <its token>; Standard Webhooks webhook-id,"
            " webhook-timestamp, webhook-signature within 5 minutes, an id once; GitHub's"
            " X-Hub-Signature-256 and X-GitHub-Event workflow_run, ping answered 200). The body is adapted"
            " by the integration's adapter and published as POST /api/v1/runs publishes",
            None,
            {
                "202": json_body(ref("Accepted"), "published, keyed project/uid"),
                "200": json_body(ref("Accepted"), "GitHub's ping: nothing published"),
                **errors("400", "401", "404", "409", "413", "422", "503"),
            },
            operationId="receiveIntegration",
            requestBody={
                "required": True,
                "description": "what the integration's adapter takes (a GitHub workflow_run payload, a run"
                " dict, an MLRun webhook body, a CloudEvent, the generic shape)",
                "content": {"application/json": {"schema": {}}},
            },
        ),
    },
}

__all__ = ["PATHS", "SCHEMAS"]
