"""Runs from an HTTP request body in any shape runherald adapts, with the loop guard: what
`POST /api/v1/runs` (and a named integration's endpoint) publish, or why not.

Run dicts (JSON, a JSON array, NDJSON) are taken as they are, and the admission (runherald.admission)
then names each problem with its path, as before; any other shape (an MLRun webhook body, a
CloudEvent structured or binary, the generic shape) is adapted first (runherald.adapters) and
refused, when no adapter recognises it, with each adapter's reason. A request carrying
``X-Runherald-Hops`` over ``max_hops`` is refused as a loop (HTTP 508); its runs otherwise carry the
count in ``runherald.hops``, which the webhook channel sends onwards plus one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runherald.adapters import (
    TooManyHops,
    Unrecognised,
    adapt,
    headers_of,
    hops_from,
    is_binary_cloudevent,
    stamp_hops,
)
from runherald.events import InvalidEvent
from runherald.publish import PublishError, is_list_input, parse_runs

__all__ = ["LOOP_DETECTED", "Refused", "RequestRuns", "request_runs"]

LOOP_DETECTED = 508
RUN_DICT_FIELDS = frozenset({"metadata", "spec", "status"})


class Refused(Exception):
    """A request whose runs cannot be published: its HTTP status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error", ""))
        self.status = status
        self.body = body


@dataclass(frozen=True)
class RequestRuns:
    runs: list[dict[str, Any]]  # run dicts, for prepare_runs (the admission) next
    as_list: bool  # whether problem paths take the ``[i].`` prefix
    adapter: str  # "mlrun-run" for run dicts taken as they are, else the adapters that recognised them


def _run_dicts(body: bytes, headers: Mapping[str, str]) -> list[dict[str, Any]] | None:
    """The body's run dicts when it is only run dicts (each with metadata, spec or status, fields no other
    shape has at its top), else None: adapt it. Refused, as before, when it is not JSON objects."""
    if is_binary_cloudevent(headers):
        return None  # the body is the event's data
    try:
        items = parse_runs(body)
    except PublishError as exc:
        raise Refused(400, {"error": str(exc)}) from None
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if media.startswith("application/cloudevents"):
        return None
    if all(RUN_DICT_FIELDS & set(item) and "specversion" not in item for item in items):
        return items
    return None


def request_runs(
    body: bytes,
    headers: Mapping[str, str] | None,
    *,
    max_hops: int,
    adapter: str | None = None,
    project: str = "",
) -> RequestRuns:
    """The runs of one request, hops stamped; Refused (400 naming each adapter's reason, 508 for a
    loop) when there is none to publish. `adapter`: only that one (a named integration's); `project`:
    the default project of shapes that may lack one."""
    found = headers_of(headers)
    if "/" in project:
        raise Refused(400, {"error": "project must not contain '/'"})
    try:
        hops = hops_from(found)
    except InvalidEvent as exc:
        raise Refused(400, {"error": str(exc)}) from None
    if hops is not None and hops > max_hops:
        raise Refused(LOOP_DETECTED, {"error": str(TooManyHops(hops, max_hops))})
    items = _run_dicts(body, found) if adapter in (None, "mlrun-run") else None
    if items is not None:
        if project:
            for item in items:
                meta = item.get("metadata")
                if isinstance(meta, dict) and not meta.get("project"):
                    meta["project"] = project
        runs, as_list, name = items, len(items) > 1 or is_list_input(body), "mlrun-run"
    else:
        try:
            adapted = adapt(body, found, adapter=adapter, project=project)
        except ValueError as exc:  # Unrecognised is one; an unknown adapter name another
            raise Refused(400, _unrecognised(exc)) from None
        runs, as_list, name = adapted.runs, len(adapted.runs) > 1, adapted.adapter
    try:
        return RequestRuns(stamp_hops(runs, hops, max_hops), as_list, name)
    except TooManyHops as exc:
        raise Refused(LOOP_DETECTED, {"error": str(exc)}) from None


def _unrecognised(exc: ValueError) -> dict[str, Any]:
    if not isinstance(exc, Unrecognised):
        return {"error": str(exc)}
    where = f"{exc.where}: " if exc.where else ""
    return {
        "error": f"{where}no adapter recognised the body as runs",
        "reasons": exc.reasons,
        "problems": [
            {"path": exc.where, "message": f"{name}: {reason}"} for name, reason in exc.reasons.items()
        ],
    }
