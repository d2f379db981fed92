"""Fixtures: one embedded broker per test session; workers and loopback receivers per test or module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from runherald.broker import EmbeddedBroker
from runherald.publish import Publisher
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, unique


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
    process = WorkerProcess(broker.url, unique("t") + ".", unique("g"), worker_logs).start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture
async def publisher(worker: WorkerProcess) -> AsyncIterator[Publisher]:
    async with Publisher(worker.settings) as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as running:
        yield running
