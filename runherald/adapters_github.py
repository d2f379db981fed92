"""The ``github-workflow-run`` adapter: a GitHub Actions ``workflow_run`` webhook payload as a run dict.

Pure. Field names are those of GitHub's documented ``workflow_run`` webhook (the payload's
``workflow_run``, ``workflow`` and ``repository`` objects). The mapping (../shared/DESIGN.md):

- project ``{owner}-{repo}`` lowercased, name the workflow's name, uid ``{run_id}-{run_attempt}``;
- state: queued, requested, waiting, pending → ``pending``; in_progress → ``running``; completed with
  success → ``completed``, with failure, timed_out or startup_failure → ``error``, with cancelled →
  ``aborted``, with skipped or neutral → ``completed`` (the label ``conclusion`` says which). Two
  conclusions the design does not name: action_required → ``error`` (someone must act), stale →
  ``aborted`` (GitHub gave up on it). Any other status or conclusion is refused, never guessed;
- labels ``repository``, ``branch``, ``event``, ``actor``, ``run_number``, ``conclusion`` (when set);
  ``status.last_update`` from ``updated_at``, ``status.start_time`` from ``run_started_at``;
  ``status.results.url`` the run's page (``html_url``), and on error ``status.error`` says why, with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runherald.events import INVALID_FIELD, MISSING_FIELD, NOT_A_RUN, InvalidEvent

PENDING_STATUSES = frozenset({"queued", "requested", "waiting", "pending"})
CONCLUSION_STATES = {
    "success": "completed",
    "failure": "error",
    "timed_out": "error",
    "startup_failure": "error",
    "action_required": "error",
    "cancelled": "aborted",
    "stale": "aborted",
    "skipped": "completed",
    "neutral": "completed",
}


def _object(payload: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
    value = payload.get(key)
    if not isinstance(value, Mapping):
        raise InvalidEvent(f"a workflow_run payload needs {where}{key} (an object)", MISSING_FIELD)
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def run_state(status: Any, conclusion: Any) -> str:
    """The run state of a workflow run's status and conclusion; InvalidEvent for one GitHub does not
    document."""
    if status in PENDING_STATUSES:
        return "pending"
    if status == "in_progress":
        return "running"
    if status == "completed":
        if conclusion in CONCLUSION_STATES:
            return CONCLUSION_STATES[conclusion]
        known = ", ".join(CONCLUSION_STATES)
        raise InvalidEvent(
            f"workflow_run.conclusion {conclusion!r} is not one this adapter knows ({known})", INVALID_FIELD
        )
    known = ", ".join([*sorted(PENDING_STATUSES), "in_progress", "completed"])
    raise InvalidEvent(
        f"workflow_run.status {status!r} is not one this adapter knows ({known})", INVALID_FIELD
    )


def _project(payload: Mapping[str, Any], workflow_run: Mapping[str, Any]) -> str:
    repository = payload.get("repository")
    if not isinstance(repository, Mapping):
        repository = _object(workflow_run, "repository", "workflow_run.")
    owner = repository.get("owner")
    login = _text(owner.get("login")) if isinstance(owner, Mapping) else ""
    name = _text(repository.get("name"))
    if not login or not name:
        full = _text(repository.get("full_name"))
        login, _, name = full.partition("/")
    if not login or not name:
        raise InvalidEvent("repository.owner.login and repository.name are missing", MISSING_FIELD)
    return f"{login}-{name}".lower()


def _uid(workflow_run: Mapping[str, Any]) -> str:
    run_id, attempt = workflow_run.get("id"), workflow_run.get("run_attempt", 1)
    if not isinstance(run_id, int) or isinstance(run_id, bool):
        raise InvalidEvent("workflow_run.id is missing or not an integer", MISSING_FIELD)
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise InvalidEvent("workflow_run.run_attempt is not a positive integer", INVALID_FIELD)
    return f"{run_id}-{attempt}"


def workflow_run_to_run(payload: Any) -> dict[str, Any]:
    """The run dict of a ``workflow_run`` webhook payload; InvalidEvent saying what it lacks."""
    if not isinstance(payload, Mapping):
        raise InvalidEvent("a workflow_run payload is a JSON object", NOT_A_RUN)
    workflow_run = _object(payload, "workflow_run")
    workflow = payload.get("workflow")
    workflow = workflow if isinstance(workflow, Mapping) else {}
    status, conclusion = workflow_run.get("status"), workflow_run.get("conclusion")
    state = run_state(status, conclusion)
    name = (
        _text(workflow_run.get("name")) or _text(workflow.get("name")) or _text(workflow_run.get("path"))
    ) or "workflow"
    actor = workflow_run.get("actor")
    repository = payload.get("repository")
    labels = {
        "repository": _text(repository.get("full_name")) if isinstance(repository, Mapping) else "",
        "branch": _text(workflow_run.get("head_branch")),
        "event": _text(workflow_run.get("event")),
        "actor": _text(actor.get("login")) if isinstance(actor, Mapping) else "",
        "run_number": str(workflow_run.get("run_number") or ""),
        "conclusion": _text(conclusion),
    }
    url = _text(workflow_run.get("html_url"))
    run_status: dict[str, Any] = {"state": state, "results": {"url": url} if url else {}}
    for key, source in (("last_update", "updated_at"), ("start_time", "run_started_at")):
        if _text(workflow_run.get(source)):
            run_status[key] = workflow_run[source]
    if state == "error":
        run_status["error"] = f"workflow {name!r} concluded {conclusion}" + (f": {url}" if url else "")
    return {
        "kind": "run",
        "metadata": {
            "project": _project(payload, workflow_run),
            "uid": _uid(workflow_run),
            "name": name,
            "iteration": 0,
            "labels": {key: value for key, value in labels.items() if value},
        },
        "spec": {},
        "status": run_status,
    }


__all__ = ["CONCLUSION_STATES", "PENDING_STATUSES", "run_state", "workflow_run_to_run"]
