"""Create the pipeline's topics with the right partition counts, cleanup policies and replication."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from runherald.config import Settings
from runherald.connect import start_client
from runherald.kafka_clients import client_kwargs, replication

log = logging.getLogger("runherald.topics")

# outcomes: runs' terminal states keyed "{project}/{name}"; history (compacted): each name's last terminal
# states; transitions: the transitions a run made, keyed by its run key (see streams.history). groups: the
# members of grouped rules' groups, keyed by group; group-outcomes: where each member went (streams.groups).
TOPIC_NAMES = (
    "runs",
    "deliveries",
    "status",
    "rules",
    "dead-letter",
    "outcomes",
    "history",
    "transitions",
    "groups",
    "group-outcomes",
)
COMPACTED = frozenset({"status", "rules", "history"})


def topic_configs(name: str, min_insync_replicas: int) -> dict[str, str]:
    """The configs a new topic of the pipeline is created with."""
    configs = {"min.insync.replicas": str(min_insync_replicas)}
    if name in COMPACTED:
        configs["cleanup.policy"] = "compact"
    return configs


async def ensure_topics(settings: Settings) -> list[str]:
    """Create whichever of the pipeline's topics do not exist yet, replicated as `replication` says for
    this cluster; existing ones are left as they are (`runherald doctor` shows them). Returns the names
    of the topics created."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await start_client(admin, settings)
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in TOPIC_NAMES if settings.topic(name) not in existing]
        if not missing:
            return []
        cluster_size = len((await admin.describe_cluster()).get("brokers") or [])
        factor, min_insync = replication(settings, cluster_size)
        wanted = [
            NewTopic(
                settings.topic(name),
                num_partitions=settings.partitions,
                replication_factor=factor,
                topic_configs=topic_configs(name, min_insync),
            )
            for name in missing
        ]
        try:
            await admin.create_topics(wanted)
        except TopicAlreadyExistsError:
            pass  # another worker won the race
        log.info(
            "created %s: replication factor %d, min.insync.replicas %d",
            ", ".join(topic.name for topic in wanted),
            factor,
            min_insync,
        )
        return [topic.name for topic in wanted]
    finally:
        await admin.close()
