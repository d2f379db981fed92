"""Smoke test of `runherald bench`: tiny sizes, every figure and ratio line printed with a positive number."""

from __future__ import annotations

import gc
import json
import re
import subprocess
import sys

import pytest
from runherald.benchmarks.stats import gc_still

FIGURES = {
    "raw_aiokafka_consume": "events/s",
    "bare_faust_agent": "events/s",
    "evaluate_no_match": "events/s",
    "evaluate_10_rules": "events/s",
    "evaluate_10000_rules": "events/s",
    "rule_lookups_10_rules": "lookups/s",
    "rule_lookups_10000_rules": "lookups/s",
    "evaluate_grouping_off": "events/s",
    "evaluate_grouping_on": "events/s",
    "grouping_on_vs_off": "x",
    "grouping_last_run_to_digest_p99": "ms",
    "webhook_deliveries": "deliveries/s",
    "latency_p50": "ms",
    "latency_p99": "ms",
    **{
        f"ingress_{side}_{rate}_{q}": "ms"
        for side in ("http", "kafka")
        for rate in (20, 40)
        for q in ("p50", "p99")
    },
    "hang_others_p50": "ms",
    "hang_others_p99": "ms",
    "worker_peak_rss": "MB",
    "sse_p50": "ms",
    "sse_p99": "ms",
    **{f"pipeline_{p}_{side}_clients": "ms" for p in ("p50", "p99") for side in ("without", "with")},
    **{f"worker_cpu_{side}_clients": "% of a core" for side in ("without", "with")},
    **{f"ledger_query_{side}": "ms" for side in ("indexed", "full_scan", "api")},
}
RATIOS = (
    "evaluate_vs_bare_faust",
    "evaluate_vs_raw_aiokafka",
    "rules_10000_vs_10",
    "deliveries_vs_target",
    "p99_vs_target",
    "hang_p99_ratio",
    "rss_vs_target",
    "sse_pipeline_p99_ratio",
    "ledger_index_vs_scan",
)
TINY = [
    "--runs",
    "1500",
    "--rule-runs",
    "2000",
    "--group-runs",
    "1000",
    "--deliveries",
    "200",
    "--rate",
    "40",
    "--seconds",
    "1.5",
    "--ingress-rates",
    "20,40",
    "--rss-runs",
    "1000",
    "--partitions",
    "2",
    "--send-timeout",
    "1",
    *("--sse-clients", "5", "--sse-rate", "20", "--sse-seconds", "1"),
    *("--ledger-rows", "20000"),
    "--json",
]


def value_of(output: str, name: str, unit: str) -> float:
    """The number on the `name: value unit` line of the bench output."""
    found = re.search(rf"^{re.escape(name)}: ([0-9.eE+-]+) {re.escape(unit)}(\s|$)", output, re.MULTILINE)
    assert found, f"no `{name}: <number> {unit}` line in:\n{output}"
    return float(found.group(1))


@pytest.mark.slow
def test_bench_prints_every_figure_and_ratio() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runherald.benchmarks.pipeline", *TINY],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout
    assert result.returncode == 0, f"bench failed:\n{output}\n{result.stderr}"
    for name, unit in FIGURES.items():
        assert value_of(output, name, unit) > 0, name
    for name in RATIOS:
        assert value_of(output, name, "x") > 0, name
    summary = json.loads(output[output.index("\n{") + 1 :])
    assert set(summary["figures"]) == set(FIGURES)
    assert set(summary["ratios"]) == set(RATIOS)


def test_the_bench_keeps_its_own_collector_still_while_measuring_and_restores_it() -> None:
    assert gc.isenabled()
    with gc_still():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


LEDGER_ONLY = ("--ledger-rows", "20000", "--partitions", "1", "--json")


def test_the_ledger_query_phase_times_the_index_and_a_full_scan_of_one_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runherald.benchmarks.pipeline", "--only", "ledger-query", *LEDGER_ONLY],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout
    assert result.returncode == 0, f"bench failed:\n{output}\n{result.stderr}"
    summary = json.loads(output[output.index("\n{") + 1 :])
    assert set(summary["figures"]) == {"ledger_query_indexed", "ledger_query_full_scan", "ledger_query_api"}
    indexed = value_of(output, "ledger_query_indexed", "ms")
    scan = value_of(output, "ledger_query_full_scan", "ms")
    assert value_of(output, "ledger_index_vs_scan", "x") == pytest.approx(scan / indexed, rel=0.01)
    assert "USING INDEX ix_deliveries_project_status_queued" in output and "SCAN deliveries" in output
