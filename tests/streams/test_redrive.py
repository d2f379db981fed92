"""The re-drive after a takeover: which ledger entries count as stranded, and what is done with each."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from runherald.streams.redrive import Redriver, stranded

from runherald import ledger
from runherald.alerting import check_document
from runherald.delivery import Delivery, delivery_id
from runherald.rule_index import AlertConfig

KEY = b"proj/run-1"


def run_event(state: str = "completed", names: tuple[str, ...] = ("hook",)) -> dict[str, Any]:
    return {
        "metadata": {"project": "proj", "uid": "run-1", "name": "train"},
        "spec": {
            "notifications": [
                {"kind": "webhook", "name": n, "when": [state], "params": {"url": "http://x/"}} for n in names
            ]
        },
        "status": {"state": state},
    }


class World:
    """The Redriver's collaborators, kept in memory: a ledger, a runs topic, what was emitted."""

    def __init__(self) -> None:
        self.records: dict[bytes, bytes] = {}
        self.runs: dict[tuple[int, int], bytes] = {}
        self.busy: set[str] = set()
        self.owned = {3}
        self.emitted: list[tuple[Delivery, int]] = []
        self.errors: list[tuple[bytes, str, int, str]] = []
        self.reads = 0

    def entry(self, did: str, **fields: Any) -> None:
        record = ledger.load(self.records.get(KEY), "proj", "run-1")
        ledger.put_entry(record, did, **fields)
        self.records[KEY] = ledger.dump(record)

    async def fetch_run(self, partition: int, offset: int) -> bytes:
        self.reads += 1
        if (partition, offset) not in self.runs:
            raise LookupError(f"offset {offset} is gone")
        return self.runs[(partition, offset)]

    async def emit(self, delivery: Delivery, partition: int) -> None:
        self.emitted.append((delivery, partition))

    async def record_error(self, key: bytes, did: str, partition: int, reason: str) -> None:
        self.errors.append((key, did, partition, reason))

    def redriver(self, grace: float = 0.0) -> Redriver:
        return Redriver(
            records=lambda: list(self.records.items()),
            read_record=lambda key: ledger.load(self.records.get(key)),
            partition_of=lambda key: 3,
            is_busy=self.busy.__contains__,
            owns=self.owned.__contains__,
            fetch_run=self.fetch_run,
            emit=self.emit,
            record_error=self.record_error,
            grace=grace,
            max_event_bytes=100_000,
        )


def test_stranded_means_pending_with_no_retry_and_left_alone_long_enough() -> None:
    record = ledger.new_record("proj", "run-1")
    ledger.put_entry(record, "a", status=ledger.PENDING)
    ledger.put_entry(record, "b", status=ledger.PENDING, retry=[3, 10], next_attempt_at=time.time() + 5)
    ledger.put_entry(record, "c", status=ledger.SENT)
    ledger.put_entry(record, "d", status=ledger.ERROR)
    assert stranded(record, older_than=time.time()) == ["a"]
    assert stranded(record, older_than=time.time() - 60) == []  # changed just now: not yet


async def test_a_stranded_entry_is_sent_again_from_its_run_event_with_the_same_delivery_id() -> None:
    world = World()
    did = delivery_id("proj", "run-1", "hook", "completed")
    world.entry(did, name="hook", state="completed", status=ledger.PENDING, source=[3, 42])
    world.runs[(3, 42)] = orjson.dumps(run_event())
    assert await world.redriver().sweep() == 1
    [(delivery, partition)] = world.emitted
    assert (delivery.id, delivery.name, delivery.state, partition) == (did, "hook", "completed", 3)
    assert delivery.runs[0]["metadata"]["uid"] == "run-1"
    assert world.errors == []


