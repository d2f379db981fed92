"""The dead-letter topic: its record format (written by the pipeline's stages), reading it, and replaying
what can be replayed: failed deliveries and dead-lettered runs.

A record's id is ``<partition>:<offset>`` on the dead-letter topic. A ``dispatch`` record carries the
delivery (literal secrets redacted, references and sealed values intact): replay re-publishes it to the
deliveries topic with a fresh ``replay`` token, so the dispatcher sends it again although the ledger
says ``error``. An ``evaluate`` record whose payload is a run dict is re-published to the runs topic.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from runherald.config import Settings
from runherald.connect import start_client
from runherald.delivery import Delivery
from runherald.delivery import run_key as delivery_key
from runherald.kafka_clients import client_kwargs, start_producer
from runherald.publish import PublishError, run_key
from runherald.sealing import seal_run
from runherald.secrets import REDACTED, redact_secret_params

READ_TIMEOUT = 30.0


def dead_letter_value(
    *, reason: str, stage: str, source: dict[str, Any], payload: Any = None, **extra: Any
) -> bytes:
    """A dead-letter record as the pipeline writes it: why, which stage, where from, and the payload
    (secrets redacted) when there is one to replay; `extra`: more fields (a source record's `reasons`)."""
    record: dict[str, Any] = {
        "reason": reason,
        "stage": stage,
        "source": source,
        "time": datetime.now(UTC).isoformat(),
        **extra,
    }
    if payload is not None:
        record["payload"] = payload
    return orjson.dumps(record)


def redacted_event(raw: bytes | None) -> Any:
    """What of a bad run event may go to the dead-letter topic: its JSON with literal secrets redacted
    (sealed values and references stay, so it can be replayed), or only its size and digest."""
    if raw is None:
        return None
    digest = {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return digest
    if not isinstance(value, dict):
        return digest
    try:
        notifications = (value.get("spec") or {}).get("notifications")
        if isinstance(notifications, list):
            value["spec"]["notifications"] = [
                redact_secret_params(n) if isinstance(n, dict) else n for n in notifications
            ]
        return value
    except Exception:  # a shape we cannot walk: keep nothing that might be secret
        return digest


def redacted_delivery(delivery: Delivery) -> dict[str, Any]:
    """A failed delivery as its dead-letter record carries it: literal secrets redacted."""
    payload = delivery.to_record()
    payload["notification"] = redact_secret_params(delivery.notification)
    return payload


class NotReplayable(ValueError):
    """A dead-letter record that cannot be replayed; the message says why."""


@dataclass(frozen=True)
class DeadLetter:
    """One record of the dead-letter topic, where it sits, and what it says."""

    partition: int
    offset: int
    key: str | None
    record: dict[str, Any]

    @property
    def id(self) -> str:
        """``<partition>:<offset>``: stable for as long as the record is retained."""
        return f"{self.partition}:{self.offset}"

    @property
    def stage(self) -> str:
        return str(self.record.get("stage") or "")

    @property
    def reason(self) -> str:
        return str(self.record.get("reason") or "")

    @property
    def time(self) -> str:
        return str(self.record.get("time") or "")

    @property
    def source(self) -> dict[str, Any]:
        source = self.record.get("source")
        return dict(source) if isinstance(source, Mapping) else {}

    def to_json(self) -> dict[str, Any]:
        """The record as ``dead-letter list --json`` prints it: id, position, key, then its fields."""
        position = {"id": self.id, "partition": self.partition, "offset": self.offset, "key": self.key}
        return {**position, **self.record}


def _parse(value: bytes | None) -> dict[str, Any]:
    try:
        record = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return {"reason": "unreadable dead-letter record (not JSON)"}
    return record if isinstance(record, dict) else {"reason": "unreadable dead-letter record (not an object)"}


@dataclass(frozen=True)
class TopicRecord:
    """One record read back from a topic, with where it sits."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


async def read_records(settings: Settings, name: str) -> list[TopicRecord]:
    """Every record now on one of the pipeline's topics (e.g. ``dead-letter``), from the beginning."""
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings),
        enable_auto_commit=False,
        fetch_max_wait_ms=min(settings.fetch_max_wait_ms, 100),
    )
    await start_client(consumer, settings)  # stops the consumer itself if it cannot start
    try:
        topic = settings.topic(name)
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp, end in ends.items() if end > 0}
        records: list[TopicRecord] = []
        deadline = time.monotonic() + READ_TIMEOUT
        # The embedded broker reports end offsets too low after multi-record batches, so after
        # reaching them the read goes on until a fetch comes back empty.
        drained = False
        while remaining or not drained:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took more than {READ_TIMEOUT:g}s")
            batches = await consumer.getmany(timeout_ms=200)
            drained = not remaining and not any(batches.values())
            for tp, messages in batches.items():
                records.extend(TopicRecord(tp.partition, m.offset, m.key, m.value) for m in messages)
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return records
    finally:
        await consumer.stop()


async def read_dead_letters(settings: Settings, limit: int | None = None) -> list[DeadLetter]:
    """Every record now on the dead-letter topic (oldest first), or the last `limit` of them."""
    letters = [
        DeadLetter(
            record.partition,
            record.offset,
            record.key.decode("utf-8", "replace") if record.key is not None else None,
            _parse(record.value),
        )
        for record in await read_records(settings, "dead-letter")
    ]
    letters.sort(key=lambda letter: (letter.time, letter.partition, letter.offset))
    return letters[-limit:] if limit else letters


