"""The command line as a user meets it, without a broker: options, settings, output formats, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from runherald.broker import free_port
from runherald.cli import cli, main
from runherald.model import Notification, RunObject, new_task
from runherald.sealing import PRIVATE_KEYS_ENV, PUBLIC_KEY_ENV, generate_key_pair
from runherald.testing._server import Reply
from runherald.testing.webhook import WebhookReceiver

RUN = {
    "metadata": {"project": "demo", "uid": "run-1", "name": "train"},
    "spec": {
        "notifications": [{"kind": "console", "name": "log", "message": "ready", "when": ["completed"]}]
    },
    "status": {"state": "completed", "results": {"accuracy": 0.93}},
}


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    # Settings come from the environment: start each run from a clean one.
    clean = {name: None for name in _runherald_variables()}
    return CliRunner().invoke(cli, list(args), env={**clean, **(env or {})}, input=input)


def _runherald_variables() -> list[str]:
    import os

    return [name for name in os.environ if name.startswith("RUNHERALD_")]


def shown(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout)


def test_global_options_go_before_or_after_the_subcommand() -> None:
    before = invoke("--broker", "kafka://before:9092", "config", "show", "-o", "json")
    after = invoke("config", "show", "--broker", "kafka://after:9092", "--output", "json")
    assert before.exit_code == 0 and after.exit_code == 0, before.output + after.output
    assert shown(before)["broker"] == {
        "value": "kafka://before:9092",
        "source": "flag --broker",
        "env": "RUNHERALD_BROKER",
    }
    assert shown(after)["broker"]["value"] == "kafka://after:9092"
    # Given twice, the one after the subcommand wins; -o before the subcommand counts too.
    both = invoke("-o", "json", "--broker", "kafka://a:1", "config", "show", "--broker", "kafka://b:2")
    assert shown(both)["broker"]["value"] == "kafka://b:2"


def test_config_show_says_where_each_setting_came_from(tmp_path: Path) -> None:
    settings_file = tmp_path / "runherald.yaml"
    settings_file.write_text(
        "partitions: 3\nsend_timeout: 4\nslack_webhook: https://hooks.example/T/B/s3cr3t\n"
    )
    env = {"RUNHERALD_CONFIG": str(settings_file), "RUNHERALD_SEND_TIMEOUT": "5"}
    result = invoke("config", "show", env=env)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines()}
    assert lines["SETTING"] == ["SETTING", "VALUE", "ENV", "SOURCE"]
    assert lines["partitions"] == ["partitions", "3", "RUNHERALD_PARTITIONS", "file", str(settings_file)]
    assert lines["send_timeout"] == [
        "send_timeout",
        "5.0",
        "RUNHERALD_SEND_TIMEOUT",
        "env",
        "RUNHERALD_SEND_TIMEOUT",
    ]
    assert lines["broker"][1:] == ["kafka://127.0.0.1:9092", "RUNHERALD_BROKER", "default"]
    assert lines["slack_webhook"][1] == "REDACTED"
    assert "s3cr3t" not in result.output

    as_yaml = yaml.safe_load(invoke("config", "show", "-o", "yaml", env=env).stdout)
    assert as_yaml["partitions"] == {
        "value": 3,
        "source": f"file {settings_file}",
        "env": "RUNHERALD_PARTITIONS",
    }
    assert as_yaml["slack_webhook"]["value"] == "REDACTED"


def test_unknown_and_old_variables_are_warned_about_on_stderr() -> None:
    result = invoke("config", "show", env={"RUNHERALD_BROKR": "x", "RUNHERALD_NOTIFY_TIMEOUT": "3"})
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "runherald: warning: RUNHERALD_BROKR is not a runherald setting (did you mean RUNHERALD_BROKER?)",
        "runherald: warning: RUNHERALD_NOTIFY_TIMEOUT is deprecated: use RUNHERALD_SEND_TIMEOUT",
    ]


def test_a_bad_setting_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = invoke("config", "show", env={"RUNHERALD_PARTITIONS": "zero"})
    assert result.exit_code == 2
    assert (
        result.stderr == "runherald config show: RUNHERALD_PARTITIONS: expected a whole number, got 'zero'\n"
    )
    result = invoke("publish", "--config", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_help_shows_environment_variables_and_version() -> None:
    result = invoke("publish", "--help")
    assert result.exit_code == 0
    for variable in ("RUNHERALD_BROKER", "RUNHERALD_API", "RUNHERALD_TOKEN", "RUNHERALD_CONFIG"):
        assert f"env var: {variable}" in " ".join(result.stdout.split())
    assert "_RUNHERALD_COMPLETE=bash_source runherald" in invoke("--help").stdout
    version = invoke("--version")
    assert version.exit_code == 0 and version.stdout.startswith("runherald, version ")


def test_usage_errors_exit_2() -> None:
    assert invoke("nope").exit_code == 2
    result = invoke("status", "not-a-key")
    assert result.exit_code == 2 and "expected PROJECT/UID" in result.stderr
    result = invoke("dead-letter", "replay")
    assert result.exit_code == 2 and "give --id ID (repeatable) or --all" in result.stderr
    assert invoke("config", "show", "-o", "xml").exit_code == 2
    assert invoke("status", "a/b", "--api", "localhost:6066").exit_code == 2


def test_publish_rejects_bad_input_before_asking_the_broker(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: bad input must be found first
    for text, message in [
        ("[1]", "item 0 is a int, not a run object"),
        ("metadata: [unclosed\n", "not JSON, NDJSON or YAML"),
    ]:
        result = invoke("publish", "--broker", f"kafka://127.0.0.1:{port}", input=text)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(f"runherald publish: {message}")
        assert len(result.stderr.splitlines()) == 1
    # A run with problems: every one on its own line (tests/cli/test_admission.py has them all).
    result = invoke(
        "publish", "--broker", f"kafka://127.0.0.1:{port}", input='{"metadata": {"project": "p"}}'
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "runherald publish: the input has 2 problems; nothing was published",
        "metadata.uid: missing or not a non-empty string",
        "status: missing or not an object",
    ]


def test_publish_of_a_literal_secret_without_a_public_key_is_one_line_exit_2(tmp_path: Path) -> None:
    notification = {"kind": "webhook", "name": "hook", "params": {"url": "http://127.0.0.1:9/"}}
    run = {**RUN, "spec": {"notifications": [{**notification, "secret_params": {"token": "tok-5f1e"}}]}}
    port = free_port()  # nothing listens there: the missing key must be found first
    result = invoke("publish", "--broker", f"kafka://127.0.0.1:{port}", input=json.dumps(run))
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"runherald publish: no public key to seal secret_params with: set {PUBLIC_KEY_ENV} or "
        f"{PUBLIC_KEY_ENV}_FILE (`runherald keys create` makes a key pair)\n"
    )
    # With the key, sealing passes and the broker is asked (and is not there).
    env = {PUBLIC_KEY_ENV: generate_key_pair()[1]}
    result = invoke("publish", "--broker", f"kafka://127.0.0.1:{port}", input=json.dumps(run), env=env)
    assert result.exit_code == 1 and "cannot reach the broker" in result.stderr


def test_publish_without_a_broker_is_one_line_within_seconds(tmp_path: Path) -> None:
    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps(RUN))
    port = free_port()
    started = time.monotonic()
    result = invoke("publish", str(run_file), "--broker", f"kafka://127.0.0.1:{port}")
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    assert result.stderr == (
        f"runherald publish: cannot reach the broker at kafka://127.0.0.1:{port}: no broker answered\n"
    )


@pytest.mark.parametrize("command", [["dead-letter", "list"], ["worker"]])
def test_no_broker_is_one_line_and_leaves_nothing_unclosed(command: list[str]) -> None:
    """As a user runs it: the whole stderr of the process, garbage collection at exit included."""
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "runherald.cli", *command, "--broker", f"kafka://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", PRIVATE_KEYS_ENV: generate_key_pair()[0]},
    )
    assert result.returncode == 1
    reason = f"cannot reach the broker at kafka://127.0.0.1:{port}: no broker answered"
    assert result.stderr == f"runherald {' '.join(command)}: {reason}\n"


def test_a_worker_without_private_keys_is_one_line_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runherald.cli", "worker", "--broker", f"kafka://127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"runherald worker: a worker needs the private keys that open sealed secret_params: set "
        f"{PRIVATE_KEYS_ENV} or {PRIVATE_KEYS_ENV}_FILE (`runherald keys create` makes a key pair)\n"
    )


def test_status_without_an_api_is_one_line_exit_1() -> None:
    port = free_port()
    result = invoke("status", "demo/run-1", "--api", f"http://127.0.0.1:{port}")
    assert result.exit_code == 1
    assert result.stderr == (
        f"runherald status: cannot reach the API at http://127.0.0.1:{port}: connection refused\n"
    )


async def test_status_sends_the_token_and_reports_server_errors() -> None:
    import asyncio

    async with WebhookReceiver() as api:
        path = "/api/v1/runs/demo/run-1/notifications"
        api.reply(path, Reply(body=json.dumps({}), content_type="application/json"))
        result = await asyncio.to_thread(
            invoke, "--token", "s3cret", "status", "demo/run-1", env={"RUNHERALD_API": api.base_url}
        )
        assert result.exit_code == 0, result.output
        assert result.stdout == "demo/run-1: no notifications recorded\n"
        assert api.requests_to(path)[0].headers["Authorization"] == "Bearer s3cret"

        api.fail(path, 500)
        result = await asyncio.to_thread(invoke, "status", "demo/run-1", "--api", api.base_url)
        assert result.exit_code == 1
        assert result.stderr == "runherald status: the API answered 500 Internal Server Error\n"
        assert "Authorization" not in api.requests_to(path)[-1].headers


def test_render_reads_what_run_object_to_yaml_writes(tmp_path: Path) -> None:
    run = RunObject.from_template(new_task(name="train", project="demo"))
    run.metadata.uid = "yaml-1"
    run.spec.notifications = [Notification(kind="console", name="log", message="ready", when=["completed"])]
    run.status.state = "completed"
    run.status.last_update = "2026-01-02T03:04:05+00:00"
    path = tmp_path / "run.yaml"
    path.write_text(run.to_yaml())
    result = invoke("render", str(path), "-o", "yaml")
    assert result.exit_code == 0, result.output
    [item] = yaml.safe_load(result.stdout)
    assert (item["run"], item["name"], item["send"]) == ("demo/yaml-1", "log", True)
    assert item["preview"]["message"] == "Run completed in project demo: ready"
    # JSON, a JSON array and NDJSON still work, and --json is -o json.
    for text in (json.dumps(run.to_dict()), json.dumps([run.to_dict()]), json.dumps(run.to_dict()) + "\n"):
        result = invoke("render", "-", "--json", input=text)
        assert result.exit_code == 0 and json.loads(result.stdout)[0]["run"] == "demo/yaml-1"


def test_main_returns_exit_codes_and_prints_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "x"]) == 2
    assert main(["--version"]) == 0
    assert main(["config", "show", "--api", "http://127.0.0.1:1"]) == 0
    capsys.readouterr()
    assert main(["status", "x/y", "--api", f"http://127.0.0.1:{free_port()}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("runherald status: cannot reach the API") and err.count("\n") == 1


def test_bench_hands_its_arguments_over() -> None:
    result = invoke("bench", "--help")
    assert result.exit_code == 0
    assert "--worker-env" in result.stdout


@pytest.mark.parametrize("command", ["worker", "dev"])
def test_run_source_flags_are_settings_checked_before_anything_starts(command: str) -> None:
    result = invoke(command, "--run-topics", "jobs,runherald.runs")
    assert result.exit_code == 2
    assert "run_topics must not name runherald's own topics (runherald.runs)" in result.output
    result = invoke(command, "--run-topic-pattern", "jobs\\.(")
    assert result.exit_code == 2
    assert "--run-topic-pattern: run_topic_pattern is not a regular expression" in result.output
    result = invoke(command, env={"RUNHERALD_MAX_HOPS": "-2"})
    assert result.exit_code == 2 and "max_hops must be 0 or more" in result.output
