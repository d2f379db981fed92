"""The command line against a real worker on the embedded broker: publish (JSON, NDJSON, YAML), status,
dead-letter list, in each output format."""

from __future__ import annotations

import asyncio
import json

import yaml
from click.testing import CliRunner, Result

from runherald.cli import cli
from runherald.model import Notification, RunObject, new_task
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, run_dict, unique, wait_for, webhook


async def invoke(worker: WorkerProcess, *args: str, input: str | None = None) -> Result:
    """The CLI in a thread (it runs its own event loop), with the worker's topic prefix."""
    env = {"RUNHERALD_TOPIC_PREFIX": worker.prefix, "RUNHERALD_BROKER": None, "RUNHERALD_API": None}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env, input=input)


async def test_publish_every_input_shape_then_status_in_every_format(
    worker: WorkerProcess, receiver: WebhookReceiver, tmp_path
) -> None:
    project = unique("p")
    as_json, *as_ndjson = (
        run_dict(project, unique("u"), "completed", [webhook("hook", receiver.url("/cli"))]) for _ in range(3)
    )
    run = RunObject.from_template(new_task(name="train", project=project))
    run.metadata.uid = unique("y")
    hook = webhook("hook", receiver.url("/cli"))
    run.spec.notifications = [
        Notification(kind="webhook", name="hook", when=hook["when"], params=hook["params"])
    ]
    run.status.state = "completed"
    json_file, yaml_file = tmp_path / "run.json", tmp_path / "run.yaml"
    json_file.write_text(json.dumps(as_json))
    yaml_file.write_text(run.to_yaml())

    result = await invoke(worker, "publish", str(json_file), "--broker", worker.broker_url)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{project}/{as_json['metadata']['uid']}\n"
    result = await invoke(worker, "--broker", worker.broker_url, "publish", str(yaml_file))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{project}/{run.metadata.uid}\n"
    ndjson = "".join(json.dumps(item) + "\n" for item in as_ndjson)
    result = await invoke(worker, "publish", "-", "-o", "json", "--broker", worker.broker_url, input=ndjson)
    assert result.exit_code == 0, result.output
    keys = [f"{project}/{item['metadata']['uid']}" for item in as_ndjson]
    assert json.loads(result.stdout) == {"accepted": 2, "runs": keys}
    await receiver.wait_for_requests(4, path="/cli", within=20)

    key = f"{project}/{run.metadata.uid}"

    async def sent() -> str:
        result = await invoke(worker, "status", key, "--api", worker.api)
        return result.stdout if " sent " in result.stdout else ""

    table = await wait_for(sent)
    assert table.splitlines()[0].split() == ["NAME", "STATE", "STATUS", "ATTEMPTS", "SENT_TIME", "REASON"]
    assert table.splitlines()[1].split()[:4] == ["hook", "completed", "sent", "1"]
    as_yaml = await invoke(worker, "--api", worker.api, "status", key, "-o", "yaml")
    assert yaml.safe_load(as_yaml.stdout)["hook"]["states"]["completed"]["status"] == "sent"
    as_json_out = await invoke(worker, "status", key, "--json", "--api", worker.api)
    assert json.loads(as_json_out.stdout)["hook"]["status"] == "sent"

    missing = await invoke(worker, "status", f"{project}/nope", "--api", worker.api)
    assert missing.exit_code == 1
    assert missing.stderr == f"runherald status: run {project}/nope not found\n"


async def test_dead_letter_list_formats(worker: WorkerProcess) -> None:
    as_json = await invoke(worker, "dead-letter", "list", "-o", "json", "--broker", worker.broker_url)
    assert as_json.exit_code == 0, as_json.output
    letters = json.loads(as_json.stdout)
    assert isinstance(letters, list)
    table = await invoke(worker, "dead-letter", "list", "--broker", worker.broker_url)
    assert table.exit_code == 0
    if letters:
        assert table.stdout.split()[:5] == ["ID", "TIME", "STAGE", "SOURCE", "REASON"]
    else:
        assert table.stdout == f"{worker.prefix}dead-letter: no records\n"
