"""Console channel: MLRun's "[severity] message" line and runs table, written as one record per delivery."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from runherald.notifiers.base import ChannelPreview
from runherald.notifiers.settings import NotifierSettings

from runherald.channels import CONSOLE
from runherald.delivery import Delivery, DeliveryOutcome
from runherald.templating import TemplateRenderer, message_context


def render_console_text(
    message: str, severity: str, runs: Sequence[Mapping[str, Any]], renderer: TemplateRenderer | None = None
) -> str:
    """What MLRun's console notification prints: ``[severity] message`` and, with runs, the table."""
    context = message_context(message, severity.lower(), runs)
    return (renderer or TemplateRenderer()).render("console.txt.j2", context)


class ConsoleNotifier:
    """Writes each delivery to a stream (stdout by default) or, when configured, to a logger."""

    kind = CONSOLE.name

    def __init__(
        self,
        settings: NotifierSettings | None = None,
        *,
        stream: TextIO | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.settings = settings or NotifierSettings()
        self.renderer = TemplateRenderer(self.settings.templates_dir)
        self.stream = stream or self.settings.console_stream
        self.logger = logger or self.settings.console_logger

    def check_params(self, params: Mapping[str, Any]) -> None:
        """MLRun's check of console params (there are none to check)."""
        CONSOLE.check_params(params)

    def endpoint(self, delivery: Delivery, params: Mapping[str, Any]) -> str | None:
        """A local stream: nothing for a circuit breaker to watch."""
        return None

    def preview(
        self,
        message: str,
        severity: str,
        runs: Sequence[Mapping[str, Any]],
        *,
        name: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> ChannelPreview:
        """The text that would be written."""
        text = render_console_text(message, severity, runs, self.renderer)
        return ChannelPreview(text, f"console:\n{text}")

    async def send(self, delivery: Delivery, params: Mapping[str, Any]) -> DeliveryOutcome:
        """Write the text once; a broken stream is a permanent failure."""
        try:
            text = render_console_text(delivery.message, delivery.severity, delivery.runs, self.renderer)
            if self.logger is not None:
                self.logger.info("%s", text, extra={"delivery_id": delivery.id})
            else:
                stream = self.stream or sys.stdout
                stream.write(text + "\n")
                stream.flush()
        except Exception as exc:
            return DeliveryOutcome.permanent(f"console write failed: {type(exc).__name__}")
        return DeliveryOutcome.sent()

    async def close(self) -> None:
        """Nothing to release: the stream is not the notifier's to close."""
