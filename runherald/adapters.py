"""The shapes a run may arrive in, on a run topic or at `POST /api/v1/runs`, each turned into MLRun run dicts.

An adapter takes a record (its parsed JSON, or its raw bytes when it is not JSON), the record's headers
(names lower-cased) and a default project, and returns run dicts that pass `events.validate_run`, or
raises NotThisShape saying why the record is not its shape. `adapt` tries them in ADAPTERS' order (or
only the one named) and says which recognised the record; when none does, Unrecognised carries each
adapter's reason.

- ``cloudevents``: CloudEvents 1.0, structured (a JSON object with ``specversion``; content type
  ``application/cloudevents+json``) or binary (``ce-*`` HTTP / ``ce_*`` Kafka headers, the body being
  the data). The data is any other shape of this list (not a CloudEvent again).
- ``mlrun-webhook``: MLRun's webhook notification body ``{message, severity, runs: [...]}``. Its runs
  are marked ``"runherald": {"adapter": "mlrun-webhook", "notified_by_source": true}``: MLRun already
  sent their own notifications, so runherald does not send them again (rules still apply).
- ``mlrun-run``: a run dict, as the runs topic carries it.
- ``generic``: ``{project, uid, name, state, results, labels, error, last_update}`` for CI systems and
  schedulers; `project` falls back to the default project.
- ``github-workflow-run``: a GitHub Actions ``workflow_run`` webhook payload (runherald.adapters_github);
  only where an integration names it (NAMED_ONLY), never tried to recognise a record.

A record may also be a JSON array or NDJSON of these. Hops (loop prevention, runherald.hops, re-exported
here): `hops_from` reads a request's ``X-Runherald-Hops``, `stamp_hops` stores it in each run's
``runherald.hops`` and refuses past the limit (TooManyHops); the webhook channel sends ``hops + 1``
onwards (`next_hops`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from runherald.adapters_github import workflow_run_to_run
from runherald.events import NOT_A_RUN, NOT_JSON, InvalidEvent, validate_run
from runherald.hops import (
    HOPS_HEADER,
    MARK,
    HeadersIn,
    TooManyHops,
    headers_of,
    hops_from,
    hops_of,
    mark_of,
    next_hops,
    stamp_hops,
)

__all__ = [
    "ADAPTERS",
    "HOPS_HEADER",
    "NAMED_ONLY",
    "Adapted",
    "Adapter",
    "HeadersIn",
    "NotThisShape",
    "TooManyHops",
    "Unrecognised",
    "adapt",
    "declares_cloudevent",
    "headers_of",
    "hops_from",
    "hops_of",
    "is_binary_cloudevent",
    "next_hops",
    "stamp_hops",
]

MLRUN_WEBHOOK = "mlrun-webhook"
CLOUDEVENTS = "cloudevents"
_JSON_TYPES = ("application/json", "text/json")


class NotThisShape(ValueError):
    """Raised by an adapter: the record is not its shape (or is, but cannot be a run); the message says
    why."""


class Unrecognised(InvalidEvent):
    """No adapter took the record; `reasons` maps each adapter tried to why not."""

    def __init__(self, reasons: Mapping[str, str], code: str = NOT_A_RUN, where: str = "") -> None:
        self.reasons = dict(reasons)
        self.where = where
        said = "; ".join(f"{name}: {why}" for name, why in self.reasons.items())
        super().__init__(f"{where + ': ' if where else ''}no adapter recognised the record ({said})", code)


@dataclass(frozen=True)
class Adapted:
    runs: list[dict[str, Any]]  # MLRun run dicts, each passing events.validate_run
    adapter: str  # the adapter that recognised the record


Adapter = Callable[[Any, Mapping[str, str], str], list[dict[str, Any]]]


class _Raw(bytes):
    """A body that is not JSON, handed to the adapters as it came."""


def _describe(value: Any) -> str:
    if isinstance(value, _Raw):
        return "not JSON"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _object(value: Any, what: str) -> dict[str, Any]:
    if isinstance(value, _Raw):
        raise NotThisShape("the record is not JSON")
    if not isinstance(value, dict):
        raise NotThisShape(f"{what} must be a JSON object, not {_describe(value)}")
    return value


def _checked(run: dict[str, Any], where: str = "") -> dict[str, Any]:
    try:
        validate_run(run)
    except InvalidEvent as exc:
        raise NotThisShape(f"{where}{exc}") from None
    return run


def _project(value: Any, default_project: str, what: str) -> str:
    if value is None or value == "":
        if not default_project:
            raise NotThisShape(f"{what} is missing and there is no default project")
        return default_project
    if not isinstance(value, str):
        raise NotThisShape(f"{what} must be a string")
    return value


# -- mlrun-run ------------------------------------------------------------------------------------------


def mlrun_run(value: Any, headers: Mapping[str, str], default_project: str) -> list[dict[str, Any]]:
    """A run dict (metadata, spec, status); a missing metadata.project takes the default project."""
    run = _object(value, "a run dict")
    if not isinstance(run.get("metadata"), dict) or "status" not in run:
        raise NotThisShape("not a run dict (needs a metadata object and a status)")
    if default_project and not run["metadata"].get("project"):
        run = {**run, "metadata": {**run["metadata"], "project": default_project}}
    return [_checked(run)]


# -- mlrun-webhook --------------------------------------------------------------------------------------


def mlrun_webhook(value: Any, headers: Mapping[str, str], default_project: str) -> list[dict[str, Any]]:
    """MLRun's webhook body ``{message, severity, runs}``: its runs, marked as notified by MLRun."""
    body = _object(value, "an MLRun webhook body")
    if "runs" not in body:
        if "message" in body and "severity" in body:
            raise NotThisShape("an MLRun webhook body without runs (an alert or a plain message) has no run")
        raise NotThisShape("not an MLRun webhook body (needs message, severity and runs)")
    if "metadata" in body or "status" in body:
        raise NotThisShape("not an MLRun webhook body: it has metadata/status, as a run dict does")
    runs = body["runs"]
    if not isinstance(runs, list):
        raise NotThisShape(f"runs must be a list of run dicts, not {_describe(runs)}")
    if not runs:
        raise NotThisShape("runs is empty")
    return [_mlrun_webhook_run(run, i, default_project) for i, run in enumerate(runs)]


