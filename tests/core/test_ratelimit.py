"""Destination rate limits: the token bucket, the shares that keep workers together under a limit, the
limit a delivery carries (a receiver's, a run's own, the channel default) and how it is checked."""

from __future__ import annotations

import math
from typing import Any

import pytest

from runherald.admission import notification_problems
from runherald.alerting import Rule, check_document, parse_receiver, with_receiver
from runherald.ratelimit import (
    RateLimit,
    RateLimiter,
    TokenBucket,
    describe_key,
    limit_for,
    limit_key,
    rate_limit_problems,
    share_of,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_its_burst_go_then_one_per_interval() -> None:
    bucket = TokenBucket(RateLimit(2.0, burst=3), share=1.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # the next token in half a second
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    # Idle for a long time: full again, but never more than the burst.
    assert [bucket.take(100.0) for _ in range(4)][:3] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) > 0


def test_a_share_scales_the_rate_and_the_burst_but_keeps_one_whole_token() -> None:
    half = TokenBucket(RateLimit(10.0, burst=4), share=0.5, now=0.0)
    assert (half.rate, half.capacity) == (5.0, 2.0)
    small = TokenBucket(RateLimit(10.0, burst=1), share=0.25, now=0.0)
    assert (small.rate, small.capacity) == (2.5, 1.0)  # a worker can only send whole messages
    none = TokenBucket(RateLimit(10.0, burst=1), share=0.0, now=0.0)
    assert none.capacity == 0.0 and math.isinf(none.take(0.0))  # owning nothing, it sends nothing


def test_shares_are_the_owned_part_of_the_partitions() -> None:
    assert share_of(2, 4) == 0.5
    assert share_of(0, 4) == 0.0
    assert share_of(4, 4) == 1.0
    assert share_of(5, 4) == 1.0  # never more than the whole limit
    assert share_of(3, 0) == 0.0


def test_a_share_change_counts_the_time_before_it_at_the_old_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(share=0.5, clock=clock)
    limit = RateLimit(10.0)
    assert limiter.take("e", limit) == 0.0  # the one token of its bucket
    clock.now += 1.0  # at 5/s it earned 5 tokens, capped at 1
    limiter.set_share(1.0)
    assert limiter.take("e", limit) == 0.0
    assert limiter.take("e", limit) == pytest.approx(0.1)  # now at the whole rate
    limiter.set_share(0.0)  # every partition revoked: nothing more, however long it waits
    clock.now += 60
    assert math.isinf(limiter.take("e", limit))


def simulate(shares: list[float], limit: RateLimit, seconds: float, step: float = 0.001) -> list[float]:
    """Every worker sends as fast as its bucket lets it (a worst case): the send times of all."""
    sent: list[float] = []
    buckets = [TokenBucket(limit, share, 0.0) for share in shares]
    ticks = int(seconds / step)
    for tick in range(ticks):
        now = tick * step
        for bucket in buckets:
            while bucket.take(now) == 0.0:
                sent.append(now)
    return sorted(sent)


def most_in_any_window(times: list[float], window: float) -> int:
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] > window:  # closed windows [t, t + window]
            start += 1
        most = max(most, end - start + 1)
    return most


@pytest.mark.parametrize(
    ("shares", "limit"),
    [
        ([0.5, 0.5], RateLimit(20.0, 1)),
        ([0.25, 0.75], RateLimit(5.0, 1)),
        ([0.5, 0.5], RateLimit(10.0, 4)),
        ([0.25, 0.25, 0.5], RateLimit(8.0, 2)),
    ],
)
def test_workers_sending_flat_out_stay_within_the_bound(shares: list[float], limit: RateLimit) -> None:
    sent = simulate(shares, limit, seconds=10.0)
    # Over the long run the whole limit and no more: the shares add up to 1.
    assert len(sent) <= limit.per_second * 10 + limit.burst + len(shares)
    assert len(sent) >= limit.per_second * 10 * 0.95
    # Any window of T seconds: per_second * T + the sum of the buckets (burst, at least 1 each).
    held = sum(max(1.0, math.floor(limit.burst * share)) for share in shares)
    for window in (0.1, 0.5, 1.0, 3.0):
        assert most_in_any_window(sent, window) <= limit.per_second * window + held + 1e-9


def test_one_worker_owning_everything_is_held_to_exactly_the_limit() -> None:
    sent = simulate([1.0], RateLimit(20.0, 1), seconds=5.0)
    assert most_in_any_window(sent, 1.0) <= 21  # 20 a second, and the one at the window's closed end
    assert most_in_any_window(sent, 0.0) == 1  # never two at once: burst 1


def test_the_strictest_limit_holds_while_an_endpoint_is_busy_then_the_next_one() -> None:
    clock = Clock()
    limiter = RateLimiter(share=1.0, clock=clock)
    assert limiter.take("e", RateLimit(100.0, 5)) == 0.0
    assert limiter.take("e", RateLimit(1.0, 1)) == 0.0  # busy: the stricter one, 1 token left of 4
    assert limiter.take("e", RateLimit(1.0, 1)) == pytest.approx(1.0)
    assert limiter.take("e", RateLimit(100.0, 5)) == pytest.approx(1.0)
    clock.now += 10  # idle (full): the next delivery's limit replaces it
    assert [limiter.take("e", RateLimit(100.0, 5)) for _ in range(5)] == [0.0] * 5


