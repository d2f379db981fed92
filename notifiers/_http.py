"""HTTP helpers shared by the webhook and Slack notifiers: outcome classification and Retry-After."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from runherald.delivery import DeliveryOutcome
from runherald.egress import EgressPolicy, EgressRefused, create_session
from runherald.secrets import SecretScrubber

RETRYABLE_STATUSES = frozenset({408, 429})
MAX_REASON_BODY = 120


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent or bad."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        return max(seconds, 0.0) if seconds == seconds else None  # NaN is not a delay
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


def header_value(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value, looked up case-insensitively in any mapping."""
    wanted = name.lower()
    for key, value in (headers or {}).items():
        if key.lower() == wanted:
            return value
    return None


LOOP_DETECTED = 508


def classify_status(
    status: int, headers: Mapping[str, str] | None = None, body: str = "", what: str = "HTTP"
) -> DeliveryOutcome:
    """Outcome for a response status: 2xx sent; 408, 429 and 5xx retryable (but 508 Loop Detected: a
    runherald ingress refusing a loop, which the same request would meet again); others permanent."""
    if 200 <= status < 300:
        return DeliveryOutcome.sent(response_code=status)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    reason = f"{what} {status} {phrase}".rstrip()
    detail = " ".join(body.split())[:MAX_REASON_BODY]
    if detail:
        reason = f"{reason}: {detail}"
    if status in RETRYABLE_STATUSES or (status >= 500 and status != LOOP_DETECTED):
        retry_after = parse_retry_after(header_value(headers, "Retry-After"))
        return DeliveryOutcome.retryable(reason, retry_after, response_code=status)
    return DeliveryOutcome.permanent(reason, response_code=status)


def classify_exception(exc: BaseException, timeout: float | None = None) -> DeliveryOutcome:
    """Outcome for an exception raised while sending: network trouble is retryable, the rest permanent."""
    if isinstance(exc, EgressRefused):
        return DeliveryOutcome.permanent(str(exc))
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        limit = f" after {timeout:g}s" if timeout else ""
        return DeliveryOutcome.retryable(f"timed out{limit}", unreachable=True)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError | ssl.SSLError):
        return DeliveryOutcome.permanent("TLS error: certificate verification or handshake failed")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return DeliveryOutcome.retryable(
            f"cannot connect to {exc.host}:{exc.port} ({_os_error_text(exc)})", unreachable=True
        )
    if isinstance(exc, aiohttp.TooManyRedirects):
        return DeliveryOutcome.permanent("too many redirects")
    if isinstance(exc, aiohttp.InvalidURL):
        return DeliveryOutcome.permanent("invalid URL")
    if isinstance(exc, aiohttp.ClientConnectionError | ConnectionError):
        return DeliveryOutcome.retryable(f"connection error: {type(exc).__name__}", unreachable=True)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return DeliveryOutcome.retryable("response payload error")
    return DeliveryOutcome.permanent(f"unexpected error: {type(exc).__name__}")


def _os_error_text(exc: aiohttp.ClientConnectorError) -> str:
    os_error = exc.os_error
    return os_error.strerror or type(os_error).__name__


def endpoint_of(url: Any) -> str | None:
    """The URL a circuit breaker watches: ``scheme://host:port/path`` (the port made explicit; no
    credentials, query or fragment), or None when it has no host.

    The path counts: one gateway often fronts many services, and one of them hanging says nothing of
    the others.
    """
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme.lower()}://{host}:{port}{parts.path or '/'}"


def scrubbed(outcome: DeliveryOutcome, scrubber: SecretScrubber) -> DeliveryOutcome:
    """The outcome with any known secret value removed from its reason."""
    if not scrubber or not outcome.reason:
        return outcome
    return dataclasses.replace(outcome, reason=scrubber.scrub(outcome.reason))


def ssl_for(url: str, verify_ssl: object) -> bool:
    """MLRun's rule: only ``verify_ssl=False`` on an https URL turns certificate checks off."""
    return not (url.lower().startswith("https") and verify_ssl is not None and not verify_ssl)


class SessionCache:
    """One egress-guarded aiohttp session per event loop, created on first use."""

    def __init__(self, policy: EgressPolicy, timeout: float | None = None) -> None:
        self.policy = policy
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> aiohttp.ClientSession:
        """The session for the running loop."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = create_session(self.policy, timeout=self.timeout)
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        """Close the session if it belongs to the running loop."""
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()
