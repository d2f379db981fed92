"""Fixtures: one embedded broker per test session; workers and loopback receivers per test or module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from runherald.broker import EmbeddedBroker
from runherald.publish import Publisher
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, fast_worker, own_worker, unique


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=str(log)) as running:
        yield running


@pytest.fixture(scope="session")
def worker_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workers")


@pytest.fixture(scope="session")
def worker(broker: EmbeddedBroker, worker_logs: Path) -> Iterator[WorkerProcess]:
    """One worker shared by the tests that do not kill workers; each test uses its own run uids."""
    with own_worker(broker.url, worker_logs) as process:
        yield process


@pytest.fixture
async def publisher(worker: WorkerProcess) -> AsyncIterator[Publisher]:
    async with Publisher(worker.settings) as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as running:
        yield running


@pytest.fixture
def start_worker(broker: EmbeddedBroker, worker_logs: Path) -> Iterator[Any]:
    """Start dedicated workers (own prefix and group unless given); all are stopped after the test."""
    started: list[WorkerProcess] = []

    def start(
        prefix: str | None = None, group: str | None = None, wait: bool = True, **extra_env: str
    ) -> WorkerProcess:
        process = fast_worker(
            broker.url, prefix or unique("t") + ".", group or unique("g"), worker_logs, **extra_env
        ).start()
        started.append(process)
        if wait:
            process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop()
