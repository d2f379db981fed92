"""Kafka for production, against the embedded broker: acks=all everywhere, the idempotent producer's
detection and fallback (the embedded broker lists InitProducerId but refuses it), topics created with
a replication factor and min.insync.replicas for the cluster's size, and `runherald doctor`."""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from click.testing import CliRunner, Result

from runherald.broker import EmbeddedBroker
from runherald.cli import cli
from runherald.config import Settings
from runherald.doctor import diagnose
from runherald.errors import BrokerUnavailable
from runherald.kafka_clients import client_kwargs, plan_for, probe_cluster, start_producer
from runherald.publish import Publisher
from runherald.topics import TOPIC_NAMES, ensure_topics

from .harness import WorkerProcess, read_topic, run_dict, unique


def fresh(broker: EmbeddedBroker, **values: object) -> Settings:
    return Settings(broker=broker.url, topic_prefix=unique("k") + ".", partitions=2, **values)


async def test_the_embedded_broker_is_probed_and_the_plan_falls_back(broker: EmbeddedBroker) -> None:
    settings = fresh(broker)
    cluster = await probe_cluster(settings)
    assert [b["port"] for b in cluster.brokers] == [int(broker.url.rsplit(":", 1)[1])]
    assert 22 in cluster.api_versions  # listed in ApiVersions ...
    assert not cluster.idempotence  # ... but refused
    assert cluster.idempotence_detail == "InitProducerId answered UnknownError"
    plan = plan_for(settings, cluster)
    assert (plan.acks, plan.idempotent, plan.replication_factor, plan.min_insync_replicas) == (
        "all",
        False,
        1,
        1,
    )
    with pytest.raises(BrokerUnavailable, match="RUNHERALD_KAFKA_IDEMPOTENCE=on"):
        plan_for(settings.replace(kafka_idempotence="on"), cluster)


async def test_producers_try_idempotence_then_fall_back_with_acks_all(broker: EmbeddedBroker) -> None:
    settings = fresh(broker)
    await ensure_topics(settings)
    producer, idempotent = await start_producer(settings)
    try:
        assert not idempotent
        assert producer._sender._acks == -1  # acks=all
        await producer.send_and_wait(settings.topic("runs"), b"v", key=b"k")
    finally:
        await producer.stop()
    with pytest.raises(BrokerUnavailable) as caught:
        await start_producer(settings.replace(kafka_idempotence="on"))
    assert str(caught.value) == (
        f"RUNHERALD_KAFKA_IDEMPOTENCE=on but the broker at {broker.url} refused the idempotent producer: "
        "[Error -1] UnknownError"
    )
    producer, idempotent = await start_producer(settings.replace(kafka_idempotence="off"))
    await producer.stop()
    assert not idempotent
    async with Publisher(settings) as publisher:
        assert not publisher.idempotent
        await publisher.publish(run_dict("p", unique("u"), "completed", []))
    assert len(await read_topic(settings, "runs")) == 2


async def test_topics_get_the_replication_and_min_insync_replicas_of_the_plan(broker: EmbeddedBroker) -> None:
    settings = fresh(broker)
    assert len(await ensure_topics(settings)) == len(TOPIC_NAMES)
    assert await ensure_topics(settings) == []  # existing topics are left as they are
    report = await diagnose(settings)
    topics = {topic["name"]: topic for topic in report["topics"]}
    assert topics[settings.topic("status")] == {
        "name": settings.topic("status"),
        "exists": True,
        "partitions": 2,
        "replication_factor": 1,
        "smallest_isr": 1,
        "cleanup.policy": "compact",
        "min.insync.replicas": "1",
        "compacted": True,
        "notes": [],
    }
    assert topics[settings.topic("runs")]["min.insync.replicas"] == "1"
    assert report["problems"] == []
    assert report["runherald"] == {
        "acks": "all",
        "idempotence": {
            "setting": "auto",
            "enabled": False,
            "reason": "not supported by the broker: InitProducerId answered UnknownError",
        },
        "replication_factor": 1,
        "min_insync_replicas": 1,
        "partitions": 2,
        "security": {"protocol": "PLAINTEXT"},
    }
    assert report["cluster"]["idempotent_producer"] == {
        "works": False,
        "detail": "InitProducerId answered UnknownError",
    }
    assert report["cluster"]["api_versions"]["InitProducerId"].startswith("v0-")


