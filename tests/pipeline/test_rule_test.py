"""`runherald rules test` and POST /api/v1/rules/test against a real worker on the embedded broker: rules
and receivers written to the rules topic are in force for the dry run, each decision is explained,
nothing is sent by it, and what it renders is what the pipeline then sends for the same run."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner, Result

from runherald.alerting import check_document, record_key
from runherald.cli import cli
from runherald.sealing import seal_notification
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, run_dict, unique, wait_for

SECRET = "https://hooks.slack.invalid/services/T0/B0/rules-test-secret"


def post(worker: WorkerProcess, path: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        worker.api + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def write_records(worker: WorkerProcess, records: dict[str, dict[str, Any]]) -> None:
    """What `rules apply` stores: one record per object on the compacted rules topic."""
    producer = AIOKafkaProducer(bootstrap_servers=worker.settings.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for key, value in records.items():
            await producer.send_and_wait(worker.settings.topic("rules"), orjson.dumps(value), key.encode())
    finally:
        await producer.stop()


async def invoke(*args: str) -> Result:
    env = {"RUNHERALD_API": None, "RUNHERALD_TOKEN": None}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)


async def test_rules_test_explains_each_decision_and_sends_nothing(
    start_worker: Any, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    worker: WorkerProcess = start_worker()
    project, rule = unique("prod-"), unique("r")
    document = {
        "receivers": [
            {"name": "hook", "kind": "webhook", "params": {"url": receiver.url("/rules-test")}},
            {"name": "ml-oncall", "kind": "slack", "secret_params": {"webhook": SECRET}},
        ],
        "rules": [
            {
                "name": rule,
                "matchers": [f'project="{project}"', 'labels.team!="sandbox"'],
                "when": ["error"],
                "message": "training failed",
                "receivers": ["hook", "ml-oncall", "gone"],
            },
            {"name": rule + "-ok", "matchers": [f'project="{project}"'], "receivers": ["hook"]},
        ],
    }
    checked = check_document(document)
    assert not checked.problems
    records = {
        record_key("receiver", item.name): seal_notification(item.to_dict()) for item in checked.receivers
    }
    records.update({record_key("rule", item.name): item.to_dict() for item in checked.rules})
    assert SECRET not in json.dumps(records)  # sealed before it is stored, as `rules apply` does
    await write_records(worker, records)

    run = run_dict(project, unique("u"), "error", [], labels={"team": "ml"})
    body = {"run": run, "rules": [rule, rule + "-ok"]}
    # In force on the worker within about a second of being written.
    answer = await wait_for(
        lambda: (reply := post(worker, "/api/v1/rules/test", body))[0] == 200 and reply[1]
    )
    tested, ok = answer["rules"]
    assert (tested["rule"], tested["matched"], tested["failed_matcher"]) == (rule, True, None)
    hook, slack, gone = tested["receivers"]
    assert (hook["notification"], hook["send"], hook["reason"]) == (
        f"{rule}/hook",
        True,
        "state 'error' matched",
    )
    assert (slack["kind"], slack["send"]) == ("slack", True)
    assert (gone["send"], gone["reason"], gone["rendered"]) == (False, "receiver 'gone' does not exist", None)
    assert (ok["matched"], ok["receivers"][0]["send"]) == (True, False)
    assert ok["receivers"][0]["reason"] == "state 'error' not in when ['completed']"
    assert SECRET not in json.dumps(answer)

    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps(run))
    result = await invoke("rules", "test", "--run", str(run_file), "--rule", rule, "--api", worker.api)
    assert result.exit_code == 0, result.output
    rows = [line.split(None, 4) for line in result.stdout.splitlines()[:4]]
    assert rows == [
        ["RULE", "MATCHED", "RECEIVER", "DECISION", "REASON"],
        [rule, "matched", "hook", "send", "state 'error' matched"],
        [rule, "matched", "ml-oncall", "send", "state 'error' matched"],
        [rule, "matched", "gone", "skip", "receiver 'gone' does not exist"],
    ]
    assert f"== {rule}/hook (webhook): would be sent" in result.stdout
    assert SECRET not in result.output

    sandbox = run_dict(project, unique("u"), "error", [], labels={"team": "sandbox"})
    run_file.write_text(json.dumps(sandbox))
    result = await invoke(
        "rules", "test", "--run", str(run_file), "--rule", rule, "-o", "yaml", "--api", worker.api
    )
    assert result.exit_code == 0, result.output
    assert 'failed_matcher: labels.team!="sandbox"' in result.stdout.replace("'", "")

    result = await invoke("rules", "test", "--run", str(run_file), "--rule", "nope", "--api", worker.api)
    assert result.exit_code == 2 and "no rule named 'nope'" in result.stderr

    # Nothing was sent by the dry runs, and no run was recorded.
    await asyncio.sleep(0.5)
    assert receiver.requests_to("/rules-test") == []
    assert worker.get(f"/api/v1/runs/{project}/{run['metadata']['uid']}")[0] == 404

    # Published for real, the run gets what the dry run rendered for the webhook receiver.
    code, _ = post(worker, "/api/v1/runs", run)
    assert code == 202
    await receiver.wait_for_requests(1, path="/rules-test", within=20)
    [request] = receiver.requests_to("/rules-test")
    assert json.loads(request.body) == json.loads(hook["rendered"]["data"]["body"])
