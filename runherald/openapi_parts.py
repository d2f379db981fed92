"""The pieces every part of the OpenAPI document is written with: references, bodies, errors, operations."""

from __future__ import annotations

from typing import Any

REF = "#/components/schemas/"
NULLABLE_TEXT = {"type": ["string", "null"]}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": REF + name}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*statuses: str) -> dict[str, Any]:
    return {status: {"$ref": f"#/components/responses/{ERROR_RESPONSES[status][0]}"} for status in statuses}


ERROR_RESPONSES = {
    "400": ("BadRequest", "the input is invalid; `problems` says where, when it can"),
    "401": ("Unauthorized", "no bearer token, or not a valid one (WWW-Authenticate: Bearer)"),
    "403": ("Forbidden", "the token lacks the scope this operation needs"),
    "404": ("NotFound", "no such run, or no such resource"),
    "409": ("Conflict", "the change conflicts with what is stored (a receiver or rule others still name)"),
    "413": ("TooLarge", "the request body is larger than the worker accepts"),
    "422": ("Unprocessable", "the body is not a shape the adapter takes, or not a valid run"),
    "508": ("LoopDetected", "the request came back through runherald more than max_hops times"),
    "503": (
        "Unavailable",
        "the worker's alert configuration is still loading, or a change is not in force yet",
    ),
}


def operation(summary: str, scope: str | None, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": responses, **extra}
    if scope is None:
        operation["security"] = []  # public: no token needed
    else:
        operation["security"] = [{"bearer": [scope]}]
        operation["responses"] = {**responses, **errors("401", "403")}
    return operation


__all__ = ["ERROR_RESPONSES", "NULLABLE_TEXT", "REF", "errors", "json_body", "operation", "ref"]
