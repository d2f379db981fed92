"""``runherald doctor``'s findings: what the Kafka cluster offers, what runherald will do with it, and
the pipeline's topics as they are (existing topics are never changed: differences are reported)."""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from runherald.config import Settings
from runherald.connect import start_client
from runherald.errors import BrokerUnavailable, ConfigError
from runherald.kafka_clients import (
    ACKS,
    Cluster,
    Plan,
    client_kwargs,
    plan_for,
    probe_cluster,
    replication,
    security_summary,
)
from runherald.topics import COMPACTED, TOPIC_NAMES

# The Kafka APIs worth showing (key: name): producing, fetching, groups, topics admin, idempotence, SASL.
API_HIGHLIGHTS = {
    0: "Produce",
    1: "Fetch",
    3: "Metadata",
    11: "JoinGroup",
    17: "SaslHandshake",
    18: "ApiVersions",
    19: "CreateTopics",
    22: "InitProducerId",
    32: "DescribeConfigs",
    36: "SaslAuthenticate",
}
TOPIC_CONFIGS = ("cleanup.policy", "min.insync.replicas")


async def diagnose(settings: Settings) -> dict[str, Any]:
    """The report: ``cluster``, ``runherald``, ``topics`` and ``problems`` (one line each).
    BrokerUnavailable when the broker cannot be reached."""
    cluster = await probe_cluster(settings)
    problems: list[str] = []
    try:
        plan = plan_for(settings, cluster)
    except (BrokerUnavailable, ConfigError) as exc:  # idempotence required and missing, or replication
        problems.append(str(exc))  # this cluster cannot honour: reported, with what was asked for
        factor, min_insync = replication(settings, cluster.size, check=False)
        idempotent = cluster.idempotence and settings.kafka_idempotence != "off"
        if isinstance(exc, BrokerUnavailable):
            reason = str(exc)
        elif settings.kafka_idempotence == "off":
            reason = "RUNHERALD_KAFKA_IDEMPOTENCE=off"
        else:
            reason = (
                "the broker supports it" if idempotent else f"not supported: {cluster.idempotence_detail}"
            )
        plan = Plan(
            ACKS,
            idempotent,
            settings.kafka_idempotence,
            reason,
            factor,
            min_insync,
            security_summary(settings),
        )
    topics = await describe_topics(settings, cluster)
    for topic in topics:
        topic["notes"] = topic_notes(settings, plan, topic)
        problems.extend(f"{topic['name']}: {note}" for note in topic["notes"])
    return {
        "cluster": cluster_report(settings, cluster),
        "runherald": plan_report(settings, plan),
        "topics": topics,
        "problems": problems,
    }


def cluster_report(settings: Settings, cluster: Cluster) -> dict[str, Any]:
    return {
        "bootstrap": settings.bootstrap_servers,
        "brokers": cluster.brokers,
        "controller": cluster.controller,
        "api_versions": {
            name: f"v{cluster.api_versions[key][0]}-{cluster.api_versions[key][1]}"
            if key in cluster.api_versions
            else "missing"
            for key, name in API_HIGHLIGHTS.items()
        },
        "apis": len(cluster.api_versions),
        "idempotent_producer": {"works": cluster.idempotence, "detail": cluster.idempotence_detail},
    }


def plan_report(settings: Settings, plan: Plan) -> dict[str, Any]:
    protocol = settings.kafka_security_protocol
    security: dict[str, Any] = {"protocol": protocol}
    if protocol.startswith("SASL_"):
        security["sasl_mechanism"] = settings.kafka_sasl_mechanism
        security["sasl_username"] = settings.kafka_sasl_username
    if protocol in {"SSL", "SASL_SSL"}:
        security["ssl_cafile"] = settings.kafka_ssl_cafile or "(system CAs)"
        security["ssl_certfile"] = settings.kafka_ssl_certfile or None
    return {
        "acks": plan.acks,
        "idempotence": {"setting": plan.idempotence, "enabled": plan.idempotent, "reason": plan.reason},
        "replication_factor": plan.replication_factor,
        "min_insync_replicas": plan.min_insync_replicas,
        "partitions": settings.partitions,
        "security": security,
    }


async def describe_topics(settings: Settings, cluster: Cluster) -> list[dict[str, Any]]:
    """Each pipeline topic: whether it exists, its partitions, replication and configs."""
    names = [settings.topic(name) for name in TOPIC_NAMES]
    existing = [name for name in names if name in cluster.topics]
    found: dict[str, dict[str, Any]] = {}
    if existing:
        admin = AIOKafkaAdminClient(**client_kwargs(settings))
        await start_client(admin, settings)
        try:
            for described in await admin.describe_topics(existing):
                partitions = described.get("partitions") or []
                found[described["topic"]] = {
                    "partitions": len(partitions),
                    "replication_factor": max((len(p.get("replicas") or []) for p in partitions), default=0),
                    "smallest_isr": min((len(p.get("isr") or []) for p in partitions), default=0),
                }
            resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in existing]
            for response in await admin.describe_configs(resources):
                for resource in response.resources:
                    entries = {entry[0]: entry[1] for entry in resource[4]}
                    configs = {key: entries.get(key) for key in TOPIC_CONFIGS}
                    found.setdefault(resource[3], {}).update(configs)
        finally:
            await admin.close()
    report = []
    for short, name in zip(TOPIC_NAMES, names, strict=True):
        item: dict[str, Any] = {"name": name, "exists": name in found}
        item.update(found.get(name, {}))
        item["compacted"] = short in COMPACTED
        report.append(item)
    return report


def topic_notes(settings: Settings, plan: Plan, topic: dict[str, Any]) -> list[str]:
    """What differs from what runherald would create now (existing topics are left as they are)."""
    if not topic["exists"]:
        return []
    notes = []
    factor = topic.get("replication_factor") or 0
    if factor < plan.replication_factor:
        notes.append(f"replication factor {factor}, {plan.replication_factor} wanted")
    raw_isr = topic.get("min.insync.replicas")
    min_insync = int(raw_isr) if raw_isr and str(raw_isr).isdigit() else None
    if min_insync is not None and min_insync > factor:
        notes.append(f"min.insync.replicas {min_insync} is more than its replication factor: writes fail")
    elif min_insync is not None and factor > 1 and min_insync >= factor:
        notes.append(f"min.insync.replicas {min_insync} = replication factor: one broker down stops writes")
    policy = topic.get("cleanup.policy")
    if topic["compacted"] and policy is not None and "compact" not in str(policy):
        notes.append(f"cleanup.policy {policy}, compact wanted")
    if topic.get("partitions") and topic["partitions"] != settings.partitions:
        notes.append(f"{topic['partitions']} partitions, RUNHERALD_PARTITIONS is {settings.partitions}")
    return notes


__all__ = ["diagnose", "topic_notes"]
