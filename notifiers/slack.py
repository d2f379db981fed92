"""Slack channel: MLRun's Block Kit message, by incoming webhook or by bot token (chat.postMessage, and
chat.update and threads for one conversation per run: runherald.notifiers.slack_thread)."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from runherald.notifiers._http import (
    SessionCache,
    classify_exception,
    classify_status,
    endpoint_of,
    scrubbed,
)
from runherald.notifiers.base import ChannelPreview
from runherald.notifiers.settings import NotifierSettings
from runherald.notifiers.slack_thread import SlackConversation, classify_api_error
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from runherald import conversation
from runherald.channels import SLACK
from runherald.delivery import Delivery, DeliveryOutcome
from runherald.secrets import SecretScrubber, redact_url, secret_values_of
from runherald.templating import TemplateRenderer, message_context, run_url

HEADER_LIMIT = 150  # Slack rejects longer header blocks
FIELDS_PER_SECTION = 8
STATE_EMOJIS = {
    "completed": ":smiley:",
    "running": ":man-running:",
    "error": ":x:",
    "skipped": ":zzz:",
}
METADATA_EVENT_TYPE = "runherald_delivery"

# slack_sdk logs full request URLs at debug level; a webhook URL is a secret, so keep that quiet.
_sdk_logger = logging.getLogger("runherald.notifiers.slack.sdk")
_sdk_logger.setLevel(logging.INFO)


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def header_blocks(text: str) -> list[dict[str, Any]]:
    """The header block, plus an overflow section when the text is over Slack's 150-character limit."""
    header, overflow = text, ""
    if len(text) > HEADER_LIMIT:
        # MLRun's rule: cut at the first comma when a ", " appears early enough, else at 150.
        if ", " in text and text.index(", ") < HEADER_LIMIT - 1:
            header = text.split(",")[0]
            overflow = text[len(header) + 2 :]
        else:
            header, overflow = text[:HEADER_LIMIT], text[HEADER_LIMIT:]
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": header}}]
    if overflow:
        blocks.append({"type": "section", "text": _mrkdwn(overflow)})
    return blocks


def run_line(run: Mapping[str, Any], ui_url: str | None = None) -> str:
    """A run's left-hand field: state emoji, then its name (linked to the UI when MLRun would)."""
    metadata = run.get("metadata") or {}
    status = run.get("status") or {}
    state = status.get("state", "")
    step_kind = run.get("step_kind")
    name = metadata.get("name")
    url = run_url(ui_url, str(metadata.get("project")), str(name), str(metadata.get("uid")))
    if state != "skipped" and ((url and not step_kind) or step_kind == "run"):
        line = f"<{url}|*{name}*>"
    else:
        line = f"{name}"
    if step_kind:
        line = f"{line} *({step_kind})*"
    return f"{STATE_EMOJIS.get(state, ':question:')}  {line}"


def run_result_text(run: Mapping[str, Any]) -> str:
    """A run's right-hand field: the bold error, the results as ``k=v, k2=v2``, or the state."""
    status = run.get("status") or {}
    state = status.get("state", "")
    if state == "error":
        result = f"*{status.get('error', '') or state}*"
    else:
        result = ", ".join(f"{key}={value}" for key, value in (status.get("results") or {}).items())
    return result or state


def render_slack_blocks(
    message: str,
    severity: str,
    runs: Sequence[Mapping[str, Any]],
    *,
    name: str = "",
    ui_url: str | None = None,
    renderer: TemplateRenderer | None = None,
) -> list[dict[str, Any]]:
    """The Block Kit blocks MLRun 1.12.1 sends for this message, severity, notification name and runs."""
    if renderer is None:
        header = f"[{severity}] {message}"
    else:
        context = message_context(message, severity, runs, name=name, ui_url=ui_url)
        header = renderer.render("slack_header.txt.j2", context)
    blocks = header_blocks(header)
    if name:
        blocks.append({"type": "section", "text": _mrkdwn(name)})
    if not runs:
        return blocks
    fields = [_mrkdwn("*Runs*"), _mrkdwn("*Results*")]
    for run in runs:
        fields.append(_mrkdwn(run_line(run, ui_url)))
        fields.append(_mrkdwn(run_result_text(run)))
    for start in range(0, len(fields), FIELDS_PER_SECTION):
        blocks.append({"type": "section", "fields": fields[start : start + FIELDS_PER_SECTION]})
    return blocks


