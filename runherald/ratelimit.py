"""Destination rate limits that hold across workers: token buckets sized by each worker's share.

A limit (``rate_limit: {per_second: 1, burst: 1}``) is per endpoint, as the channel contract names it
(``Notifier.endpoint``: the webhook or URL, the SMTP server), and for Slack's Web API per channel too.
It comes from the delivery's notification (``params.rate_limit``: a receiver's ``rate_limit`` is
carried there) or else the channel's default: Slack allows one message a second per incoming webhook
and about one a second per channel for chat.postMessage, so Slack deliveries get 1/s (burst 1) unless
the setting ``slack_rate_limit`` says otherwise; other channels publish no limit and get none.

Across workers, with no coordination: each worker's budget for an endpoint is the limit times its
share of the deliveries topic's partitions (owned / total). A partition has one owner at a time and a
revoked one leaves its worker (the share drops) before the rebalance gives it to another, so the
shares never add up to more than 1 and neither do the rates. The burst is split the same way, but
a worker can only ever send whole messages, so its bucket holds at least one token: over any T
seconds the endpoint gets at most ``per_second * T + burst + (w - 1)`` messages from w workers (with
``burst * share >= 1`` for every worker, exactly ``per_second * T + burst``). The price: a worker
owning half the partitions sends at most half the rate, even while the other one is idle.

Pure: no I/O, one clock read per call; `runherald.streams.throttle` makes deliveries wait on it.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runherald.secrets import redact_url

PARAM = "rate_limit"  # the reserved key of a notification's params that carries its limit
KEYS = ("per_second", "burst")
SLACK = "slack"
MAX_BUCKETS = 10_000  # endpoints tracked at once; the least recently used (full, so idle) go first
MAX_BURST = 10_000


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``per_second`` messages a second on average, and ``burst`` at once."""

    per_second: float
    burst: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"per_second": self.per_second, "burst": self.burst}

    def describe(self) -> str:
        return f"{self.per_second:g}/s" + (f", burst {self.burst}" if self.burst != 1 else "")

    def stricter(self, other: RateLimit) -> RateLimit:
        return RateLimit(min(self.per_second, other.per_second), min(self.burst, other.burst))


def rate_limit_problems(value: Any, path: str) -> list[tuple[str, str]]:
    """What is wrong with a ``rate_limit`` value, as (path, message) pairs; [] when it is one."""
    if not isinstance(value, Mapping):
        return [(path, "must be an object such as {per_second: 1, burst: 1}")]
    problems = [
        (f"{path}.{key}", f"unknown field {key!r} (per_second, burst)") for key in value if key not in KEYS
    ]
    per_second = value.get("per_second")
    if isinstance(per_second, bool) or not isinstance(per_second, int | float):
        problems.append((f"{path}.per_second", "needs a number of messages a second, more than 0"))
    elif not 0 < per_second < math.inf:
        problems.append((f"{path}.per_second", f"must be more than 0 (not {per_second!r})"))
    burst = value.get("burst", 1)
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_BURST:
        problems.append((f"{path}.burst", f"must be a whole number from 1 to {MAX_BURST} (not {burst!r})"))
    return problems


def parse_rate_limit(value: Any) -> RateLimit | None:
    """The limit a checked value names; None when it is not a valid one."""
    if value is None or rate_limit_problems(value, ""):
        return None
    return RateLimit(float(value["per_second"]), int(value.get("burst", 1)))


def with_limit(params: Mapping[str, Any], limit: RateLimit | None) -> dict[str, Any]:
    """A receiver's params for a notification: its ``rate_limit`` in the reserved key, where the
    dispatcher reads it; a run's own value there is dropped (the receiver's owner sets its limit)."""
    kept = {key: value for key, value in params.items() if key != PARAM}
    return {**kept, PARAM: limit.to_dict()} if limit is not None else kept


def limit_for(kind: str, params: Mapping[str, Any], slack_per_second: float) -> RateLimit | None:
    """A delivery's limit: its notification's ``params.rate_limit``, else its channel's default."""
    named = parse_rate_limit(params.get(PARAM))
    if named is not None:
        return named
    if kind == SLACK and slack_per_second > 0:
        return RateLimit(slack_per_second, 1)
    return None


