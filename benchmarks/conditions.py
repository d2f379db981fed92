"""Benchmark: condition evaluations per second, cached `evaluate` against a plain Jinja2 render loop.

Run with ``python -m runherald.benchmarks.conditions``. Not a test: it prints figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jinja2

from runherald.rules import evaluate

CONDITION = '{{ run["status"]["results"]["val"] > 4 }}'


def realistic_run() -> tuple[dict[str, Any], dict[str, Any]]:
    """A run dict and one of its notifications, shaped like a real training run's to_dict()."""
    notification: dict[str, Any] = {
        "kind": "slack",
        "name": "accuracy-alert",
        "message": "accuracy above threshold",
        "severity": "info",
        "when": ["completed", "error"],
        "condition": CONDITION,
        "params": {},
        "secret_params": {"webhook": "https://hooks.slack.invalid/T000/B000/XXXX"},
    }
    run: dict[str, Any] = {
        "kind": "run",
        "metadata": {
            "name": "train-model",
            "uid": "8d1f0c6e5a2b4c3d9e8f7a6b5c4d3e2f",
            "project": "fraud-detection",
            "iteration": 0,
            "labels": {"kind": "job", "owner": "ana", "host": "train-model-x7k2p", "v3io_user": "ana"},
            "annotations": {},
        },
        "spec": {
            "function": "fraud-detection/trainer@3c1b2a",
            "handler": "train",
            "parameters": {"lr": 0.01, "epochs": 20, "batch_size": 256, "model": "xgboost"},
            "inputs": {"dataset": "store://datasets/fraud-detection/train#0:latest"},
            "outputs": ["model", "metrics"],
            "output_path": "v3io:///projects/fraud-detection/artifacts",
            "notifications": [notification],
            "retry": {"count": 2},
        },
        "status": {
            "state": "completed",
            "results": {f"metric_{i}": i / 10 for i in range(8)} | {"val": 5, "accuracy": 0.93},
            "artifacts": [
                {"kind": "model", "metadata": {"key": "model"}, "spec": {"target_path": "s3://b/model.pkl"}},
                {"kind": "dataset", "metadata": {"key": "metrics"}, "spec": {"target_path": "s3://b/m.csv"}},
            ],
            "start_time": "2025-03-01T10:00:00+00:00",
            "last_update": "2025-03-01T10:42:17+00:00",
            "retry_count": 0,
            "notifications": {"accuracy-alert": {"status": "pending"}},
        },
    }
    return run, notification


def per_second(func: Callable[[], Any], seconds: float) -> float:
    """Calls of `func` per second over about `seconds` of wall time."""
    calls = 0
    batch = 1
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(batch):
            func()
        calls += batch
        batch = min(batch * 2, 1024)
    return calls / elapsed


def main(seconds: float = 2.0) -> None:
    """Print evaluations per second for cached evaluate and a plain Template(...).render loop."""
    run, notification = realistic_run()
    decision = evaluate(run, notification)
    assert decision.send, decision.reason

    def cached() -> None:
        evaluate(run, notification)

    def plain() -> None:
        jinja2.Template(CONDITION).render(run=run, notification=notification)

    cached_rate = per_second(cached, seconds)
    plain_rate = per_second(plain, seconds)
    print(f"condition: {CONDITION}")
    print(f"evaluate (cached, sandboxed):       {cached_rate:>10,.0f} evaluations/s")
    print(f"jinja2.Template(cond).render loop:  {plain_rate:>10,.0f} evaluations/s")
    print(f"ratio: {cached_rate / plain_rate:.1f}x")


if __name__ == "__main__":
    main()
