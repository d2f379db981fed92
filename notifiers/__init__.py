"""Channel notifiers behind one interface, registered against the core's kinds (``runherald.channels``)."""

from __future__ import annotations

from collections.abc import Callable

from runherald.notifiers.base import ChannelPreview, Notifier
from runherald.notifiers.cloudevent import CloudEventNotifier
from runherald.notifiers.console import ConsoleNotifier
from runherald.notifiers.mail import MailNotifier
from runherald.notifiers.settings import NotifierSettings
from runherald.notifiers.slack import SlackNotifier
from runherald.notifiers.unsupported import UnsupportedNotifier
from runherald.notifiers.webhook import WebhookNotifier

from runherald import channels

NotifierFactory = Callable[[NotifierSettings], Notifier]

# The sender of every supported kind; a kind the core marks unsupported gets an UnsupportedNotifier.
SENDERS: dict[str, NotifierFactory] = {
    sender.kind: sender for sender in (SlackNotifier, MailNotifier, WebhookNotifier, ConsoleNotifier)
}


# Kinds runherald sends for itself (a webhook subscription's CloudEvents): not channels.KINDS, so no run's
# own notification may name them.
INTERNAL_SENDERS: dict[str, NotifierFactory] = {CloudEventNotifier.kind: CloudEventNotifier}


class UnknownNotifierKind(channels.UnknownKind):
    """The notification kind is not one runherald knows."""


def get_notifier(kind: str, settings: NotifierSettings | None = None) -> Notifier:
    """A notifier for one notification kind (MLRun's kinds; git and ipython answer "not supported")."""
    internal = INTERNAL_SENDERS.get(kind)
    if internal is not None:
        return internal(settings or NotifierSettings())
    try:
        channel = channels.kind(kind)
    except channels.UnknownKind:
        raise UnknownNotifierKind(f"unknown notification kind '{kind}'") from None
    if not channel.supported:
        return UnsupportedNotifier(channel.name)
    return SENDERS[channel.name](settings or NotifierSettings())


class Notifiers:
    """One notifier per kind, built on first use and closed together: a worker's, or a dry run's."""

    def __init__(self, settings: NotifierSettings | None = None) -> None:
        self.settings = settings or NotifierSettings()
        self._built: dict[str, Notifier] = {}

    def __call__(self, kind: str) -> Notifier:
        """The notifier for `kind`; raises UnknownNotifierKind as get_notifier does."""
        notifier = self._built.get(kind)
        if notifier is None:
            notifier = self._built[kind] = get_notifier(kind, self.settings)
        return notifier

    async def close(self) -> None:
        """Close every notifier built so far."""
        built, self._built = list(self._built.values()), {}
        for notifier in built:
            await notifier.close()


__all__ = [
    "INTERNAL_SENDERS",
    "SENDERS",
    "ChannelPreview",
    "CloudEventNotifier",
    "ConsoleNotifier",
    "MailNotifier",
    "Notifier",
    "NotifierFactory",
    "NotifierSettings",
    "Notifiers",
    "SlackNotifier",
    "UnknownNotifierKind",
    "UnsupportedNotifier",
    "WebhookNotifier",
    "get_notifier",
]
