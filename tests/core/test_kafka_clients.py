"""Kafka security, acks and replication settings translated to aiokafka's and faust's arguments.

No TLS or SASL Kafka cluster runs here: these are the pure translations (the TLS contexts are real,
made from a certificate generated for the test), checked against what aiokafka and faust take. The
embedded broker (tests/pipeline/test_kafka_production.py) covers the PLAINTEXT path end to end.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import faust
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from runherald.config import Settings, redact
from runherald.errors import BrokerUnavailable, ConfigError
from runherald.kafka_clients import (
    Cluster,
    client_kwargs,
    faust_kwargs,
    plan_for,
    producer_kwargs,
    replication,
)

SASL = {
    "RUNHERALD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "RUNHERALD_KAFKA_SASL_USERNAME": "alice",
    "RUNHERALD_KAFKA_SASL_PASSWORD": "hunter2",
}


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A self-signed CA certificate (also used as the client certificate) and its key, as PEM files."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "runherald-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "ca.pem", folder / "client.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return {
        "RUNHERALD_KAFKA_SSL_CAFILE": str(cert_file),
        "RUNHERALD_KAFKA_SSL_CERTFILE": str(cert_file),
        "RUNHERALD_KAFKA_SSL_KEYFILE": str(key_file),
    }


def settings(protocol: str = "PLAINTEXT", **env: str) -> Settings:
    return Settings.load(
        env={
            "RUNHERALD_BROKER": "kafka://k1:9093,kafka://k2:9093",
            "RUNHERALD_KAFKA_SECURITY_PROTOCOL": protocol,
        }
        | env
    )


def test_plaintext_is_the_default_and_every_producer_waits_for_all_replicas() -> None:
    plain = Settings()
    assert client_kwargs(plain) == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert producer_kwargs(plain, idempotent=True) == {
        **client_kwargs(plain),
        "acks": "all",
        "enable_idempotence": True,
    }
    assert producer_kwargs(plain, idempotent=False)["acks"] == "all"
    assert faust_kwargs(plain) == {"broker_credentials": None, "producer_acks": -1}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "scram-sha-512"])
def test_sasl_plaintext_reaches_aiokafka_and_faust_alike(mechanism: str) -> None:
    config = settings("SASL_PLAINTEXT", **{**SASL, "RUNHERALD_KAFKA_SASL_MECHANISM": mechanism})
    kwargs = client_kwargs(config)
    assert kwargs == {
        "bootstrap_servers": "k1:9093,k2:9093",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism.upper(),
        "sasl_plain_username": "alice",
        "sasl_plain_password": "hunter2",
    }
    credentials = faust_kwargs(config)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    # What faust's aiokafka driver gives its consumer, producer and admin client: the same security.
    faust_auth = dict(credentials_to_aiokafka_auth(credentials))
    assert faust_auth.pop("ssl_context") is None
    assert faust_auth == {key: value for key, value in kwargs.items() if key != "bootstrap_servers"}


def test_sasl_ssl_gives_both_a_tls_context_and_the_credentials(tls_files: dict[str, str]) -> None:
    config = settings("SASL_SSL", **SASL, RUNHERALD_KAFKA_SSL_CAFILE=tls_files["RUNHERALD_KAFKA_SSL_CAFILE"])
    kwargs = client_kwargs(config)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert [cert["subject"] for cert in context.get_ca_certs()] == [((("commonName", "runherald-test"),),)]
    credentials = faust_kwargs(config)["broker_credentials"]
    faust_auth = credentials_to_aiokafka_auth(credentials)
    assert faust_auth["security_protocol"] == "SASL_SSL"
    assert faust_auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert faust_auth["sasl_plain_username"] == "alice"
    assert faust_auth["sasl_plain_password"] == "hunter2"
    assert isinstance(faust_auth["ssl_context"], ssl.SSLContext)


def test_ssl_with_a_client_certificate(tls_files: dict[str, str]) -> None:
    config = settings("SSL", **tls_files)
    kwargs = client_kwargs(config)
    assert set(kwargs) == {"bootstrap_servers", "security_protocol", "ssl_context"}
    assert kwargs["security_protocol"] == "SSL"
    credentials = faust_kwargs(config)["broker_credentials"]
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SSL"


def test_ssl_without_files_uses_the_system_certificates() -> None:
    context = client_kwargs(settings("SSL"))["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode is ssl.CERT_REQUIRED


def test_unreadable_tls_files_are_one_line(tmp_path: Path) -> None:
    config = settings("SSL", RUNHERALD_KAFKA_SSL_CAFILE=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError) as caught:
        client_kwargs(config)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("cannot load the Kafka TLS files (RUNHERALD_KAFKA_SSL_CAFILE=")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"RUNHERALD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "RUNHERALD_KAFKA_SASL_USERNAME": "alice"},
            "RUNHERALD_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs RUNHERALD_KAFKA_SASL_MECHANISM, "
            "RUNHERALD_KAFKA_SASL_PASSWORD",
        ),
        (
            {"RUNHERALD_KAFKA_SASL_PASSWORD": "hunter2"},
            "RUNHERALD_KAFKA_SASL_PASSWORD given but RUNHERALD_KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not "
            "use SASL (SASL_PLAINTEXT or SASL_SSL)",
        ),
        (
            {
                "RUNHERALD_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                **SASL,
                "RUNHERALD_KAFKA_SSL_CAFILE": "/ca",
            },
            "RUNHERALD_KAFKA_SSL_CAFILE given but RUNHERALD_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT does not "
            "use TLS (SSL or SASL_SSL)",
        ),
        (
            {"RUNHERALD_KAFKA_SECURITY_PROTOCOL": "SSL", "RUNHERALD_KAFKA_SSL_KEYFILE": "/k"},
            "RUNHERALD_KAFKA_SSL_KEYFILE given without RUNHERALD_KAFKA_SSL_CERTFILE (the client certificate)",
        ),
        (
            {"RUNHERALD_REPLICATION_FACTOR": "2", "RUNHERALD_MIN_INSYNC_REPLICAS": "3"},
            "RUNHERALD_MIN_INSYNC_REPLICAS=3 is more than RUNHERALD_REPLICATION_FACTOR=2: "
            "no write could ever succeed",
        ),
        (
            {"RUNHERALD_KAFKA_SECURITY_PROTOCOL": "TLS"},
            "RUNHERALD_KAFKA_SECURITY_PROTOCOL: kafka_security_protocol must be one of PLAINTEXT, SSL, "
            "SASL_PLAINTEXT, SASL_SSL, got 'TLS'",
        ),
        (
            {
                "RUNHERALD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                **SASL,
                "RUNHERALD_KAFKA_SASL_MECHANISM": "GSSAPI",
            },
            "RUNHERALD_KAFKA_SASL_MECHANISM: kafka_sasl_mechanism must be one of PLAIN, SCRAM-SHA-256, "
            "SCRAM-SHA-512, got 'GSSAPI'",
        ),
        (
            {"RUNHERALD_KAFKA_IDEMPOTENCE": "maybe"},
            "RUNHERALD_KAFKA_IDEMPOTENCE: kafka_idempotence must be one of auto, on, off, got 'maybe'",
        ),
    ],
)
def test_incoherent_settings_are_refused_with_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(env=env)
    assert str(caught.value) == message


def test_the_sasl_password_is_a_secret() -> None:
    assert redact("kafka_sasl_password", "hunter2") == "REDACTED"
    assert redact("kafka_sasl_username", "alice") == "alice"
    assert redact("kafka_ssl_keyfile", "/etc/kafka/client.key") == "/etc/kafka/client.key"


@pytest.mark.parametrize(
    ("brokers", "expected"), [(0, (1, 1)), (1, (1, 1)), (2, (2, 2)), (3, (3, 2)), (6, (3, 2))]
)
def test_replication_defaults_follow_the_cluster(brokers: int, expected: tuple[int, int]) -> None:
    assert replication(Settings(), brokers) == expected


def test_replication_settings_override_the_defaults() -> None:
    assert replication(Settings(replication_factor=2), 5) == (2, 2)
    assert replication(Settings(replication_factor=5), 5) == (5, 2)
    assert replication(Settings(min_insync_replicas=1), 5) == (3, 1)
    assert replication(Settings(replication_factor=4, min_insync_replicas=3), 0) == (4, 3)  # size unknown


def test_replication_the_cluster_cannot_honour_is_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        replication(Settings(replication_factor=3), 1)
    assert str(caught.value) == "RUNHERALD_REPLICATION_FACTOR=3 but the cluster has 1 broker(s)"
    with pytest.raises(ConfigError) as caught:
        replication(Settings(min_insync_replicas=2), 1)
    assert str(caught.value) == (
        "RUNHERALD_MIN_INSYNC_REPLICAS=2 is more than the replication factor 1 (1 broker(s)): "
        "no write could ever succeed"
    )


def cluster(idempotence: bool, size: int = 3) -> Cluster:
    brokers = [{"id": i, "host": f"k{i}", "port": 9092, "rack": None} for i in range(size)]
    detail = "InitProducerId v0-5 works" if idempotence else "InitProducerId answered UnknownError"
    return Cluster(brokers, 0, {22: (0, 5)}, idempotence, detail)


def test_idempotence_follows_the_broker_unless_set() -> None:
    auto = plan_for(Settings(), cluster(True))
    assert (auto.acks, auto.idempotent, auto.replication_factor, auto.min_insync_replicas) == (
        "all",
        True,
        3,
        2,
    )
    assert "idempotence on (the broker supports it)" in auto.line(cluster(True))
    fallback = plan_for(Settings(), cluster(False, size=1))
    assert not fallback.idempotent
    assert fallback.line(cluster(False, size=1)) == (
        "Kafka: 1 broker(s), security PLAINTEXT; producers acks=all, idempotence off (not supported by the "
        "broker: InitProducerId answered UnknownError); new topics replication factor 1, "
        "min.insync.replicas 1"
    )
    assert not plan_for(Settings(kafka_idempotence="off"), cluster(True)).idempotent
    assert plan_for(Settings(kafka_idempotence="on"), cluster(True)).idempotent
    with pytest.raises(
        BrokerUnavailable, match=r"RUNHERALD_KAFKA_IDEMPOTENCE=on but the broker at .* has no"
    ):
        plan_for(Settings(kafka_idempotence="on"), cluster(False))
