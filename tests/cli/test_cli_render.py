"""`runherald render`: a dry run showing what each notification would send, and whether; sends nothing."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from runherald.cli import main
from runherald.testing.webhook import WebhookReceiver

SECRET = "render-test-secret-41d9"


def run_file(tmp_path: Path, url: str, state: str = "completed", accuracy: float = 0.93) -> Path:
    run = {
        "metadata": {"uid": "u-render", "name": "train", "project": "demo", "labels": {}, "iteration": 0},
        "spec": {
            "parameters": {},
            "notifications": [
                {
                    "kind": "webhook",
                    "name": "hook",
                    "message": "model ready",
                    "when": ["completed"],
                    "params": {"url": url},
                    "secret_params": {"headers": {"Authorization": f"Bearer {SECRET}"}},
                },
                {"kind": "slack", "name": "on-error", "when": ["error"], "params": {}},
                {
                    "kind": "mail",
                    "name": "good-model",
                    "when": ["completed"],
                    "condition": '{{ run["status"]["results"]["accuracy"] > 0.9 }}',
                    "params": {"email_addresses": ["team@example.com"]},
                },
            ],
        },
        "status": {"state": state, "results": {"accuracy": accuracy}},
    }
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    return path


async def test_render_shows_decisions_and_messages_and_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with WebhookReceiver() as receiver:
        assert main(["render", str(run_file(tmp_path, receiver.url("/render")))]) == 0
        await asyncio.sleep(0.3)  # a request the dry run made would have been recorded by now
        assert receiver.requests == []
    out = capsys.readouterr().out
    assert "== demo/u-render hook (webhook): would be sent: state 'completed' matched" in out
    assert "== demo/u-render on-error (slack): would NOT be sent: state 'completed' not in when" in out
    assert "== demo/u-render good-model (mail): would be sent: condition passed" in out
    assert "message: Run completed in project demo: model ready" in out
    assert "mail subject: [info] Run completed in project demo" in out
    assert '"type": "header"' in out  # the slack notification's blocks
    assert SECRET not in out


def test_render_json_redacts_secret_params_like_the_pipeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", str(run_file(tmp_path, "http://127.0.0.1:9/x")), "--json"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    previews = {item["name"]: item for item in json.loads(out)}
    assert {name: item["send"] for name, item in previews.items()} == {
        "hook": True,
        "on-error": False,
        "good-model": True,
    }
    body = json.loads(previews["hook"]["preview"]["webhook"]["body"])
    assert body["message"] == "Run completed in project demo: model ready"
    hook = body["runs"][0]["spec"]["notifications"][0]
    assert hook["secret_params"] == {"headers": "REDACTED"}


def test_render_one_notification_from_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = run_file(tmp_path, "http://127.0.0.1:9/x", accuracy=0.5).read_bytes()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["render", "-", "--notification", "good-model", "--json"]) == 0
    [item] = json.loads(capsys.readouterr().out)
    assert item["name"] == "good-model" and item["kind"] == "mail"
    assert item["send"] is False
    assert item["reason"] == "condition rendered 'False'"
    assert item["preview"]["mail"]["subject"] == "[info] Run completed in project demo"


def test_render_reports_unknown_notification_and_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = run_file(tmp_path, "http://127.0.0.1:9/x")
    assert main(["render", str(path), "--notification", "nope"]) == 2
    assert "no notification named 'nope'" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    assert main(["render", str(bad)]) == 2
    assert "not a run object" in capsys.readouterr().err