async def test_an_entry_whose_run_event_is_gone_is_recorded_as_an_error_saying_so() -> None:
    world = World()
    did = delivery_id("proj", "run-1", "hook", "completed")
    world.entry(did, name="hook", state="completed", status=ledger.PENDING, source=[3, 42])
    await world.redriver().sweep()
    assert world.emitted == []
    [(key, failed, partition, reason)] = world.errors
    assert (key, failed, partition) == (KEY, did, 3)
    assert "runs[3]@42" in reason and "gone" in reason


async def test_an_entry_whose_run_no_longer_asks_for_it_is_an_error() -> None:
    world = World()
    did = delivery_id("proj", "run-1", "hook", "completed")
    world.entry(did, name="hook", state="completed", status=ledger.PENDING, source=[3, 42])
    world.runs[(3, 42)] = orjson.dumps(run_event(names=("other",)))
    await world.redriver().sweep()
    assert world.emitted == []
    assert "no longer asks for this notification" in world.errors[0][3]


async def test_sends_under_way_retries_terminal_entries_and_other_partitions_are_left_alone() -> None:
    world = World()
    world.runs[(3, 42)] = orjson.dumps(run_event(names=("busy", "retrying", "sent")))
    busy = delivery_id("proj", "run-1", "busy", "completed")
    world.entry(busy, name="busy", state="completed", status=ledger.PENDING, source=[3, 42])
    world.busy.add(busy)
    world.entry(
        delivery_id("proj", "run-1", "retrying", "completed"),
        name="retrying",
        state="completed",
        status=ledger.PENDING,
        source=[3, 42],
        retry=[3, 7],
    )
    world.entry(
        delivery_id("proj", "run-1", "sent", "completed"), name="sent", state="completed", status=ledger.SENT
    )
    assert await world.redriver().sweep() == 0
    world.busy.clear()
    world.owned.clear()  # the partition moved to another worker
    assert await world.redriver().sweep() == 0
    assert world.emitted == [] and world.errors == [] and world.reads == 0


async def test_takeover_waits_for_the_grace_period_and_a_second_takeover_starts_it_again() -> None:
    world = World()
    did = delivery_id("proj", "run-1", "hook", "completed")
    world.entry(did, name="hook", state="completed", status=ledger.PENDING, source=[3, 42])
    world.runs[(3, 42)] = orjson.dumps(run_event())
    redriver = world.redriver(grace=0.2)
    # Entries changed within the grace period are not stranded yet: back-date this one.
    record = ledger.load(world.records[KEY])
    record["deliveries"][did]["updated"] -= 1
    world.records[KEY] = ledger.dump(record)
    redriver.takeover()
    await asyncio.sleep(0.1)
    redriver.takeover()  # a second rebalance
    await asyncio.sleep(0.15)
    assert world.emitted == []  # 0.25 s after the first, 0.15 s after the second: not yet
    await asyncio.sleep(0.15)
    assert [d.id for d, _ in world.emitted] == [did]
    await redriver.stop()


async def test_a_stranded_transition_delivery_is_sent_again_under_its_transition() -> None:
    document = check_document(
        {
            "receivers": [{"name": "hook", "kind": "webhook", "params": {"url": "http://x/"}}],
            "rules": [{"name": "flips", "matchers": ['project="proj"'], "when": ["error", "regressed"],
                       "receivers": ["hook"]}],
        }
    )  # fmt: skip
    alerts = AlertConfig.from_objects([*document.receivers, *document.rules])
    world = World()
    did = delivery_id("proj", "run-1", "flips/hook", "regressed")
    world.entry(did, name="flips/hook", state="regressed", transition="regressed", status=ledger.PENDING,
                source=[3, 42], previous={"uid": "run-0", "state": "completed"})  # fmt: skip
    world.runs[(3, 42)] = orjson.dumps(run_event("error", names=()))
    redriver = world.redriver()
    redriver._alerts = lambda: alerts
    assert await redriver.sweep() == 1
    [(delivery, partition)] = world.emitted
    assert (delivery.id, delivery.name, delivery.state, partition) == (did, "flips/hook", "regressed", 3)
    assert "run run-0 (completed)" in delivery.message and world.errors == []
