"""What a live subscription (``GET /api/v1/subscribe``, ``runherald subscribe``) selects, and where it starts.

A filter holds a project shell glob, states (any of them) and labels (all of them); `since` is RFC 3339 or
a duration back from now (``10m``). Pure: the stream itself is ``runherald.streams.run_feed``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runherald.admission import RUN_STATES, Problem
from runherald.matchers import parse_duration

QUERY_KEYS = ("project", "state", "label", "since")


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a subscriber wants: project glob (empty: every project), any of states, all of labels."""

    project: str = ""
    states: frozenset[str] = frozenset()
    labels: tuple[tuple[str, str], ...] = ()

    def matches(self, run: Mapping[str, Any]) -> bool:
        """Whether a validated run dict passes the filter."""
        meta, status = run["metadata"], run["status"]
        if self.states and status["state"] not in self.states:
            return False
        if self.project and not self._project(meta["project"]):
            return False
        if self.labels:
            labels = meta.get("labels")
            if not isinstance(labels, Mapping):
                return False
            return all(key in labels and str(labels[key]) == value for key, value in self.labels)
        return True

    def _project(self, project: str) -> bool:
        return _glob(self.project).fullmatch(project) is not None


_GLOBS: dict[str, re.Pattern[str]] = {}


def _glob(pattern: str) -> re.Pattern[str]:
    """A shell glob compiled once (case-sensitive, as project names are)."""
    found = _GLOBS.get(pattern)
    if found is None:
        if len(_GLOBS) > 1000:
            _GLOBS.clear()
        found = _GLOBS[pattern] = re.compile(fnmatch.translate(pattern))
    return found


def parse_since(text: str, now: float) -> float:
    """Epoch seconds of `since`: RFC 3339 (a zone is required, Z accepted) or a duration back from `now`."""
    text = text.strip()
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an RFC 3339 time (2026-01-02T03:04:05Z) nor a duration (10m, 2h, 1d)"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add Z or an offset such as +02:00")
    return parsed.astimezone(UTC).timestamp()


def unknown_state(state: str) -> str | None:
    """Why `state` is not a run state to filter on (None: it is one)."""
    if state in RUN_STATES:
        return None
    return f"unknown run state {state!r} (states: {', '.join(sorted(RUN_STATES))})"


def parse_query(
    items: Iterable[tuple[str, str]], now: float
) -> tuple[RunFilter, float | None, list[Problem]]:
    """(filter, since as epoch seconds or None, problems) from the query's (key, value) pairs.

    ``state`` and ``label`` may repeat (states: any of; labels: all of); a state may also be a
    comma-separated list. Unknown keys, unknown states and malformed labels are problems."""
    project, since, states, labels, problems = "", None, set(), [], []
    for key, value in items:
        if key == "project":
            if project and value != project:
                problems.append(Problem("project", "give one project glob"))
            project = value
        elif key == "state":
            for state in filter(None, (part.strip() for part in value.split(","))):
                if (unknown := unknown_state(state)) is not None:
                    problems.append(Problem("state", unknown))
                states.add(state)
        elif key == "label":
            name, equals, wanted = value.partition("=")
            if not equals or not name:
                problems.append(Problem("label", f"{value!r} is not key=value"))
            else:
                labels.append((name, wanted))
        elif key == "since":
            try:
                since = parse_since(value, now)
            except ValueError as exc:
                problems.append(Problem("since", str(exc)))
        else:
            problems.append(Problem(key, f"unknown parameter (parameters: {', '.join(QUERY_KEYS)})"))
    return RunFilter(project, frozenset(states), tuple(labels)), since, problems
