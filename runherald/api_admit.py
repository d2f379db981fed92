"""The door every run posted over HTTP goes through, by `POST /api/v1/runs` or a named integration:
the runs checked whole (runherald.admission, plus receivers that are not stored), sealed and
prepared, or refused with what is wrong, before anything reaches Kafka."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from typing import Any

from runherald.admission import Problem
from runherald.publish import InvalidRuns, Publisher, PublishError, prepare_runs
from runherald.sealing import SealKeyError


class Refusal(Exception):
    """Runs that cannot be published: the HTTP status and the JSON body that say why."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body.get("error", "")))
        self.status = status
        self.body = body


def unknown_receiver_problems(
    runs: Sequence[Any], receivers: Collection[str], *, as_list: bool
) -> list[Problem]:
    """A problem for each notification that names (``params: {receiver: NAME}``) a receiver that is not
    stored: it could never be sent. Paths as runherald.admission gives them; malformed runs are left to it."""
    problems = []
    known = sorted(receivers)
    for i, run in enumerate(runs):
        spec = run.get("spec") if isinstance(run, dict) else None
        notifications = spec.get("notifications") if isinstance(spec, dict) else None
        for j, notification in enumerate(notifications if isinstance(notifications, list) else []):
            params = notification.get("params") if isinstance(notification, dict) else None
            name = params.get("receiver") if isinstance(params, dict) else None
            if not isinstance(name, str) or not name or name in receivers:
                continue
            close = difflib.get_close_matches(name, known, n=1)
            hint = (
                f" (did you mean {close[0]!r}?)" if close else "" if known else " (no receivers are stored)"
            )
            path = f"{f'[{i}].' if as_list else ''}spec.notifications[{j}].params.receiver"
            problems.append(Problem(path, f"no receiver {name!r} is defined{hint}"))
    return problems


async def admit_and_send(
    publisher: Publisher,
    runs: list[dict[str, Any]],
    *,
    as_list: bool,
    receivers: Collection[str] | None,
    invalid_status: int = 400,
) -> list[str]:
    """Check every run (all of them or none), then publish them and return their keys; Refusal otherwise.

    `receivers`: the stored receivers' names, once the alert configuration is loaded (None before: a
    notification naming one is then left to the pipeline). `invalid_status`: the status of runs that
    are not valid (400 for the runs API, 422 for an integration, whose request itself was fine)."""
    # A notification naming a receiver that is not stored could never be sent.
    missing = unknown_receiver_problems(runs, receivers, as_list=as_list) if receivers is not None else []
    try:
        prepared = prepare_runs(runs, as_list=as_list, slack_fallback=bool(publisher.settings.slack_webhook))
        refused = InvalidRuns(missing) if missing else None
    except InvalidRuns as exc:
        refused = InvalidRuns([*exc.problems, *(p for p in missing if p not in exc.problems)])
    except SealKeyError as exc:  # this worker's keys, not the request, are at fault
        raise Refusal(500, {"error": f"cannot seal secret_params: {exc}"}) from None
    except PublishError as exc:
        raise Refusal(invalid_status, {"error": str(exc)}) from None
    if refused is not None:
        problems = [problem.as_dict() for problem in refused.problems]
        raise Refusal(invalid_status, {"error": refused.summary, "problems": problems})
    return await publisher.send_prepared(prepared)


__all__ = ["Refusal", "admit_and_send", "unknown_receiver_problems"]
