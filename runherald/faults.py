"""A test-only fault hook: crash the worker at a named point, so crash tests can pick their moment.

Off unless ``RUNHERALD_FAULT_POINT`` is set, as ``NAME`` or ``NAME@N`` (crash the N-th time the point
is reached; the first time by default). The process kills itself with SIGKILL: no clean shutdown, no
final commit, no flush, as when a machine dies. The points, in the order one delivery meets them:

- ``evaluated``: a run event's deliveries are decided and queued; nothing of it committed yet.
- ``before-send``: a delivery is about to be sent.
- ``after-send``: the receiver answered; the outcome is not recorded yet.
- ``after-record``: the outcome is in the worker's ledger and queued for the broker, not flushed.
- ``rebalance``: partitions are being revoked from this worker (a rebalance is under way).
"""

from __future__ import annotations

import os
import signal

POINTS = frozenset({"evaluated", "before-send", "after-send", "after-record", "rebalance"})


def _parse(raw: str) -> tuple[str, int]:
    name, _, count = raw.strip().partition("@")
    if name not in POINTS:
        raise ValueError(f"RUNHERALD_FAULT_POINT: unknown point {name!r}; known: {', '.join(sorted(POINTS))}")
    return name, int(count or 1)


_armed: tuple[str, int] | None = (
    _parse(os.environ["RUNHERALD_FAULT_POINT"]) if os.environ.get("RUNHERALD_FAULT_POINT") else None
)
_hits = 0


def fault_point(name: str) -> None:
    """Crash here if the test armed this point and it is the N-th time it is reached."""
    global _hits
    if _armed is None or _armed[0] != name:
        return
    _hits += 1
    if _hits >= _armed[1]:
        print(f"runherald: fault point {name!r} reached ({_hits}): killing this worker", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
