"""Worker settings: defaults, overridden by RUNHERALD_* environment variables and CLI flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

ENV_PREFIX = "RUNHERALD_"


def _coerce(raw: str, like: Any) -> Any:
    if isinstance(like, bool):
        value = raw.strip().lower()
        if value in {"1", "true", "yes", "on"}:
            return True
        if value in {"0", "false", "no", "off", ""}:
            return False
        raise ValueError(f"expected a boolean, got {raw!r}")
    if isinstance(like, int):
        return int(raw)
    if isinstance(like, float):
        return float(raw)
    return raw


@dataclass(frozen=True)
class Settings:
    """Everything a worker, the API and the CLI need to agree on."""

    broker: str = "kafka://127.0.0.1:9092"
    topic_prefix: str = "runherald."
    group_id: str = "runherald"
    partitions: int = 8
    web_host: str = "127.0.0.1"
    web_port: int = 6066
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
    send_timeout: float = 10.0
    retry_max_attempts: int = 8
    retry_max_elapsed: float = 6 * 3600.0
    retry_base_delay: float = 1.0
    retry_max_delay: float = 300.0
    # An endpoint that gave no answer (timeout, no connection) to this many requests in a row is not
    # sent to for circuit_cooldown seconds, doubling while its probes fail (0 turns this off).
    circuit_threshold: int = 5
    circuit_cooldown: float = 10.0
    allow_private_egress: bool = False
    allow_loopback_egress: bool = False
    templates_dir: str = ""
    secrets_dir: str = ""
    ui_url: str = ""
    log_level: str = "info"
    # The worker's asyncio event loop: "uvloop" (default, where installed) or "asyncio".
    event_loop: str = "uvloop"
    # Run the Kafka consumer in faust's own thread instead of on the worker's event loop.
    consumer_thread: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def bootstrap_servers(self) -> str:
        """host:port[,host:port] for Kafka clients, from a kafka:// URL list."""
        parts = []
        for url in self.broker.split(";"):
            for item in url.split(","):
                item = item.strip()
                if "://" in item:
                    item = item.split("://", 1)[1]
                if item:
                    parts.append(item.rstrip("/"))
        return ",".join(parts)

    def topic(self, name: str) -> str:
        """Full name of one of the pipeline's topics (runs, deliveries, status, rules, dead-letter…)."""
        return f"{self.topic_prefix}{name}"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then RUNHERALD_<FIELD> variables, then explicit overrides that are not None."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        defaults = cls()
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                try:
                    values[f.name] = _coerce(raw, getattr(defaults, f.name))
                except ValueError as exc:
                    raise ValueError(f"{ENV_PREFIX}{f.name.upper()}: {exc}") from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = replace(defaults, **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ValueError with a clear message for settings that cannot work."""
        if self.condition_error_policy not in {"send", "skip"}:
            raise ValueError("condition_error_policy must be 'send' or 'skip'")
        if self.partitions < 1:
            raise ValueError("partitions must be at least 1")
        if not self.bootstrap_servers:
            raise ValueError("broker must be a URL such as kafka://host:9092")
        if self.retry_max_attempts < 1:
            raise ValueError("retry_max_attempts must be at least 1")
        if self.commit_interval <= 0:
            raise ValueError("commit_interval must be a positive number of seconds")
        if self.redrive_after < 0:
            raise ValueError("redrive_after must be 0 or more seconds")
        if self.circuit_threshold < 0:
            raise ValueError("circuit_threshold must be 0 (off) or more")
        if self.circuit_cooldown <= 0:
            raise ValueError("circuit_cooldown must be a positive number of seconds")
        if self.event_loop not in {"uvloop", "asyncio"}:
            raise ValueError("event_loop must be 'uvloop' or 'asyncio'")
