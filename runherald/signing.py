"""Standard Webhooks signatures: sign outgoing webhook bodies and let receivers verify them.

A signing secret is one of two forms, and every signature verifies with the reference library
(PyPI ``standardwebhooks``) as well as with `verify` here:

- ``whsec_<base64>``: the HMAC key is the base64-decoded text after the prefix (standard alphabet,
  padding optional), exactly as the reference library reads it: the receiver configures the same string.
- anything else: the HMAC key is the text's UTF-8 bytes. The reference library base64-decodes every
  string it is given, so a receiver configures `receiver_secret(secret)` (``whsec_`` + base64 of those
  bytes) or passes the bytes themselves (``Webhook(secret.encode())``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300  # seconds a signed timestamp may differ from the receiver's clock


class WebhookVerificationError(ValueError):
    """A webhook signature is missing, malformed, too old or does not match."""


def secret_bytes(secret: str | bytes) -> bytes:
    """The HMAC key: base64 after a ``whsec_`` prefix (padding optional), otherwise the secret's bytes."""
    if isinstance(secret, bytes):
        key = secret
    elif secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :].rstrip("=")
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except ValueError:
            raise ValueError("signing secret after 'whsec_' is not valid base64") from None
    else:
        key = secret.encode("utf-8")
    if not key:
        raise ValueError("signing secret is empty")
    return key


def receiver_secret(secret: str | bytes) -> str:
    """The ``whsec_`` form of a signing secret: what a receiver gives the reference library to verify."""
    if isinstance(secret, str) and secret.startswith(SECRET_PREFIX):
        return secret
    return SECRET_PREFIX + base64.b64encode(secret_bytes(secret)).decode("ascii")


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``v1,<base64 HMAC-SHA256>`` signature of ``{msg_id}.{timestamp}.{body}``."""
    payload = body.encode("utf-8") if isinstance(body, str) else body
    signed = f"{msg_id}.{timestamp}.".encode() + payload
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(
    secret: str | bytes, msg_id: str, body: bytes | str, timestamp: int | None = None
) -> dict[str, str]:
    """The ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers for one body."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check a received webhook's Standard Webhooks signature; raise WebhookVerificationError if wrong."""
    lowered = {key.lower(): value for key, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    raw_ts = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not raw_ts or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(raw_ts)
    except ValueError as exc:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from exc
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance window")
    expected = sign(secret, msg_id, timestamp, body)
    for candidate in signatures.split():
        if hmac.compare_digest(candidate, expected):
            return
    raise WebhookVerificationError("no webhook-signature matches")
