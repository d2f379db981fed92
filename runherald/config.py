"""Settings: one typed object, read once at start, then handed to everything that needs a setting.

Each setting comes from the first of, highest first:

1. a CLI flag (``--broker``, ``--web-port``);
2. its ``RUNHERALD_*`` environment variable (an old spelling is still read, with a warning);
3. the settings file named by ``--config`` / ``RUNHERALD_CONFIG``: YAML whose keys are the field names;
4. MLRun's own variable where there is one (``MLRUN_UI__URL``, ``SLACK_WEBHOOK``);
5. the default below.

An empty environment variable counts as unset. Nothing else in runherald reads these variables:
the notifiers get theirs from `runherald.notifiers.NotifierSettings.from_settings`. ``RUNHERALD_*``
variables that are neither a setting nor in `NOT_SETTINGS` are warned about, with a suggestion.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from runherald.config_layers import ENV_PREFIX, Layer, build, from_file, redact
from runherald.errors import ConfigError
from runherald.kafka_checks import (
    KAFKA_IDEMPOTENCE,
    SASL_MECHANISMS,
    SECURITY_PROTOCOLS,
    kafka_security_problem,
)
from runherald.matchers import parse_duration

CONFIG_ENV = "RUNHERALD_CONFIG"
SLACK_API_URL = "https://slack.com/api/"

# Variables whose name is not RUNHERALD_<FIELD> (the README's names).
_ENV_NAMES = {"templates_dir": "RUNHERALD_TEMPLATES"}
# Old spellings, still read with a warning naming the new one. RUNHERALD_<FIELD> wins over these.
DEPRECATED_ENV = {
    "RUNHERALD_EGRESS_ALLOW_PRIVATE": "allow_private_egress",
    "RUNHERALD_EGRESS_ALLOW_LOOPBACK": "allow_loopback_egress",
    "RUNHERALD_NOTIFY_TIMEOUT": "send_timeout",
    "RUNHERALD_TEMPLATES_DIR": "templates_dir",
}
# MLRun's variables, as MLRun reads them: used when nothing of runherald's sets the field.
MLRUN_ENV = {"MLRUN_UI__URL": "ui_url", "SLACK_WEBHOOK": "slack_webhook"}
# RUNHERALD_* variables that are not settings but are read elsewhere on purpose (no warning for them).
NOT_SETTINGS = {
    CONFIG_ENV: "the settings file (this module)",
    "RUNHERALD_API": "the HTTP API the CLI talks to (runherald.cli)",
    "RUNHERALD_TOKEN": "the CLI's bearer token (runherald.cli)",
    "RUNHERALD_SEAL_PUBLIC_KEY": "the public key publishers seal secret_params with (runherald.sealing)",
    "RUNHERALD_SEAL_PUBLIC_KEY_FILE": "the seal public key's file (runherald.sealing)",
    "RUNHERALD_SEAL_PRIVATE_KEYS": "the workers' private keys, which open sealed values (runherald.sealing)",
    "RUNHERALD_SEAL_PRIVATE_KEYS_FILE": "the seal private keys' file (runherald.sealing)",
    "RUNHERALD_SEAL_KEY": "the old shared Fernet key: opens values sealed with it (runherald.sealing)",
    "RUNHERALD_SEAL_KEY_FILE": "the old shared Fernet key's file (runherald.sealing)",
    "RUNHERALD_TANSU_BIN": "the embedded broker's executable (runherald.broker)",
    "RUNHERALD_FAULT_POINT": "tests: where a worker crashes on purpose",
    "RUNHERALD_PROGRESS": "progress of long commands on stderr: auto, always, never (runherald.progress)",
}
NOT_SETTINGS_PREFIXES = (
    "RUNHERALD_SECRET_",  # secrets that secret_params refer to as ${RUNHERALD_SECRET_...}
    "RUNHERALD_TEST_",  # the test suite's own (a PostgreSQL URL, the Chromium path), never read by runherald
)


class SettingsWarning(UserWarning):
    """A setting that still works but should be changed: an old variable name, or an unknown one."""


class Settings(BaseSettings):
    """Everything a worker, the API and the CLI need to agree on. Build it with `Settings.load`."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    broker: str = "kafka://127.0.0.1:9092"
    topic_prefix: str = "runherald."
    group_id: str = "runherald"
    partitions: int = 8
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # The API's bearer tokens (YAML, runherald.auth); without it the API must listen on loopback only.
    api_tokens_file: str = ""
    # The embedded broker holds each fetch until this runs out even when data waits (see README).
    fetch_max_wait_ms: int = 500
    # Consumer-group session: how soon a dead worker's partitions move to the others. The embedded
    # broker also holds the first join for about half of it. Kafka's minimum is 6 s by default.
    session_timeout: float = 10.0
    heartbeat_interval: float = 1.0
    # The worker's writes (deliveries, ledger records) are gathered this long into one request. No send
    # waits for them, so a longer wait costs no latency and saves requests: paired bench runs at 200
    # runs/s gave p99 median 29 ms with 25 against 33 ms with 5.
    producer_linger_ms: int = 25
    # Offsets are committed this often (seconds), each commit after the writes behind it reach the
    # broker. A worker killed between two commits redoes what it did since the last one: deliveries
    # sent but not yet recorded then are sent again (same idempotency key). This bounds that window.
    commit_interval: float = 1.0
    # After a takeover, a ledger entry still `pending` with no retry and no send behind it this many
    # seconds later is sent again from its run event (or recorded as an error if that is gone).
    redrive_after: float = 5.0
    max_event_bytes: int = 1024 * 1024
    condition_error_policy: str = "send"
    notify_iterations: bool = False
    max_in_flight: int = 2000
    # Events a live subscriber (GET /api/v1/subscribe) may have waiting; one further behind is
    # disconnected, so a slow client never slows the others (it resumes with Last-Event-ID).
    subscribe_queue: int = 1000
    send_timeout: float = 10.0
    retry_max_attempts: int = 8
    retry_max_elapsed: float = 6 * 3600.0
    retry_base_delay: float = 1.0
    retry_max_delay: float = 300.0
    # An endpoint that gave no answer (timeout, no connection) to this many requests in a row is not
    # sent to for circuit_cooldown seconds, doubling while its probes fail (0 turns this off).
    circuit_threshold: int = 5
    circuit_cooldown: float = 10.0
    # Messages a second to a Slack webhook or channel with no rate_limit of its own (runherald.ratelimit).
    slack_rate_limit: float = 1.0
    allow_private_egress: bool = False
    allow_loopback_egress: bool = False
    templates_dir: str = ""
    secrets_dir: str = ""
    # Environment variables secret references may read besides RUNHERALD_SECRET_*: exact names, comma
    # separated (RUNHERALD_SECRETS_ENV_ALLOW=SLACK_BOT_TOKEN,PAGER_KEY).
    secrets_env_allow: str = ""
    ui_url: str = ""
    slack_base_url: str = SLACK_API_URL
    slack_webhook: str = ""  # a fallback incoming webhook for slack notifications without one
    log_level: str = "info"
    # The worker's asyncio event loop: "uvloop" (default, where installed) or "asyncio".
    event_loop: str = "uvloop"
    # Run the Kafka consumer in faust's own thread instead of on the worker's event loop.
    consumer_thread: bool = False
    # Kafka for production (runherald.kafka_security). Every producer uses acks=all; idempotence is
    # "auto" (on where the broker supports it), "on" (refuse to start without it) or "off".
    kafka_idempotence: str = "auto"
    # New topics: 0 means 3, or the cluster size when smaller; min.insync.replicas 0 means
    # min(2, replication factor). Existing topics are left as they are (`runherald doctor` shows them).
    replication_factor: int = 0
    min_insync_replicas: int = 0
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""
    # Run sources besides the runs topic (runherald.run_sources): topic names, comma-separated, and a
    # regular expression of whole topic names (topics created later included); any shape adapters know.
    run_topics: str = ""
    run_topic_pattern: str = ""
    # A run that came back through runherald's own ingress more than this many times is refused (a loop).
    max_hops: int = 3
    # Where a worker keeps what outlives it (runherald.ledger_sql: the ledger's SQLite database); empty
    # means $XDG_DATA_HOME/runherald (~/.local/share/runherald).
    data_dir: str = ""
    # The ledger in SQL: empty for SQLite in data_dir, an SQLAlchemy URL (postgresql+psycopg://...) for a
    # database all workers share, "off" for none (GET /api/v1/deliveries then answers 503).
    ledger_db: str = ""
    # Deliveries queued longer ago than this are deleted from the SQL ledger (checked every few minutes).
    ledger_retention: str = "30d"

    # Where each value came from ("env RUNHERALD_BROKER", "file x.yaml", "flag --broker"); see source_of.
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Settings(...) is the given values over the defaults, whatever the environment holds: the
        # layers (flags, environment, file) are read by load(), which also records their sources.
        return (init_settings,)

    @field_validator("condition_error_policy")
    @classmethod
    def _policy(cls, value: str) -> str:
        if value not in {"send", "skip"}:
            raise ValueError("condition_error_policy must be 'send' or 'skip'")
        return value

    @field_validator("partitions")
    @classmethod
    def _partitions(cls, value: int) -> int:
        if value < 1:
            raise ValueError("partitions must be at least 1")
        return value

    @field_validator("broker")
    @classmethod
    def _broker(cls, value: str) -> str:
        if not _bootstrap_servers(value):
            raise ValueError("broker must be a URL such as kafka://host:9092")
        return value

    @field_validator("retry_max_attempts", "subscribe_queue")
    @classmethod
    def _at_least_one(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise ValueError(f"{info.field_name} must be at least 1")
        return value

    @field_validator("circuit_threshold")
    @classmethod
    def _threshold(cls, value: int) -> int:
        if value < 0:
            raise ValueError("circuit_threshold must be 0 (off) or more")
        return value

    @field_validator("redrive_after", "slack_rate_limit")
    @classmethod
    def _not_negative(cls, value: float, info: ValidationInfo) -> float:
        if value < 0:
            raise ValueError(f"{info.field_name} must be 0 or more")
        return value

    @field_validator("commit_interval", "circuit_cooldown")
    @classmethod
    def _positive_seconds(cls, value: float, info: ValidationInfo) -> float:
        if value <= 0:
            raise ValueError(f"{info.field_name} must be a positive number of seconds")
        return value

    @field_validator("event_loop")
    @classmethod
    def _event_loop(cls, value: str) -> str:
        if value not in {"uvloop", "asyncio"}:
            raise ValueError("event_loop must be 'uvloop' or 'asyncio'")
        return value

    @field_validator("secrets_env_allow")
    @classmethod
    def _secrets_env_allow(cls, value: str) -> str:
        return _name_list(value, r"[A-Za-z_][A-Za-z0-9_]*", "environment variable names")

    @field_validator("run_topics")
    @classmethod
    def _run_topics(cls, value: str) -> str:
        return _name_list(value, r"[A-Za-z0-9._-]{1,249}", "Kafka topic names")

    @field_validator("run_topic_pattern")
    @classmethod
    def _run_topic_pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"run_topic_pattern is not a regular expression: {exc}") from None
        return value

    @field_validator("ledger_retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError("ledger_retention must be a positive duration such as 30d")
        return value

    @field_validator("max_hops")
    @classmethod
    def _max_hops(cls, value: int) -> int:
        if value < 0:
            raise ValueError("max_hops must be 0 or more")
        return value

    @model_validator(mode="after")
    def _run_sources_not_ours(self) -> Settings:
        ours = [name for name in self.run_topic_names if name.startswith(self.topic_prefix)]
        if ours:
            raise ValueError(f"run_topics must not name runherald's own topics ({', '.join(ours)})")
        return self

    @property
    def run_topic_names(self) -> list[str]:
        """The run topics by name (run_topics), besides the runs topic."""
        return [name for name in self.run_topics.split(",") if name]

    @property
    def secret_env_names(self) -> frozenset[str]:
        """The exact environment variable names secret references may read (secrets_env_allow)."""
        return frozenset(name for name in self.secrets_env_allow.split(",") if name)

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error", "critical"}:
            raise ValueError("log_level must be one of debug, info, warning, error, critical")
        return value.lower()

    @field_validator("kafka_idempotence")
    @classmethod
    def _idempotence(cls, value: str) -> str:
        if value.lower() not in KAFKA_IDEMPOTENCE:
            raise ValueError(f"kafka_idempotence must be one of {', '.join(KAFKA_IDEMPOTENCE)}")
        return value.lower()

    @field_validator("replication_factor", "min_insync_replicas")
    @classmethod
    def _replicas(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be 0 (automatic) or more")
        return value

    @field_validator("kafka_security_protocol")
    @classmethod
    def _security_protocol(cls, value: str) -> str:
        if value.upper() not in SECURITY_PROTOCOLS:
            raise ValueError(f"kafka_security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}")
        return value.upper()

    @field_validator("kafka_sasl_mechanism")
    @classmethod
    def _sasl_mechanism(cls, value: str) -> str:
        if value and value.upper() not in SASL_MECHANISMS:
            raise ValueError(f"kafka_sasl_mechanism must be one of {', '.join(SASL_MECHANISMS)}")
        return value.upper()

    @model_validator(mode="after")
    def _kafka_coherent(self) -> Settings:
        problem = kafka_security_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def bootstrap_servers(self) -> str:
        """host:port[,host:port] for Kafka clients, from a kafka:// URL list."""
        return _bootstrap_servers(self.broker)

    def topic(self, name: str) -> str:
        """Full name of one of the pipeline's topics (runs, deliveries, status, rules, dead-letter…)."""
        return f"{self.topic_prefix}{name}"

    def source_of(self, name: str) -> str:
        """Where a setting's value came from: "default", "flag --web-port", "env NAME" or "file PATH"."""
        if name not in type(self).model_fields:
            raise KeyError(name)
        return self._sources.get(name, "default")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (validated), keeping where the others came from."""
        changed = build(type(self), {**self.model_dump(), **changes}, dict.fromkeys(changes, "changed"))
        changed._sources = {**self._sources, **dict.fromkeys(changes, "changed")}
        return changed

    @classmethod
    def load(
        cls,
        *,
        flags: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
    ) -> Settings:
        """Settings from flags, the environment (os.environ unless given) and the settings file.

        `flags` are field names with the values given on the command line (None: not given). The
        file is `config_file`, else the one `RUNHERALD_CONFIG` names, else none. Raises ConfigError
        with one line naming the variable, flag or file of a value that cannot work; warns
        (SettingsWarning) about old variable names and unknown RUNHERALD_* variables.
        """
        env = os.environ if env is None else env
        for message in environment_warnings(env):
            warnings.warn(message, SettingsWarning, stacklevel=2)
        file_name = config_file or env.get(CONFIG_ENV) or None
        layers = [
            _from_flags(flags or {}),
            _from_environment(env),
            from_file(Path(file_name), list(cls.model_fields)) if file_name else {},
            _from_mlrun_environment(env),
        ]
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for layer in reversed(layers):  # lowest first, so each higher layer overwrites
            for name, (value, source) in layer.items():
                values[name] = value
                sources[name] = source
        settings = build(cls, values, sources)
        settings._sources = sources
        return settings

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """`load` with the given environment, and overrides (not None) as if they were flags."""
        return cls.load(flags=overrides, env=env)


def _name_list(value: str, pattern: str, what: str) -> str:
    """A comma-separated list of names, spaces and empty items dropped; ValueError naming those that do
    not match `pattern`."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    bad = [name for name in names if not re.fullmatch(pattern, name)]
    if bad:
        raise ValueError(f"not {what}: {', '.join(bad)}")
    return ",".join(names)


def env_name(field: str) -> str:
    """The environment variable of a setting: RUNHERALD_<FIELD> unless the README names it otherwise."""
    return _ENV_NAMES.get(field, ENV_PREFIX + field.upper())


def setting_names() -> list[str]:
    """Every setting's field name, in declaration order."""
    return list(Settings.model_fields)


def environment_warnings(env: Mapping[str, str]) -> list[str]:
    """Warnings about the environment: old spellings in use, and RUNHERALD_* variables nobody reads."""
    current = {env_name(name): name for name in Settings.model_fields}
    # Compared without the common prefix, which would make every name look alike.
    known = {variable.removeprefix(ENV_PREFIX): variable for variable in [*current, *NOT_SETTINGS]}
    found = []
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX) or variable in current or variable in NOT_SETTINGS:
            continue
        if variable.startswith(NOT_SETTINGS_PREFIXES):
            continue
        if variable in DEPRECATED_ENV:
            new = env_name(DEPRECATED_ENV[variable])
            ignored = f"; ignored, as {new} is set" if env.get(new) else ""
            found.append(f"{variable} is deprecated: use {new}{ignored}")
            continue
        close = difflib.get_close_matches(variable.removeprefix(ENV_PREFIX), known, n=1, cutoff=0.6)
        hint = f"did you mean {known[close[0]]}?" if close else "`runherald config show` lists the settings"
        found.append(f"{variable} is not a runherald setting ({hint})")
    return found


def _from_flags(flags: Mapping[str, Any]) -> Layer:
    unknown = sorted(set(flags) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"not settings: {', '.join(unknown)}")
    return {
        name: (value, f"flag --{name.replace('_', '-')}")
        for name, value in flags.items()
        if value is not None
    }


def _from_environment(env: Mapping[str, str]) -> Layer:
    layer: Layer = {}
    for variable, name in DEPRECATED_ENV.items():
        if env.get(variable):
            layer[name] = (env[variable], f"env {variable}")
    for name in Settings.model_fields:
        variable = env_name(name)
        if env.get(variable):
            layer[name] = (env[variable], f"env {variable}")
    return layer


def _from_mlrun_environment(env: Mapping[str, str]) -> Layer:
    return {name: (env[var], f"env {var}") for var, name in MLRUN_ENV.items() if env.get(var)}


def _bootstrap_servers(broker: str) -> str:
    parts = []
    for url in broker.split(";"):
        for item in url.split(","):
            item = item.strip()
            if "://" in item:
                item = item.split("://", 1)[1]
            if item:
                parts.append(item.rstrip("/"))
    return ",".join(parts)


__all__ = [
    "CONFIG_ENV",
    "DEPRECATED_ENV",
    "ENV_PREFIX",
    "MLRUN_ENV",
    "NOT_SETTINGS",
    "NOT_SETTINGS_PREFIXES",
    "ConfigError",
    "Settings",
    "SettingsWarning",
    "env_name",
    "environment_warnings",
    "redact",
    "setting_names",
]
