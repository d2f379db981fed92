"""The command line's and the SDK's (runherald.client) way to runherald's HTTP API: JSON over urllib,
the bearer token on every call.

Every failure is a RunheraldError of one line: ApiUnavailable (no answer), ApiError (an error
status; 401 and 403 say what to do about the token; 404 is ApiNotFound). A 400 with ``problems`` is
ApiProblems (an ApiError, exit 2): its message is the server's summary, then one ``path: message``
line per problem.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

from runherald.errors import ApiError, ApiNotFound, ApiUnavailable
from runherald.problems import Problem

API_TIMEOUT = 10.0
DEFAULT_API = "http://127.0.0.1:6066"


class ApiProblems(ApiError):
    """The API refused the input (400) and said what is wrong with it: `problems`, each at its path."""

    exit_code = 2

    def __init__(self, message: str, status: int, problems: list[Problem]) -> None:
        super().__init__("\n".join([message, *(str(problem) for problem in problems)]), status)
        self.summary = message
        self.problems = problems


def call_api(
    api: str, token: str | None, method: str, path: str, body: Any = None, *, timeout: float = API_TIMEOUT
) -> Any:
    """Send one request (body as JSON, if any) and return the decoded JSON answer."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(api.rstrip("/") + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise error_answer(api, token, exc.code, exc.reason, exc.read()) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise ApiUnavailable(f"cannot reach the API at {api}: {_network_reason(reason, timeout)}") from None
    except ValueError as exc:
        raise ApiError(f"the API at {api} answered something that is not JSON: {exc}", 200) from None


def error_answer(api: str, token: str | None, status: int, reason: str, body: bytes) -> ApiError:
    """The error for an error status and its body: ApiProblems for a 400 with problems, ApiNotFound for
    a 404, else ApiError, with the answer's ``error`` (for 401/403, what to do about the token)."""
    try:
        answer = json.loads(body)
        message = answer.get("error")
    except (ValueError, AttributeError):
        answer, message = None, None
    problems = _problems(answer) if status == 400 else []
    if message and problems:
        return ApiProblems(message, status, problems)
    error = ApiNotFound if status == 404 else ApiError
    return error(_refusal(api, token, status, message or f"the API answered {status} {reason}"), status)


def _problems(answer: Any) -> list[Problem]:
    """The ``problems`` of an error answer, as Problems (whatever is not one left out)."""
    found = answer.get("problems") if isinstance(answer, dict) else None
    if not isinstance(found, list):
        return []
    return [
        Problem(str(item.get("path") or ""), str(item["message"]))
        for item in found
        if isinstance(item, dict) and item.get("message")
    ]


def _refusal(api: str, token: str | None, status: int, message: str) -> str:
    """The server's message, and for 401/403 what to do about the token (which is never shown)."""
    if status == 401 and not token:
        return f"the API at {api} needs a bearer token: give --token or set RUNHERALD_TOKEN"
    if status == 401:
        return f"the API at {api} rejected the token given by --token / RUNHERALD_TOKEN (401: {message})"
    if status == 403:
        return f"the API at {api} refused (403): {message}"
    return message


def _network_reason(reason: Any, timeout: float) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    return str(reason)


__all__ = ["API_TIMEOUT", "DEFAULT_API", "ApiProblems", "call_api", "error_answer"]