def test_defaults_follow_the_services_published_limits() -> None:
    assert limit_for("slack", {"webhook": "https://hooks.slack.com/services/T/B/X"}, 1.0) == RateLimit(1.0, 1)
    assert limit_for("slack", {}, 0.0) is None  # the default turned off
    assert limit_for("webhook", {"url": "http://x/"}, 1.0) is None
    assert limit_for("mail", {}, 1.0) is None
    named = {"url": "http://x/", "rate_limit": {"per_second": 20, "burst": 2}}
    assert limit_for("webhook", named, 1.0) == RateLimit(20.0, 2)
    assert limit_for("slack", {"rate_limit": {"per_second": 0.5}}, 1.0) == RateLimit(0.5, 1)


def test_slack_web_api_limits_count_per_channel_and_reasons_hide_webhook_paths() -> None:
    api = "https://slack.com:443/api/chat.postMessage"
    assert limit_key("slack", api, {"channel": "#ml"}) == api + "#" + "#ml"
    assert limit_key("slack", api, {"channel": "#ops"}) != limit_key("slack", api, {"channel": "#ml"})
    hook = "https://hooks.slack.com:443/services/T0/B0/secret-token"
    assert limit_key("slack", hook, {"webhook": hook}) == hook
    assert "secret-token" not in describe_key(hook) and "hooks.slack.com" in describe_key(hook)
    assert describe_key(api + "#ml").endswith("channel ml")
    assert describe_key("smtp://mail:25") == "smtp://mail:25"


@pytest.mark.parametrize(
    ("value", "paths"),
    [
        ({"per_second": 1, "burst": 1}, []),
        ({"per_second": 0.5}, []),
        ({"per_second": 0}, ["r.per_second"]),
        ({"per_second": -1}, ["r.per_second"]),
        ({"per_second": "fast"}, ["r.per_second"]),
        ({"per_second": True}, ["r.per_second"]),
        ({"per_second": float("inf")}, ["r.per_second"]),
        ({"per_second": 1, "burst": 0}, ["r.burst"]),
        ({"per_second": 1, "burst": 1.5}, ["r.burst"]),
        ({"burst": 2}, ["r.per_second"]),
        ({"per_second": 1, "per_minute": 3}, ["r.per_minute"]),
        ([1, 1], ["r"]),
    ],
)
def test_rate_limit_problems_name_their_paths(value: Any, paths: list[str]) -> None:
    assert [path for path, _ in rate_limit_problems(value, "r")] == paths


def test_a_receiver_rate_limit_is_checked_at_its_path_and_carried_into_its_notifications() -> None:
    document = {
        "receivers": [
            {
                "name": "chat",
                "kind": "webhook",
                "params": {"url": "http://x/"},
                "rate_limit": {"per_second": 0},
            },
            {
                "name": "hook",
                "kind": "webhook",
                "params": {"url": "http://x/", "rate_limit": {"per_second": 1}},
            },
        ]
    }
    problems = {problem.path for problem in check_document(document).problems}
    assert problems == {"receivers.chat.rate_limit.per_second", "receivers.hook.params.rate_limit"}

    data = {"name": "chat", "kind": "webhook", "params": {"url": "http://x/"},
            "rate_limit": {"per_second": 5, "burst": 2}}  # fmt: skip
    receiver, problems = parse_receiver(data, "receivers.chat")
    assert receiver is not None and not problems
    assert receiver.rate_limit == RateLimit(5.0, 2)
    assert receiver.to_dict()["rate_limit"] == {"per_second": 5.0, "burst": 2}
    assert parse_receiver(receiver.to_dict(), "x")[0] == receiver  # as stored on the rules topic
    rule = Rule(name="r", matchers=(), receivers=("chat",))
    assert rule.notification(receiver)["params"]["rate_limit"] == {"per_second": 5.0, "burst": 2}
    # A run's own notification naming the receiver gets the receiver's limit, whatever it says itself.
    own = {"name": "own", "params": {"receiver": "chat", "rate_limit": {"per_second": 1000}}}
    assert with_receiver(own, receiver)["params"]["rate_limit"] == {"per_second": 5.0, "burst": 2}
    plain, _ = parse_receiver({"name": "p", "kind": "webhook", "params": {"url": "http://x/"}}, "p")
    assert plain is not None and "rate_limit" not in plain.to_dict()
    assert "rate_limit" not in with_receiver(own, plain)["params"]


def test_a_runs_own_notification_may_set_its_limit_and_a_bad_one_is_refused_at_its_path() -> None:
    good = {"kind": "webhook", "name": "own", "params": {"url": "http://x/", "rate_limit": {"per_second": 2}}}
    assert notification_problems(good, "spec.notifications[0]") == []
    bad = {"kind": "webhook", "name": "own", "params": {"url": "http://x/", "rate_limit": {"per_second": -2}}}
    paths = [problem.path for problem in notification_problems(bad, "spec.notifications[0]")]
    assert paths == ["spec.notifications[0].params.rate_limit.per_second"]
