"""Silences: matchers over a delivery's fields (the run's, its notification and receiver) and a time
window; a delivery a silence matches while it is active is not sent (recorded ``skipped``)."""

from __future__ import annotations

import secrets as token_source
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runherald.admission import Problem
from runherald.alerting import NAME, NAME_RULE, InvalidConfig, parse_matchers, unknown_keys
from runherald.matchers import RUN_FIELDS, SILENCE_FIELDS, Matcher, format_duration, parse_duration

SILENCE_KEYS = ("id", "matchers", "starts_at", "ends_at", "duration", "author", "comment", "created_at")
MAX_SILENCE = 366 * 86400.0


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


_LATEST = datetime(9000, 1, 1, tzinfo=UTC).timestamp()


def _timestamp(value: Any, path: str, problems: list[Problem]) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0 <= value < _LATEST:  # NaN and infinities too
            problems.append(Problem(path, f"{value!r} is not a time (seconds since 1970, or ISO 8601)"))
            return None
        return float(value)
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            problems.append(Problem(path, f"{value!r} is not a time (ISO 8601, e.g. 2026-12-05T10:00:00Z)"))
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes every delivery whose fields it matches, from starts_at until ends_at."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    author: str
    comment: str
    created_at: float = 0.0

    def state(self, now: float) -> str:
        if now >= self.ends_at:
            return "expired"
        return "active" if now >= self.starts_at else "pending"

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        data = {
            "id": self.id,
            "matchers": [str(matcher) for matcher in self.matchers],
            "starts_at": _iso(self.starts_at),
            "ends_at": _iso(self.ends_at),
            "author": self.author,
            "comment": self.comment,
            "created_at": _iso(self.created_at or self.starts_at),
        }
        if now is not None:
            data["state"] = self.state(now)
        return data

    def describe(self) -> str:
        return f"silence {self.id} ({self.comment})" if self.comment else f"silence {self.id}"


def new_silence_id() -> str:
    return token_source.token_hex(8)


def parse_silence(data: Any, now: float | None = None) -> Silence:
    """A silence from what `silence add` or ``POST /api/v1/silences`` gives: matchers, comment, author,
    and either ends_at or a duration (starts_at defaults to now). Raises InvalidConfig."""
    now = time.time() if now is None else now
    problems: list[Problem] = []
    if not isinstance(data, Mapping):
        raise InvalidConfig(
            [Problem("", "a silence must be an object with matchers, duration or ends_at, comment")]
        )
    problems += unknown_keys(data, SILENCE_KEYS, "silence")
    fields = (*RUN_FIELDS, *SILENCE_FIELDS)
    matchers = parse_matchers(data.get("matchers"), "silence.matchers", fields, problems)
    starts = _timestamp(data["starts_at"], "silence.starts_at", problems) if data.get("starts_at") else now
    ends: float | None = None
    if data.get("ends_at") and data.get("duration"):
        problems.append(Problem("silence.duration", "give either ends_at or duration, not both"))
    elif data.get("ends_at"):
        ends = _timestamp(data["ends_at"], "silence.ends_at", problems)
    elif data.get("duration"):
        try:
            length = parse_duration(data["duration"])
        except ValueError as exc:
            problems.append(Problem("silence.duration", str(exc)))
        else:
            if length <= 0:
                problems.append(Problem("silence.duration", "must be longer than 0s"))
            elif length > MAX_SILENCE:
                problems.append(
                    Problem("silence.duration", f"must be at most {format_duration(MAX_SILENCE)}")
                )
            ends = (starts or now) + length
    else:
        problems.append(Problem("silence.duration", "a silence needs a duration (e.g. 2h) or ends_at"))
    if starts is not None and ends is not None and ends <= starts:
        problems.append(Problem("silence.ends_at", "must be after starts_at"))
    comment = data.get("comment")
    if not isinstance(comment, str) or not comment.strip():
        problems.append(Problem("silence.comment", "a silence needs a comment saying why"))
    author = data.get("author") or "anonymous"
    if not isinstance(author, str) or not NAME.match(author):
        problems.append(Problem("silence.author", f"{author!r} is not a valid name: {NAME_RULE}"))
    silence_id = data.get("id") or new_silence_id()
    if not isinstance(silence_id, str) or not NAME.match(silence_id):
        problems.append(Problem("silence.id", f"{silence_id!r} is not a valid id: {NAME_RULE}"))
    if problems:
        raise InvalidConfig(problems)
    assert starts is not None and ends is not None
    created = data.get("created_at")
    return Silence(
        id=silence_id,
        matchers=matchers,
        starts_at=starts,
        ends_at=ends,
        author=author,
        comment=str(comment).strip(),
        created_at=_timestamp(created, "silence.created_at", []) or now if created else now,
    )


__all__ = ["MAX_SILENCE", "SILENCE_KEYS", "Silence", "new_silence_id", "parse_silence"]
