"""Kafka clients for production: one place turning the settings into aiokafka's and faust's arguments.

- ``client_kwargs``: what every aiokafka client runherald makes (producer, consumer, admin) is given:
  bootstrap servers, security protocol, TLS context, SASL mechanism and credentials.
- ``producer_kwargs``: those plus ``acks=all`` and the idempotent producer where the broker has it.
- ``faust_kwargs``: the same for faust's App (``broker_credentials``, ``producer_acks``).
- ``replication``: the replication factor and ``min.insync.replicas`` of new topics.
- ``probe_cluster``: what the cluster offers (brokers, ApiVersions, whether InitProducerId works),
  so a worker decides once, at start, whether its producer is idempotent.
- ``start_producer``: a producer for short-lived work (the publisher, dead-letter replay): idempotent
  when the broker takes it, else (``kafka_idempotence=auto``) a plain one.

Every function but the last two is pure (no broker): the tests check them without a TLS or SASL cluster.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, KafkaError, for_code
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.transaction import InitProducerIdRequest

from runherald.config import Settings
from runherald.connect import CONNECT_TIMEOUT, start_client
from runherald.errors import BrokerUnavailable, ConfigError

log = logging.getLogger("runherald.kafka")

ACKS = "all"
INIT_PRODUCER_ID = 22  # the Kafka API key of InitProducerId (what an idempotent producer asks first)
DEFAULT_REPLICATION = 3
DEFAULT_MIN_INSYNC = 2
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL (the system's CAs unless a CA file is given), else None."""
    if settings.kafka_security_protocol not in TLS_PROTOCOLS:
        return None
    try:
        return create_ssl_context(
            cafile=settings.kafka_ssl_cafile or None,
            certfile=settings.kafka_ssl_certfile or None,
            keyfile=settings.kafka_ssl_keyfile or None,
        )
    except (OSError, ssl.SSLError) as exc:
        files = [
            f"{variable}={value}"
            for variable, value in (
                ("RUNHERALD_KAFKA_SSL_CAFILE", settings.kafka_ssl_cafile),
                ("RUNHERALD_KAFKA_SSL_CERTFILE", settings.kafka_ssl_certfile),
                ("RUNHERALD_KAFKA_SSL_KEYFILE", settings.kafka_ssl_keyfile),
            )
            if value
        ]
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        given = ", ".join(files) or "none"
        raise ConfigError(f"cannot load the Kafka TLS files ({given}): {reason}") from None


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """The arguments every aiokafka client runherald makes starts from: servers and security."""
    protocol = settings.kafka_security_protocol
    kwargs: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers, "security_protocol": protocol}
    if protocol in TLS_PROTOCOLS:
        kwargs["ssl_context"] = ssl_context(settings)
    if protocol in SASL_PROTOCOLS:
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        kwargs["sasl_plain_password"] = settings.kafka_sasl_password
    return kwargs


def producer_kwargs(settings: Settings, *, idempotent: bool) -> dict[str, Any]:
    """A producer's arguments: the client's, acks=all, and idempotence as decided."""
    return {**client_kwargs(settings), "acks": ACKS, "enable_idempotence": idempotent}


def faust_kwargs(settings: Settings) -> dict[str, Any]:
    """faust App settings for the same security (its consumer, producer and admin client) and acks=all."""
    protocol = settings.kafka_security_protocol
    credentials: faust.types.auth.CredentialsT | None = None
    if protocol in SASL_PROTOCOLS:
        credentials = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            ssl_context=ssl_context(settings),  # given for SASL_SSL: faust then speaks SASL_SSL
            mechanism=settings.kafka_sasl_mechanism,
        )
    elif protocol in TLS_PROTOCOLS:
        context = ssl_context(settings)
        assert context is not None
        credentials = faust.SSLCredentials(context)
    return {"broker_credentials": credentials, "producer_acks": -1}