def _mlrun_webhook_run(run: Any, i: int, default_project: str) -> dict[str, Any]:
    if not isinstance(run, dict):
        raise NotThisShape(f"runs[{i}] must be a run dict, not {_describe(run)}")
    metadata = run.get("metadata")
    if not isinstance(metadata, dict):
        raise NotThisShape(f"runs[{i}].metadata is missing or not an object")
    status = run.get("status")
    if not isinstance(status, dict) or not status.get("state"):
        raise NotThisShape(f"runs[{i}].status.state is missing")
    project = _project(metadata.get("project"), default_project, f"runs[{i}].metadata.project")
    spec = run.get("spec")
    if spec is not None and not isinstance(spec, dict):
        raise NotThisShape(f"runs[{i}].spec must be an object, not {_describe(spec)}")
    filled = {
        **run,
        "metadata": {**metadata, "project": project},
        "spec": dict(spec or {}),
        MARK: {**mark_of(run), "adapter": MLRUN_WEBHOOK, "notified_by_source": True},
    }
    if filled["metadata"].get("labels") is None:
        filled["metadata"].pop("labels", None)
    _checked(filled, f"runs[{i}]: ")
    notifications = filled["spec"].get("notifications")
    if notifications:  # MLRun sent them and runherald never will: their secrets are not kept
        filled["spec"]["notifications"] = [
            {key: value for key, value in item.items() if key != "secret_params"} for item in notifications
        ]
    return filled


# -- generic --------------------------------------------------------------------------------------------

GENERIC_FIELDS = frozenset({"project", "uid", "name", "state", "results", "labels", "error", "last_update"})


def generic(value: Any, headers: Mapping[str, str], default_project: str) -> list[dict[str, Any]]:
    """``{project, uid, name, state, results, labels, error, last_update}`` (uid and state required;
    other fields are ignored)."""
    record = _object(value, "a generic run")
    if "metadata" in record or "status" in record:
        raise NotThisShape("not the generic shape: it has metadata/status (a run dict's fields)")
    for name in ("uid", "state"):
        if not isinstance(record.get(name), str) or not record[name]:
            raise NotThisShape(f"{name} is missing or not a non-empty string")
    metadata: dict[str, Any] = {
        "project": _project(record.get("project"), default_project, "project"),
        "uid": record["uid"],
    }
    if record.get("name") is not None:
        metadata["name"] = str(record["name"])
    if record.get("labels") is not None:
        if not isinstance(record["labels"], dict):
            raise NotThisShape("labels must be an object")
        metadata["labels"] = {str(k): str(v) for k, v in record["labels"].items()}
    status: dict[str, Any] = {"state": record["state"]}
    for name in ("results", "error", "last_update"):
        if record.get(name) is not None:
            status[name] = record[name]
    if "results" in status and not isinstance(status["results"], dict):
        raise NotThisShape("results must be an object")
    run: dict[str, Any] = {"metadata": metadata, "spec": {}, "status": status}
    if isinstance(record.get(MARK), dict):
        run[MARK] = dict(record[MARK])
    return [_checked(run)]


