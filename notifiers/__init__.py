"""Channel notifiers behind one interface, and the registry that builds them by kind."""

from __future__ import annotations

from runherald.notifiers.base import Notifier
from runherald.notifiers.console import ConsoleNotifier
from runherald.notifiers.mail import MailNotifier
from runherald.notifiers.settings import NotifierSettings
from runherald.notifiers.slack import SlackNotifier
from runherald.notifiers.unsupported import UnsupportedNotifier
from runherald.notifiers.webhook import WebhookNotifier

UNSUPPORTED_KINDS = frozenset({"git", "ipython"})
KINDS = frozenset({"slack", "mail", "webhook", "console"}) | UNSUPPORTED_KINDS


class UnknownNotifierKind(ValueError):
    """The notification kind is not one runherald knows."""


def get_notifier(kind: str, settings: NotifierSettings | None = None) -> Notifier:
    """A notifier for one notification kind (MLRun's kinds; git and ipython answer "not supported")."""
    settings = settings or NotifierSettings()
    if kind == "slack":
        return SlackNotifier(settings)
    if kind == "mail":
        return MailNotifier(settings)
    if kind == "webhook":
        return WebhookNotifier(settings)
    if kind == "console":
        return ConsoleNotifier(settings)
    if kind in UNSUPPORTED_KINDS:
        return UnsupportedNotifier(kind)
    raise UnknownNotifierKind(f"unknown notification kind '{kind}'")


__all__ = [
    "KINDS",
    "ConsoleNotifier",
    "MailNotifier",
    "Notifier",
    "NotifierSettings",
    "SlackNotifier",
    "UnknownNotifierKind",
    "UnsupportedNotifier",
    "WebhookNotifier",
    "get_notifier",
]
