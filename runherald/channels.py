"""The notification kinds runherald knows, MLRun's checks of each kind's params, and its mail defaults.

Plain data and pure checks, so model validation (and validation at the API's door) can use them
without importing a sender. The senders in ``runherald.notifiers`` register against these kinds; a kind
that is not ``supported`` has no sender yet and every delivery of it fails with a permanent outcome.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runherald.errors import InvalidArgumentError

MAIL_ADDRESS_PATTERN = re.compile(r"^[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$")
MAIL_BOOLEAN_PARAMS = ("use_tls", "start_tls", "validate_certs")
MAIL_REQUIRED_PARAMS = (
    "server_host",
    "server_port",
    "sender_address",
    "email_addresses",
    *MAIL_BOOLEAN_PARAMS,
)
# MLRun's defaults for what a mail notification leaves out.
MAIL_DEFAULTS: Mapping[str, Any] = {
    "use_tls": True,
    "start_tls": False,
    "validate_certs": True,
    "server_port": 587,
}


class UnknownKind(InvalidArgumentError):
    """A notification kind runherald does not know; the message suggests the nearest one it does."""


ParamsCheck = Callable[[dict[str, Any]], None]
ParamsDefaults = Callable[[dict[str, Any]], dict[str, Any]]


def _nothing_to_check(params: dict[str, Any]) -> None:
    return None


def _no_defaults(params: dict[str, Any]) -> dict[str, Any]:
    return params


@dataclass(frozen=True, slots=True)
class ChannelKind:
    """One notification kind: its name, MLRun's check of its params, and whether runherald sends it."""

    name: str
    _check: ParamsCheck = _nothing_to_check
    _defaults: ParamsDefaults = _no_defaults
    supported: bool = True

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise ValueError, with MLRun's message, when params lack what this kind requires."""
        self._check(dict(params))

    def with_defaults(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The params with MLRun's defaults for this kind filled in (mail's SMTP defaults)."""
        return self._defaults(dict(params))


def _check_slack(params: dict[str, Any]) -> None:
    if not (params.get("webhook") or os.environ.get("SLACK_WEBHOOK")):
        raise ValueError("Parameter 'webhook' is required for SlackNotification")


def _check_webhook(params: dict[str, Any]) -> None:
    if not params.get("url"):
        raise ValueError("Parameter 'url' is required for WebhookNotification")


def _check_git(params: dict[str, Any]) -> None:
    token = params.get("token") or params.get("GIT_TOKEN") or params.get("GITHUB_TOKEN")
    if not params.get("repo"):
        raise ValueError("Parameter 'repo' is required for GitNotification")
    if not token:
        raise ValueError("Parameter 'token' is required for GitNotification")
    if not params.get("issue") and not params.get("merge_request"):
        raise ValueError("At least one of 'issue' or 'merge_request' is required for GitNotification")


def _check_mail_address(address: Any) -> None:
    if not isinstance(address, str):
        raise ValueError(f"Email address '{address}' must be a string")
    if not MAIL_ADDRESS_PATTERN.match(address):
        raise ValueError(f"Invalid email address '{address}'")


def _check_mail(params: dict[str, Any]) -> None:
    for auth_param in ("username", "password"):
        params[auth_param] = params.get(auth_param) or None
    for name in MAIL_REQUIRED_PARAMS:
        if name not in params:
            raise ValueError(f"Parameter '{name}' is required for MailNotification")
    for name in MAIL_BOOLEAN_PARAMS:
        if not isinstance(params.get(name), bool):
            raise ValueError(f"Parameter '{name}' must be a boolean for MailNotification")
    if params["password"] and not params["username"]:
        raise ValueError("Parameter 'username' is required when 'password' is provided for MailNotification")
    _check_mail_address(params["sender_address"])
    addresses = params["email_addresses"]
    if not isinstance(addresses, str | list):
        raise ValueError("Parameter 'email_addresses' must be a string or a list of strings")
    for address in addresses.split(",") if isinstance(addresses, str) else addresses:
        _check_mail_address(address)


def _split_addresses(addresses: str | list[str]) -> list[str]:
    if isinstance(addresses, str):
        return addresses.split(",") if addresses else []
    return list(addresses)


def _mail_defaults(params: dict[str, Any]) -> dict[str, Any]:
    for name, value in MAIL_DEFAULTS.items():
        params.setdefault(name, value)
    defaults = _split_addresses(params.pop("default_email_addresses", ""))
    params["email_addresses"] = ",".join(_split_addresses(params.get("email_addresses", "")) + defaults)
    return params


SLACK = ChannelKind("slack", _check_slack)
MAIL = ChannelKind("mail", _check_mail, _mail_defaults)
WEBHOOK = ChannelKind("webhook", _check_webhook)
CONSOLE = ChannelKind("console")
GIT = ChannelKind("git", _check_git, supported=False)
IPYTHON = ChannelKind("ipython", supported=False)

KINDS: Mapping[str, ChannelKind] = {kind.name: kind for kind in (SLACK, MAIL, WEBHOOK, CONSOLE, GIT, IPYTHON)}


def kind(name: str) -> ChannelKind:
    """The kind called `name`; raises UnknownKind, naming the nearest known kind when one is close."""
    found = KINDS.get(name) if isinstance(name, str) else None
    if found is not None:
        return found
    close = difflib.get_close_matches(name, list(KINDS), n=1) if isinstance(name, str) else []
    hint = f"did you mean '{close[0]}'?" if close else f"known kinds: {', '.join(sorted(KINDS))}"
    raise UnknownKind(f"unknown kind {name!r} ({hint})")


__all__ = [
    "CONSOLE",
    "GIT",
    "IPYTHON",
    "KINDS",
    "MAIL",
    "MAIL_ADDRESS_PATTERN",
    "MAIL_BOOLEAN_PARAMS",
    "MAIL_DEFAULTS",
    "MAIL_REQUIRED_PARAMS",
    "SLACK",
    "WEBHOOK",
    "ChannelKind",
    "UnknownKind",
    "kind",
]
