"""How a request to an integration's ingress is authenticated: by the integration's own auth.

Not by the tokens file: GitHub and most webhook senders cannot send a bearer token of ours, so
``POST /api/v1/integrations/{name}`` is checked here, by what the integration says:

- ``token_sha256``: ``Authorization: Bearer <token>`` whose SHA-256 is the digest (constant time);
- ``hmac_secret``: Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``),
  the timestamp within 5 minutes of this worker's clock, and a ``webhook-id`` not seen before within
  that window (`ReplayGuard`: in this worker's memory; a replay sent to another worker, or after a
  restart, is stopped by the timestamp window and by the delivery ids, not by this);
- ``github_secret``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`` (constant time).

Every refusal is an `AuthRefused` with the HTTP status to answer and a message that never holds a
secret, a token or a signature.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Mapping

from runherald.auth import bearer_token, hash_token
from runherald.integrations import GITHUB_SECRET, HMAC_SECRET, TOKEN_SHA256, Integration
from runherald.signing import DEFAULT_TOLERANCE, WebhookVerificationError, verify

GITHUB_SIGNATURE = "X-Hub-Signature-256"
GITHUB_EVENT = "X-GitHub-Event"
REPLAY_WINDOW = DEFAULT_TOLERANCE  # seconds: the signed timestamp's tolerance, and how long an id is kept
REPLAY_CAPACITY = 100_000  # ids kept at most per worker; the oldest go first beyond it


class AuthRefused(Exception):
    """A request the integration's auth refuses: the status (401, 409) and why, without any secret."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ReplayGuard:
    """The Standard Webhooks ids this worker accepted within the replay window, per integration."""

    def __init__(self, window: float = REPLAY_WINDOW, capacity: int = REPLAY_CAPACITY) -> None:
        self.window = window
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()  # (integration, id) -> expiry

    def __len__(self) -> int:
        return len(self._seen)

    def _prune(self, now: float) -> None:
        while self._seen:
            key, expiry = next(iter(self._seen.items()))
            if expiry > now and len(self._seen) <= self.capacity:
                break
            del self._seen[key]

    def claim(self, integration: str, message_id: str, now: float | None = None) -> bool:
        """Record an id; False when it was already recorded within the window (a replay)."""
        now = time.time() if now is None else now
        self._prune(now)
        key = (integration, message_id)
        if key in self._seen:
            return False
        self._seen[key] = now + 2 * self.window  # a timestamp may be `window` ahead of this clock too
        return True

    def release(self, integration: str, message_id: str) -> None:
        """Forget an id whose request could not be done (the sender's retry is then accepted)."""
        self._seen.pop((integration, message_id), None)


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((value for key, value in headers.items() if key.lower() == name.lower()), "")


def check_bearer(digest: str, headers: Mapping[str, str]) -> None:
    presented = bearer_token(_header(headers, "Authorization"))
    if not presented:
        raise AuthRefused(401, "this integration needs a bearer token (Authorization: Bearer <token>)")
    if not hmac.compare_digest(hash_token(presented).encode(), digest.encode()):
        raise AuthRefused(401, "the bearer token is not this integration's")


def check_standard_webhook(
    integration: str,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    replays: ReplayGuard,
    now: float | None = None,
) -> str:
    """Check a Standard Webhooks signature and claim its id; returns the id (release it if the request
    then fails on this side)."""
    try:
        verify(secret, headers, body, tolerance=replays.window, now=now)
    except WebhookVerificationError as exc:  # its messages name headers, never values
        raise AuthRefused(401, f"the Standard Webhooks signature is refused: {exc}") from None
    message_id = _header(headers, "webhook-id")
    if not replays.claim(integration, message_id, now):
        raise AuthRefused(409, "this webhook-id was already received: a replay is refused")
    return message_id


def github_signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: the X-Hub-Signature-256 GitHub sends for a body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def check_github(secret: str, headers: Mapping[str, str], body: bytes) -> str:
    """Check X-Hub-Signature-256; returns the X-GitHub-Event named (the caller decides what it takes)."""
    presented = _header(headers, GITHUB_SIGNATURE).strip()
    if not presented:
        raise AuthRefused(401, f"this integration needs GitHub's {GITHUB_SIGNATURE} header")
    if not hmac.compare_digest(presented.encode(), github_signature(secret, body).encode()):
        raise AuthRefused(401, f"the {GITHUB_SIGNATURE} signature does not match this integration's secret")
    return _header(headers, GITHUB_EVENT).strip()


def authenticate(
    integration: Integration,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    replays: ReplayGuard,
    now: float | None = None,
) -> tuple[str, str]:
    """Check a request by the integration's auth (`secret`: its resolved secret, "" for a token);
    returns (webhook id claimed or "", GitHub event or "")."""
    kind = integration.auth_kind
    if kind == TOKEN_SHA256:
        check_bearer(str(integration.auth_value), headers)
        return "", ""
    if kind == HMAC_SECRET:
        return check_standard_webhook(integration.name, secret, headers, body, replays, now), ""
    if kind == GITHUB_SECRET:
        return "", check_github(secret, headers, body)
    raise AuthRefused(401, f"integration {integration.name!r} has no usable auth")


__all__ = [
    "GITHUB_EVENT",
    "GITHUB_SIGNATURE",
    "AuthRefused",
    "ReplayGuard",
    "authenticate",
    "check_bearer",
    "check_github",
    "check_standard_webhook",
    "github_signature",
]