class SlackNotifier:
    """Sends MLRun's Slack message to an incoming webhook, or as a bot with ``token`` + ``channel``."""

    kind = SLACK.name

    def __init__(self, settings: NotifierSettings | None = None) -> None:
        self.settings = settings or NotifierSettings()
        self.renderer = TemplateRenderer(self.settings.templates_dir)
        self.sessions = SessionCache(self.settings.egress, self.settings.timeout)

    def check_params(self, params: Mapping[str, Any]) -> None:
        """MLRun's check of Slack params."""
        SLACK.check_params(params)

    def endpoint(self, delivery: Delivery, params: Mapping[str, Any]) -> str | None:
        """Where the message goes, for its circuit breaker: the webhook, or the Web API's method."""
        webhook = params.get("webhook") or self.settings.slack_webhook
        if webhook:
            return endpoint_of(webhook)
        return endpoint_of(self.settings.slack_base_url.rstrip("/") + "/chat.postMessage")

    def preview(
        self,
        message: str,
        severity: str,
        runs: Sequence[Mapping[str, Any]],
        *,
        name: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> ChannelPreview:
        """The blocks the message would carry."""
        blocks = self._blocks(message, severity, runs, name)
        return ChannelPreview({"blocks": blocks}, "slack blocks:\n" + json.dumps(blocks, indent=2))

    async def send(self, delivery: Delivery, params: Mapping[str, Any]) -> DeliveryOutcome:
        """Post the message once; Slack's 429, 5xx and network trouble are retryable."""
        webhook = params.get("webhook") or self.settings.slack_webhook
        token = params.get("token")
        channel = params.get("channel")
        scrubber = SecretScrubber(secret_values_of(params, delivery.notification))
        if webhook:
            scrubber.add([str(webhook)])
        if not webhook and not token:
            return DeliveryOutcome.permanent("Parameter 'webhook' is required for SlackNotification")
        if not webhook and not channel:
            return DeliveryOutcome.permanent(
                "Parameter 'channel' is required with 'token' for SlackNotification"
            )
        try:
            mode = "new" if webhook else conversation.slack_mode(params)
        except ValueError as exc:
            return DeliveryOutcome.permanent(str(exc))
        try:
            blocks = self._blocks(delivery.message, delivery.severity, delivery.runs, delivery.name)
            if webhook:
                outcome = await self._send_webhook(str(webhook), blocks)
            else:
                outcome = await self._post_message(str(token), str(channel), blocks, delivery, mode)
        except Exception as exc:
            outcome = classify_exception(exc, self.settings.timeout)
        return scrubbed(outcome, scrubber)

    def _blocks(
        self, message: str, severity: str, runs: Sequence[Mapping[str, Any]], name: str
    ) -> list[dict[str, Any]]:
        return render_slack_blocks(
            message, severity, runs, name=name, ui_url=self.settings.ui_url, renderer=self.renderer
        )

    async def _send_webhook(self, webhook: str, blocks: list[dict[str, Any]]) -> DeliveryOutcome:
        client = AsyncWebhookClient(
            webhook,
            timeout=int(self.settings.timeout),
            session=self.sessions.get(),
            logger=_sdk_logger,
            retry_handlers=[],  # retries are the pipeline's job, with backoff and a ledger
        )
        response = await client.send_dict({"blocks": blocks})
        outcome = classify_status(response.status_code, dict(response.headers), response.body or "", "Slack")
        if outcome.reason:
            reason = f"{outcome.reason} ({redact_url(webhook)})"
            outcome = dataclasses.replace(outcome, reason=reason)
        return outcome

    async def _post_message(
        self, token: str, channel: str, blocks: list[dict[str, Any]], delivery: Delivery, mode: str
    ) -> DeliveryOutcome:
        client = AsyncWebClient(
            token=token,
            base_url=self.settings.slack_base_url,
            timeout=int(self.settings.timeout),
            session=self.sessions.get(),
            logger=_sdk_logger,
            retry_handlers=[],
        )
        metadata = {
            "event_type": METADATA_EVENT_TYPE,
            "event_payload": {
                "delivery_id": delivery.id,
                "project": delivery.project,
                "uid": delivery.uid,
                "notification": delivery.name,
                "state": delivery.state,
            },
        }
        try:
            return await SlackConversation(client, channel, blocks, metadata, delivery).send(mode)
        except SlackApiError as exc:
            return classify_api_error(exc)
        except SlackClientError as exc:
            return DeliveryOutcome.permanent(f"Slack client error: {type(exc).__name__}")

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.sessions.aclose()
