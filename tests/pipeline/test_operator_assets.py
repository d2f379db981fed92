"""The Grafana dashboard and the Prometheus alerting rules in deploy/: they parse, the rules file has
Prometheus' rule-group shape, and every metric their PromQL names is on a real worker's /metrics (one
started here, with a run published so that the labelled series appear). promtool, where it is on PATH
(Debian's prometheus package), checks the rules and runs their unit tests too."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from runherald.publish import Publisher
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, run_dict, unique, wait_for, webhook

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "runherald.json"
RULES = DEPLOY / "prometheus" / "runherald-rules.yaml"
RULES_TEST = DEPLOY / "prometheus" / "runherald-rules.test.yaml"

# Series Prometheus makes itself for every scrape target, never on /metrics.
SYNTHETIC = {"up"}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS |= {"offset", "bool", "inf", "nan", "atan2"}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
TOKEN = re.compile(
    r"(?P<number>0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?[a-zA-Z]*|\.\d+)"
    r"|(?P<variable>\$\{?\w+\}?)"
    r"|(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"|(?P<other>\S)"
)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: not functions or aggregations (a name followed by
    "("), keywords, label names and values (in {...} and by/without/on/ignoring (...)), ranges,
    numbers, durations or Grafana variables."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries: [5m], [$__rate_interval], [1h:1m]
    text = GROUPING.sub(" ", text)
    names = set()
    tokens = list(TOKEN.finditer(text))
    for i, token in enumerate(tokens):
        name = token.group("name")
        if name is None or name.lower() in KEYWORDS:
            continue
        following = tokens[i + 1].group() if i + 1 < len(tokens) else ""
        if following == "(":  # a function or an aggregation: sum (...), rate(...)
            continue
        names.add(name)
    return names


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: its panels' targets (rows' nested panels too) and
    its templating variables' label_values(metric, label) queries (their metric)."""
    exprs = []
    panels = list(dashboard["panels"])
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))
        exprs.extend(target["expr"] for target in panel.get("targets", []))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        if variable["type"] == "query":
            match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", text)
            assert match, f"variable {variable['name']}: not label_values(metric, label): {text!r}"
            exprs.append(match.group(1))
    return exprs


def load_rules() -> dict[str, Any]:
    document = yaml.safe_load(RULES.read_text())
    assert isinstance(document, dict) and set(document) == {"groups"}
    assert document["groups"], "no rule group"
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules"} and group["name"] and group["rules"]
        for rule in group["rules"]:
            assert isinstance(rule, dict)
            assert ("alert" in rule) != ("record" in rule), rule
            assert set(rule) <= {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            if "alert" in rule:
                assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
                assert rule.get("annotations", {}).get("summary"), f"{rule['alert']}: no summary"
            if "for" in rule:
                assert re.fullmatch(r"(\d+[smhdwy])+", rule["for"]), rule["for"]
            for mapping in ("labels", "annotations"):
                assert all(isinstance(v, str) for v in rule.get(mapping, {}).values()), rule
    return document


def exposed_names(text: str) -> set[str]:
    """The names of the samples on a /metrics page (counter_total, histogram_bucket, ...)."""
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.MULTILINE)}


def test_the_tokenizer_finds_metric_names_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (kind, le) (rate(a_seconds_bucket{job=~"$job", kind!="x"}'
        "[$__rate_interval]))) / on (kind) group_left sum without (instance) (b_total offset 5m)"
        ' > bool 1e3 and absent(c{d="e{f}"}) unless sum(rate(g[1h:1m])) * 60'
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c", "g"}
    assert metric_names("up == 0") == {"up"}
    assert metric_names("topk(5, sum by (topic) (lag)) > 0x10") == {"lag"}


def test_the_rules_file_has_the_rule_group_shape_and_raises_what_operators_watch() -> None:
    alerts = {rule["alert"] for group in load_rules()["groups"] for rule in group["rules"] if "alert" in rule}
    assert {
        "RunheraldWorkerDown",
        "RunheraldDeliveriesFailing",
        "RunheraldConsumerLagGrowing",
        "RunheraldCircuitsOpen",
        "RunheraldDeadLettersRising",
    } <= alerts


def test_promtool_checks_the_rules_and_their_unit_tests() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not on PATH (Debian: apt-get install prometheus)")
    for args in (["check", "rules", RULES.name], ["test", "rules", RULES_TEST.name]):
        done = subprocess.run(
            [promtool, *args], cwd=RULES.parent, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


async def test_every_metric_the_dashboard_and_the_rules_name_is_on_a_real_workers_metrics(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"]
    exprs = {"dashboard": dashboard_exprs(dashboard)}
    exprs["rules"] = [rule["expr"] for group in load_rules()["groups"] for rule in group["rules"]]
    wanted = {name: where for where, found in exprs.items() for e in found for name in metric_names(e)}
    assert {"runherald_deliveries_total", "runherald_consumer_lag", "runherald_open_circuits"} <= set(wanted)

    worker: WorkerProcess = start_worker(RUNHERALD_RETRY_MAX_ATTEMPTS="1")
    receiver.fail("/refused", 400)  # a permanent error: a dead letter with its reason label
    hooks = [webhook(name, receiver.url(f"/{name}")) for name in ("ok", "refused")]
    async with Publisher(worker.settings) as publisher:
        await publisher.publish(run_dict(unique("p"), unique("u"), "completed", hooks))

    def scraped() -> set[str] | None:
        code, text = worker.get_text("/metrics")
        names = exposed_names(text) if code == 200 else set()
        labelled = {"runherald_deliveries_total", "runherald_events_dead_lettered_total"}
        return names if labelled <= names and "runherald_consumer_lag" in names else None

    names = await wait_for(scraped, timeout=40)
    assert not {name for name in names if name.endswith("_created")}  # disabled in runherald.metrics
    missing = {name: where for name, where in wanted.items() if name not in names | SYNTHETIC}
    assert not missing, f"named in deploy/ but not on /metrics: {missing}"
