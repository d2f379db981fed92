"""Prometheus metrics of one worker."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_CONSUMED = Counter(
    "runherald_events_consumed_total", "Run events read from the runs topic.", registry=REGISTRY
)
EVENTS_DEAD_LETTERED = Counter(
    "runherald_events_dead_lettered_total",
    "Run events sent to the dead-letter topic, by reason class.",
    ["reason"],
    registry=REGISTRY,
)
EVENTS_DROPPED = Counter(
    "runherald_events_dropped_total", "Run events ignored as older than one already seen.", registry=REGISTRY
)
DELIVERIES = Counter(
    "runherald_deliveries_total",
    "Delivery attempts by channel kind and outcome (sent, retryable, permanent), and deliveries "
    "deferred without an attempt while their endpoint's circuit is open (deferred).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
DELIVERIES_EMITTED = Counter(
    "runherald_deliveries_emitted_total", "Deliveries decided by the evaluate stage.", registry=REGISTRY
)
DELIVERY_LATENCY = Histogram(
    "runherald_delivery_latency_seconds",
    "From the evaluate stage deciding to send to the receiver accepting, for sent deliveries.",
    ["kind"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
STAGE_LAG = Histogram(
    "runherald_stage_lag_seconds",
    "Time records waited before a stage read them: evaluate, the oldest run event of each fetch, "
    "from its timestamp (its publisher's clock); dispatch, from evaluate deciding on the delivery.",
    ["stage"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
IN_FLIGHT = Gauge("runherald_deliveries_in_flight", "Sends under way in this worker.", registry=REGISTRY)
OPEN_CIRCUITS = Gauge(
    "runherald_open_circuits",
    "Endpoints this worker does not send to for now: they gave no answer to several requests in a row.",
    registry=REGISTRY,
)
REDRIVEN = Counter(
    "runherald_redriven_deliveries_total",
    "Deliveries found pending with nothing behind them after a takeover: sent again (resent), or "
    "recorded as an error because their run event is gone (error).",
    ["outcome"],
    registry=REGISTRY,
)


def render() -> bytes:
    """The text exposition format of every metric above."""
    return generate_latest(REGISTRY)