def replication(settings: Settings, cluster_size: int, *, check: bool = True) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) of new topics: the settings', else 3 (or the cluster's
    size when smaller) and min(2, replication factor): one broker down does not stop writes.
    ConfigError (one line) for settings this cluster cannot honour, unless `check` is false."""
    factor = settings.replication_factor or max(1, min(DEFAULT_REPLICATION, cluster_size))
    min_insync = settings.min_insync_replicas or min(DEFAULT_MIN_INSYNC, factor)
    if not check:
        return factor, min_insync
    if cluster_size and settings.replication_factor > cluster_size:
        raise ConfigError(
            f"RUNHERALD_REPLICATION_FACTOR={factor} but the cluster has {cluster_size} broker(s)"
        )
    if min_insync > factor:
        raise ConfigError(
            f"RUNHERALD_MIN_INSYNC_REPLICAS={min_insync} is more than the replication factor {factor} "
            f"({cluster_size} broker(s)): no write could ever succeed"
        )
    return factor, min_insync


def security_summary(settings: Settings) -> str:
    """The security in one phrase: "SASL_SSL (SCRAM-SHA-512 as alice)", "PLAINTEXT"."""
    protocol = settings.kafka_security_protocol
    if protocol in SASL_PROTOCOLS:
        return f"{protocol} ({settings.kafka_sasl_mechanism} as {settings.kafka_sasl_username})"
    return protocol


@dataclass(frozen=True)
class Cluster:
    """What the cluster offers, as one bootstrap connection sees it."""

    brokers: list[dict[str, Any]]
    controller: int | None
    api_versions: dict[int, tuple[int, int]]
    idempotence: bool  # InitProducerId answered without an error
    idempotence_detail: str  # why not, or "InitProducerId v0-N works"
    topics: set[str] = field(default_factory=set)

    @property
    def size(self) -> int:
        return len(self.brokers)


@dataclass(frozen=True)
class Plan:
    """What runherald does with this cluster: acks, idempotence, replication of new topics."""

    acks: str
    idempotent: bool
    idempotence: str  # the setting: auto, on, off
    reason: str
    replication_factor: int
    min_insync_replicas: int
    security: str

    def line(self, cluster: Cluster) -> str:
        """The one log line a worker writes at start."""
        state = "on" if self.idempotent else "off"
        return (
            f"Kafka: {cluster.size} broker(s), security {self.security}; producers acks={self.acks}, "
            f"idempotence {state} ({self.reason}); new topics replication factor "
            f"{self.replication_factor}, min.insync.replicas {self.min_insync_replicas}"
        )


def plan_for(settings: Settings, cluster: Cluster) -> Plan:
    """The plan for these settings on this cluster; BrokerUnavailable when idempotence is required
    (kafka_idempotence=on) and the broker does not have it."""
    mode = settings.kafka_idempotence
    if mode == "off":
        idempotent, reason = False, "RUNHERALD_KAFKA_IDEMPOTENCE=off"
    elif cluster.idempotence:
        idempotent, reason = True, "the broker supports it"
    elif mode == "on":
        raise BrokerUnavailable(
            f"RUNHERALD_KAFKA_IDEMPOTENCE=on but the broker at {settings.broker} has no idempotent "
            f"producer: {cluster.idempotence_detail}"
        )
    else:
        idempotent, reason = False, f"not supported by the broker: {cluster.idempotence_detail}"
    factor, min_insync = replication(settings, cluster.size)
    return Plan(ACKS, idempotent, mode, reason, factor, min_insync, security_summary(settings))


async def probe_cluster(settings: Settings, *, timeout: float = CONNECT_TIMEOUT) -> Cluster:
    """Brokers, controller, ApiVersions and whether InitProducerId works; BrokerUnavailable in one line."""
    client = AIOKafkaClient(**client_kwargs(settings))
    await start_client(_Bootstrapping(client), settings, timeout=timeout)
    try:
        brokers = sorted(client.cluster.brokers(), key=lambda broker: broker.nodeId)
        controller = client.cluster.controller
        node = brokers[0].nodeId if brokers else None
        versions: dict[int, tuple[int, int]] = {}
        if node is not None:
            async with asyncio.timeout(timeout):
                conn = await client._get_conn(node)
            versions = dict(getattr(conn, "_versions", None) or {})
        idempotence, detail = await _try_init_producer_id(client, node, versions, timeout)
        return Cluster(
            brokers=[{"id": b.nodeId, "host": b.host, "port": b.port, "rack": b.rack} for b in brokers],
            controller=controller.nodeId if controller is not None else None,
            api_versions=versions,
            idempotence=idempotence,
            idempotence_detail=detail,
            topics=set(client.cluster.topics()),
        )
    finally:
        await client.close()


async def _try_init_producer_id(
    client: AIOKafkaClient, node: int | None, versions: dict[int, tuple[int, int]], timeout: float
) -> tuple[bool, str]:
    if node is None:
        return False, "no broker in the metadata"
    if INIT_PRODUCER_ID not in versions:
        return False, "InitProducerId is not in the broker's ApiVersions"
    # Some brokers (the embedded Tansu) list InitProducerId yet refuse it: ask for a producer id.
    try:
        async with asyncio.timeout(timeout):
            response = await client.send(node, InitProducerIdRequest(None, 60000))  # type: ignore[arg-type,unused-ignore]
    except (KafkaError, TimeoutError) as exc:
        return False, f"InitProducerId failed: {exc or type(exc).__name__}"
    error = for_code(response.error_code)
    if response.error_code != 0:
        return False, f"InitProducerId answered {error.__name__}"
    low, high = versions[INIT_PRODUCER_ID]
    return True, f"InitProducerId v{low}-{high} works"


class _Bootstrapping:
    """An AIOKafkaClient seen as start_client wants a client: start() bootstraps, close() closes."""

    def __init__(self, client: AIOKafkaClient) -> None:
        self._client = client

    async def start(self) -> None:
        await self._client.bootstrap()

    async def close(self) -> None:
        await self._client.close()


async def start_producer(
    settings: Settings, *, idempotent: bool | None = None, **extra: Any
) -> tuple[AIOKafkaProducer, bool]:
    """A started producer (acks=all) and whether it is idempotent. `idempotent` None: as the settings
    say, trying the idempotent producer first under ``auto`` and falling back to a plain one when the
    broker refuses it (the embedded broker does). BrokerUnavailable when the broker does not answer."""
    mode = settings.kafka_idempotence
    want = (mode != "off") if idempotent is None else idempotent
    if want:
        producer = AIOKafkaProducer(**producer_kwargs(settings, idempotent=True), **extra)
        sender_log = logging.getLogger("aiokafka.producer.sender")
        level = sender_log.level
        if idempotent is None and mode == "auto":
            sender_log.setLevel(logging.CRITICAL)  # a refusal is expected here: not an error to log
        try:
            await start_client(producer, settings)
            return producer, True
        except BrokerUnavailable as exc:
            cause = exc.__cause__
            refused = isinstance(cause, KafkaError) and not isinstance(cause, KafkaConnectionError)
            if refused and mode == "on":
                raise BrokerUnavailable(
                    f"RUNHERALD_KAFKA_IDEMPOTENCE=on but the broker at {settings.broker} refused the "
                    f"idempotent producer: {cause}"
                ) from exc
            if not refused or idempotent is not None:
                raise
            log.debug("idempotent producer refused (%s): a plain one instead", cause)
        finally:
            sender_log.setLevel(level)
    producer = AIOKafkaProducer(**producer_kwargs(settings, idempotent=False), **extra)
    await start_client(producer, settings)
    return producer, False


__all__ = [
    "ACKS",
    "Cluster",
    "Plan",
    "client_kwargs",
    "faust_kwargs",
    "plan_for",
    "probe_cluster",
    "producer_kwargs",
    "replication",
    "security_summary",
    "ssl_context",
    "start_producer",
]
