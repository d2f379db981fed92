"""Alertmanager's matcher syntax over a run's fields, and its duration grammar.

A matcher is ``field op value``: ``=`` and ``!=`` compare text, ``=~`` and ``!~`` match a regular
expression against the whole value (anchored at both ends, as Alertmanager does). The value may be
double-quoted (``\\"``, ``\\\\`` and ``\\n`` escapes) or bare. A field a run does not have is the empty
string, so ``labels.team!="sandbox"`` holds for a run without a ``team`` label.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Collection, Mapping
from typing import Any

#: the fields of a run a matcher may name (besides ``labels.<key>``)
RUN_FIELDS = ("project", "name", "uid", "state", "iteration")
#: what a silence may also name: the notification (a run's own, or "{rule}/{receiver}") and the receiver
SILENCE_FIELDS = ("notification", "receiver")
LABEL_PREFIX = "labels."
OPERATORS = ("=~", "!~", "!=", "=")  # longest first: "=~" before "="

_MATCHER = re.compile(
    r"^\s*(?P<field>[A-Za-z_][A-Za-z0-9_.\-/]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$", re.S
)
_ESCAPES = {"n": "\n", '"': '"', "\\": "\\"}
_DURATION = re.compile(
    r"^(?:(?P<y>\d+)y)?(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?"
    r"(?:(?P<ms>\d+)ms)?$"
)
_UNIT_SECONDS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


class MatcherError(ValueError):
    """A matcher that cannot be parsed or names a field runs do not have; the message says which."""


@dataclasses.dataclass(frozen=True, slots=True)
class Matcher:
    """One parsed matcher; `matches` takes a run's fields as `run_fields` gives them."""

    field: str
    op: str
    value: str
    _pattern: re.Pattern[str] | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def is_equality(self) -> bool:
        return self.op == "="

    def matches(self, fields: Mapping[str, str]) -> bool:
        actual = fields.get(self.field, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._pattern is not None
        found = self._pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        quoted = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.field}{self.op}"{quoted}"'


def _unquote(text: str) -> str:
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        if '"' in text:
            raise MatcherError(f"unbalanced quotes in value {text}")
        return text
    inner, out, i = text[1:-1], [], 0
    while i < len(inner):
        char = inner[i]
        if char == '"':
            raise MatcherError(f'an unescaped " inside the quoted value {text}')
        if char == "\\":
            if i + 1 >= len(inner) or inner[i + 1] not in _ESCAPES:
                raise MatcherError(f'unknown escape in {text} (only \\", \\\\ and \\n)')
            out.append(_ESCAPES[inner[i + 1]])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def parse_matcher(text: Any, allowed: Collection[str] = RUN_FIELDS) -> Matcher:
    """Parse one matcher such as ``project=~"prod-.*"``; `allowed` are the fields besides labels.*."""
    if not isinstance(text, str):
        raise MatcherError(
            f"a matcher must be a string such as 'project=\"alpha\"', not {type(text).__name__}"
        )
    found = _MATCHER.match(text)
    if found is None:
        raise MatcherError(f'{text!r} is not a matcher: expected field="value", !=, =~ or !~')
    name, op = found["field"], found["op"]
    check_field(name, allowed)
    value = _unquote(found["value"])
    pattern = None
    if op in ("=~", "!~"):
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise MatcherError(f"invalid regular expression {value!r}: {exc}") from None
    return Matcher(name, op, value, pattern)


def check_field(name: str, allowed: Collection[str] = RUN_FIELDS) -> None:
    """Raise MatcherError unless `name` is one of `allowed` or ``labels.<key>``."""
    if name.startswith(LABEL_PREFIX):
        if len(name) == len(LABEL_PREFIX):
            raise MatcherError("'labels.' needs a label key, as in labels.team")
        return
    if name not in allowed:
        known = ", ".join([*allowed, "labels.<key>"])
        close = difflib.get_close_matches(name, list(allowed), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise MatcherError(f"unknown field {name!r} ({hint}fields: {known})")


def run_fields(run: Mapping[str, Any]) -> dict[str, str]:
    """The fields matchers read, as text, from a validated run dict."""
    meta = run.get("metadata") or {}
    status = run.get("status") or {}
    fields = {
        "project": str(meta.get("project") or ""),
        "name": str(meta.get("name") or ""),
        "uid": str(meta.get("uid") or ""),
        "state": str(status.get("state") or ""),
        "iteration": str(meta.get("iteration") or 0),
    }
    labels = meta.get("labels")
    if isinstance(labels, Mapping):
        for key, value in labels.items():
            fields[LABEL_PREFIX + str(key)] = "" if value is None else str(value)
    return fields


def matches_all(matchers: Collection[Matcher], fields: Mapping[str, str]) -> Matcher | None:
    """The first matcher that does not hold, or None when all hold."""
    for matcher in matchers:
        if not matcher.matches(fields):
            return matcher
    return None


def parse_duration(text: Any) -> float:
    """Seconds in an Alertmanager duration (``30s``, ``5m``, ``1h30m``, ``2d``, ``1w``); "0" is zero."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if not 0 <= text < float("inf"):  # NaN fails this too
            raise ValueError(f"a duration is a finite number of seconds, not {text}")
        return float(text)
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a duration is text such as 30s, 5m, 2h or 1h30m")
    text = text.strip()
    if text == "0":
        return 0.0
    found = _DURATION.match(text)
    if found is None or not any(found.groupdict().values()):
        raise ValueError(
            f"{text!r} is not a duration: use units y, w, d, h, m, s, ms, largest first (e.g. 1h30m)"
        )
    return sum(int(amount) * _UNIT_SECONDS[unit] for unit, amount in found.groupdict().items() if amount)


def format_duration(seconds: float) -> str:
    """A duration as Alertmanager writes it (``1h30m``); "0s" for zero."""
    whole = round(seconds)
    if whole <= 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = int(_UNIT_SECONDS[unit])
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts)


__all__ = [
    "LABEL_PREFIX",
    "OPERATORS",
    "RUN_FIELDS",
    "SILENCE_FIELDS",
    "Matcher",
    "MatcherError",
    "check_field",
    "format_duration",
    "matches_all",
    "parse_duration",
    "parse_matcher",
    "run_fields",
]
