"""The `subscriptions:` section of the configuration document on a real worker and the embedded broker:
checked offline by `check-config`, applied by `rules apply -f` (the literal secret sealed before it
reaches the rules topic, a re-apply `unchanged`), in force at once (a matching run's state change arrives
as a signed CloudEvent the reference Standard Webhooks library verifies), refused whole with its paths
when wrong, and deleted by `rules apply --prune` once the file no longer holds it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import standardwebhooks
import yaml

from runherald.broker import EmbeddedBroker
from runherald.publish import Publisher
from runherald.testing import WebhookReceiver

from .harness import WorkerProcess, api_get, cli, own_worker, read_topic, request, run_dict, unique

SECRET = "whsec_YXBwbGllZC1mcm9tLWEtZG9jdW1lbnQtc2VjcmV0"  # a literal: sealed before it is stored


@pytest.fixture(scope="module")
def applying(broker: EmbeddedBroker, worker_logs: Path) -> Iterator[WorkerProcess]:
    """A worker of this module's own: --prune deletes whatever else its rules topic holds."""
    with own_worker(broker.url, worker_logs) as process:
        yield process


async def test_a_subscription_applied_from_a_file_delivers_and_prune_removes_it(
    applying: WorkerProcess, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    project, name = unique("p"), unique("doc")
    path = f"/from-file-{project}"
    subscription = {"url": receiver.url(path), "matchers": [f'project="{project}"'], "states": ["completed"]}
    file = tmp_path / "subscriptions.yaml"
    file.write_text(yaml.safe_dump({"subscriptions": {name: {**subscription, "secret": SECRET}}}))

    checked = await cli(applying, "check-config", str(file))
    assert checked.returncode == 0 and "1 subscription: OK" in checked.stdout, checked.stderr
    done = await cli(applying, "rules", "apply", "-f", str(file), "-o", "json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["changes"] == [{"type": "subscription", "name": name, "action": "created"}]
    assert [w["path"] for w in answer["warnings"]] == [f"subscriptions.{name}.secret"]
    again = await cli(applying, "rules", "apply", "-f", str(file), "-o", "json")
    assert again.returncode == 0 and json.loads(again.stdout)["changes"] == [
        {"type": "subscription", "name": name, "action": "unchanged"}
    ]
    code, shown = await api_get(applying, f"/api/v1/subscriptions/{name}")
    assert code == 200 and shown["states"] == ["completed"] and set(shown["secret"]) == {"sealed"}

    # In force: a matching run's completed state arrives, signed; its running state is not wanted.
    uid = unique("u")
    async with Publisher(applying.settings) as publisher:
        await publisher.publish(run_dict(project, uid, "running", []))
        await publisher.publish(run_dict(project, uid, "completed", [], last_update="2026-12-05T10:05:00"))
        await receiver.wait_for_requests(1, path=path, within=20)
    (delivered,) = receiver.requests_to(path)
    event = standardwebhooks.Webhook(SECRET).verify(delivered.body, dict(delivered.headers))
    assert (event["type"], event["subject"]) == ("io.runherald.run.state", f"{project}/{uid}")
    assert event["data"]["status"]["state"] == "completed"

    # A wrong subscription is refused whole, with its paths, by the CLI's own check and by the API:
    # nothing applied.
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump({"subscriptions": {name: {"url": "ftp://x", "states": ["complete"]}}}))
    refused = await cli(applying, "rules", "apply", "-f", str(wrong))
    assert refused.returncode == 2
    assert f"subscriptions.{name}.url" in refused.stderr
    assert f"subscriptions.{name}.states[0]: unknown state 'complete'" in refused.stderr
    document = {"subscriptions": {name: {"url": receiver.url(path), "sates": ["error"]}}}
    code, body = await request(applying, "PUT", "/api/v1/config", {"document": document})
    assert code == 400 and body["problems"] == [
        {"path": f"subscriptions.{name}.sates", "message": "unknown field 'sates' (did you mean 'states'?)"}
    ]
    assert (await api_get(applying, f"/api/v1/subscriptions/{name}"))[1]["url"] == receiver.url(path)

    # --prune deletes the subscription the file no longer holds: later runs are not sent to it.
    empty = tmp_path / "empty.yaml"
    empty.write_text(yaml.safe_dump({"subscriptions": {}}))
    pruned = await cli(applying, "rules", "apply", "-f", str(empty), "--prune", "-o", "json")
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["changes"] == [
        {"type": "subscription", "name": name, "action": "deleted"}
    ]
    assert (await api_get(applying, f"/api/v1/subscriptions/{name}"))[0] == 404
    async with Publisher(applying.settings) as publisher:
        await publisher.publish(run_dict(project, unique("u"), "completed", []))
    await asyncio.sleep(2.0)  # room for a delivery to a deleted subscription to arrive: none may
    assert len(receiver.requests_to(path)) == 1

    # The literal secret reached no topic and no log.
    for topic in ("rules", "deliveries", "status"):
        records = await read_topic(applying.settings, topic)
        assert all(SECRET.encode() not in (value or b"") for _, value in records), topic
    assert SECRET not in applying.log_path.read_text(errors="replace")
