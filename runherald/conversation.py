"""One conversation per run and notification: what the ledger keeps of it, and Slack's modes.

The first message a run's notification sends starts a conversation with the receiver: the Slack
message's channel and ``ts``, or the first mail's ``Message-ID`` and subject. Later states of the same
run and notification continue it (Slack: update that message and reply in its thread; mail: reply to
the first mail). The conversation lives in the run's ledger record, ``record["conversations"][name]``,
beside the deliveries, so it survives restarts and reaches every worker through the compacted status
topic. A digest's ledger record is its group's, so each later digest of a group joins the first's.

A conversation is a small dict: ``kind`` (the channel), what the channel needs to continue it, and
``latest``: the ``created_at`` of the newest delivery shown in it, so an older state retried late never
overwrites a newer one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runherald import ledger

SLACK_MODES = ("new", "update", "thread", "update+thread")
DEFAULT_SLACK_MODE = "update+thread"  # for bot tokens; incoming webhooks can only post (always "new")
CONVERSING_KINDS = frozenset({"slack", "mail"})

Thread = dict[str, Any]


def slack_mode(params: Mapping[str, Any]) -> str:
    """The notification's ``slack_mode`` param, the default when it has none; ValueError when unknown."""
    mode = params.get("slack_mode") or DEFAULT_SLACK_MODE
    if mode not in SLACK_MODES:
        raise ValueError(f"Parameter 'slack_mode' must be one of {', '.join(SLACK_MODES)}")
    return str(mode)


def converses(kind: str) -> bool:
    """Deliveries of this kind may continue a conversation (and are sent one at a time per run and
    notification)."""
    return kind in CONVERSING_KINDS


def thread_of(record: ledger.Record, name: str) -> Thread | None:
    """The conversation of a notification (by name) in a run's record, if one was started."""
    found = (record.get("conversations") or {}).get(name)
    return dict(found) if isinstance(found, dict) else None


def put_thread(record: ledger.Record, name: str, thread: Thread) -> None:
    """Record (or replace) a notification's conversation in a run's record."""
    record.setdefault("conversations", {})[name] = dict(thread)


def is_newer(thread: Thread, created_at: float) -> bool:
    """A delivery decided at `created_at` is no older than the newest the conversation shows."""
    return created_at >= float(thread.get("latest") or 0.0)


__all__ = [
    "CONVERSING_KINDS",
    "DEFAULT_SLACK_MODE",
    "SLACK_MODES",
    "Thread",
    "converses",
    "is_newer",
    "put_thread",
    "slack_mode",
    "thread_of",
]
