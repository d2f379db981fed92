"""Record headers and hop counts: what stops a run that a notification leads back into runherald.

Every outgoing webhook request carries ``X-Runherald-Hops: N+1``, N being its runs' ``runherald.hops``
(`next_hops`). runherald's ingress (`POST /api/v1/runs`, a run source's record headers) reads the
header (`hops_from`) and stores it in each run (`stamp_hops`), refusing a run over ``max_hops``
(TooManyHops): a chain of notifications that changes the run each time (so the delivery id cannot
stop it) ends after max_hops.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from runherald.events import NOT_A_RUN, InvalidEvent

__all__ = [
    "HOPS_HEADER",
    "MARK",
    "TOO_MANY_HOPS",
    "HeadersIn",
    "TooManyHops",
    "headers_of",
    "hops_from",
    "hops_of",
    "mark_of",
    "next_hops",
    "stamp_hops",
]

HOPS_HEADER = "X-Runherald-Hops"
TOO_MANY_HOPS = "too_many_hops"  # a dead-letter reason label, beside events' codes
MARK = "runherald"  # the top-level key of a run dict that carries what runherald knows of its way in


class TooManyHops(InvalidEvent):
    """A run that came back through runherald's ingress more often than max_hops allows (a loop)."""

    def __init__(self, hops: int, max_hops: int) -> None:
        self.hops, self.max_hops = hops, max_hops
        super().__init__(
            f"loop detected: {HOPS_HEADER} is {hops}, over max_hops {max_hops} (a notification that leads"
            " back into runherald's ingress)",
            TOO_MANY_HOPS,
        )


def mark_of(run: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of what the run carries under ``runherald`` (empty when nothing, or not an object)."""
    mark = run.get(MARK)
    return dict(mark) if isinstance(mark, dict) else {}


HeadersIn = Mapping[str, str] | Iterable[tuple[str, bytes | str | None]] | None


def headers_of(headers: HeadersIn) -> dict[str, str]:
    """Header names lower-cased, values text: from an HTTP request's or a Kafka record's headers."""
    if headers is None:
        return {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, str] = {}
    for name, value in pairs:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        found[str(name).lower()] = "" if value is None else str(value)
    return found


def hops_from(headers: Mapping[str, str] | None) -> int | None:
    """The ``X-Runherald-Hops`` of a request or record (None without one); InvalidEvent when it is not a
    non-negative integer."""
    value = headers_of(headers).get(HOPS_HEADER.lower())
    if value is None:
        return None
    digits = value.strip()
    hops = min(int(digits[:19]), 10**18) if re.fullmatch(r"[0-9]+", digits) else -1  # huge is still a loop
    if hops < 0:
        raise InvalidEvent(f"{HOPS_HEADER} must be a non-negative integer, not {value[:20]!r}", NOT_A_RUN)
    return hops


def hops_of(run: Mapping[str, Any]) -> int:
    """How many times the run came back through runherald's ingress (``runherald.hops``, 0 when absent)."""
    hops = mark_of(run).get("hops")
    return hops if isinstance(hops, int) and not isinstance(hops, bool) and hops > 0 else 0


def next_hops(runs: Iterable[Mapping[str, Any]]) -> int:
    """The ``X-Runherald-Hops`` an outgoing notification about these runs carries: their hops + 1."""
    return max((hops_of(run) for run in runs), default=0) + 1


def stamp_hops(runs: list[dict[str, Any]], hops: int | None, max_hops: int) -> list[dict[str, Any]]:
    """Each run with ``runherald.hops`` = the larger of `hops` (the request's header) and its own;
    TooManyHops when one is over `max_hops` (nothing of the request is then to be published)."""
    stamped = []
    for run in runs:
        count = max(hops or 0, hops_of(run))
        if count > max_hops:
            raise TooManyHops(count, max_hops)
        stamped.append({**run, MARK: {**mark_of(run), "hops": count}} if count else run)
    return stamped