async def test_doctor_reports_existing_topics_that_differ(broker: EmbeddedBroker) -> None:
    settings = fresh(broker)
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:  # made by hand before runherald: not compacted, more partitions, no min.insync.replicas
        await admin.create_topics([NewTopic(settings.topic("status"), 3, 1)])
    finally:
        await admin.close()
    await ensure_topics(settings)
    report = await diagnose(settings.replace(replication_factor=2))
    status = next(topic for topic in report["topics"] if topic["name"] == settings.topic("status"))
    assert (
        status["notes"]
        == [
            "replication factor 1, 2 wanted",
            "3 partitions, RUNHERALD_PARTITIONS is 2",
        ]
        or status["notes"][0] == "replication factor 1, 2 wanted"
    )
    assert report["problems"][0] == "RUNHERALD_REPLICATION_FACTOR=2 but the cluster has 1 broker(s)"
    assert f"{settings.topic('status')}: replication factor 1, 2 wanted" in report["problems"]
    assert f"{settings.topic('runs')}: replication factor 1, 2 wanted" in report["problems"]


async def doctor(broker_url: str, prefix: str, *args: str) -> Result:
    env = {
        "RUNHERALD_TOPIC_PREFIX": prefix,
        "RUNHERALD_BROKER": broker_url,
        "RUNHERALD_PARTITIONS": "2",
        "RUNHERALD_API": None,
    }
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)


async def test_doctor_command_in_every_format(broker: EmbeddedBroker) -> None:
    settings = fresh(broker)
    await ensure_topics(settings)
    table = await doctor(broker.url, settings.topic_prefix, "doctor")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0] == "CLUSTER"
    assert "  acks             all" in lines
    assert any(
        line.startswith("  idempotent       no (InitProducerId answered UnknownError)") for line in lines
    )
    assert "  new topics       partitions 2, replication factor 1, min.insync.replicas 1" in lines
    assert any(
        line.split()[:3] == [settings.topic("status"), "2", "1"] and "compact" in line for line in lines
    )
    as_json = await doctor(broker.url, settings.topic_prefix, "doctor", "-o", "json")
    assert as_json.exit_code == 0
    report = json.loads(as_json.output)
    assert report["runherald"]["acks"] == "all" and report["problems"] == []
    as_yaml = await doctor(broker.url, settings.topic_prefix, "-o", "yaml", "doctor")
    assert yaml.safe_load(as_yaml.output)["cluster"]["brokers"] == report["cluster"]["brokers"]


async def test_doctor_without_a_broker_is_one_line_and_exit_1() -> None:
    result = await doctor("kafka://127.0.0.1:9", unique("k") + ".", "doctor")
    assert result.exit_code == 1
    assert (
        result.output
        == "runherald doctor: cannot reach the broker at kafka://127.0.0.1:9: no broker answered\n"
    )


def test_the_worker_says_what_it_chose_in_one_line(worker: WorkerProcess) -> None:
    lines = [line for line in worker.log_path.read_text().splitlines() if "Kafka: 1 broker(s)" in line]
    assert lines, worker.tail()
    expected = (
        "Kafka: 1 broker(s), security PLAINTEXT; producers acks=all, idempotence off (not supported by "
        "the broker: InitProducerId answered UnknownError); new topics replication factor 1, "
        "min.insync.replicas 1"
    )
    assert lines[0].rstrip().endswith(expected)
