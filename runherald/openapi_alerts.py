"""The alert configuration's part of the OpenAPI document: rules, receivers, the whole document,
silences (see `runherald.api_rules`, `runherald.api_silences`, `runherald.api_rule_test`)."""

from __future__ import annotations

from typing import Any

from runherald.openapi_parts import NULLABLE_TEXT, errors, json_body, operation, ref

_NAME_PARAMETER = [
    {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"},
    }
]

_TIME = {"type": "string", "description": "ISO 8601, e.g. 2026-12-05T10:00:00Z (UTC if no offset)"}
_MATCHERS = {
    "type": "array",
    "minItems": 1,
    "items": {"type": "string", "description": 'Alertmanager syntax: field="v", !=, =~, !~'},
    "description": "fields: project, name, uid, state, iteration, labels.<key>, notification, receiver",
}
_SILENCE_PARAMETERS = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]

SCHEMAS: dict[str, Any] = {
    "RuleTest": {
        "type": "object",
        "required": ["run"],
        "additionalProperties": False,
        "properties": {
            "run": ref("Run"),
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
                            **NULLABLE_TEXT,
                            "description": "the first matcher that did not hold; null when matched",
                        },
                        "receivers": {"type": "array", "items": ref("RuleTestReceiver")},
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
            "kind": {**NULLABLE_TEXT, "description": "null when the receiver does not exist"},
            "send": {"type": "boolean"},
            "reason": {"type": "string", "description": "the when/condition decision, or why not"},
            "silence": {**NULLABLE_TEXT, "description": "the id of an active silence matching it"},
            "rendered": {
                "type": ["object", "null"],
                "description": "what the receiver's channel would send: kind, message, severity, and"
                " data and text (the channel's preview), or error; secret_params are never rendered",
            },
        },
    },
    "NewSilence": {
        "type": "object",
        "description": "a duration or ends_at; starts_at defaults to now, author to anonymous",
        "required": ["matchers", "comment"],
        "additionalProperties": False,
        "properties": {
            "matchers": _MATCHERS,
            "duration": {"type": "string", "description": "Alertmanager's grammar: 30s, 2h, 1h30m"},
            "starts_at": _TIME,
            "ends_at": _TIME,
            "comment": {"type": "string", "minLength": 1, "pattern": "\\S"},
            "author": {"type": "string", "description": "a name; default: anonymous"},
        },
    },
    "Silence": {
        "type": "object",
        "required": ["id", "matchers", "starts_at", "ends_at", "author", "comment", "state"],
        "properties": {
            "id": {"type": "string"},
            "matchers": {"type": "array", "items": {"type": "string"}},
            "starts_at": _TIME,
            "ends_at": _TIME,
            "created_at": _TIME,
            "author": {"type": "string"},
            "comment": {"type": "string"},
            "state": {"type": "string", "enum": ["active", "pending", "expired"]},
            "already_expired": {"type": "boolean", "description": "DELETE only: it had expired before"},
        },
    },
    "Rule": {
        "type": "object",
        "description": "an alert rule: every run whose fields satisfy all matchers notifies each receiver",
        "properties": {
            "name": {"type": "string", "description": "in a PUT, if given, the name in the path"},
            "matchers": {"type": "array", "items": {"type": "string"}, "description": 'project=~"prod-.*"'},
            "when": {
                "type": "array",
                "description": "run states, regressed, recovered, or {state_changed: {from: [..], to: [..]}}",
                "items": {"oneOf": [{"type": "string"}, {"type": "object"}]},
            },
            "receivers": {"type": "array", "items": {"type": "string"}},
            **{name: {"type": "string"} for name in ("condition", "severity", "message")},
            "group_by": {
                "type": "array",
                "items": {"type": "string"},
                "description": "[project, labels.team]",
            },
            **{
                name: {"type": "string", "description": "a duration: 30s, 5m, 1h30m"}
                for name in ("group_wait", "group_interval", "repeat_interval")
            },
            "inhibits": {"type": "array", "items": {"type": "string"}, "description": "rules it mutes"},
            "inhibit_equal": {
                "type": "array",
                "items": {"type": "string"},
                "description": "fields whose values the muted runs share with the run it fired for",
            },
            "inhibit_for": {"type": "string", "description": "how long, e.g. 30m (required with inhibits)"},
        },
    },
    "Inhibition": {
        "type": "object",
        "description": "rule `source` fired for `run`: until `until`, the `inhibited` rules' deliveries"
        " for runs with the `equal` field values are skipped",
        "required": ["source", "inhibited", "equal", "run", "started", "until"],
        "properties": {
            "source": {"type": "string"},
            "inhibited": {"type": "array", "items": {"type": "string"}},
            "equal": {"type": "object", "additionalProperties": {"type": "string"}},
            "run": {"type": "string", "description": "{project}/{uid}"},
            "started": _TIME,
            "until": _TIME,
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
            "rate_limit": {
                "type": "object",
                "description": "at most per_second messages a second (burst at once), across all workers",
                "properties": {"per_second": {"type": "number"}, "burst": {"type": "integer"}},
            },
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
                "description": "in the order they were written: receivers, rules, integrations,"
                " subscriptions, then the pruned rules, receivers, integrations, subscriptions",
                "items": {
                    "type": "object",
                    "required": ["type", "name", "action"],
                    "properties": {
                        "type": {
                            "type": "string",
                            "enum": ["receiver", "rule", "integration", "subscription"],
                        },
                        "name": {"type": "string"},
                        "action": {"type": "string", "enum": ["created", "updated", "unchanged", "deleted"]},
                    },
                },
            },
            "warnings": {"type": "array", "items": ref("Problem")},
            "dry_run": {"type": "boolean"},
        },
    },
}

