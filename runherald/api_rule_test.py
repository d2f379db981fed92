"""The HTTP API's dry run of the alert rules: ``POST /api/v1/rules/test``.

Body ``{"run": {...}, "rules": [names]}`` (``rules`` optional: every stored rule). The answer is
`runherald.rule_dry_run.dry_run`'s, against the alert configuration in force on this worker; nothing is
sent. A run POST /api/v1/runs would refuse, or an unknown rule name, is a 400 with ``problems``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from runherald.admission import Problem, run_problems
from runherald.api_store import json_response as _json
from runherald.config import Settings
from runherald.notifiers import Notifiers, NotifierSettings
from runherald.rule_dry_run import UnknownRules, dry_run
from runherald.streams.alert_store import AlertStore

PATH = "/api/v1/rules/test"
BODY_KEYS = ("run", "rules")
READY_TIMEOUT = 10.0  # how long a dry run waits for this worker to have read the rules topic


def _invalid(error: str, problems: list[Problem]) -> web.Response:
    return _json({"error": error, "problems": [problem.as_dict() for problem in problems]}, 400)


class BodyError(ValueError):
    """A request body that cannot be dry run: the error line and the problems at their paths."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


def parse_body(raw: bytes, *, slack_fallback: bool = False) -> tuple[dict[str, Any], list[str] | None]:
    """The run and the rule names of a request body, or BodyError."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BodyError(f"the body is not JSON: {exc}", []) from None
    if not isinstance(body, dict):
        raise BodyError('the body must be an object: {"run": {...}, "rules": [names]}', [])
    problems = [
        Problem(str(key), f"unknown field {key!r} (fields: run, rules)")
        for key in body
        if key not in BODY_KEYS
    ]
    if "run" not in body:
        problems.append(Problem("run", "the run to test the rules against is missing"))
    names = body.get("rules")
    if "rules" in body and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        problems.append(Problem("rules", "must be a list of rule names"))
    if problems:
        raise BodyError(f"the body has {len(problems)} problem{'s' if len(problems) > 1 else ''}", problems)
    run = body["run"]
    # What POST /api/v1/runs would refuse (runherald.events.validate_run's checks among them).
    found = run_problems(run, slack_fallback=slack_fallback)
    if found:
        count = f"{len(found)} problem{'s' if len(found) > 1 else ''}"
        problems = [Problem(f"run.{p.path}" if p.path else "run", p.message) for p in found]
        raise BodyError(f"the run has {count}", problems)
    return run, names


def add_rule_test_routes(app: web.Application, alerts: AlertStore, settings: Settings) -> None:
    """Register POST /api/v1/rules/test."""
    notifiers = Notifiers(NotifierSettings.from_settings(settings))  # previews only: nothing is opened

    async def test_rules(request: web.Request) -> web.Response:
        try:
            run, names = parse_body(await request.read(), slack_fallback=bool(settings.slack_webhook))
        except BodyError as exc:
            return _invalid(str(exc), exc.problems)
        if not alerts.ready.is_set():
            try:
                await asyncio.wait_for(alerts.ready.wait(), READY_TIMEOUT)
            except TimeoutError:
                return _json({"error": "this worker has not read the rules topic yet; try again"}, 503)
        try:
            answer = dry_run(run, alerts.config, names, settings=settings, notifiers=notifiers)
        except UnknownRules as exc:
            where = {name: i for i, name in reversed(list(enumerate(names or [])))}
            problems = [
                Problem(f"rules[{where[name]}]", message)
                for name, message in zip(exc.unknown, exc.messages, strict=True)
            ]
            count = len(problems)
            return _invalid(f"{count} unknown rule name{'s' if count > 1 else ''}; {exc.stored()}", problems)
        return _json(answer)

    app.router.add_post(PATH, test_rules)
