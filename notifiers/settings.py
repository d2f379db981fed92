"""Settings shared by the channel notifiers."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from runherald.egress import EgressPolicy
from runherald.templating import TEMPLATES_ENV

DEFAULT_TIMEOUT = 10.0
SLACK_API_URL = "https://slack.com/api/"


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


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
    def from_env(cls, env: Mapping[str, str] = os.environ) -> NotifierSettings:
        """Settings from RUNHERALD_* environment variables (and SLACK_WEBHOOK, as MLRun reads it)."""
        templates = env.get(TEMPLATES_ENV)
        return cls(
            templates_dir=Path(templates) if templates else None,
            egress=EgressPolicy(
                allow_private=_flag(env.get("RUNHERALD_EGRESS_ALLOW_PRIVATE")),
                allow_loopback=_flag(env.get("RUNHERALD_EGRESS_ALLOW_LOOPBACK")),
            ),
            slack_base_url=env.get("RUNHERALD_SLACK_BASE_URL") or SLACK_API_URL,
            ui_url=env.get("RUNHERALD_UI_URL") or env.get("MLRUN_UI__URL") or None,
            timeout=float(env.get("RUNHERALD_NOTIFY_TIMEOUT") or DEFAULT_TIMEOUT),
            slack_webhook=env.get("SLACK_WEBHOOK") or None,
        )
