"""MLRun's run states (`mlrun.common.runtimes.constants.RunStates`), and a failed run's error text.

Apart from runherald.model, which re-exports RunStates, so that the SDK (runherald.client) can tell a
finished run from a running one without importing the model it is imported by.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RunStates:
    """Run state names, as MLRun spells them."""

    completed = "completed"
    error = "error"
    running = "running"
    created = "created"
    pending = "pending"
    unknown = "unknown"
    aborted = "aborted"
    aborting = "aborting"
    skipped = "skipped"
    pending_retry = "pendingRetry"

    @staticmethod
    def all() -> list[str]:
        """Every run state."""
        return [
            RunStates.completed,
            RunStates.error,
            RunStates.running,
            RunStates.created,
            RunStates.pending,
            RunStates.unknown,
            RunStates.aborted,
            RunStates.aborting,
            RunStates.skipped,
            RunStates.pending_retry,
        ]

    @staticmethod
    def terminal_states() -> list[str]:
        """States a run never leaves."""
        return [RunStates.completed, RunStates.error, RunStates.aborted, RunStates.skipped]

    @staticmethod
    def error_states() -> list[str]:
        """States that mean the run failed."""
        return [RunStates.error, RunStates.aborted, RunStates.pending_retry]

    @staticmethod
    def abortion_states() -> list[str]:
        """States that mean the run was (being) aborted."""
        return [RunStates.aborted, RunStates.aborting]

    @staticmethod
    def error_and_abortion_states() -> list[str]:
        """Failure or abortion states."""
        return list(dict.fromkeys(RunStates.error_states() + RunStates.abortion_states()))

    @staticmethod
    def non_terminal_states() -> list[str]:
        """States a run can still leave."""
        return [state for state in RunStates.all() if state not in RunStates.terminal_states()]

    @staticmethod
    def notification_states() -> list[str]:
        """States that can trigger a notification."""
        return [*RunStates.terminal_states(), RunStates.running]


def error_text(status: Mapping[str, Any]) -> str:
    """The error text of a failed or aborted run's status (MLRun's `RunObject.error`), else ""."""
    state = status.get("state")
    if state not in RunStates.error_and_abortion_states():
        return ""
    fallback = "Run was aborted" if state in RunStates.abortion_states() else "Unknown error"
    return str(status.get("error") or status.get("status_text") or status.get("reason") or fallback)


__all__ = ["RunStates", "error_text"]
