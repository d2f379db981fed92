"""Grouped rules: groups ──► the group's owner ──► one digest per window ──► deliveries, and each member
run told where it went (group-outcomes ──► the run's owner).

A grouped rule's notification of a run is not a delivery: evaluate records it `pending` and sends a
member record to the groups topic, keyed by the group (``"group/{hash}"``), so the worker owning that
partition owns the group. Its state (members waiting, window start, last digest) is in the group's
ledger record, on the compacted status topic like every ledger record: it survives a restart or a
rebalance mid-wait. When a window closes, the owner records its digest (`pending`, with the delivery
and its members) and emits it as evaluate emits a delivery; the dispatcher records the outcome in the
same record. Once the digest is sent (or failed for good), each member gets an outcome record on the
group-outcomes topic, keyed by its run and on its run's partition, and the run's owner applies it to
the run's ledger record (`skipped`, naming the digest, with its sent_time). Member records are
acknowledged only once the group's record holding them is queued, so a crash loses none; the digest
id is (rule, receiver, group values, window start), so a digest sent again carries the same
Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from faust.types import TP

from runherald import grouping, ledger
from runherald.delivery import Delivery, run_key
from runherald.matchers import format_duration

from .writers import LedgerWriter, Writer

log = logging.getLogger("runherald.groups")

GROUP_TICK = 0.1  # seconds between looks for windows that closed
RECHECK = 2.0  # seconds between looks at a group whose digest is still pending
REEMIT_AFTER = 5.0  # a pending digest with no send under way this long after its last change is re-emitted
WRITE_DELAY = 0.25  # seconds a group's changed record may wait for its write (see Groups.handle)
MAX_MEMBERS = 250  # a window closes early at this many runs: a digest stays well under Kafka's 1 MB


def digest_delivery(did: str, group: str, members: list[dict[str, Any]], now: float) -> Delivery:
    """The one delivery of a window: its members' runs, in arrival order."""
    first = members[0]
    return Delivery(
        id=did,
        project=grouping.GROUP_PROJECT,
        uid=group,
        name=str(first["name"]),
        state=str(first["state"]),
        kind=str(first["kind"]),
        message=grouping.digest_message(members),
        severity=str(first["severity"]),
        runs=[member["run"] for member in members],
        notification=dict(first["notification"]),
        created_at=now,
    )


def member_outcome(entry: ledger.Entry, group: str) -> dict[str, Any]:
    """What a terminal digest entry tells each of its members."""
    did = str(entry["id"])
    if entry.get("status") == ledger.SENT:
        return {
            "status": ledger.SKIPPED,
            "reason": f"sent in digest {did} of group {group[:12]}",
            "digest": did,
            "sent_time": entry.get("sent_time"),
        }
    why = entry.get("reason") or entry.get("status")
    return {
        "status": ledger.ERROR,
        "reason": f"digest {did} of group {group[:12]} failed: {why}",
        "digest": did,
    }


