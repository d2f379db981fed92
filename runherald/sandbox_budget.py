"""What one condition render may cost (ConditionLimits), the per-render budget that counts it, and the
size checks the sandbox (runherald.sandbox) applies to what a condition builds."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2.exceptions import SecurityError

_CONTAINERS = (list, tuple, dict, set, frozenset)
_TEXTS = (str, bytes, bytearray)


@dataclass(frozen=True, slots=True)
class ConditionLimits:
    """What one condition render may cost."""

    max_range: int = 10_000  # items a single range() may produce
    max_size: int = 100_000  # chars of a derived string, expanded items of a derived container
    max_output: int = 65_536  # chars of the rendered condition
    max_emitted: int = 1_048_576  # chars emitted anywhere (macros, set blocks, loop bodies)
    max_steps: int = 50_000  # loop iterations + calls + filter applications
    max_int_bits: int = 65_536  # bits of an integer built by * or **
    max_seconds: float = 0.5  # wall-clock backstop, checked at every step
    max_source: int = 16_384  # chars of the condition source


DEFAULT_LIMITS = ConditionLimits()


class LimitExceeded(SecurityError):
    """A condition went over one of its ConditionLimits."""


class InvalidCondition(Exception):
    """A condition source that does not compile."""


def describe_error(exc: BaseException) -> str:
    """One-line text for a condition error, as recorded in a decision's reason."""
    text = str(exc) if isinstance(exc, InvalidCondition) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


class _Budget:
    """Counters of one render, checked against its limits."""

    __slots__ = ("deadline", "emitted", "limits", "steps", "weights")

    def __init__(self, limits: ConditionLimits) -> None:
        self.limits = limits
        self.steps = 0
        self.emitted = 0
        self.deadline = time.perf_counter() + limits.max_seconds
        self.weights: dict[int, tuple[Any, int]] = {}

    def step(self, text: int = 0) -> None:
        """Charge one render step (and `text` emitted chars); raise when over a limit."""
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise LimitExceeded(f"condition took more than {self.limits.max_steps} render steps")
        if text:
            self.emit(text)
        if time.perf_counter() > self.deadline:
            raise LimitExceeded(f"condition took longer than {self.limits.max_seconds} s")

    def emit(self, chars: int) -> None:
        """Charge emitted text."""
        self.emitted += chars
        if self.emitted > self.limits.max_emitted:
            raise LimitExceeded(f"condition emitted more than {self.limits.max_emitted} characters")

    def counted(self, iterable: Iterable[Any], text: int) -> Iterator[Any]:
        """Iterate, charging a step and the loop body's literal text per item."""
        for item in iterable:
            self.step(text)
            yield item


_BUDGET: ContextVar[_Budget | None] = ContextVar("runherald_condition_budget", default=None)


def _limits() -> ConditionLimits:
    budget = _BUDGET.get()
    return DEFAULT_LIMITS if budget is None else budget.limits


def _step(text: int = 0) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.step(text)


def _weight(value: Any, cap: int, memo: dict[int, tuple[Any, int]]) -> int:
    """Expanded size of a value (chars for text, items for containers), counted up to just past cap."""
    if isinstance(value, _TEXTS):
        return len(value)
    if isinstance(value, int):
        return value.bit_length() // 3 + 1  # about its decimal digits
    if not isinstance(value, _CONTAINERS):
        return 1
    hit = memo.get(id(value))
    if hit is not None and hit[0] is value:
        return hit[1]
    total = 1
    items: Iterable[Any] = itertools.chain.from_iterable(value.items()) if isinstance(value, dict) else value
    for item in items:
        total += _weight(item, cap, memo)
        if total > cap:
            break
    memo[id(value)] = (value, total)
    return total


def weight_of(value: Any) -> int:
    """Expanded size of a value in the current render, capped just past max_size."""
    budget = _BUDGET.get()
    memo = budget.weights if budget is not None else {}
    return _weight(value, _limits().max_size, memo)


def _check_size(value: Any, what: str) -> Any:
    """Return value, or raise if it is text or a container larger than max_size."""
    if isinstance(value, _TEXTS) or isinstance(value, _CONTAINERS):
        limit = _limits().max_size
        if weight_of(value) > limit:
            raise LimitExceeded(f"{what} is larger than {limit}")
    return value


def _check_count(value: Any, what: str) -> None:
    """Raise if an integer argument that sizes a result is over max_size."""
    limit = _limits().max_size
    if isinstance(value, int) and value > limit:
        raise LimitExceeded(f"{what} {value} is larger than {limit}")
