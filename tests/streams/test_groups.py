"""The groups stage alone: members in, one digest per window out, members told where they went, and a
new owner taking over a group whose digest was recorded but never sent. Kafka is stood in for by
in-memory recorders (tests/pipeline/test_grouping.py runs it for real, with a worker killed)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from faust.types import TP
from runherald.streams.groups import WRITE_DELAY, Groups, MemberOutcomes
from runherald.streams.writers import LedgerWriter

from runherald import grouping, ledger
from runherald.delivery import Delivery

from .test_evaluate_stage import App, Record
from .test_writers import RecordingWriter, Table


class AckedWriter(RecordingWriter):
    async def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> Any:
        await super().send(topic, key, value, partition)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


GROUP = grouping.group_hash("failures", "hook", ["p"])
KEY = grouping.group_key(GROUP).encode()


def member(uid: str, at: float) -> dict[str, Any]:
    return {
        "group": GROUP,
        "rule": "failures",
        "receiver": "hook",
        "values": ["p"],
        "wait": 30.0,
        "interval": 300.0,
        "repeat": 0.0,
        "project": "p",
        "uid": uid,
        "state": "error",
        "delivery_id": f"d-{uid}",
        "partition": 1,
        "name": "failures/hook",
        "kind": "webhook",
        "message": "Run failed in project p",
        "severity": "error",
        "notification": {"kind": "webhook", "name": "failures/hook", "params": {"url": "http://x/"}},
        "run": {"metadata": {"project": "p", "uid": uid}},
        "at": at,
    }


def groups(
    table: Table | None = None,
) -> tuple[Groups, App, AckedWriter, LedgerWriter, list[Delivery]]:
    app, writer = App(), AckedWriter()
    ledger_writer = LedgerWriter(table or Table(), writer, "status")  # type: ignore[arg-type]
    emitted: list[Delivery] = []

    async def emit(delivery: Delivery, partition: int) -> None:
        emitted.append(delivery)

    stage = Groups(
        app=app,
        ledger=ledger_writer,
        writer=writer,  # type: ignore[arg-type]
        emit=emit,
        outcomes_topic="group-outcomes",
        lock=asyncio.Lock(),
        owns=lambda partition: True,
        is_busy=lambda did: False,
    )
    return stage, app, writer, ledger_writer, emitted


async def test_members_wait_then_go_in_one_digest_and_are_told_where_they_went() -> None:
    stage, app, writer, ledger_writer, emitted = groups()
    long_ago = time.time() - 60  # the window is due at once
    records = [Record(orjson.dumps(member(uid, long_ago + i)), KEY, 20 + i) for i, uid in enumerate("ab")]
    await stage.handle(TP("groups", 2), records)
    await stage.handle(TP("groups", 2), [Record(orjson.dumps(member("a", long_ago)), KEY, 22)])  # again
    assert app.acked == []  # the group's record is written (and they acknowledged) a little later
    await asyncio.sleep(WRITE_DELAY)
    await stage.sweep()
    assert app.acked == [(TP("groups", 2), [20, 21], 7), (TP("groups", 2), [22], 7)]
    [digest] = emitted
    assert digest.id == grouping.digest_id("failures", "hook", ["p"], long_ago)
    assert (digest.project, digest.uid) == ("group", GROUP)
    assert [run["metadata"]["uid"] for run in digest.runs] == ["a", "b"]
    assert digest.message == "Run failed in project p (2 runs)"
    entry = ledger.entry(ledger_writer.load(KEY), digest.id)
    assert entry is not None and entry["status"] == ledger.PENDING and len(entry["members"]) == 2

    # The dispatcher records it sent (as streams.app's write_record does, poking the group).
    record = ledger_writer.load(KEY)
    ledger.put_entry(record, digest.id, status=ledger.SENT, sent_time="2026-01-01T00:00:00+00:00")
    await ledger_writer.put(2, KEY, record)
    stage.poke(KEY)
    await stage.sweep()
    told = [
        (key, orjson.loads(value), p) for topic, key, value, p in writer.appended if topic == "group-outcomes"
    ]
    assert [(key, p) for key, _, p in told] == [(b"p/a", 1), (b"p/b", 1)]
    assert all(value["digest"] == digest.id and value["status"] == ledger.SKIPPED for _, value, _ in told)
    done = ledger.entry(ledger_writer.load(KEY), digest.id)
    assert done is not None and done["told"] and done["runs"] == 2 and "delivery" not in done
    assert len(emitted) == 1  # nothing sent twice

    # The run's owner applies what it is told to the run's own record.
    runs = LedgerWriter(Table(), writer, "status")  # type: ignore[arg-type]
    run_record = ledger.new_record("p", "a")
    ledger.put_entry(run_record, "d-a", status=ledger.PENDING, group=GROUP)
    runs.set(1, b"p/a", run_record)
    outcomes = MemberOutcomes(app=app, ledger=runs, lock=asyncio.Lock())
    await outcomes.handle(TP("group-outcomes", 1), [Record(orjson.dumps(told[0][1]), b"p/a", 5, 1)])
    found = ledger.entry(runs.load(b"p/a"), "d-a")
    assert found is not None and found["status"] == ledger.SKIPPED and digest.id in found["reason"]
    assert found["sent_time"] == "2026-01-01T00:00:00+00:00"


async def test_a_new_owner_sends_a_digest_recorded_but_never_sent_with_the_same_id() -> None:
    stage, _, _, ledger_writer, emitted = groups()
    long_ago = time.time() - 60
    await stage.handle(TP("groups", 2), [Record(orjson.dumps(member("a", long_ago)), KEY, 20)])
    await stage.sweep()
    [first] = emitted
    # The worker dies before the send: the group's record (on the status topic) says pending.
    record = ledger_writer.load(KEY)
    record["deliveries"][first.id]["updated"] = time.time() - 60
    table = Table()
    table.data[KEY] = ledger.dump(record)
    table.data._key_partition[KEY] = 2
    successor, _, _, _, sent_again = groups(table)
    successor.takeover([(KEY, table.data[KEY])])
    # The member's event is read again from the last commit: already in that digest, not a new window.
    await successor.handle(TP("groups", 2), [Record(orjson.dumps(member("a", long_ago)), KEY, 20)])
    await successor.sweep()
    assert [delivery.id for delivery in sent_again] == [first.id]
    assert sent_again[0].runs == first.runs
