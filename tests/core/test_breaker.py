"""Circuit breakers on a hand-driven clock: when they open, probe, back off and close."""

from __future__ import annotations

import random

import pytest
from runherald.notifiers._http import endpoint_of

from runherald.breaker import Admission, CircuitBreakers

URL = "http://hooks.example:8080/services/T0/B0/sekrit-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breakers(
    threshold: int = 3, cooldown: float = 10.0, max_cooldown: float = 35.0, hang_after: float = 1e9
) -> tuple:
    clock = Clock()
    made = CircuitBreakers(
        threshold, cooldown, max_cooldown, hang_after=hang_after, clock=clock, rng=random.Random(7)
    )
    return made, clock


def fail(b: CircuitBreakers, times: int, endpoint: str = URL, probe: bool = False) -> None:
    for _ in range(times):
        b.record(endpoint, Admission(True, probe=probe), answered=False)


def test_opens_after_threshold_unanswered_requests_in_a_row() -> None:
    b, _ = breakers(threshold=3)
    fail(b, 2)
    assert b.admit(URL).allowed
    fail(b, 1)
    admission = b.admit(URL)
    assert not admission.allowed
    assert 10.0 <= admission.wait <= 15.0  # the cool-down, plus up to half of it to spread them
    assert b.open_endpoints() == 1


def test_an_answer_resets_the_count() -> None:
    b, _ = breakers(threshold=3)
    fail(b, 2)
    b.record(URL, Admission(True), answered=True)  # an HTTP 500 is an answer too
    fail(b, 2)
    assert b.admit(URL).allowed


def test_the_reason_names_the_host_but_not_the_path() -> None:
    b, _ = breakers(threshold=1)
    fail(b, 1)
    reason = b.admit(URL).reason
    assert "hooks.example:8080" in reason and "1 requests in a row" in reason
    assert "sekrit-token" not in reason and "services" not in reason


def test_one_probe_after_the_cooldown_then_success_closes() -> None:
    b, clock = breakers(threshold=2, cooldown=10.0)
    fail(b, 2)
    clock.now += 9.9
    assert not b.admit(URL).allowed
    clock.now += 0.2
    probe = b.admit(URL)
    assert probe.allowed and probe.probe
    waiting = b.admit(URL)  # while the probe is under way, the others still wait
    assert not waiting.allowed and waiting.wait >= 10.0
    b.record(URL, probe, answered=True)
    after = b.admit(URL)
    assert after.allowed and not after.probe
    assert b.open_endpoints() == 0


def test_failed_probes_double_the_cooldown_up_to_the_maximum() -> None:
    b, clock = breakers(threshold=1, cooldown=10.0, max_cooldown=35.0)
    fail(b, 1)
    cooldowns = []
    for _ in range(4):
        clock.now += 100
        assert b.admit(URL).probe
        fail(b, 1, probe=True)
        opened_at = clock.now
        clock.now = opened_at + 0.001
        assert not b.admit(URL).allowed
        cooldowns.append(b._circuits[URL].open_until - opened_at)
    assert cooldowns == pytest.approx([20.0, 35.0, 35.0, 35.0])


def test_requests_already_under_way_do_not_extend_the_cooldown() -> None:
    b, clock = breakers(threshold=2, cooldown=10.0)
    fail(b, 2)
    clock.now += 5
    fail(b, 20)  # the stragglers sent before it opened time out now
    clock.now += 5.1
    assert b.admit(URL).probe


def test_paths_are_separate_endpoints_and_queries_do_not_matter() -> None:
    b, _ = breakers(threshold=2)
    fail(b, 2, endpoint_of("http://gw.example/hanging?uid=1") or "")
    assert endpoint_of("http://gw.example/hanging?uid=2") == "http://gw.example:80/hanging"
    assert not b.admit(endpoint_of("http://gw.example/hanging?uid=3")).allowed
    assert b.admit(endpoint_of("http://gw.example/healthy")).allowed


def test_threshold_zero_turns_breakers_off() -> None:
    b, _ = breakers(threshold=0)
    fail(b, 50)
    assert b.admit(URL).allowed
    assert b.open_endpoints() == 0


def test_deliveries_without_an_endpoint_always_go() -> None:
    b, _ = breakers(threshold=1)
    fail(b, 5, endpoint="")
    assert b.admit(None).allowed


def test_opens_before_any_timeout_when_requests_under_way_get_no_answer() -> None:
    b, clock = breakers(threshold=3, hang_after=2.0)
    sent = [b.admit(URL) for _ in range(3)]
    assert all(a.allowed for a in sent)
    clock.now += 1.9
    assert b.admit(URL).allowed  # not yet: the oldest has waited less than hang_after
    clock.now += 0.2
    admission = b.admit(URL)
    assert not admission.allowed
    assert "answered none of the 4 requests under way for 2s" in admission.reason
    # The requests under way time out later: they do not push the probe further away.
    for a in sent:
        b.record(URL, a, answered=False)
    clock.now += 10.0
    assert b.admit(URL).probe


def test_a_slow_endpoint_that_answers_is_not_taken_for_a_hanging_one() -> None:
    b, clock = breakers(threshold=3, hang_after=2.0)
    first = b.admit(URL)
    older = [b.admit(URL) for _ in range(3)]
    clock.now += 1.0
    b.record(URL, first, answered=True)  # the oldest answered after a second
    clock.now += 1.5
    late = b.admit(URL)
    assert late.allowed  # three sent before that answer still under way: it is alive
    for a in [*older, late]:
        b.record(URL, a, answered=True)
    # Now requests sent after its last answer pile up and get none.
    clock.now += 0.1
    for _ in range(3):
        assert b.admit(URL).allowed
    clock.now += 2.1
    assert not b.admit(URL).allowed


def test_healthy_endpoints_leave_nothing_behind() -> None:
    b, _ = breakers(threshold=3, hang_after=2.0)
    for i in range(100):
        endpoint = f"http://h{i}.example:80/"
        b.record(endpoint, b.admit(endpoint), answered=True)
    assert b._circuits == {}