def _redacted_secret_names(notifications: Iterable[Any]) -> list[str]:
    """`name.param` of each secret_params value that was redacted (so can no longer be sent)."""
    found: list[str] = []
    for notification in notifications:
        if not isinstance(notification, Mapping):
            continue
        secret_params = notification.get("secret_params")
        if isinstance(secret_params, Mapping):
            found.extend(
                f"{notification.get('name') or ''}.{key}"
                for key, value in secret_params.items()
                if value == REDACTED
            )
    return found


def _refuse_redacted(notifications: Iterable[Any]) -> None:
    redacted = _redacted_secret_names(notifications)
    if redacted:
        raise NotReplayable(
            f"secret_params {', '.join(redacted)} were redacted when it was dead-lettered (they were "
            "literal, not sealed or referenced); publish the run again instead"
        )


def replay_message(letter: DeadLetter, token: str | None = None) -> tuple[str, str, bytes]:
    """(topic name, key, value) that replays one record, or NotReplayable saying why it cannot."""
    payload = letter.record.get("payload")
    if letter.stage == "dispatch":
        if not isinstance(payload, Mapping):
            raise NotReplayable("the record carries no delivery (it was unreadable when dead-lettered)")
        try:
            delivery = Delivery.from_record(dict(payload))
        except (KeyError, TypeError, ValueError) as exc:
            raise NotReplayable(f"the payload is not a delivery: {type(exc).__name__}: {exc}") from None
        _refuse_redacted([delivery.notification])
        delivery.replay = token or uuid.uuid4().hex
        return "deliveries", delivery_key(delivery.project, delivery.uid), orjson.dumps(delivery.to_record())
    if letter.stage == "evaluate":
        if not isinstance(payload, Mapping) or "metadata" not in payload:
            raise NotReplayable("the payload is not a run dict (only its size and digest were kept)")
        run = dict(payload)
        try:
            key = run_key(run)
        except PublishError as exc:
            raise NotReplayable(f"the payload cannot be keyed: {exc}") from None
        spec = run.get("spec")
        _refuse_redacted((spec.get("notifications") or []) if isinstance(spec, Mapping) else [])
        return "runs", key, orjson.dumps(seal_run(run))
    raise NotReplayable(f"records of stage {letter.stage!r} cannot be replayed")


def refusal(letter: DeadLetter) -> str | None:
    """Why the record cannot be replayed, None when it can (nothing is sent)."""
    try:
        replay_message(letter)
    except NotReplayable as exc:
        return str(exc)
    return None


def listed(letter: DeadLetter) -> dict[str, Any]:
    """A record as the API lists it: as ``dead-letter list --json`` prints it, plus ``at`` (its time, RFC
    3339), ``replayable`` and, when it is not, ``not_replayable`` (why)."""
    why = refusal(letter)
    return {**letter.to_json(), "at": letter.time or None, "replayable": why is None, "not_replayable": why}


def chosen(letters: Sequence[DeadLetter], ids: Sequence[str] | None) -> tuple[list[DeadLetter], list[str]]:
    """The records `ids` names (each once, in the order asked; every record for None), and the ids that
    name no record (unknown)."""
    if ids is None:
        return list(letters), []
    by_id = {letter.id: letter for letter in letters}
    wanted = list(dict.fromkeys(ids))
    return [by_id[i] for i in wanted if i in by_id], [i for i in wanted if i not in by_id]


@dataclass(frozen=True)
class ReplayResult:
    """What happened to one record asked to be replayed."""

    id: str
    replayed: bool
    detail: str  # where it went, or why it was not replayed


async def replay(
    settings: Settings, letters: Iterable[DeadLetter], progress: Callable[[int], None] | None = None
) -> list[ReplayResult]:
    """Re-publish each replayable record; the others are reported with the reason. `progress`, if
    given, is called with the number of records dealt with so far (replayed or not), as they are."""
    letters = list(letters)
    results: dict[str, ReplayResult] = {}
    messages: list[tuple[DeadLetter, str, str, bytes]] = []
    for letter in letters:
        try:
            topic, key, value = replay_message(letter)
        except NotReplayable as exc:
            results[letter.id] = ReplayResult(letter.id, False, str(exc))
            continue
        messages.append((letter, topic, key, value))
    if progress is not None:
        progress(len(results))
    if not messages:
        return [results[letter.id] for letter in letters]
    producer, _idempotent = await start_producer(settings, linger_ms=1)  # acks=all
    try:
        for letter, topic, key, value in messages:
            await producer.send_and_wait(settings.topic(topic), value=value, key=key.encode())
            results[letter.id] = ReplayResult(letter.id, True, f"to {settings.topic(topic)} as {key}")
            if progress is not None:
                progress(len(results))
    finally:
        await producer.stop()
    return [results[letter.id] for letter in letters]


def replay_report(
    settings: Settings, unknown: Sequence[str], results: Sequence[ReplayResult]
) -> list[dict[str, Any]]:
    """``[{id, replayed, detail}]``: the ids that name no record first, then each record's result."""
    topic = settings.topic("dead-letter")
    report = [{"id": i, "replayed": False, "detail": f"no such record on {topic}"} for i in unknown]
    return report + [{"id": r.id, "replayed": r.replayed, "detail": r.detail} for r in results]


__all__ = [
    "DeadLetter",
    "NotReplayable",
    "ReplayResult",
    "TopicRecord",
    "chosen",
    "listed",
    "read_dead_letters",
    "read_records",
    "refusal",
    "replay",
    "replay_message",
    "replay_report",
]
