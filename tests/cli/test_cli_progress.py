"""`rules apply -f` shows its progress on stderr only where asked: nothing when stderr is not a terminal
(CliRunner's is not), the steps with RUNHERALD_PROGRESS=always, nothing with --quiet."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from runherald.cli import cli
from runherald.testing._server import Reply
from runherald.testing.webhook import WebhookReceiver

RECEIVERS = 40
RULES = 200
DOCUMENT: dict[str, Any] = {
    "receivers": [
        {"name": f"hook-{i}", "kind": "webhook", "params": {"url": f"https://hooks.example.com/{i}"}}
        for i in range(RECEIVERS)
    ],
    "rules": [
        {"name": f"rule-{i}", "matchers": [f'project="p{i}"'], "receivers": [f"hook-{i % RECEIVERS}"]}
        for i in range(RULES)
    ],
}
ANSWER = {
    "changes": [{"type": "rule", "name": f"rule-{i}", "action": "created"} for i in range(RULES)],
    "warnings": [],
    "dry_run": False,
}


def invoke(*args: str, progress: str | None) -> Result:
    env = {"RUNHERALD_API": None, "RUNHERALD_TOKEN": None, "RUNHERALD_PROGRESS": progress}
    return CliRunner().invoke(cli, list(args), env=env)


async def apply(tmp_path: Path, *args: str, progress: str | None) -> Result:
    file = tmp_path / "large.yaml"
    file.write_text(yaml.safe_dump(DOCUMENT))
    async with WebhookReceiver() as api:
        api.reply("/api/v1/config", Reply(200, json.dumps(ANSWER), content_type="application/json"))
        result = await asyncio.to_thread(
            invoke, "rules", "apply", "-f", str(file), "--api", api.base_url, *args, progress=progress
        )
        assert len(api.requests_to("/api/v1/config")) == 1
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"rule  rule-{RULES - 1}  created"
    return result


async def test_no_progress_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    assert (await apply(tmp_path, progress=None)).stderr == ""


async def test_forced_progress_names_the_steps_and_the_count(tmp_path: Path) -> None:
    result = await apply(tmp_path, progress="always")
    objects = RECEIVERS + RULES
    lines = result.stderr.splitlines()
    assert lines[0] == f"checking {objects} objects"
    assert lines[1].startswith(f"applying {objects} objects through http://127.0.0.1:")
    assert lines[2:] == [f"applied {objects}/{objects}"]


async def test_quiet_wins_over_forced_progress(tmp_path: Path) -> None:
    assert (await apply(tmp_path, "--quiet", progress="always")).stderr == ""
    assert (await apply(tmp_path, "-q", progress="always")).stderr == ""
