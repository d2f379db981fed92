"""runherald's Python SDK: a client of its HTTP API, for code that publishes runs and waits on them.

    from runherald import Client

    client = Client()                          # RUNHERALD_API and RUNHERALD_TOKEN, as the CLI reads them
    keys = client.publish(run)                 # a RunObject, a run dict, or a list of them
    client.status("proj", "uid")               # each notification's delivery status
    client.wait("proj", "uid", timeout=600)    # the run dict once it ended; raises unless `completed`
    client.rules.apply(document)               # rules.list/get/delete; receivers, silences, subscriptions
    async for run in client.subscribe(project="prod-*", state="error"): ...

Every call but `subscribe` blocks (one urllib request, `timeout` seconds at most); `subscribe` is an
async iterator over the Server-Sent Events of ``GET /api/v1/subscribe`` (aiohttp, imported only then).
Failures are RunheraldErrors: ApiUnavailable (no answer), ApiError (ApiNotFound for a 404), ApiProblems
(a refusal, with the API's `problems`), and RunFailedError / RunTimeoutError from `wait`. It imports
neither Kafka nor faust, and not runherald.model either (which imports it for RunObject.refresh and
RunObject.wait_for_completion): runs go in as dicts or objects with `to_dict()`, and come back as dicts.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from runherald.api_client import API_TIMEOUT, DEFAULT_API, ApiProblems, call_api, error_answer
from runherald.errors import (
    ApiNotFound,
    ApiUnavailable,
    InvalidArgumentError,
    PublishError,
    RunFailedError,
    RunTimeoutError,
)
from runherald.run_states import RunStates, error_text

API_ENV = "RUNHERALD_API"
TOKEN_ENV = "RUNHERALD_TOKEN"
FIRST_POLL = 0.1  # seconds before the second look at a run; doubled after each look, up to `sleep`
UNSEEN_GRACE = 60.0  # how long `wait` waits for a run the API does not know yet (just published)
RECONNECT_DELAY = 1.0  # seconds between a broken stream and the next try


class SupportsToDict(Protocol):
    """A run object: runherald.model.RunObject, mlrun's, or anything that gives its run dict."""

    def to_dict(self) -> dict[str, Any]: ...


RunLike = Mapping[str, Any] | SupportsToDict


