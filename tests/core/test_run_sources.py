"""Run sources' pure part (runherald.run_sources) and settings: which topics are read, what one record
becomes on the runs topic, what of a refused one is dead-lettered; and the fetch order of the stage."""

from __future__ import annotations

import hashlib
import re
from types import SimpleNamespace

import orjson
import pytest
from aiokafka import TopicPartition
from runherald.streams.sources import in_time_order, source_group

from runherald.adapters import TooManyHops, Unrecognised
from runherald.config import ConfigError, Settings
from runherald.events import TOO_LARGE, InvalidEvent
from runherald.run_sources import redacted_record, source_records, subscription_pattern
from runherald.sealing import is_sealed

RUN = {"metadata": {"project": "p", "uid": "u"}, "status": {"state": "completed"}}


def test_the_subscription_is_the_names_and_whole_names_matching_the_pattern_never_runheralds_own() -> None:
    pattern = subscription_pattern(["jobs", "ci.events"], r"team-.*\.runs", "runherald.")
    assert pattern is not None
    matches = {
        name
        for name in [
            "jobs",
            "ci.events",
            "ci-events",
            "team-a.runs",
            "team-a.runs.x",
            "jobsx",
            "runherald.runs",
            "__consumer_offsets",
        ]
        if re.match(pattern, name)
    }
    assert matches == {"jobs", "ci.events", "team-a.runs"}
    everything = subscription_pattern([], ".*", "rh.")
    assert everything is not None
    assert re.match(everything, "anything") and not re.match(everything, "rh.runs")
    assert not re.match(everything, "__consumer_offsets")
    assert subscription_pattern([], "", "runherald.") is None


def test_a_source_record_becomes_keyed_sealed_runs_with_its_hops() -> None:
    secret = {
        **RUN,
        "spec": {
            "notifications": [
                {
                    "kind": "webhook",
                    "name": "h",
                    "params": {"url": "https://x"},
                    "secret_params": {"token": "hush"},
                }
            ]
        },
    }
    body = orjson.dumps(
        {
            "message": "m",
            "severity": "info",
            "runs": [RUN, {**secret, "metadata": {"project": "q", "uid": "v"}}],
        }
    )
    adapter, records = source_records(body, [("X-Runherald-Hops", b"2")], max_event_bytes=10_000, max_hops=3)
    assert adapter == "mlrun-webhook"
    assert [key for key, _ in records] == ["p/u", "q/v"]
    runs = [orjson.loads(value) for _, value in records]
    assert runs[0]["runherald"] == {"adapter": "mlrun-webhook", "notified_by_source": True, "hops": 2}
    assert "secret_params" not in runs[1]["spec"]["notifications"][0]  # MLRun's: never sent again
    _, (generic,) = source_records(orjson.dumps(secret), None, max_event_bytes=10_000, max_hops=3)
    assert is_sealed(orjson.loads(generic[1])["spec"]["notifications"][0]["secret_params"]["token"])


def test_refused_source_records() -> None:
    with pytest.raises(Unrecognised):
        source_records(b'{"a": 1}', (), max_event_bytes=100, max_hops=3)
    with pytest.raises(InvalidEvent) as caught:
        source_records(b"x" * 101, (), max_event_bytes=100, max_hops=3)
    assert caught.value.code == TOO_LARGE
    with pytest.raises(TooManyHops):
        source_records(orjson.dumps(RUN), [("x-runherald-hops", b"4")], max_event_bytes=1000, max_hops=3)
    with pytest.raises(InvalidEvent, match="empty record"):
        source_records(None, (), max_event_bytes=100, max_hops=3)


def test_a_dead_lettered_record_keeps_no_secret_wherever_it_is() -> None:
    body = {
        "runs": [{"spec": {"notifications": [{"secret_params": {"token": "hush"}}]}}],
        "x": [{"secret_params": 1}],
    }
    redacted = redacted_record(orjson.dumps(body))
    assert "hush" not in orjson.dumps(redacted).decode()
    assert redacted["runs"][0]["spec"]["notifications"][0]["secret_params"] == {"token": "REDACTED"}
    assert redacted["x"] == [{"secret_params": 1}]  # not an object of secrets: nothing to redact
    digest = hashlib.sha256(b"not json").hexdigest()
    assert redacted_record(b"not json") == {"bytes": 8, "sha256": digest}
    assert redacted_record(None) is None


def test_the_settings_of_run_sources() -> None:
    settings = Settings.from_env(
        {"RUNHERALD_RUN_TOPICS": " a, b.c ", "RUNHERALD_RUN_TOPIC_PATTERN": r"jobs\..*"}
    )
    assert (settings.run_topic_names, settings.run_topic_pattern, settings.max_hops) == (
        ["a", "b.c"],
        r"jobs\..*",
        3,
    )
    assert source_group(settings) == "runherald.run-sources"
    for env, message in [
        ({"RUNHERALD_RUN_TOPICS": "runherald.runs"}, "must not name runherald's own topics"),
        ({"RUNHERALD_RUN_TOPICS": "a b"}, "not Kafka topic names: a b"),
        ({"RUNHERALD_RUN_TOPIC_PATTERN": "("}, "not a regular expression"),
        ({"RUNHERALD_MAX_HOPS": "-1"}, "max_hops must be 0 or more"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Settings.from_env(env)


def test_records_of_one_fetch_are_taken_by_timestamp_each_partitions_order_kept() -> None:
    def record(partition: int, offset: int, timestamp: int) -> SimpleNamespace:
        return SimpleNamespace(partition=partition, offset=offset, timestamp=timestamp)

    batches = {
        TopicPartition("t", 0): [record(0, 0, 10), record(0, 1, 30), record(0, 2, 20)],
        TopicPartition("t", 1): [record(1, 0, 15), record(1, 1, 25)],
    }
    ordered = [(r.partition, r.offset) for r in in_time_order(batches)]
    assert ordered == [(0, 0), (1, 0), (1, 1), (0, 1), (0, 2)]
