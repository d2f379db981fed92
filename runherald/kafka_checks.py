"""Kafka security and replication settings: their allowed values, and whether they fit together.

Plain Python for runherald.config (which refuses incoherent settings with the one line made here);
runherald.kafka_clients turns the settings into aiokafka's and faust's arguments.
"""

from __future__ import annotations

from typing import Any

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
KAFKA_IDEMPOTENCE = ("auto", "on", "off")


def kafka_security_problem(settings: Any) -> str:
    """One line saying why the Kafka security and replication settings do not fit together, or ""."""
    protocol = settings.kafka_security_protocol
    sasl = protocol.startswith("SASL_")
    tls = protocol in {"SSL", "SASL_SSL"}
    if sasl:
        missing = [
            name(field)
            for field in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
            if not getattr(settings, field)
        ]
        if missing:
            return f"{name('kafka_security_protocol')}={protocol} needs {', '.join(missing)}"
    else:
        given = [
            name(field)
            for field in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
            if getattr(settings, field)
        ]
        if given:
            return (
                f"{', '.join(given)} given but {name('kafka_security_protocol')}={protocol} does not use "
                "SASL (SASL_PLAINTEXT or SASL_SSL)"
            )
    if not tls:
        given = [
            name(field)
            for field in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
            if getattr(settings, field)
        ]
        if given:
            return (
                f"{', '.join(given)} given but {name('kafka_security_protocol')}={protocol} does not use "
                "TLS (SSL or SASL_SSL)"
            )
    if settings.kafka_ssl_keyfile and not settings.kafka_ssl_certfile:
        certfile = name("kafka_ssl_certfile")
        return f"{name('kafka_ssl_keyfile')} given without {certfile} (the client certificate)"
    rf, isr = settings.replication_factor, settings.min_insync_replicas
    if rf and isr > rf:
        return (
            f"{name('min_insync_replicas')}={isr} is more than {name('replication_factor')}={rf}: "
            "no write could ever succeed"
        )
    return ""


def name(field: str) -> str:
    """The environment variable of one of these settings."""
    return "RUNHERALD_" + field.upper()


__all__ = ["KAFKA_IDEMPOTENCE", "SASL_MECHANISMS", "SECURITY_PROTOCOLS", "kafka_security_problem"]
