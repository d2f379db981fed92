"""The dry run of a notification: what every channel would send for a run, rendered by the notifiers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runherald.notifiers import NotifierSettings
from runherald.notifiers.console import render_console_text
from runherald.notifiers.mail import render_mail_parts
from runherald.notifiers.slack import render_slack_blocks
from runherald.notifiers.webhook import build_webhook_body
from runherald.rules import compose_message
from runherald.templating import TemplateRenderer


def render_preview(
    run: Mapping[str, Any], notification: Mapping[str, Any], settings: NotifierSettings | None = None
) -> dict[str, Any]:
    """What each channel would send for this run and notification, without sending anything."""
    settings = settings or NotifierSettings()
    renderer = TemplateRenderer(settings.templates_dir)
    message = compose_message(dict(run), dict(notification))
    severity = str(notification.get("severity") or "info")
    name = str(notification.get("name") or "")
    runs = [dict(run)]
    params = dict(notification.get("params") or {})
    body, content = build_webhook_body(message, severity, runs, params, renderer, name=name)
    return {
        "kind": notification.get("kind") or "slack",
        "message": message,
        "severity": severity,
        "slack": {
            "blocks": render_slack_blocks(
                message, severity, runs, name=name, ui_url=settings.ui_url, renderer=renderer
            )
        },
        "webhook": {"body": body.decode("utf-8"), "content_type": content},
        "mail": render_mail_parts(
            message, severity, runs, name=name, renderer=renderer, ui_url=settings.ui_url
        ),
        "console": render_console_text(message, severity, runs, renderer),
    }
