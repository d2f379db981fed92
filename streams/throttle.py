"""Make deliveries wait for their endpoint's rate limit (runherald.ratelimit), in arrival order.

A delivery that finds a token goes at once. Otherwise it joins its endpoint's queue and one pump per
endpoint hands out tokens as the bucket earns them, oldest first: a backlog of thousands costs one
wake-up per send, not one per waiting delivery. The dispatcher records the waiting delivery as
``pending`` with the reason, and holds no send slot while it waits, so other endpoints go on.

A waiting delivery of a partition that leaves this worker is let go (`drop_partitions`) unsent and
unrecorded: its event was never acknowledged, and the new owner sends it within its own share.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runherald.ratelimit import RateLimit, RateLimiter, describe_key, limit_for, limit_key, share_of

PUMP_NAP = 0.5  # longest sleep of a pump, so that a larger share is taken up soon


class Abandoned(Exception):
    """The delivery's partition left this worker while it waited: neither send nor record it."""


@dataclass(slots=True)
class _Waiter:
    future: asyncio.Future[bool]
    partition: int
    limit: RateLimit


class Throttle:
    """Per endpoint: a token now, or a place in the queue until there is one."""

    def __init__(self, limiter: RateLimiter, slack_per_second: float = 1.0) -> None:
        self.limiter = limiter
        self.slack_per_second = slack_per_second
        self._queues: dict[str, deque[_Waiter]] = {}
        self._pumps: dict[str, asyncio.Task[None]] = {}

    def waiting(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    async def admit(
        self,
        kind: str,
        endpoint: str | None,
        params: Mapping[str, Any],
        partition: int,
        on_wait: Callable[[str], Awaitable[None]],
    ) -> None:
        """Return when a send may go; first `on_wait(reason)` if it has to wait. Raises Abandoned."""
        limit = limit_for(kind, params, self.slack_per_second) if endpoint else None
        if limit is None or endpoint is None:
            return
        key = limit_key(kind, endpoint, params)
        if key not in self._queues and not self.limiter.take(key, limit):
            return
        waiter = _Waiter(asyncio.get_running_loop().create_future(), partition, limit)
        self._queues.setdefault(key, deque()).append(waiter)
        if key not in self._pumps:
            self._pumps[key] = asyncio.create_task(self._pump(key))
        try:
            rate = self.limiter.rate(key)
            share = f"; this worker's share: {rate:.3g}/s" if rate < limit.per_second else ""
            await on_wait(f"waiting for the rate limit of {describe_key(key)}: {limit.describe()}{share}")
            if not await waiter.future:
                raise Abandoned
        finally:
            if not waiter.future.done():
                waiter.future.cancel()  # cancelled: the pump skips it

    async def _pump(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                waiter = queue[0]
                if waiter.future.done():
                    queue.popleft()
                    continue
                wait = self.limiter.take(key, waiter.limit)
                if wait:
                    await asyncio.sleep(min(wait, PUMP_NAP))
                    continue
                queue.popleft()
                if waiter.future.done():  # gone meanwhile: its token is lost, which errs on the safe side
                    continue
                waiter.future.set_result(True)
        finally:
            del self._queues[key]
            del self._pumps[key]

    def drop_partitions(self, keep: Callable[[int], bool]) -> None:
        """Let go of the waiting deliveries of partitions this worker no longer owns."""
        for queue in self._queues.values():
            for waiter in queue:
                if not keep(waiter.partition) and not waiter.future.done():
                    waiter.future.set_result(False)

    def set_share(self, owned: int, total: int) -> None:
        """This worker now owns `owned` of the deliveries topic's `total` partitions."""
        self.limiter.set_share(share_of(owned, total))


__all__ = ["Abandoned", "Throttle"]