PATHS: dict[str, Any] = {
    "/api/v1/inhibitions": {
        "get": operation(
            "The inhibitions in force: which rule muted which rules, for what field values, until when",
            "read",
            {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["inhibitions"],
                        "properties": {"inhibitions": {"type": "array", "items": ref("Inhibition")}},
                    },
                    "the active inhibitions, by rule",
                ),
                **errors("503"),
            },
            operationId="listInhibitions",
        )
    },
    "/api/v1/silences": {
        "get": operation(
            "Silences not yet expired (active, pending), or with expired=true the expired ones (5 days)",
            "read",
            {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["silences"],
                        "properties": {"silences": {"type": "array", "items": ref("Silence")}},
                    },
                    "the silences",
                ),
                **errors("400", "503"),
            },
            operationId="listSilences",
            parameters=[
                {"name": "expired", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}}
            ],
        ),
        "post": operation(
            "Add a silence: it mutes every delivery it matches until it ends",
            "admin",
            {"201": json_body(ref("Silence"), "added"), **errors("400", "413", "503")},
            operationId="addSilence",
            requestBody={"required": True, "content": {"application/json": {"schema": ref("NewSilence")}}},
        ),
    },
    "/api/v1/silences/{id}": {
        "parameters": _SILENCE_PARAMETERS,
        "get": operation(
            "One silence, with its state",
            "read",
            {"200": json_body(ref("Silence"), "the silence"), **errors("404", "503")},
            operationId="getSilence",
        ),
        "delete": operation(
            "Expire a silence: it ends now (already_expired says whether it had ended before)",
            "admin",
            {"200": json_body(ref("Silence"), "expired"), **errors("404", "503")},
            operationId="expireSilence",
        ),
    },
    **{
        f"/api/v1/{section}": {
            "get": operation(
                f"Every {kind}, by name",
                "read",
                {
                    "200": json_body(
                        {
                            "type": "object",
                            "required": [section],
                            "properties": {section: {"type": "array", "items": ref(schema)}},
                        },
                        f"{{{section!r}: [...]}}: a document `rules apply` takes",
                    ),
                    **errors("503"),
                },
                operationId=f"list{schema}s",
            )
        }
        for section, kind, schema in (("rules", "rule", "Rule"), ("receivers", "receiver", "Receiver"))
    },
    **{
        f"/api/v1/{section}/{{name}}": {
            "parameters": _NAME_PARAMETER,
            "get": operation(
                f"One {kind}",
                "read",
                {"200": json_body(ref(schema), f"the {kind}"), **errors("404", "503")},
                operationId=f"get{schema}",
            ),
            "put": operation(
                f"Create or replace one {kind} (checked first; identical content is left as it is)",
                "admin",
                {
                    "200": json_body(ref("Applied"), "stored and in force on this worker"),
                    **errors("400", "413", "503"),
                },
                operationId=f"put{schema}",
                requestBody=json_body(ref(schema), f"the {kind}") | {"required": True},
            ),
            "delete": operation(
                f"Delete one {kind}",
                "admin",
                {
                    "200": json_body(ref("Applied"), "deleted"),
                    **errors("404", "409", "503"),
                },
                operationId=f"delete{schema}",
            ),
        }
        for section, kind, schema in (("rules", "rule", "Rule"), ("receivers", "receiver", "Receiver"))
    },
    "/api/v1/config": {
        "put": operation(
            "Apply a configuration document: checked whole first (400 with every problem, nothing"
            " applied), then receivers, rules, and with prune the deletions of what it no longer holds",
            "admin",
            {
                "200": json_body(ref("ConfigChanges"), "what changed (with dry_run: what would)"),
                **errors("400", "413", "503"),
            },
            operationId="applyConfig",
            requestBody=json_body(
                {
                    "type": "object",
                    "required": ["document"],
                    "additionalProperties": False,
                    "properties": {
                        "document": {
                            "type": "object",
                            "description": "{receivers: [...], rules: [...], integrations: [...],"
                            " subscriptions: {NAME: {url, matchers, states, secret}}}, as `rules apply`"
                            " reads it",
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
    "/api/v1/rules/test": {
        "post": operation(
            "Dry run of the alert rules for a run: which match, what each receiver would get; nothing is"
            " sent",
            "read",
            {
                "200": json_body(ref("RuleTestAnswer"), "one entry per rule"),
                **errors("400", "413", "503"),
            },
            operationId="testRules",
            requestBody={
                "required": True,
                "content": {"application/json": {"schema": ref("RuleTest")}},
            },
        )
    },
}

__all__ = ["PATHS", "SCHEMAS"]