def limit_key(kind: str, endpoint: str, params: Mapping[str, Any]) -> str:
    """What one limit counts: the endpoint, and for Slack's chat.postMessage the channel too."""
    if kind == SLACK and endpoint.endswith("/chat.postMessage") and params.get("channel"):
        return f"{endpoint}#{params['channel']}"
    return endpoint


def describe_key(key: str) -> str:
    """A key as a reason may show it: scheme, host and port only (webhook paths carry tokens)."""
    endpoint, _, channel = key.partition("#")
    if endpoint.startswith("smtp://"):
        return endpoint
    return redact_url(endpoint) + (f" channel {channel}" if channel else "")


def share_of(owned: int, total: int) -> float:
    """This worker's share of an endpoint's limit: the part of the deliveries partitions it owns."""
    return 0.0 if total <= 0 or owned <= 0 else min(1.0, owned / total)


class TokenBucket:
    """One endpoint's budget in one worker: ``per_second * share`` tokens a second, holding up to
    ``burst * share`` of them (at least one whole token while the share is not 0)."""

    __slots__ = ("capacity", "limit", "rate", "stamp", "tokens")

    def __init__(self, limit: RateLimit, share: float, now: float) -> None:
        self.limit = limit
        self.rate = 0.0
        self.capacity = 0.0
        self.tokens = 0.0
        self.stamp = now
        self._size(share)
        self.tokens = self.capacity  # a new bucket is full: the endpoint was idle

    def _size(self, share: float) -> None:
        self.rate = self.limit.per_second * share
        self.capacity = 0.0 if share <= 0 else max(1.0, math.floor(self.limit.burst * share + 1e-9))
        self.tokens = min(self.tokens, self.capacity)

    def refill(self, now: float) -> None:
        """Add what the time since the last call earned, at the rate in force all that time."""
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def reshare(self, share: float, now: float) -> None:
        """The share changed: count the time so far at the old rate, then resize."""
        self.refill(now)
        self._size(share)

    def is_full(self, now: float) -> bool:
        self.refill(now)
        return self.tokens >= self.capacity

    def take(self, now: float) -> float:
        """Take a token: 0.0 when taken, else the seconds until one is there (inf: no share)."""
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        if self.rate <= 0:
            return math.inf
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """Every endpoint's bucket in this worker, all sized by one share. One event loop, no threads.

    Deliveries to one endpoint may name different limits: the strictest named while its bucket is in
    use holds; once the bucket is full again (idle) the next delivery's limit replaces it.
    """

    def __init__(self, share: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = share
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def set_share(self, share: float) -> None:
        now = self._clock()
        for bucket in self._buckets.values():
            bucket.reshare(share, now)
        self.share = share

    def rate(self, key: str) -> float:
        """This worker's rate for an endpoint now (messages a second)."""
        bucket = self._buckets.get(key)
        return bucket.rate if bucket is not None else 0.0

    def take(self, key: str, limit: RateLimit) -> float:
        """Take a token for one send to `key`: 0.0 when it may go now, else seconds to wait first."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None or (bucket.limit != limit and bucket.is_full(now)):
            bucket = self._buckets[key] = TokenBucket(limit, self.share, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._forget_idle(now)
        elif bucket.limit != limit:
            stricter = bucket.limit.stricter(limit)
            if stricter != bucket.limit:
                bucket.refill(now)
                bucket.limit = stricter
                bucket.reshare(self.share, now)
        self._buckets.move_to_end(key)
        return bucket.take(now)

    def _forget_idle(self, now: float) -> None:
        # A full bucket is the same as no bucket; one still filling stays, or its budget would repeat.
        idle = [key for key, bucket in self._buckets.items() if bucket.is_full(now)]
        for key in idle[: len(self._buckets) - MAX_BUCKETS]:
            del self._buckets[key]


__all__ = [
    "PARAM",
    "RateLimit",
    "RateLimiter",
    "TokenBucket",
    "describe_key",
    "limit_for",
    "limit_key",
    "parse_rate_limit",
    "rate_limit_problems",
    "share_of",
    "with_limit",
]
