"""`runherald check-config` offline, and what `rules apply` does before and after it reaches the API:
every problem with its path (exit 2, nothing sent), warnings, the summary line, the server's problems."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from runherald.broker import free_port
from runherald.cli import cli
from runherald.testing._server import Reply
from runherald.testing.webhook import WebhookReceiver

GOOD: dict[str, Any] = {
    "receivers": [
        {"name": "ml-oncall", "kind": "slack", "secret_params": {"webhook": {"secret": "ml-oncall-webhook"}}},
        {"name": "audit", "kind": "webhook", "params": {"url": "https://audit.example.com/runs"}},
    ],
    "rules": [
        {
            "name": "prod-failures",
            "matchers": ['project=~"prod-.*"', 'labels.team!="sandbox"'],
            "when": ["error", "aborted"],
            "condition": "{{ run.status.results.accuracy | default(1) < 0.8 }}",
            "severity": "error",
            "message": "Run {{ run.metadata.name }} failed",
            "receivers": ["ml-oncall", "audit"],
        }
    ],
}


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(
        cli, list(args), env={"RUNHERALD_API": None, "RUNHERALD_TOKEN": None}, input=input
    )


def write(tmp_path: Path, document: Any, name: str = "alerts.yaml") -> str:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False))
    return str(path)


def test_a_good_document_is_ok_with_a_summary_line(tmp_path: Path) -> None:
    result = invoke("check-config", write(tmp_path, GOOD))
    assert (result.exit_code, result.stdout, result.stderr) == (0, "2 receivers, 1 rule: OK\n", "")
    # JSON is a document too, and - reads stdin.
    result = invoke("check-config", "-", input=json.dumps(GOOD))
    assert (result.exit_code, result.stdout) == (0, "2 receivers, 1 rule: OK\n")


def test_every_problem_is_shown_with_its_path_and_exit_2(tmp_path: Path) -> None:
    document = {
        "receivers": [
            {"name": "chat", "kind": "slack", "params": {"channel": "#ml"}},
            {"name": "pager", "kind": "pagerduty"},
            {"name": "chat", "kind": "console"},
        ],
        "rules": [
            {
                "name": "prod",
                "matchers": ["project", 'name=~"("', 'colour="red"'],
                "when": ["completed", "exploded"],
                "condition": "{{ run.x < }}",
                "receivers": ["chat", "elsewhere"],
                "colour": "red",
            },
            {"name": "prod", "matchers": ['project="x"'], "receivers": ["chat"]},
            {"name": "bad/name", "matchers": ['project="x"'], "receivers": ["chat"]},
        ],
        "routes": [],
    }
    result = invoke("check-config", file := write(tmp_path, document))
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "warning: rules.prod.receivers[1]: no receiver 'elsewhere' is defined" + (
        " (one of: chat, pager); it must exist when applied"
    )
    assert lines[1] == f"runherald check-config: {file} has 12 problems"
    paths = [line.split(": ", 1)[0] for line in lines[2:]]
    assert paths == [
        "routes",
        "receivers.chat.params.webhook",
        "receivers.pager.kind",
        "receivers.chat.name",
        "rules.prod.colour",
        "rules.prod.matchers[0]",
        "rules.prod.matchers[1]",
        "rules.prod.matchers[2]",
        "rules.prod.when[1]",
        "rules.prod.condition",
        "rules.prod.name",
        "rules[2].name",
    ]
    assert "unknown state 'exploded'" in lines[10] and "does not compile" in lines[11]


def test_json_output_lists_problems_and_warnings(tmp_path: Path) -> None:
    document = {
        "rules": [{"name": "r", "matchers": ['project="x"'], "when": ["exploded"], "receivers": ["x"]}]
    }
    result = invoke("check-config", write(tmp_path, document), "-o", "json")
    assert result.exit_code == 2
    shown = json.loads(result.stdout)
    assert shown["ok"] is False and shown["rules"] == [] and shown["receivers"] == []
    assert [p["path"] for p in shown["problems"]] == ["rules.r.when[0]"]
    assert [w["path"] for w in shown["warnings"]] == ["rules.r.receivers[0]"]


def test_a_file_that_is_not_yaml_or_json_says_where(tmp_path: Path) -> None:
    result = invoke("check-config", write(tmp_path, "rules: [\n  {name: x\n"))
    assert result.exit_code == 2 and "is not YAML or JSON (line 3, column 1)" in result.stderr
    result = invoke("check-config", write(tmp_path, "[1, 2]"))
    assert result.exit_code == 2 and "must be an object with receivers and rules" in result.stderr
    assert invoke("check-config", str(tmp_path / "missing.yaml")).exit_code == 2


def test_apply_checks_the_whole_file_before_it_sends_anything(tmp_path: Path) -> None:
    document = {"rules": [{"name": "r", "matchers": ["project"], "receivers": ["x"]}]}
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: reaching it would be exit 1
    result = invoke("rules", "apply", "-f", write(tmp_path, document), "--api", nowhere)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "runherald rules apply: the configuration has 1 problem; nothing was applied",
        "rules.r.matchers[0]: " + result.stderr.splitlines()[1].split(": ", 1)[1],
    ]
    assert "cannot reach" not in result.stderr
    result = invoke("rules", "apply", "-f", write(tmp_path, GOOD), "--api", nowhere)
    assert result.exit_code == 1 and "cannot reach the API" in result.stderr


async def test_the_servers_problems_are_printed_one_per_line_with_exit_2(tmp_path: Path) -> None:
    refusal = {
        "error": "the configuration has 2 problems; nothing was applied",
        "problems": [
            {"path": "rules.prod-failures.receivers[0]", "message": "no receiver 'ml-oncall' is defined"},
            {"path": "rules.prod-failures.receivers[1]", "message": "no receiver 'audit' is defined"},
        ],
    }
    file = write(tmp_path, GOOD)
    async with WebhookReceiver() as api:
        api.reply("/api/v1/config", Reply(400, json.dumps(refusal), content_type="application/json"))
        result = await asyncio.to_thread(invoke, "rules", "apply", "-f", file, "--api", api.base_url)
        sent = api.requests_to("/api/v1/config")[0]
    assert sent.method == "PUT" and sent.json() == {"document": GOOD, "prune": False, "dry_run": False}
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "runherald rules apply: the configuration has 2 problems; nothing was applied",
        "rules.prod-failures.receivers[0]: no receiver 'ml-oncall' is defined",
        "rules.prod-failures.receivers[1]: no receiver 'audit' is defined",
    ]


async def test_apply_prints_each_change_and_the_servers_warnings(tmp_path: Path) -> None:
    answer = {
        "changes": [
            {"type": "receiver", "name": "audit", "action": "unchanged"},
            {"type": "rule", "name": "prod-failures", "action": "updated"},
        ],
        "warnings": [{"path": "receivers.audit.secret_params.token", "message": "a literal secret"}],
        "dry_run": True,
    }
    file = write(tmp_path, GOOD)
    async with WebhookReceiver() as api:
        api.reply("/api/v1/config", Reply(200, json.dumps(answer), content_type="application/json"))
        result = await asyncio.to_thread(
            invoke, "rules", "apply", "-f", file, "--prune", "--dry-run", "--api", api.base_url
        )
        sent = api.requests_to("/api/v1/config")[0].json()
    assert (sent["prune"], sent["dry_run"]) == (True, True)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "TYPE      NAME           WOULD",
        "receiver  audit          unchanged",
        "rule      prod-failures  updated",
        "(dry run: nothing was changed)",
    ]
    assert result.stderr == "warning: receivers.audit.secret_params.token: a literal secret\n"
