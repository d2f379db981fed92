"""Per-endpoint circuit breakers: stop sending to an endpoint that answers nothing at all.

An endpoint that hangs costs far more than one that fails: every request holds a connection until
its timeout, and every retry opens a new one. Measured on the bench, a receiver hanging on one path
of ten slowed the other nine, while failures that answered fast (HTTP 503, three times as many) did
not.

So an endpoint's circuit opens after ``threshold`` requests in a row got no answer (timed out, or no
connection). It opens sooner, without waiting for their timeouts, when ``threshold`` requests are
under way to it, the oldest for ``hang_after`` seconds or more (half the send timeout in the worker),
and it has answered none of them. While it is open its deliveries are not attempted but deferred:
recorded as pending with the reason, and scheduled for after the cool-down. That uses none of their
retry attempts. When the cool-down is over one delivery goes through as a probe. If it gets an
answer the circuit closes and the deferred deliveries follow as their retries fall due; if not, the
cool-down doubles (up to ``max_cooldown``).

Any answer closes a circuit, an error status too: a server that says 500 is up, and its deliveries
keep their own retry budget. State is per worker and in memory; after a restart a circuit starts
closed and opens again as above.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from runherald.secrets import redact_url

# Endpoints tracked at once; the least recently used are forgotten first (a forgotten circuit is
# simply closed).
MAX_ENDPOINTS = 10_000


@dataclass(slots=True)
class _Circuit:
    open: bool = False
    failures: int = 0  # requests in a row without an answer
    cooldown: float = 0.0  # the current cool-down, doubled by every failed probe
    open_until: float = 0.0  # monotonic time the next probe may go
    probing: bool = False  # a probe is under way
    under_way: dict[int, float] = field(default_factory=dict)  # token -> start, oldest first
    last_answer: float = float("-inf")


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether a delivery may be sent now; if not, how long to wait and why."""

    allowed: bool
    probe: bool = False  # this send is the probe of an open circuit
    wait: float = 0.0
    reason: str = ""
    token: int = 0  # identifies the send under way, for record()


ALLOW = Admission(True)


class CircuitBreakers:
    """The circuits of every endpoint this worker sends to. Not thread-safe (one event loop)."""

    def __init__(
        self,
        threshold: int,
        cooldown: float,
        max_cooldown: float,
        *,
        hang_after: float = float("inf"),
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.threshold = threshold  # 0 turns the breakers off
        self.cooldown = cooldown
        self.max_cooldown = max(cooldown, max_cooldown)
        self.hang_after = hang_after
        self._clock = clock
        self._rng = rng or random.Random()
        self._circuits: OrderedDict[str, _Circuit] = OrderedDict()
        self._tokens = itertools.count(1)

    def _is_open(self, circuit: _Circuit | None) -> bool:
        return circuit is not None and circuit.open

    def is_open(self, endpoint: str) -> bool:
        return self._is_open(self._circuits.get(endpoint))

    def open_endpoints(self) -> int:
        """How many endpoints have an open (or probing) circuit."""
        return sum(1 for circuit in self._circuits.values() if self._is_open(circuit))

    def _hanging(self, circuit: _Circuit, now: float) -> bool:
        """Enough requests under way, the oldest for hang_after, and not one answer since it went."""
        if len(circuit.under_way) < self.threshold:
            return False
        oldest = next(iter(circuit.under_way.values()))
        return now - oldest >= self.hang_after and circuit.last_answer < oldest

    def admit(self, endpoint: str | None) -> Admission:
        """May a delivery to `endpoint` be sent now? The first one after a cool-down is the probe."""
        if not endpoint or not self.threshold:
            return ALLOW
        now = self._clock()
        circuit = self._circuits.get(endpoint)
        if circuit is None:
            circuit = self._circuits[endpoint] = _Circuit()
            while len(self._circuits) > MAX_ENDPOINTS:
                self._circuits.popitem(last=False)
        self._circuits.move_to_end(endpoint)
        if not circuit.open and self._hanging(circuit, now):
            self._open(circuit, now)
        probe = False
        if circuit.open:
            if circuit.probing or now < circuit.open_until:
                return self._deferral(endpoint, circuit, now)
            circuit.probing = probe = True
        token = next(self._tokens)
        circuit.under_way[token] = now
        return Admission(True, probe=probe, token=token)

    def _deferral(self, endpoint: str, circuit: _Circuit, now: float) -> Admission:
        # Spread the deferred deliveries over half a cool-down after it ends, so that they do not all
        # come back in the same instant.
        wait = max(0.0, circuit.open_until - now)
        if circuit.probing:
            wait = max(wait, circuit.cooldown)
        wait += self._rng.uniform(0.0, circuit.cooldown / 2)
        if circuit.failures >= self.threshold:
            what = f"gave no answer to {circuit.failures} requests in a row"
        else:
            under_way = len(circuit.under_way)
            what = f"answered none of the {under_way} requests under way for {self.hang_after:g}s"
        # Only scheme, host and port: paths of webhook URLs often carry tokens.
        reason = (
            f"not sent: {redact_url(endpoint)} {what}; waiting {circuit.cooldown:g}s before trying it again"
        )
        return Admission(False, wait=wait, reason=reason)

    def record(self, endpoint: str | None, admission: Admission, *, answered: bool) -> None:
        """Note what the send admitted by `admission` got: an answer (any status), or none at all."""
        if not endpoint or not self.threshold:
            return
        circuit = self._circuits.get(endpoint)
        if circuit is None:
            if answered:
                return
            circuit = self._circuits[endpoint] = _Circuit()  # forgotten meanwhile
        circuit.under_way.pop(admission.token, None)
        now = self._clock()
        if answered:
            circuit.open = False
            circuit.failures = 0
            circuit.probing = False
            circuit.cooldown = 0.0
            circuit.last_answer = now
            if not circuit.under_way:
                del self._circuits[endpoint]
            return
        circuit.failures += 1
        if admission.probe:
            circuit.probing = False
            circuit.cooldown = min(self.max_cooldown, circuit.cooldown * 2 or self.cooldown)
            circuit.open_until = now + circuit.cooldown
        elif not circuit.open and circuit.failures >= self.threshold:
            self._open(circuit, now)
        # Requests that were already under way when it opened only add to the count.

    def _open(self, circuit: _Circuit, now: float) -> None:
        circuit.open = True
        circuit.cooldown = self.cooldown
        circuit.open_until = now + circuit.cooldown


__all__ = ["ALLOW", "Admission", "CircuitBreakers"]