class Groups:
    """The groups this worker owns: members in, digests out, members told."""

    def __init__(
        self,
        *,
        app: Any,  # streams.kafka.App: read epochs and acknowledgements
        ledger: LedgerWriter,
        writer: Writer,
        emit: Callable[[Delivery, int], Awaitable[None]],
        outcomes_topic: str,
        lock: asyncio.Lock,
        owns: Callable[[int], bool],
        is_busy: Callable[[str], bool],
    ) -> None:
        self._app = app
        self._ledger = ledger
        self._writer = writer
        self._emit = emit
        self._outcomes_topic = outcomes_topic
        self._lock = lock
        self._owns = owns
        self._is_busy = is_busy
        self._partitions: dict[bytes, int] = {}  # group key -> its partition
        self._due: dict[bytes, float] = {}  # group key -> when to look at it next
        self._unacknowledged: list[tuple[TP, list[int], int]] = []  # (partition, offsets, read epoch)
        self._oldest = 0.0  # monotonic time the oldest unacknowledged member was handled

    # -- members in ---------------------------------------------------------------------------------

    async def handle(self, tp: TP, records: list[Any]) -> None:
        """One partition's member records of one fetch; acknowledged once their groups' records are
        queued."""
        async with self._lock:
            epoch = self._app.read_epoch
            # Each group's record is read and written once per fetch, with no await in between: the
            # dispatcher records digest outcomes in these records too.
            changed: dict[bytes, ledger.Record] = {}
            covered: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (member, what it is told)
            for message in records:
                try:
                    member = orjson.loads(message.value)
                    record = changed.get(message.key)
                    if record is None:
                        record = self._ledger.load(message.key, grouping.GROUP_PROJECT, str(member["group"]))
                    told = self._add(record, message.key, member)
                    changed[message.key] = record
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    log.warning("ignored a malformed group member at %s@%s: %r", tp, message.offset, exc)
                    continue
                if told is not None:
                    covered.append((member, told))
            for key, record in changed.items():
                self._ledger.set(tp.partition, key, record)
                self._partitions[key] = tp.partition
            for member, told in covered:
                await self._tell(
                    member["project"], member["uid"], member["delivery_id"], member["partition"], told
                )
            # Acknowledged once the records are queued; that write waits up to WRITE_DELAY, as the
            # evaluate stage's: a group's record holds its waiting runs, and one write then carries the
            # members of many fetches.
            if not self._unacknowledged:
                self._oldest = time.monotonic()
            self._unacknowledged.append((tp, [message.offset for message in records], epoch))
            if time.monotonic() - self._oldest >= WRITE_DELAY:
                await self._write_waiting()

    async def _write_waiting(self) -> None:
        events, self._unacknowledged = self._unacknowledged, []
        await self._ledger.flush()
        for tp, offsets, epoch in events:
            self._app.ack_offsets(tp, offsets, epoch)

    def _add(self, record: ledger.Record, key: bytes, member: dict[str, Any]) -> dict[str, Any] | None:
        """Put a member in its group's record; what to tell it if a repeat interval covers it."""
        state = record.get("group") or grouping.new_state(member)
        what, covering = grouping.add_member(state, member)
        record["group"] = state
        due = grouping.due_at(state)
        if due is not None and len(state["members"]) >= MAX_MEMBERS:
            due = 0.0
        if due is not None:
            self._due[key] = min(due, self._due.get(key, due))
        if what != "covered":
            return None
        repeat = format_duration(float(state.get("repeat") or 0))
        return {
            "status": ledger.SKIPPED,
            "reason": f"within repeat_interval {repeat} of digest {covering}, which covered it",
            "digest": covering,
        }

    # -- digests out --------------------------------------------------------------------------------

    def poke(self, key: bytes) -> None:
        """The dispatcher recorded an outcome in this group's record: look at it soon."""
        self._due[key] = 0.0

    def takeover(self, records: Iterable[tuple[bytes, bytes]]) -> None:
        """After a rebalance: look at every owned group (its window may have closed meanwhile, its digest
        may be pending or its members not told yet)."""
        for key, _ in records:
            if key.startswith(grouping.GROUP_PROJECT.encode() + b"/"):
                partition = self._ledger.partitions.get(key)
                if partition is not None:
                    self._partitions[key] = partition
                    self._due[key] = 0.0

    async def sweep(self) -> None:
        """Close the windows that are due, re-emit digests left with nothing behind them, tell members."""
        if self._unacknowledged and time.monotonic() - self._oldest >= WRITE_DELAY:
            async with self._lock:
                await self._write_waiting()
        now = time.time()
        due = [key for key, at in self._due.items() if at <= now]
        if not due:
            return
        async with self._lock:
            to_tell: list[tuple[bytes, int, str, list[ledger.Entry]]] = []
            for key in due:
                self._due.pop(key, None)
                partition = self._partitions.get(key)
                if partition is None or not self._owns(partition):
                    continue
                try:
                    to_tell += await self._look(key, partition, time.time())
                except Exception:  # one group's trouble must not stop the others
                    log.exception("looking at group %s failed", key.decode(errors="replace"))
                    self._due[key] = time.time() + RECHECK
            if to_tell:
                await self._tell_members(to_tell)
            await self._ledger.flush()

    async def _look(
        self, key: bytes, partition: int, now: float
    ) -> list[tuple[bytes, int, str, list[ledger.Entry]]]:
        """Close the group's window if due and emit its digest (or re-emit one left stranded); returns
        its digests that are done and whose members are not told yet."""
        # Read and changed with no await in between: the dispatcher records outcomes in this record.
        record = self._ledger.load(key)
        state = record.get("group")
        if state is None:
            return []
        group = str(record.get("uid") or key.decode().split("/", 1)[1])
        to_emit: list[Delivery] = []
        again: list[Delivery] = []
        window_due = grouping.due_at(state)
        if window_due is not None and (window_due <= now or len(state["members"]) >= MAX_MEMBERS):
            did, members = grouping.close_window(state, now)
            delivery = digest_delivery(did, group, members, now)
            ledger.put_entry(
                record,
                did,
                name=delivery.name,
                state=delivery.state,
                kind=delivery.kind,
                status=ledger.PENDING,
                group=group,
                members=[[m["project"], m["uid"], m["delivery_id"], m["partition"]] for m in members],
                delivery=delivery.to_record(),
            )
            to_emit.append(delivery)
            self._ledger.set(partition, key, record)
        to_tell: list[ledger.Entry] = []
        waiting = False
        for entry in record["deliveries"].values():
            if not entry.get("group") or entry.get("told"):
                continue
            if ledger.is_terminal(entry):
                to_tell.append(dict(entry))
                continue
            waiting = True
            stale = now - float(entry.get("updated") or now) >= REEMIT_AFTER
            if stale and not entry.get("retry") and not self._is_busy(entry["id"]) and entry.get("delivery"):
                again.append(Delivery.from_record(entry["delivery"]))
        for delivery in again:
            log.info("re-emitting digest %s of group %s: pending with no send under way", delivery.id, group)
        for delivery in to_emit + again:
            await self._emit(delivery, partition)
        next_due = grouping.due_at(state)
        if waiting or to_emit or again:
            next_due = min(next_due or now + RECHECK, now + RECHECK)
        if next_due is not None:
            self._due[key] = min(next_due, self._due.get(key, next_due))
        return [(key, partition, group, to_tell)] if to_tell else []

    async def _tell_members(self, groups: list[tuple[bytes, int, str, list[ledger.Entry]]]) -> None:
        """Tell the members of these digests where they went, then mark the digests told."""
        sent: list[asyncio.Future[Any]] = []
        for _, _, group, entries in groups:
            for entry in entries:
                told = member_outcome(entry, group)
                for project, uid, member_did, member_partition in entry.get("members") or []:
                    sent.append(await self._tell(project, uid, member_did, member_partition, told))
        if sent:
            await asyncio.gather(*sent)  # on the broker before the records say so
        for key, partition, _, entries in groups:
            self._mark_told(key, partition, entries)

    def _mark_told(self, key: bytes, partition: int, entries: list[ledger.Entry]) -> None:
        record = self._ledger.load(key)
        for entry in entries:
            found = ledger.entry(record, str(entry["id"]))
            if found is not None:
                # Done with: what the members needed is in their own records now, and a group's record
                # is read and written whole at every change.
                found["told"] = True
                found["runs"] = len(found.pop("members", None) or [])
                found.pop("delivery", None)
        told_ids = [did for did, found in record["deliveries"].items() if found.get("told")]
        for did in told_ids[: max(0, len(told_ids) - grouping.KEEP_DIGESTS)]:
            del record["deliveries"][did]
        self._ledger.set(partition, key, record)

    async def _tell(
        self, project: str, uid: str, member_did: str, partition: int, told: dict[str, Any]
    ) -> asyncio.Future[Any]:
        value = orjson.dumps({"delivery_id": member_did, **told})
        return await self._writer.send(self._outcomes_topic, run_key(project, uid).encode(), value, partition)


