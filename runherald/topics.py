"""Create the pipeline's topics with the right partition counts and cleanup policies."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from runherald.config import Settings
from runherald.connect import start_client

log = logging.getLogger("runherald.topics")

TOPIC_NAMES = ("runs", "deliveries", "status", "rules", "dead-letter")
COMPACTED = frozenset({"status", "rules"})


async def ensure_topics(settings: Settings) -> None:
    """Create whichever of the pipeline's topics do not exist yet (existing ones are left alone)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await start_client(admin, settings)
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                settings.topic(name),
                num_partitions=settings.partitions,
                replication_factor=1,
                topic_configs={"cleanup.policy": "compact"} if name in COMPACTED else {},
            )
            for name in TOPIC_NAMES
            if settings.topic(name) not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another worker won the race
    finally:
        await admin.close()