# -- cloudevents ----------------------------------------------------------------------------------------

CE_REQUIRED = ("id", "source", "type")


def _ce_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The CloudEvent attributes in binary-mode headers: ``ce-x`` (HTTP) or ``ce_x`` (Kafka)."""
    return {name[3:]: value for name, value in headers.items() if name[:3] in ("ce-", "ce_")}


def is_binary_cloudevent(headers: Mapping[str, str]) -> bool:
    return "specversion" in _ce_headers(headers)


def declares_cloudevent(headers: Mapping[str, str]) -> bool:
    """Whether a record says it is a CloudEvent: binary-mode headers, or a CloudEvents content type."""
    media = (headers.get("content-type") or "").split(";")[0].strip().lower()
    return is_binary_cloudevent(headers) or media.startswith("application/cloudevents")


def _is_json_type(content_type: str | None) -> bool:
    if not content_type:
        return True  # CloudEvents: data without datacontenttype is JSON in the JSON format
    media = content_type.split(";")[0].strip().lower()
    return media in _JSON_TYPES or media.endswith("+json")


def cloudevents(value: Any, headers: Mapping[str, str], default_project: str) -> list[dict[str, Any]]:
    """A CloudEvents 1.0 event (structured JSON or binary mode) whose data is another shape of ADAPTERS."""
    attributes = _ce_headers(headers)
    if "specversion" in attributes:
        content_type = headers.get("content-type")
        if not _is_json_type(content_type):
            raise NotThisShape(f"binary-mode data of content type {content_type!r} is not JSON")
        if isinstance(value, _Raw):
            raise NotThisShape("binary-mode data (the body) is not JSON")
        event: dict[str, Any] = {**attributes, "data": value}
    else:
        media = (headers.get("content-type") or "").split(";")[0].strip().lower()
        if media == "application/cloudevents+json" and not isinstance(value, dict):
            raise NotThisShape(f"a structured CloudEvent must be a JSON object, not {_describe(value)}")
        if not isinstance(value, dict) or "specversion" not in value:
            raise NotThisShape(
                "not a CloudEvent (no specversion attribute, no ce-specversion/ce_specversion header)"
            )
        event = value
        if "data_base64" in event and "data" not in event:
            if not isinstance(event["data_base64"], str):
                raise NotThisShape("data_base64 must be a string")
            try:
                decoded = base64.b64decode(event["data_base64"], validate=True)
            except (binascii.Error, ValueError):
                raise NotThisShape("data_base64 is not base64") from None
            event = {**event, "data": _parse_json(decoded)}
        content_type = event.get("datacontenttype")
        if content_type is not None and not isinstance(content_type, str):
            raise NotThisShape("datacontenttype must be a string")
        if not _is_json_type(content_type):
            raise NotThisShape(f"datacontenttype {content_type!r} is not JSON")
    if event.get("specversion") != "1.0":
        raise NotThisShape(f"specversion {event.get('specversion')!r} is not '1.0'")
    missing = [name for name in CE_REQUIRED if not event.get(name)]
    if missing:
        raise NotThisShape(f"the CloudEvent lacks its required attribute(s) {', '.join(missing)}")
    not_text = [
        name for name in (*CE_REQUIRED, "time", "subject") if not isinstance(event.get(name, ""), str)
    ]
    if not_text:
        raise NotThisShape(f"the CloudEvent attribute(s) {', '.join(not_text)} must be strings")
    data = event.get("data")
    if data is None or isinstance(data, _Raw):
        raise NotThisShape("the CloudEvent has no JSON data" if data is None else "the data is not JSON")
    if isinstance(data, str):  # JSON data sent as a JSON string holding JSON
        data = _parse_json(data.encode())
    inner = [name for name in ADAPTERS if name != CLOUDEVENTS and name not in NAMED_ONLY]
    items = data if isinstance(data, list) else [data]
    runs: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        try:
            runs += _adapt_item(item, {}, inner, default_project)[1]
        except Unrecognised as exc:
            at = f"data[{i}]" if isinstance(data, list) else "data"
            why = "; ".join(f"{name}: {reason}" for name, reason in exc.reasons.items())
            raise NotThisShape(f"{at} is no shape runherald knows ({why})") from None
    if not runs:
        raise NotThisShape("the data holds no run")
    if event.get("time"):
        for run in runs:
            run["status"].setdefault("last_update", event["time"])
    return runs


# -- github-workflow-run ---------------------------------------------------------------------------------


def github_workflow_run(value: Any, headers: Mapping[str, str], default_project: str) -> list[dict[str, Any]]:
    """A GitHub Actions ``workflow_run`` webhook payload (runherald.adapters_github: the project is the
    repository's, whatever the default)."""
    if not isinstance(value, dict) or "workflow_run" not in value:
        raise NotThisShape("not a GitHub workflow_run payload (no workflow_run object)")
    try:
        return [_checked(workflow_run_to_run(value))]
    except InvalidEvent as exc:
        raise NotThisShape(str(exc)) from None


# The adapters, by name, in the order `adapt` tries them.
ADAPTERS: dict[str, Adapter] = {
    CLOUDEVENTS: cloudevents,
    MLRUN_WEBHOOK: mlrun_webhook,
    "mlrun-run": mlrun_run,
    "generic": generic,
    "github-workflow-run": github_workflow_run,
}
# Adapters tried only where they are named (an integration's adapter), never to recognise a record: a
# GitHub payload is taken where GitHub's signature is checked (runherald.api_integrations).
NAMED_ONLY = frozenset({"github-workflow-run"})


# -- adapt ----------------------------------------------------------------------------------------------


def _parse_json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _Raw(data)


def _parse(body: bytes) -> tuple[Any, bool]:
    """The body's JSON value (NDJSON as a list), or _Raw; and whether it is a list of records."""
    stripped = body.strip()
    value = _parse_json(stripped)
    if not isinstance(value, _Raw):
        return value, isinstance(value, list)
    lines = [_parse_json(line) for line in stripped.splitlines() if line.strip()]
    if len(lines) < 2 or any(isinstance(line, _Raw) for line in lines):
        return value, False
    return lines, True


def _adapt_item(
    value: Any, headers: Mapping[str, str], names: Iterable[str], project: str
) -> tuple[str, list[dict[str, Any]]]:
    reasons: dict[str, str] = {}
    for name in names:
        try:
            return name, ADAPTERS[name](value, headers, project)
        except NotThisShape as exc:
            reasons[name] = str(exc)
    raise Unrecognised(reasons, NOT_JSON if isinstance(value, _Raw) else NOT_A_RUN)


def adapt(
    body: bytes, headers: Mapping[str, str] | None = None, *, adapter: str | None = None, project: str = ""
) -> Adapted:
    """The runs in one record (an HTTP body, a Kafka value): each item adapted by the first adapter of
    ADAPTERS that recognises it (or only by `adapter`), or Unrecognised with each adapter's reason."""
    if adapter is not None and adapter not in ADAPTERS:
        raise ValueError(f"unknown adapter {adapter!r} (known: {', '.join(ADAPTERS)})")
    lowered = headers_of(headers)
    names = [adapter] if adapter is not None else [name for name in ADAPTERS if name not in NAMED_ONLY]
    if adapter is None and declares_cloudevent(lowered):
        names = [CLOUDEVENTS]  # a record that says it is a CloudEvent is one, or is refused as one
    if not body.strip():
        raise Unrecognised({name: "the record is empty" for name in names}, NOT_JSON)
    value, listed = _parse(body)
    if CLOUDEVENTS in names and is_binary_cloudevent(lowered):
        listed = False  # the body is one event's data, whatever it holds
    items = value if listed else [value]
    if not items:
        raise Unrecognised({name: "the record is an empty list" for name in names})
    runs: list[dict[str, Any]] = []
    used: list[str] = []
    for i, item in enumerate(items):
        try:
            name, found = _adapt_item(item, lowered, names, project)
        except Unrecognised as exc:
            if not listed:
                raise
            raise Unrecognised(exc.reasons, exc.code, f"item {i}") from None
        runs += found
        if name not in used:
            used.append(name)
    return Adapted(runs, ",".join(used))
