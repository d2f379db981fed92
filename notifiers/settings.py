"""Settings shared by the channel notifiers, derived from runherald's one Settings object."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from runherald.config import SLACK_API_URL, Settings
from runherald.egress import EgressPolicy

DEFAULT_TIMEOUT = 10.0


@dataclass(slots=True)
class NotifierSettings:
    """How notifiers reach the outside world: templates, egress policy, Slack API, UI links, timeouts."""

    templates_dir: Path | None = None
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    slack_base_url: str = SLACK_API_URL
    ui_url: str | None = None  # MLRun UI base URL; when set, Slack and mail link each run
    timeout: float = DEFAULT_TIMEOUT
    slack_webhook: str | None = None  # fallback webhook, as MLRun's SLACK_WEBHOOK
    console_stream: TextIO | None = None
    console_logger: logging.Logger | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> NotifierSettings:
        """The notifiers' part of the settings (which read the environment and settings file once)."""
        return cls(
            templates_dir=Path(settings.templates_dir) if settings.templates_dir else None,
            egress=EgressPolicy(
                allow_private=settings.allow_private_egress, allow_loopback=settings.allow_loopback_egress
            ),
            slack_base_url=settings.slack_base_url,
            ui_url=settings.ui_url or None,
            timeout=settings.send_timeout,
            slack_webhook=settings.slack_webhook or None,
        )