class MemberOutcomes:
    """group-outcomes ──► the run's owner: records in a member run's ledger entry where it went."""

    def __init__(self, *, app: Any, ledger: LedgerWriter, lock: asyncio.Lock) -> None:
        self._app = app
        self._ledger = ledger
        self._lock = lock

    async def handle(self, tp: TP, records: list[Any]) -> None:
        async with self._lock:
            epoch = self._app.read_epoch
            for message in records:
                try:
                    told = orjson.loads(message.value)
                    self._apply(message.key, tp.partition, told)
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    log.warning("ignored a malformed member outcome at %s@%s: %r", tp, message.offset, exc)
            await self._ledger.flush()
            self._app.ack_offsets(tp, [message.offset for message in records], epoch)

    def _apply(self, key: bytes, partition: int, told: dict[str, Any]) -> None:
        record = self._ledger.load(key)
        did = str(told["delivery_id"])
        found = ledger.entry(record, did)
        if found is None or found.get("status") == ledger.SENT:
            return
        if found.get("status") == told["status"] and found.get("digest") == told.get("digest"):
            return  # told already (a record read again after a restart)
        ledger.put_entry(
            record,
            did,
            status=told["status"],
            reason=ledger.short_reason(told.get("reason")),
            detail=told.get("reason"),
            digest=told.get("digest"),
            sent_time=told.get("sent_time"),
        )
        self._ledger.set(partition, key, record)


__all__ = ["Groups", "MemberOutcomes", "digest_delivery", "member_outcome"]
