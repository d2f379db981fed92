"""Exceptions raised by runherald, with MLRun-compatible aliases for code written against `mlrun.errors`.

One tree; a caller that wants every failure runherald raises on purpose catches `RunheraldError`.
`exit_code` is what the command line exits with when one ends a command (DESIGN.md, exit codes):

    RunheraldError               anything runherald raises on purpose                     exit 1
    ├── InvalidArgumentError     the input is invalid (also a ValueError)                 exit 2
    │   ├── ConfigError          a setting, settings file or variable that cannot work
    │   └── PublishError         not a run dict, or no project/uid to key it by
    ├── RunheraldValueError      a value could not be interpreted (also a ValueError)     exit 2
    ├── Unavailable              a part did not answer, so it could not be done           exit 1
    │   ├── BrokerUnavailable    no Kafka broker answered in time
    │   └── ApiUnavailable       the HTTP API did not answer
    ├── ApiError                 the HTTP API answered with an error status               exit 1
    │   └── ApiNotFound          it has no such thing (404): a run it has not seen, a rule
    ├── RunFailedError           a run waited for ended, but not `completed`              exit 1
    └── RunTimeoutError          a run waited for did not end in time (a TimeoutError)    exit 1

`MLRunInvalidArgumentError` and `MLRunValueError` are the MLRun names of the two ValueErrors;
`MLRunNotFoundError`, `MLRunRuntimeError` and `MLRunTimeoutError` those of the last three, which
`RunObject.wait_for_completion` raises where MLRun's does.
"""

from __future__ import annotations

from typing import Any


class RunheraldError(Exception):
    """Base of every error runherald raises on purpose."""

    exit_code = 1


class InvalidArgumentError(RunheraldError, ValueError):
    """An argument or object failed validation (MLRun's `MLRunInvalidArgumentError`)."""

    exit_code = 2


class ConfigError(InvalidArgumentError):
    """A setting that cannot work; the message names the variable, flag or file it came from."""


class PublishError(InvalidArgumentError):
    """A run that cannot be published (not a run dict, or no project/uid to key it by)."""


class RunheraldValueError(RunheraldError, ValueError):
    """A value could not be interpreted (MLRun's `MLRunValueError`)."""

    exit_code = 2


class Unavailable(RunheraldError):
    """Something runherald needs did not answer, so the operation could not be done."""


class BrokerUnavailable(Unavailable):
    """No Kafka broker answered at the configured address within the connect timeout."""


class ApiUnavailable(Unavailable):
    """The runherald HTTP API did not answer (refused, unreachable, or timed out)."""


class ApiError(RunheraldError):
    """The runherald HTTP API answered with an error status; the message is its ``error``."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ApiNotFound(ApiError):
    """The HTTP API answered 404: no such run (not seen by runherald), rule, receiver or silence."""


class RunFailedError(RunheraldError):
    """A run that was waited for ended in a state other than `completed`; the message has its error
    text, `run` is the run dict as the API last gave it (MLRun's `MLRunRuntimeError`)."""

    def __init__(self, message: str, run: dict[str, Any]) -> None:
        super().__init__(message)
        self.run = run


class RunTimeoutError(RunheraldError, TimeoutError):
    """A run that was waited for did not reach a terminal state in time (MLRun's `MLRunTimeoutError`)."""


MLRunInvalidArgumentError = InvalidArgumentError
MLRunValueError = RunheraldValueError
MLRunNotFoundError = ApiNotFound
MLRunRuntimeError = RunFailedError
MLRunTimeoutError = RunTimeoutError

__all__ = [
    "ApiError",
    "ApiNotFound",
    "ApiUnavailable",
    "BrokerUnavailable",
    "ConfigError",
    "InvalidArgumentError",
    "MLRunInvalidArgumentError",
    "MLRunNotFoundError",
    "MLRunRuntimeError",
    "MLRunTimeoutError",
    "MLRunValueError",
    "PublishError",
    "RunFailedError",
    "RunTimeoutError",
    "RunheraldError",
    "RunheraldValueError",
    "Unavailable",
]
