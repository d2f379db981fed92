"""Webhook channel: MLRun's HTTP request (body, override_body), plus idempotency key, signing, templates."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import orjson
from runherald.notifiers._http import (
    SessionCache,
    classify_exception,
    classify_status,
    endpoint_of,
    scrubbed,
    ssl_for,
)
from runherald.notifiers.base import ChannelPreview
from runherald.notifiers.settings import NotifierSettings

from runherald.adapters import HOPS_HEADER, next_hops
from runherald.channels import WEBHOOK
from runherald.delivery import Delivery, DeliveryOutcome
from runherald.secrets import SecretScrubber, secret_values_of
from runherald.signing import signature_headers
from runherald.templating import TemplateRenderer, message_context, to_json

METHODS = frozenset({"get", "post", "put", "patch", "delete", "head", "options"})
RUNS_PLACEHOLDER = re.compile(r"{{\s*runs\s*}}")
JSON = "application/json"
_ORJSON_OPTIONS = (
    orjson.OPT_NAIVE_UTC | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS
)


class WebhookParamsError(ValueError):
    """The notification's webhook params cannot be used; the message says which one and why."""


def dump_json(value: Any) -> bytes:
    """Serialise a body as MLRun's webhook session does (orjson, sorted keys)."""
    return orjson.dumps(value, option=_ORJSON_OPTIONS)


