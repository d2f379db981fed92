"""The evaluate stage alone: a fetch of run events in, deliveries, ledger changes, dead letters and
acknowledgements out. Kafka is stood in for by in-memory recorders (the pipeline tests run it for real).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from faust.types import TP
from runherald.streams.evaluate import EvaluateStage
from runherald.streams.writers import DeadLetterWriter, LedgerWriter

from runherald import ledger
from runherald.config import Settings
from runherald.delivery import Delivery

from .test_writers import RecordingWriter, Table


@dataclass
class Record:
    value: bytes | None
    key: bytes | None
    offset: int
    partition: int = 3
    topic: str = "runs"
    timestamp: int = 0
    timestamp_type: int = 0


class App:
    def __init__(self) -> None:
        self.read_epoch = 7
        self.acked: list[tuple[TP, list[int], int]] = []

    def ack_offsets(self, tp: TP, offsets: Any, epoch: int) -> None:
        self.acked.append((tp, list(offsets), epoch))


def run(uid: str, state: str = "completed") -> dict[str, Any]:
    return {
        "metadata": {"project": "p", "uid": uid, "name": "train"},
        "spec": {"notifications": [{"kind": "webhook", "name": "hook", "params": {"url": "http://x/"}}]},
        "status": {"state": state},
    }


def stage() -> tuple[EvaluateStage, App, RecordingWriter, LedgerWriter, list[tuple[Delivery, int]]]:
    app, writer = App(), RecordingWriter()
    ledger_writer = LedgerWriter(Table(), writer, "status")  # type: ignore[arg-type]
    emitted: list[tuple[Delivery, int]] = []

    async def emit(delivery: Delivery, partition: int) -> None:
        emitted.append((delivery, partition))

    evaluate = EvaluateStage(
        app=app,
        settings=Settings(),
        writer=writer,  # type: ignore[arg-type]
        ledger=ledger_writer,
        dead_letters=DeadLetterWriter(writer, "dead-letter"),  # type: ignore[arg-type]
        emit=emit,
        runs_topic="runs",
        lock=asyncio.Lock(),
    )
    return evaluate, app, writer, ledger_writer, emitted


async def test_a_fetch_gives_deliveries_ledger_entries_and_dead_letters_then_acknowledgements() -> None:
    evaluate, app, writer, ledger_writer, emitted = stage()
    tp = TP("runs", 3)
    records = [
        Record(orjson.dumps(run("u1")), b"p/u1", 10),
        Record(b"not json", b"p/x", 11),
        Record(orjson.dumps(run("u2", state="running")), b"p/u2", 12),  # `when` is completed only
    ]
    await evaluate.handle(tp, records)
    assert [(d.uid, d.name, d.state, partition) for d, partition in emitted] == [
        ("u1", "hook", "completed", 3)
    ]
    entry = next(iter(ledger_writer.load(b"p/u1")["deliveries"].values()))
    assert entry["status"] == ledger.PENDING and entry["source"] == [3, 10]
    [(_topic, key, value, _)] = [item for item in writer.appended if item[0] == "dead-letter"]
    assert key == b"p/x" and orjson.loads(value)["reason"].startswith("not JSON")
    # Nothing is acknowledged before the ledger changes are queued; then all three, in their epoch.
    assert app.acked == []
    assert not any(item[0] == "status" for item in writer.appended)
    await evaluate.write_waiting()
    assert app.acked == [(tp, [10, 11, 12], 7)]
    assert any(item[0] == "status" and item[1] == b"p/u1" for item in writer.appended)


async def test_a_run_event_under_another_key_is_moved_to_its_own_not_evaluated_here() -> None:
    evaluate, _app, writer, _ledger, emitted = stage()
    await evaluate.handle(TP("runs", 0), [Record(orjson.dumps(run("u9")), b"something-else", 4, partition=0)])
    assert emitted == []
    [(topic, key, _value, _partition)] = writer.appended
    assert (topic, key) == ("runs", b"p/u9")
