"""When to try a failed delivery again: exponential backoff with jitter, never sooner than Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """A per-delivery budget of attempts and total time, and the backoff between attempts."""

    max_attempts: int = 8
    max_elapsed: float = 6 * 3600.0
    base_delay: float = 1.0
    max_delay: float = 300.0

    def next_delay(
        self,
        attempts: int,
        elapsed: float,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds until the next attempt after `attempts` failed ones, or None when the budget is spent.

        Full jitter over the exponential step, but never less than what the receiver asked for.
        """
        if attempts >= self.max_attempts:
            return None
        step = min(self.max_delay, self.base_delay * (2 ** max(0, attempts - 1)))
        delay = (rng or random).uniform(step / 2, step)
        if retry_after is not None:
            delay = max(delay, retry_after)
        if elapsed + delay > self.max_elapsed:
            return None
        return delay
