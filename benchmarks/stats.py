"""What every benchmark phase shares: the percentile the figures report, and the bench's own garbage
collector kept still while it measures."""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Iterator


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of values (fraction in 0..1); NaN when there are none (the figure then
    says so rather than the phase failing)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(1, min(len(ordered), math.ceil(fraction * len(ordered)))) - 1]


@contextlib.contextmanager
def gc_still() -> Iterator[None]:
    """Keep the bench's own garbage collector still while it measures latency.

    The publisher and the receiver run in the bench's process: a collection there stops both for tens of
    milliseconds (measured: ~50 ms once a phase, as the receiver's recorded requests pile up), and every
    run published or received meanwhile would be charged with a pause of the bench, not of the worker.
    The worker's own collector is left as it is.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
