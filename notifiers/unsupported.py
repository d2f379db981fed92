"""Kinds runherald knows by name but cannot deliver yet (git, ipython): an honest permanent outcome."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runherald.notifiers.base import ChannelPreview

from runherald import channels
from runherald.delivery import Delivery, DeliveryOutcome


class UnsupportedNotifier:
    """Answers every delivery with a permanent "not supported" outcome rather than a fake success."""

    def __init__(self, kind: str) -> None:
        self.channel = channels.kind(kind)
        self.kind = self.channel.name

    def check_params(self, params: Mapping[str, Any]) -> None:
        """MLRun's check of this kind's params: the kind is MLRun's even if runherald cannot send it."""
        self.channel.check_params(params)

    def endpoint(self, delivery: Delivery, params: Mapping[str, Any]) -> str | None:
        """Nothing is sent: nothing to watch."""
        return None

    def preview(
        self,
        message: str,
        severity: str,
        runs: Sequence[Mapping[str, Any]],
        *,
        name: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> ChannelPreview | None:
        """Nothing would be sent."""
        return None

    async def send(self, delivery: Delivery, params: Mapping[str, Any]) -> DeliveryOutcome:
        """Refuse the delivery."""
        return DeliveryOutcome.permanent(f"kind '{self.kind}' is not supported by runherald yet")

    async def close(self) -> None:
        """Nothing to release."""