class Client:
    """runherald's HTTP API, from Python. `url` and `token` default to RUNHERALD_API (else
    http://127.0.0.1:6066) and RUNHERALD_TOKEN; `timeout` bounds each request, in seconds."""

    def __init__(
        self, url: str | None = None, token: str | None = None, *, timeout: float = API_TIMEOUT
    ) -> None:
        self.url = (url or os.environ.get(API_ENV) or DEFAULT_API).rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise InvalidArgumentError(f"the API URL must be http:// or https://, got {self.url!r}")
        self._token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self.timeout = timeout
        self.rules = Rules(self, "rules")
        self.receivers = ConfigObjects(self, "receivers")
        self.silences = Silences(self)
        self.subscriptions = Subscriptions(self)

    def __repr__(self) -> str:  # never the token
        return f"Client({self.url!r}{', token=...' if self._token else ''})"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request to the API (`path` from /api/v1/...), its JSON answer decoded."""
        return call_api(self.url, self._token, method, path, body, timeout=self.timeout)

    # --- runs ------------------------------------------------------------------------------------------

    def publish(self, runs: RunLike | Sequence[RunLike]) -> list[str]:
        """Publish one run or a list of them (``POST /api/v1/runs``): all of them or, refused, none
        (ApiProblems, each problem at its path). Returns the runs' keys, ``"{project}/{uid}"``."""
        body: dict[str, Any] | list[dict[str, Any]]
        if isinstance(runs, Sequence) and not isinstance(runs, str | bytes):
            body = [_run_dict(run) for run in runs]
        else:
            body = _run_dict(runs)
        answer = self.call("POST", "/api/v1/runs", body)
        return [str(key) for key in answer.get("runs") or []]

    def run(self, project: str, uid: str) -> dict[str, Any]:
        """The run as runherald last saw it (``GET /api/v1/runs/{project}/{uid}``), its
        `status.notifications` from the ledger; ApiNotFound for a run it has not seen."""
        found: dict[str, Any] = self.call("GET", _run_path(project, uid))
        return found

    def status(self, run: RunLike | str, uid: str | None = None) -> dict[str, Any]:
        """Each notification's delivery status, ``{name: {status, sent_time, reason, attempts,
        states}}``, of `run` given as (project, uid), ``"project/uid"``, a run dict or a RunObject."""
        project, uid = run_key(run, uid)
        found: dict[str, Any] = self.call("GET", _run_path(project, uid) + "/notifications")
        return found

    def wait(
        self,
        run: RunLike | str,
        uid: str | None = None,
        *,
        timeout: float = 0,
        sleep: float = 3,
        raise_on_failure: bool = True,
    ) -> dict[str, Any]:
        """Poll the run until it reaches a terminal state and return its run dict; `run` as for
        `status`. Looks after 0.1 s, then twice as long each time, up to `sleep` seconds apart.

        `timeout` seconds (0: no limit) → RunTimeoutError. With `raise_on_failure`, a run that ended
        other than `completed` raises RunFailedError with its error text (and the run dict as `run`).
        A run the API does not know yet (just published) is waited for up to 60 s, then ApiNotFound.
        """
        project, uid = run_key(run, uid)
        key = f"{project}/{uid}"
        started = time.monotonic()
        delay = FIRST_POLL
        found: dict[str, Any] | None = None
        while True:
            try:
                found = self.run(project, uid)
            except ApiNotFound:
                if found is None and time.monotonic() - started >= UNSEEN_GRACE:
                    raise ApiNotFound(
                        f"run {key} is not known to the API at {self.url} (waited {UNSEEN_GRACE:g}s for it)",
                        404,
                    ) from None
            state = _state(found)
            if state in RunStates.terminal_states():
                break
            waited = time.monotonic() - started
            if timeout and waited >= timeout:
                seen = f"its last state was {state}" if found else "the API has not seen it"
                raise RunTimeoutError(f"run {key} did not reach a terminal state within {timeout:g}s: {seen}")
            time.sleep(min(delay, timeout - waited) if timeout else delay)
            delay = min(delay * 2, max(sleep, FIRST_POLL))
        assert found is not None
        if raise_on_failure and state != RunStates.completed:
            status = found.get("status") or {}
            name = (found.get("metadata") or {}).get("name") or key
            why = error_text(status)
            message = f"Task {name} ({key}) did not complete (state={state})" + (f": {why}" if why else "")
            raise RunFailedError(message, found)
        return found

    async def subscribe(
        self,
        project: str | None = None,
        state: str | Sequence[str] | None = None,
        labels: Mapping[str, str] | Sequence[str] | None = None,
        since: str | datetime | timedelta | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Run state changes as they happen (``GET /api/v1/subscribe``), as run dicts, until the caller
        stops: `project` a glob, `state` one or several, `labels` ``{key: value}`` or ``["k=v"]``, `since`
        RFC 3339, a datetime, a timedelta back from now or a duration ("15m"). A broken stream resumes
        where it broke (Last-Event-ID); a refusal raises ApiError (ApiProblems for a bad query), an API
        not reached on the first try ApiUnavailable."""
        import asyncio  # here, as aiohttp: `import runherald.client` stays quick for synchronous code

        import aiohttp

        from runherald import sse

        query = _subscribe_params(project, state, labels, since)
        parser = sse.SseParser()  # keeps the last event id, to resume from after a break
        reached = False
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=None)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                headers = {"Accept": sse.CONTENT_TYPE}
                if self._token:
                    headers["Authorization"] = f"Bearer {self._token}"
                if parser.last_id:  # the cursor says where to resume: `since` would rewind
                    headers["Last-Event-ID"] = parser.last_id
                    query = [(key, value) for key, value in query if key != "since"]
                try:
                    async with session.get(
                        self.url + "/api/v1/subscribe", params=query, headers=headers
                    ) as got:
                        reached = True
                        if 400 <= got.status < 500:  # asking again would get the same answer
                            body = await got.read()
                            raise error_answer(self.url, self._token, got.status, got.reason or "", body)
                        if got.status == 200:
                            async for event in sse.iter_events(got, parser):
                                if event.event == sse.RUN_EVENT:
                                    yield event.json()
                except aiohttp.ClientConnectorError as exc:
                    if not reached:
                        raise ApiUnavailable(f"cannot reach the API at {self.url}: {exc.os_error}") from None
                except (TimeoutError, aiohttp.ClientError):
                    pass  # the stream broke: resume from the cursor
                await asyncio.sleep(parser.retry if parser.retry is not None else RECONNECT_DELAY)


class ConfigObjects:
    """The rules (or receivers) stored in the rules topic: `client.rules`, `client.receivers`."""

    def __init__(self, client: Client, kind: str) -> None:
        self._client, self._kind = client, kind

    def list(self) -> list[dict[str, Any]]:
        """Every one, by name."""
        found: list[dict[str, Any]] = self._client.call("GET", f"/api/v1/{self._kind}")[self._kind]
        return found

    def get(self, name: str) -> dict[str, Any]:
        """One, by name (ApiNotFound if there is none); secret_params are never shown."""
        found: dict[str, Any] = self._client.call("GET", f"/api/v1/{self._kind}/{_quoted(name)}")
        return found

    def delete(self, name: str) -> dict[str, Any]:
        """Delete one: ``{name, action}``; a receiver a rule names is refused (ApiError 409)."""
        done: dict[str, Any] = self._client.call("DELETE", f"/api/v1/{self._kind}/{_quoted(name)}")
        return done


class Rules(ConfigObjects):
    """The alert rules (`client.rules`), and the configuration documents that hold them."""

    def apply(
        self, document: Mapping[str, Any] | str | Path, *, prune: bool = False, dry_run: bool = False
    ) -> dict[str, Any]:
        """Apply a configuration document (``PUT /api/v1/config``, as `runherald rules apply -f`): a
        mapping, YAML or JSON text, or a Path to a file of it. Returns ``{changes, warnings, dry_run}``;
        a document with problems is refused whole (ApiProblems)."""
        if isinstance(document, Path):
            document = document.read_text()
        if isinstance(document, str):
            import yaml

            document = yaml.safe_load(document)
        if not isinstance(document, Mapping):
            raise InvalidArgumentError("a configuration document must be a mapping (receivers:, rules:, ...)")
        body = {"document": _jsonable(document), "prune": prune, "dry_run": dry_run}
        answer: dict[str, Any] = self._client.call("PUT", "/api/v1/config", body)
        return answer


class Silences:
    """Silences (`client.silences`): each mutes the deliveries it matches for a while."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self, *, expired: bool = False) -> list[dict[str, Any]]:
        """The silences in force or pending; with `expired`, those expired in the last 5 days."""
        path = "/api/v1/silences" + ("?expired=true" if expired else "")
        found: list[dict[str, Any]] = self._client.call("GET", path)["silences"]
        return found

    def get(self, silence_id: str) -> dict[str, Any]:
        """One silence by id."""
        found: dict[str, Any] = self._client.call("GET", f"/api/v1/silences/{_quoted(silence_id)}")
        return found

    def add(
        self,
        matchers: str | Sequence[str],
        *,
        comment: str,
        duration: str | timedelta | None = None,
        ends_at: str | datetime | None = None,
        starts_at: str | datetime | None = None,
        author: str | None = None,
    ) -> dict[str, Any]:
        """Add a silence (its `id` is in the answer): `matchers` in Alertmanager's syntax, e.g.
        'project="alpha"'; `duration` ("2h", or a timedelta) or `ends_at`; `author` defaults to anonymous."""
        body: dict[str, Any] = {"matchers": [matchers] if isinstance(matchers, str) else list(matchers)}
        body["comment"] = comment
        if duration is not None:
            body["duration"] = _duration(duration)
        for name, moment in (("ends_at", ends_at), ("starts_at", starts_at)):
            if moment is not None:
                body[name] = moment.isoformat() if isinstance(moment, datetime) else moment
        if author is not None:
            body["author"] = author
        created: dict[str, Any] = self._client.call("POST", "/api/v1/silences", body)
        return created

    def expire(self, silence_id: str) -> dict[str, Any]:
        """End a silence now; the answer says `already_expired` when it had ended."""
        done: dict[str, Any] = self._client.call("DELETE", f"/api/v1/silences/{_quoted(silence_id)}")
        return done


class Subscriptions:
    """Webhook subscriptions (`client.subscriptions`): every matching run state change POSTed to a URL
    as a signed CloudEvent."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> list[dict[str, Any]]:
        """Every subscription, by name (secrets never shown)."""
        found: list[dict[str, Any]] = self._client.call("GET", "/api/v1/subscriptions")["subscriptions"]
        return found

    def get(self, name: str) -> dict[str, Any]:
        """One subscription by name."""
        found: dict[str, Any] = self._client.call("GET", f"/api/v1/subscriptions/{_quoted(name)}")
        return found

    def add(
        self,
        url: str,
        *,
        name: str | None = None,
        matchers: Sequence[str] = (),
        states: Sequence[str] = (),
        secret: str | None = None,
    ) -> dict[str, Any]:
        """Add a subscription; the answer is the stored one, with its `name` (generated if none is
        given). `secret` is the Standard Webhooks signing secret (or a secret reference)."""
        body: dict[str, Any] = {"url": url, "matchers": list(matchers), "states": list(states)}
        if name is not None:
            body["name"] = name
        if secret is not None:
            body["secret"] = secret
        created: dict[str, Any] = self._client.call("POST", "/api/v1/subscriptions", body)
        return created

    def delete(self, name: str) -> dict[str, Any]:
        """Delete a subscription: ``{name, action}``."""
        done: dict[str, Any] = self._client.call("DELETE", f"/api/v1/subscriptions/{_quoted(name)}")
        return done


def run_key(run: RunLike | str, uid: str | None = None) -> tuple[str, str]:
    """(project, uid) of a run given as (project, uid), ``"project/uid"``, a run dict or a run object."""
    if uid is not None:
        if not isinstance(run, str):
            raise InvalidArgumentError("give a project and a uid, or one run")
        project = run
    elif isinstance(run, str):
        project, _, uid = run.partition("/")
    else:
        metadata = _run_dict(run).get("metadata") or {}
        project, uid = metadata.get("project") or "", metadata.get("uid") or ""
    if not project or not uid:
        raise InvalidArgumentError(f"a run needs a project and a uid (project/uid), got {run!r}")
    return str(project), str(uid)


def _run_dict(run: RunLike) -> dict[str, Any]:
    if isinstance(run, Mapping):
        return _jsonable(run)
    to_dict = getattr(run, "to_dict", None)
    if not callable(to_dict):
        raise PublishError(f"expected a run dict or a RunObject, got {type(run).__name__}")
    return _jsonable(to_dict())


def _jsonable(value: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-ready copy (datetimes as ISO 8601), or PublishError naming what cannot be sent."""

    def fallback(item: Any) -> Any:
        if isinstance(item, datetime | date):
            return item.isoformat()
        raise PublishError(f"{type(item).__name__} cannot be sent as JSON")

    copy: dict[str, Any] = json.loads(json.dumps(value, default=fallback))
    return copy


def _state(run: Mapping[str, Any] | None) -> str:
    return str(((run or {}).get("status") or {}).get("state") or "unknown")


def _quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _run_path(project: str, uid: str) -> str:
    return f"/api/v1/runs/{_quoted(project)}/{_quoted(uid)}"


def _duration(value: str | timedelta) -> str:
    return f"{max(1, round(value.total_seconds()))}s" if isinstance(value, timedelta) else value


def _subscribe_params(
    project: str | None,
    state: str | Sequence[str] | None,
    labels: Mapping[str, str] | Sequence[str] | None,
    since: str | datetime | timedelta | None,
) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = [("project", project)] if project else []
    params += [("state", s) for s in ([state] if isinstance(state, str) else state or ())]
    if isinstance(labels, Mapping):
        pairs = [f"{key}={value}" for key, value in labels.items()]
    else:
        pairs = [labels] if isinstance(labels, str) else list(labels or ())
    params += [("label", pair) for pair in pairs]
    if isinstance(since, timedelta):
        params.append(("since", _duration(since)))
    elif isinstance(since, datetime):
        params.append(("since", since.isoformat()))
    elif since:
        params.append(("since", since))
    return params


__all__ = [
    "API_ENV",
    "TOKEN_ENV",
    "ApiProblems",
    "Client",
    "ConfigObjects",
    "Rules",
    "RunLike",
    "Silences",
    "Subscriptions",
    "SupportsToDict",
    "run_key",
]
