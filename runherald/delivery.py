"""The unit of work between the pipeline and the notifiers: one delivery and its outcome."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


def run_key(project: str, uid: str) -> str:
    """The key of everything of one run (its events, deliveries and ledger record): ``"{project}/{uid}"``.

    One key puts all of a run on one partition of every topic: per-run order, and local state.
    """
    return f"{project}/{uid}"


def delivery_id(project: str, uid: str, name: str, state: str) -> str:
    """Stable id of the one delivery for (project, uid, notification name, run state)."""
    raw = "\x1f".join((project, uid, name, state)).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:32]


class OutcomeKind(StrEnum):
    """What a notifier says happened to one send attempt."""

    SENT = "sent"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    DEFERRED = "deferred"  # not attempted: its endpoint is not answering (see runherald.breaker)


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """Result of one send attempt; whether to retry is decided by the notifier that understood the error."""

    kind: OutcomeKind
    reason: str = ""
    retry_after: float | None = None  # seconds the receiver asked us to wait (Retry-After), if any
    # No answer at all: the request timed out or no connection could be made. Counts towards opening
    # the endpoint's circuit; any answer, even an error status, closes it.
    unreachable: bool = False
    # The receiver's answer, where the channel has one: the HTTP status (webhook, Slack, CloudEvent) or
    # the SMTP reply code (mail); None when there was no answer or nothing was asked.
    response_code: int | None = None
    latency_ms: float | None = None  # how long the send took (measured by the dispatcher)
    # The run's conversation with the receiver as it stands after this send (runherald.conversation),
    # when the send started or changed one: the dispatcher records it in the run's ledger record.
    thread: dict[str, Any] | None = None

    @classmethod
    def sent(
        cls, *, response_code: int | None = None, thread: dict[str, Any] | None = None
    ) -> DeliveryOutcome:
        return cls(OutcomeKind.SENT, response_code=response_code, thread=thread)

    @classmethod
    def retryable(
        cls,
        reason: str,
        retry_after: float | None = None,
        *,
        unreachable: bool = False,
        response_code: int | None = None,
    ) -> DeliveryOutcome:
        return cls(OutcomeKind.RETRYABLE, reason, retry_after, unreachable, response_code)

    @classmethod
    def deferred(cls, reason: str, wait: float) -> DeliveryOutcome:
        """Not attempted; try again in `wait` seconds. Uses no attempt of the retry budget."""
        return cls(OutcomeKind.DEFERRED, reason, wait)

    @classmethod
    def permanent(cls, reason: str, *, response_code: int | None = None) -> DeliveryOutcome:
        return cls(OutcomeKind.PERMANENT, reason, response_code=response_code)


@dataclass(slots=True)
class Delivery:
    """One notification to send for one run state.

    It carries the notification as configured, never its resolved params: the dispatcher resolves
    them for each send and hands them to the notifier beside the delivery.
    """

    id: str
    project: str
    uid: str
    name: str
    state: str
    kind: str
    message: str
    severity: str
    runs: list[dict[str, Any]]  # run dicts as receivers see them: secrets already REDACTED
    notification: dict[str, Any]  # the notification as configured on the run (secret_params unresolved)
    attempts: int = 0
    created_at: float = 0.0  # epoch seconds when the pipeline decided to send it
    replay: str = ""  # set by `runherald dead-letter replay`: send again although the ledger says error
    # The conversation this run's notification already has (runherald.conversation), read from the
    # ledger by the dispatcher before each send; never carried on the deliveries topic.
    thread: dict[str, Any] | None = None

    def to_record(self) -> dict[str, Any]:
        """The delivery as carried on the deliveries topic."""
        return {
            "id": self.id,
            "project": self.project,
            "uid": self.uid,
            "name": self.name,
            "state": self.state,
            "kind": self.kind,
            "message": self.message,
            "severity": self.severity,
            "runs": self.runs,
            "notification": self.notification,
            "attempts": self.attempts,
            "created_at": self.created_at,
            **({"replay": self.replay} if self.replay else {}),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Delivery:
        return cls(
            id=record["id"],
            project=record["project"],
            uid=record["uid"],
            name=record["name"],
            state=record["state"],
            kind=record["kind"],
            message=record["message"],
            severity=record["severity"],
            runs=list(record.get("runs") or []),
            notification=dict(record.get("notification") or {}),
            attempts=int(record.get("attempts") or 0),
            created_at=float(record.get("created_at") or 0.0),
            replay=str(record.get("replay") or ""),
        )
