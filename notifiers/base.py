"""The one interface every channel implements, and what a channel's preview is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from runherald.delivery import Delivery, DeliveryOutcome


@dataclass(frozen=True, slots=True)
class ChannelPreview:
    """What a channel would send: ``data`` as ``runherald render -o json`` shows it, ``text`` as a
    terminal does."""

    data: Any
    text: str


@runtime_checkable
class Notifier(Protocol):
    """A channel: checks its params, names its endpoint, sends one delivery, previews one, closes.

    ``params`` are the notification's ``{**secret_params, **params}`` with secret references resolved.
    They are handed to each call and kept by none: only the dispatcher holds them, for one send.
    """

    kind: str

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise ValueError, with MLRun's message, when params lack what the kind requires
        (the core kind's check, ``runherald.channels``)."""
        ...

    def endpoint(self, delivery: Delivery, params: Mapping[str, Any]) -> str | None:
        """Where the delivery would go, for circuit breakers (and rate limits); None: nowhere to watch."""
        ...

    async def send(self, delivery: Delivery, params: Mapping[str, Any]) -> DeliveryOutcome:
        """Send once. Never raises for channel errors: they become a retryable or permanent outcome."""
        ...

    def preview(
        self,
        message: str,
        severity: str,
        runs: Sequence[Mapping[str, Any]],
        *,
        name: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> ChannelPreview | None:
        """What send would deliver for this message, without sending; None when it would send nothing."""
        ...

    async def close(self) -> None:
        """Release what the notifier holds (HTTP sessions); it may be used again afterwards."""
        ...
