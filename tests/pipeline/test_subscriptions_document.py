"""The `subscriptions:` section of the configuration document on a real worker and the embedded broker:
checked offline by `check-config`, applied by `rules apply -f` (the literal secret sealed before it
reaches the rules topic, a re-apply `unchanged`), in force at once (a matching run's state change arrives
as a signed CloudEvent the reference Standard Webhooks library verifies), refused whole with its paths
when wrong, and deleted by `rules apply --prune` once the file no longer holds it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks
import yaml

from runherald.broker import EmbeddedBroker
from runherald.publish import Publisher
from runherald.testing import WebhookReceiver

from .harness import WorkerProcess, fast_worker, read_topic, run_dict, unique

SECRET = "whsec_YXBwbGllZC1mcm9tLWEtZG9jdW1lbnQtc2VjcmV0"  # a literal: sealed before it is stored


def _cli(args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RUNHERALD_")}
    return subprocess.run(
        [sys.executable, "-m", "runherald.cli", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def runherald(worker: WorkerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, off the event loop (the loopback receiver runs on it)."""
    return await asyncio.to_thread(_cli, (*args, "--api", worker.api))


async def get(worker: WorkerProcess, path: str) -> tuple[int, Any]:
    return await asyncio.to_thread(worker.get, path)


def _put_config(api: str, body: Any) -> tuple[int, Any]:
    sent = urllib.request.Request(api + "/api/v1/config", data=json.dumps(body).encode(), method="PUT")
    try:
        with urllib.request.urlopen(sent, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def applying(broker: EmbeddedBroker, worker_logs: Path) -> Iterator[WorkerProcess]:
    """A worker of this module's own: --prune deletes whatever else its rules topic holds."""
    process = fast_worker(broker.url, unique("t") + ".", unique("g"), worker_logs).start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


async def test_a_subscription_applied_from_a_file_delivers_and_prune_removes_it(
    applying: WorkerProcess, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    project, name = unique("p"), unique("doc")
    path = f"/from-file-{project}"
    subscription = {"url": receiver.url(path), "matchers": [f'project="{project}"'], "states": ["completed"]}
    file = tmp_path / "subscriptions.yaml"
    file.write_text(yaml.safe_dump({"subscriptions": {name: {**subscription, "secret": SECRET}}}))

    checked = await runherald(applying, "check-config", str(file))
    assert checked.returncode == 0 and "1 subscription: OK" in checked.stdout, checked.stderr
    done = await runherald(applying, "rules", "apply", "-f", str(file), "-o", "json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["changes"] == [{"type": "subscription", "name": name, "action": "created"}]
    assert [w["path"] for w in answer["warnings"]] == [f"subscriptions.{name}.secret"]
    again = await runherald(applying, "rules", "apply", "-f", str(file), "-o", "json")
    assert again.returncode == 0 and json.loads(again.stdout)["changes"] == [
        {"type": "subscription", "name": name, "action": "unchanged"}
    ]
    code, shown = await get(applying, f"/api/v1/subscriptions/{name}")
    assert code == 200 and shown["states"] == ["completed"] and set(shown["secret"]) == {"sealed"}

    # In force: a matching run's completed state arrives, signed; its running state is not wanted.
    uid = unique("u")
    async with Publisher(applying.settings) as publisher:
        await publisher.publish(run_dict(project, uid, "running", []))
        await publisher.publish(run_dict(project, uid, "completed", [], last_update="2026-12-05T10:05:00"))
        await receiver.wait_for_requests(1, path=path, within=20)
    (request,) = receiver.requests_to(path)
    event = standardwebhooks.Webhook(SECRET).verify(request.body, dict(request.headers))
    assert (event["type"], event["subject"]) == ("io.runherald.run.state", f"{project}/{uid}")
    assert event["data"]["status"]["state"] == "completed"

    # A wrong subscription is refused whole, with its paths, by the CLI's own check and by the API:
    # nothing applied.
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump({"subscriptions": {name: {"url": "ftp://x", "states": ["complete"]}}}))
    refused = await runherald(applying, "rules", "apply", "-f", str(wrong))
    assert refused.returncode == 2
    assert f"subscriptions.{name}.url" in refused.stderr
    assert f"subscriptions.{name}.states[0]: unknown state 'complete'" in refused.stderr
    document = {"subscriptions": {name: {"url": receiver.url(path), "sates": ["error"]}}}
    code, body = await asyncio.to_thread(_put_config, applying.api, {"document": document})
    assert code == 400 and body["problems"] == [
        {"path": f"subscriptions.{name}.sates", "message": "unknown field 'sates' (did you mean 'states'?)"}
    ]
    assert (await get(applying, f"/api/v1/subscriptions/{name}"))[1]["url"] == receiver.url(path)

    # --prune deletes the subscription the file no longer holds: later runs are not sent to it.
    empty = tmp_path / "empty.yaml"
    empty.write_text(yaml.safe_dump({"subscriptions": {}}))
    pruned = await runherald(applying, "rules", "apply", "-f", str(empty), "--prune", "-o", "json")
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["changes"] == [
        {"type": "subscription", "name": name, "action": "deleted"}
    ]
    assert (await get(applying, f"/api/v1/subscriptions/{name}"))[0] == 404
    async with Publisher(applying.settings) as publisher:
        await publisher.publish(run_dict(project, unique("u"), "completed", []))
    await asyncio.sleep(2.0)  # room for a delivery to a deleted subscription to arrive: none may
    assert len(receiver.requests_to(path)) == 1

    # The literal secret reached no topic and no log.
    for topic in ("rules", "deliveries", "status"):
        records = await read_topic(applying.settings, topic)
        assert all(SECRET.encode() not in (value or b"") for _, value in records), topic
    assert SECRET not in applying.log_path.read_text(errors="replace")
