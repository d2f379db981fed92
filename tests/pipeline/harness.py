"""Real workers in subprocesses against the embedded broker, and small helpers to drive them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runherald.broker import free_port
from runherald.config import Settings

FAST_ENV = {
    "RUNHERALD_FETCH_MAX_WAIT_MS": "5",
    "RUNHERALD_ALLOW_LOOPBACK_EGRESS": "true",
    "RUNHERALD_RETRY_BASE_DELAY": "0.2",
    "RUNHERALD_RETRY_MAX_DELAY": "2",
    "RUNHERALD_SEND_TIMEOUT": "3",
    "RUNHERALD_PARTITIONS": "4",
    "RUNHERALD_SESSION_TIMEOUT": "6",
    "RUNHERALD_MAX_EVENT_BYTES": "200000",
    "RUNHERALD_LOG_LEVEL": "info",
}


def unique(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex[:10]


@dataclass
class WorkerProcess:
    """`runherald worker` as a child process with its own web port; logs go to a file."""

    broker_url: str
    prefix: str
    group: str
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    web_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(FAST_ENV)
        env.update(
            {
                "RUNHERALD_BROKER": self.broker_url,
                "RUNHERALD_TOPIC_PREFIX": self.prefix,
                "RUNHERALD_GROUP_ID": self.group,
                "RUNHERALD_WEB_PORT": str(self.web_port),
            }
        )
        env.update(self.extra_env)
        return env

    @property
    def settings(self) -> Settings:
        return Settings.from_env({k: v for k, v in self.env.items() if k.startswith("RUNHERALD_")})

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"worker-{self.web_port}.log"

    def start(self) -> WorkerProcess:
        if not self.web_port:
            self.web_port = free_port()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runherald.cli", "worker"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.api + path, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get_text(self, path: str) -> tuple[int, str]:
        """A GET whose body is text (e.g. /metrics)."""
        try:
            with urllib.request.urlopen(self.api + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, timeout: float = 60.0, min_partitions: int = 1) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.tail()}")
            try:
                code, body = self.get("/readyz")
                last = body
                if code == 200 and body.get("assigned_partitions", 0) >= min_partitions:
                    return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"worker on {self.api} not ready after {timeout}s (last {last}):\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run_dict(
    project: str,
    uid: str,
    state: str,
    notifications: list[dict[str, Any]],
    *,
    results: dict[str, Any] | None = None,
    last_update: str | None = None,
    name: str = "train",
    labels: dict[str, str] | None = None,
    extra_status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A run dict in the shape of mlrun's RunObject.to_dict()."""
    status: dict[str, Any] = {"state": state, "results": results or {}}
    if last_update:
        status["last_update"] = last_update
    status.update(extra_status or {})
    return {
        "metadata": {"uid": uid, "name": name, "project": project, "labels": labels or {}, "iteration": 0},
        "spec": {"notifications": notifications, "parameters": {}},
        "status": status,
    }


def webhook(name: str, url: str, **extra: Any) -> dict[str, Any]:
    notification: dict[str, Any] = {
        "kind": "webhook",
        "name": name,
        "message": f"hello from {name}",
        "severity": "info",
        "when": ["completed", "error", "aborted", "running"],
        "condition": "",
        "params": {"url": url},
    }
    notification.update(extra)
    return notification


async def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll a sync or async predicate until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s (last value {last!r})")


async def read_topic(settings: Settings, name: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record now on one of the pipeline's topics, from the beginning (all partitions)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=5
    )
    await consumer.start()
    try:
        topic = settings.topic(name)
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        # The embedded broker under-reports end offsets after a multi-record batch, so read on
        # until a fetch comes back empty, not only up to end_offsets().
        records: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            if not any(batches.values()):
                break
            for messages in batches.values():
                records.extend((m.key, m.value) for m in messages)
        return records
    finally:
        await consumer.stop()
