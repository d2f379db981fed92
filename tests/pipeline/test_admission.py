"""Input checked at the door, against a real worker: the API answers 400 with every problem, the CLI
exits 2 with one problem a line, the SDK raises InvalidRuns; none of a refused request reaches the
runs topic (a list is all or nothing)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from click.testing import CliRunner

from runherald.cli import cli
from runherald.publish import InvalidRuns, Problem, publish

from .harness import WorkerProcess, read_topic, run_dict, unique, wait_for, webhook

URL = "https://hooks.example.com/h"


def post(worker: WorkerProcess, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        worker.api + "/api/v1/runs",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def keys_on_the_runs_topic(worker: WorkerProcess, project: str) -> list[str]:
    return sorted(
        key.decode()
        for key, _ in await read_topic(worker.settings, "runs")
        if key and key.startswith(project.encode())
    )


async def test_refused_runs_never_reach_the_topic_by_any_door(worker: WorkerProcess) -> None:
    project = unique("p")
    good = run_dict(project, "good", "completed", [webhook("hook", URL, when=["error"])])
    bad = run_dict(
        project,
        "bad",
        "completed",
        [
            webhook("hook", URL, kind="slak"),
            webhook("hook", URL, when=["complete"], condition="{{ run.status.state =="),
        ],
    )
    expected = [
        {"path": "[1].spec.notifications[0].kind", "message": "unknown kind 'slak' (did you mean 'slack'?)"},
        {
            "path": "[1].spec.notifications[1].when[0]",
            "message": "unknown state 'complete' (did you mean 'completed'?)",
        },
        {
            "path": "[1].spec.notifications[1].condition",
            "message": "does not compile: TemplateSyntaxError: unexpected 'end of template'",
        },
        {
            "path": "[1].spec.notifications[1].name",
            "message": "duplicate name 'hook' (also spec.notifications[0]): names must be unique",
        },
    ]

    # The API: a list with one bad run is refused whole.
    code, body = post(worker, [good, bad])
    assert (code, body) == (
        400,
        {"error": "the input has 4 problems; nothing was published", "problems": expected},
    )
    code, body = post(worker, bad)  # one run: no [i]. prefix
    assert code == 400 and [p["path"] for p in body["problems"]] == [p["path"][4:] for p in expected]

    # The CLI: exit 2, one problem a line, before anything is sent.
    env = {
        "RUNHERALD_TOPIC_PREFIX": worker.prefix,
        "RUNHERALD_BROKER": worker.broker_url,
        "RUNHERALD_API": None,
    }
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["publish"], env=env, input=json.dumps([good, bad])
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "runherald publish: the input has 4 problems; nothing was published",
        *(f"{p['path']}: {p['message']}" for p in expected),
    ]

    # The SDK: InvalidRuns carrying the problems.
    with pytest.raises(InvalidRuns) as caught:
        await publish([good, bad], worker.settings)
    assert caught.value.problems == [Problem(p["path"], p["message"]) for p in expected]

    # Then a good run by each door: only these reach the topic.
    assert post(worker, good)[0] == 202
    other = run_dict(project, "cli", "completed", [webhook("hook", URL, when=["error"])])
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["publish"], env=env, input=json.dumps(other))
    assert result.exit_code == 0, result.output
    await publish(
        run_dict(project, "sdk", "completed", [webhook("hook", URL, when=["error"])]), worker.settings
    )

    async def three() -> list[str]:
        keys = await keys_on_the_runs_topic(worker, project)
        return keys if len(keys) >= 3 else []

    assert await wait_for(three, timeout=20) == [f"{project}/cli", f"{project}/good", f"{project}/sdk"]
