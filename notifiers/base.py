"""The one interface every channel implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from runherald.delivery import Delivery, DeliveryOutcome


@runtime_checkable
class Notifier(Protocol):
    """A channel: knows how to send one delivery and whether a failure is worth retrying."""

    kind: str

    async def send(self, delivery: Delivery) -> DeliveryOutcome:
        """Send once. Never raises for channel errors: they become a retryable or permanent outcome."""
        ...
