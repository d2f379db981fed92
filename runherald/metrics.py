"""Prometheus metrics of one worker.

Every label takes a few fixed values (channel kinds, outcome and status names, reason codes, the
worker's partitions), never text from an event or a receiver: the number of series stays bounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)

# No `<name>_created` series beside each counter and histogram (prometheus-client adds them by default):
# they double the series and Prometheus stores them as series of their own, which no query here reads.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ...


def _version() -> str:
    try:
        return version("runherald")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


BUILD_INFO = Gauge(
    "runherald_build_info", "Always 1; the version of runherald running.", ["version"], registry=REGISTRY
)
BUILD_INFO.labels(_version()).set(1)

EVENTS_CONSUMED = Counter(
    "runherald_events_consumed_total", "Run events read from the runs topic.", registry=REGISTRY
)
EVENTS_DEAD_LETTERED = Counter(
    "runherald_events_dead_lettered_total",
    "Records sent to the dead-letter topic, by reason code: run events (not_json, not_a_run, too_large, "
    "missing_field, invalid_field), deliveries-topic records that are not deliveries (malformed_delivery), "
    "deliveries that failed for good (gave_up: retries ran out; permanent).",
    ["reason"],
    registry=REGISTRY,
)
EVENTS_DROPPED = Counter(
    "runherald_events_dropped_total", "Run events ignored as older than one already seen.", registry=REGISTRY
)
DELIVERY_ATTEMPTS = Counter(
    "runherald_delivery_attempts_total",
    "Delivery attempts by channel kind and outcome (sent, retryable, permanent), and deliveries "
    "deferred without an attempt while their endpoint's circuit is open (deferred).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "runherald_deliveries_total",
    "Deliveries that reached a final status, by channel kind and status (sent, error), once each.",
    ["kind", "status"],
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


CONSUMER_LAG = Gauge(
    "runherald_consumer_lag",
    "Records on each partition this worker reads (runs, deliveries) that it has not read yet: the "
    "partition's high watermark minus the worker's position, sampled every second.",
    ["topic", "partition"],
    registry=REGISTRY,
)


def set_consumer_lag(lags: Mapping[tuple[str, int], int]) -> None:
    """Replace the lag series with these (topic, partition) values: partitions gone drop out."""
    CONSUMER_LAG.clear()
    for (topic, partition), lag in lags.items():
        CONSUMER_LAG.labels(topic, str(partition)).set(lag)
