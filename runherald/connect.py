"""Start Kafka clients within a bounded wait: a broker that does not answer is BrokerUnavailable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaError

from runherald.config import Settings
from runherald.errors import BrokerUnavailable

# aiokafka would try for its request timeout (40 s) before giving up on a broker that does not answer.
CONNECT_TIMEOUT = 5.0


async def start_client(client: Any, settings: Settings, *, timeout: float = CONNECT_TIMEOUT) -> None:
    """Start an aiokafka producer, consumer or admin client; if it cannot, close it and raise
    BrokerUnavailable saying which broker did not answer."""
    try:
        async with asyncio.timeout(timeout):
            await client.start()
    except (KafkaError, OSError, TimeoutError) as exc:
        with contextlib.suppress(Exception):
            await (client.stop() if hasattr(client, "stop") else client.close())
        raise BrokerUnavailable(
            f"cannot reach the broker at {settings.broker}: {_reason(exc, timeout)}"
        ) from exc


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, KafkaConnectionError):
        return "no broker answered"
    return str(exc) or type(exc).__name__


@contextlib.contextmanager
def quiet_kafka_log() -> Iterator[None]:
    """Keep aiokafka's own log (an "Unable connect to ..." line per try) quiet for a while: for a
    command, or a start-up, whose failure BrokerUnavailable reports in one line anyway."""
    kafka_log = logging.getLogger("aiokafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        kafka_log.setLevel(level)