def summarize_runs(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The short run summaries MLRun substitutes for ``{{ runs }}``: project, name, status, host."""
    summaries = []
    for run in runs:
        metadata = run.get("metadata") or {}
        status = run.get("status") or {}
        summary: dict[str, Any] = {
            "project": metadata.get("project"),
            "name": metadata.get("name"),
            "status": {"state": status.get("state")},
        }
        if host := (metadata.get("labels") or {}).get("host", ""):
            summary["host"] = host
        if error := status.get("error"):
            summary["status"]["error"] = error
        elif results := status.get("results"):
            summary["status"]["results"] = results
        summaries.append(summary)
    return summaries


def substitute_runs(override_body: Any, runs: Sequence[Mapping[str, Any]]) -> Any:
    """MLRun's ``{{ runs }}`` substitution: top-level string values only, with the runs' Python repr."""
    if not isinstance(override_body, dict):
        return override_body
    body = dict(override_body)
    for key, value in body.items():
        if isinstance(value, str) and RUNS_PLACEHOLDER.search(value):
            body[key] = _substitute(value, str(summarize_runs(runs)))
    return body


def _substitute(value: str, replacement: str) -> str:
    try:
        # As MLRun: the repr is used as a regex replacement, so its backslash escapes are applied.
        return RUNS_PLACEHOLDER.sub(replacement, value)
    except re.error:
        return RUNS_PLACEHOLDER.sub(lambda _: replacement, value)


def build_webhook_body(
    message: str,
    severity: str,
    runs: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    renderer: TemplateRenderer,
    *,
    name: str = "",
    delivery: Delivery | None = None,
) -> tuple[bytes, str]:
    """The request body and its content type: override_body, else body_template, else MLRun's default."""
    override_body = params.get("override_body")
    if override_body:
        return dump_json(substitute_runs(override_body, runs)), JSON
    body_template = params.get("body_template")
    if body_template:
        context = message_context(
            message, severity, runs, name=name, delivery_id=delivery.id if delivery else ""
        )
        context.update(
            run=dict(runs[0]) if runs else {},
            runs_json=to_json(list(runs)),
            project=delivery.project if delivery else "",
            uid=delivery.uid if delivery else "",
            state=delivery.state if delivery else "",
        )
        return renderer.render_string(str(body_template), context).encode("utf-8"), JSON
    body: dict[str, Any] = {"message": message, "severity": severity}
    if runs:
        body["runs"] = list(runs)
    return dump_json(body), JSON


def validate_webhook_params(params: Mapping[str, Any]) -> None:
    """Raise WebhookParamsError with MLRun's wording when a param is missing or unusable."""
    url = params.get("url")
    if not url:
        raise WebhookParamsError("Parameter 'url' is required for WebhookNotification")
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise WebhookParamsError("Parameter 'url' must be an http or https URL for WebhookNotification")
    method = str(params.get("method") or "post").lower()
    if method not in METHODS:
        allowed = ", ".join(sorted(METHODS))
        raise WebhookParamsError(f"Parameter 'method' must be one of {allowed} for WebhookNotification")
    headers = params.get("headers")
    if headers is not None and not isinstance(headers, Mapping):
        raise WebhookParamsError("Parameter 'headers' must be a dict for WebhookNotification")
    timeout = params.get("timeout")
    bad_number = isinstance(timeout, bool) or not isinstance(timeout, int | float)
    if timeout is not None and (bad_number or timeout <= 0):
        raise WebhookParamsError("Parameter 'timeout' must be a positive number for WebhookNotification")


class WebhookNotifier:
    """Sends MLRun's webhook request, with an Idempotency-Key and optional Standard Webhooks signature."""

    kind = WEBHOOK.name

    def __init__(self, settings: NotifierSettings | None = None) -> None:
        self.settings = settings or NotifierSettings()
        self.renderer = TemplateRenderer(self.settings.templates_dir)
        self.sessions = SessionCache(self.settings.egress)

    def check_params(self, params: Mapping[str, Any]) -> None:
        """MLRun's check of webhook params."""
        WEBHOOK.check_params(params)

    def endpoint(self, delivery: Delivery, params: Mapping[str, Any]) -> str | None:
        """Where the request goes, for its circuit breaker (see endpoint_of)."""
        return endpoint_of(params.get("url"))

    def preview(
        self,
        message: str,
        severity: str,
        runs: Sequence[Mapping[str, Any]],
        *,
        name: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> ChannelPreview:
        """The request body and its content type."""
        body, content_type = build_webhook_body(
            message, severity, runs, params or {}, self.renderer, name=name
        )
        text = body.decode("utf-8")
        return ChannelPreview(
            {"body": text, "content_type": content_type}, f"webhook body ({content_type}):\n{text}"
        )

    def request_body(self, delivery: Delivery, params: Mapping[str, Any]) -> tuple[bytes, str]:
        """The body to send and its content type (a subclass sends another body the same way)."""
        return build_webhook_body(
            delivery.message,
            delivery.severity,
            delivery.runs,
            params,
            self.renderer,
            name=delivery.name,
            delivery=delivery,
        )

    async def send(self, delivery: Delivery, params: Mapping[str, Any]) -> DeliveryOutcome:
        """Make the request once; 408, 429, 5xx, timeouts and connection errors are retryable."""
        scrubber = SecretScrubber(secret_values_of(params, delivery.notification))
        try:
            validate_webhook_params(params)
        except WebhookParamsError as exc:
            return DeliveryOutcome.permanent(str(exc))
        timeout = float(params.get("timeout") or self.settings.timeout)
        try:
            body, content_type = self.request_body(delivery, params)
        except Exception as exc:
            return scrubbed(DeliveryOutcome.permanent(f"body_template failed: {exc}"), scrubber)
        url = str(params["url"])
        headers = {
            str(key): str(value)
            for key, value in (params.get("headers") or {}).items()
            if str(key).lower() != HOPS_HEADER.lower()  # runherald's own count, whatever the params say
        }
        headers["Content-Type"] = content_type
        headers["Idempotency-Key"] = delivery.id
        headers[HOPS_HEADER] = str(next_hops(delivery.runs))  # a loop back into runherald ends (adapters)
        if params.get("signing_secret"):
            try:
                headers.update(signature_headers(params["signing_secret"], delivery.id, body))
            except ValueError as exc:
                return DeliveryOutcome.permanent(str(exc))
        try:
            session = self.sessions.get()
            async with session.request(
                str(params.get("method") or "post").upper(),
                url,
                data=body,
                headers=headers,
                ssl=ssl_for(url, params.get("verify_ssl")),
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                text = await response.text(errors="replace") if response.status >= 300 else ""
                outcome = classify_status(response.status, response.headers, text)
        except Exception as exc:
            outcome = classify_exception(exc, timeout)
        return scrubbed(outcome, scrubber)

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.sessions.aclose()
