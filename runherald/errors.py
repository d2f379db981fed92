"""Exceptions raised by runherald, with MLRun-compatible aliases for code written against `mlrun.errors`."""

from __future__ import annotations


class RunheraldError(Exception):
    """Base of every error runherald raises on purpose."""


class InvalidArgumentError(RunheraldError, ValueError):
    """An argument or object failed validation (MLRun's `MLRunInvalidArgumentError`)."""


class RunheraldValueError(RunheraldError, ValueError):
    """A value could not be interpreted (MLRun's `MLRunValueError`)."""


MLRunInvalidArgumentError = InvalidArgumentError
MLRunValueError = RunheraldValueError

__all__ = [
    "InvalidArgumentError",
    "MLRunInvalidArgumentError",
    "MLRunValueError",
    "RunheraldError",
    "RunheraldValueError",
]
