"""Kinds runherald knows by name but cannot deliver yet (git, ipython): an honest permanent outcome."""

from __future__ import annotations

from runherald.delivery import Delivery, DeliveryOutcome


class UnsupportedNotifier:
    """Answers every delivery with a permanent "not supported" outcome rather than a fake success."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    async def send(self, delivery: Delivery) -> DeliveryOutcome:
        """Refuse the delivery."""
        return DeliveryOutcome.permanent(f"kind '{self.kind}' is not supported by runherald yet")
