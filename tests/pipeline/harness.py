"""Real workers in subprocesses against the embedded broker, and small helpers to drive them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from runherald.auth import hash_token
from runherald.config import Settings
from runherald.testing.worker import WorkerProcess, unique

__all__ = [
    "FAST_ENV",
    "WorkerProcess",
    "api_get",
    "cli",
    "fast_worker",
    "own_worker",
    "read_topic",
    "request",
    "run_cli",
    "run_dict",
    "tokens_file",
    "unique",
    "wait_for",
    "webhook",
]

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


def fast_worker(broker_url: str, prefix: str, group: str, log_dir: Path, **env: str) -> WorkerProcess:
    """A worker (not started) with the tests' fast settings, and `env` over them."""
    return WorkerProcess(broker_url, prefix, group, log_dir, {**FAST_ENV, **env})


@contextlib.contextmanager
def own_worker(broker_url: str, log_dir: Path, **env: str) -> Iterator[WorkerProcess]:
    """A fast worker with a prefix and group of its own (its rules reach no other test's runs), started
    and ready; stopped on leaving."""
    process = fast_worker(broker_url, unique("t") + ".", unique("g"), log_dir, **env).start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def tokens_file(directory: Path, *tokens: tuple[str, str, Sequence[str]]) -> Path:
    """A tokens file (RUNHERALD_API_TOKENS_FILE) in `directory` of (name, token, scopes): tokens hashed."""
    path = directory / "tokens.yaml"
    entries = [
        {"name": name, "sha256": hash_token(token), "scopes": list(scopes)} for name, token, scopes in tokens
    ]
    path.write_text(yaml.safe_dump({"tokens": entries}))
    return path


def _cli(args: tuple[str, ...], env: dict[str, str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RUNHERALD_")}
    return subprocess.run(
        [sys.executable, "-m", "runherald.cli", *args],
        env={**environment, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def run_cli(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """`runherald ARGS` in a subprocess (no RUNHERALD_* but `env`), off the event loop (the loopback
    receivers run on it)."""
    return await asyncio.to_thread(_cli, args, env, stdin)


async def cli(
    worker: WorkerProcess, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`runherald ARGS --api WORKER`, as `run_cli`."""
    return await run_cli(*args, "--api", worker.api, stdin=stdin, **env)


def _request(api: str, method: str, path: str, body: Any, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None if body is None else json.dumps(body).encode()
    sent = urllib.request.Request(api + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(sent, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def request(
    worker: WorkerProcess, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """A request to the worker's API off the event loop (a JSON body; a bearer token): (status, JSON)."""
    return await asyncio.to_thread(_request, worker.api, method, path, body, token)


async def api_get(worker: WorkerProcess, path: str) -> tuple[int, Any]:
    """GET a path of the worker's API off the event loop: (status, JSON)."""
    return await asyncio.to_thread(worker.get, path)


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


async def publish_foreign(settings: Settings, *runs: dict[str, Any]) -> None:
    """Write runs to the runs topic as a producer other than runherald's does: unchecked at the door,
    so what the pipeline itself does with an invalid run can be seen."""
    import orjson
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for run in runs:
            meta = run["metadata"]
            key = f"{meta['project']}/{meta['uid']}".encode()
            await producer.send_and_wait(settings.topic("runs"), value=orjson.dumps(run), key=key)
    finally:
        await producer.stop()
