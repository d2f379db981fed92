"""Silences against a real worker on the embedded broker, through the CLI and the API: a silence mutes
the deliveries it matches (a run's own and rules' alike, on run fields, `notification` and `receiver`),
the ledger says which silence, and then it expires, by itself or by `silence expire`."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner, Result

from runherald.cli import cli
from runherald.config import Settings
from runherald.publish import Publisher
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, read_topic, run_dict, unique, wait_for, webhook

FAILED = ["error"]


async def api(worker: WorkerProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request to the worker's API, off the event loop: (status, decoded JSON body)."""

    def call() -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            worker.api + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    return await asyncio.to_thread(call)


async def invoke(worker: WorkerProcess, *args: str) -> Result:
    """`runherald ARGS --api <the worker>` in a thread (the CLI runs its own event loop)."""
    env = {"RUNHERALD_TOPIC_PREFIX": worker.prefix, "RUNHERALD_BROKER": None, "RUNHERALD_API": None}
    return await asyncio.to_thread(CliRunner().invoke, cli, [*args, "--api", worker.api], env=env)


async def write_records(settings: Settings, *records: tuple[str, Any]) -> None:
    """Write (key, value) records to the rules topic as `rules apply` does (value None: a tombstone),
    all to partition 0 in order: once the last is in force on a worker, so are those before it."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for key, value in records:
            raw = None if value is None else orjson.dumps(value)
            await producer.send_and_wait(settings.topic("rules"), value=raw, key=key.encode(), partition=0)
    finally:
        await producer.stop()


async def receiver_in_force(worker: WorkerProcess, name: str) -> None:
    """Wait until the worker holds receiver `name`: POST /api/v1/runs stops refusing a run naming it."""
    probe = run_dict(unique("probe"), unique("u"), "running", [{"name": "n", "params": {"receiver": name}}])
    probe["spec"]["notifications"][0]["when"] = ["completed"]

    async def taken() -> bool:
        code, _ = await api(worker, "POST", "/api/v1/runs", probe)
        return code == 202

    await wait_for(taken, timeout=20)


async def notifications(worker: WorkerProcess, project: str, uid: str) -> dict[str, Any]:
    code, body = await api(worker, "GET", f"/api/v1/runs/{project}/{uid}/notifications")
    return body if code == 200 else {}


async def settled(worker: WorkerProcess, project: str, uid: str, *names: str) -> dict[str, Any]:
    """The run's notification statuses once each named one is no longer pending."""

    async def done() -> dict[str, Any]:
        found = await notifications(worker, project, uid)
        ready = all(found.get(name, {}).get("status") in {"sent", "error", "skipped"} for name in names)
        return found if ready else {}

    result: dict[str, Any] = await wait_for(done, timeout=30)
    return result


async def publish(worker: WorkerProcess, *runs: dict[str, Any]) -> None:
    async with Publisher(worker.settings) as publisher:
        await publisher.publish_many(list(runs))


async def add_silence(worker: WorkerProcess, *matchers: str, duration: str = "1h") -> str:
    code, body = await api(
        worker, "POST", "/api/v1/silences", {"matchers": list(matchers), "duration": duration, "comment": "t"}
    )
    assert code == 201, body
    return str(body["id"])


async def test_a_silence_mutes_then_expires_by_itself(
    worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    project = unique("p")
    added = await invoke(
        worker, "silence", "add", f'project="{project}"', "--duration", "5s", "--comment", "maint"
    )
    assert added.exit_code == 0, added.output
    silence_id = added.stdout.strip()
    assert silence_id and "\n" not in silence_id  # the id alone

    muted = run_dict(project, unique("u"), "error", [webhook("hook", receiver.url("/muted"), when=FAILED)])
    await publish(worker, muted)
    status = await settled(worker, project, muted["metadata"]["uid"], "hook")
    assert status["hook"]["status"] == "skipped"
    assert status["hook"]["reason"] == f"muted by silence {silence_id} (maint)"
    code, run = await api(worker, "GET", f"/api/v1/runs/{project}/{muted['metadata']['uid']}")
    assert code == 200 and run["status"]["notifications"]["hook"]["status"] == "skipped"

    async def expired() -> bool:
        code, body = await api(worker, "GET", f"/api/v1/silences/{silence_id}")
        return code == 200 and body["state"] == "expired"

    await wait_for(expired, timeout=10)
    sent = run_dict(project, unique("u"), "error", [webhook("hook", receiver.url("/after"), when=FAILED)])
    await publish(worker, sent)
    await receiver.wait_for_requests(1, path="/after", within=20)
    status = await settled(worker, project, sent["metadata"]["uid"], "hook")
    assert status["hook"]["status"] == "sent"
    assert receiver.requests_to("/muted") == []  # never sent, not even late


async def test_silences_on_notification_and_receiver_mute_rules_and_runs_alike(
    worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    project, rule, target = unique("p"), unique("rule-"), unique("recv-")
    notification = f"{rule}/{target}"
    await write_records(
        worker.settings,
        (
            f"rule/{rule}",
            {"name": rule, "matchers": [f'project="{project}"'], "when": FAILED, "receivers": [target]},
        ),
        (
            f"receiver/{target}",
            {
                "name": target,
                "kind": "webhook",
                "params": {"url": receiver.url("/rule")},
                "secret_params": {},
            },
        ),
    )
    await receiver_in_force(worker, target)

    def failing_run() -> dict[str, Any]:
        own = webhook("own", receiver.url("/own"), when=FAILED)
        named = {"name": "named", "when": FAILED, "params": {"receiver": target}}
        return run_dict(project, unique("u"), "error", [own, named])

    # notification="{rule}/{receiver}": that rule's delivery only.
    by_notification = await add_silence(worker, f'notification="{notification}"')
    first = failing_run()
    await publish(worker, first)
    status = await settled(worker, project, first["metadata"]["uid"], "own", "named", notification)
    assert status[notification]["status"] == "skipped"
    assert by_notification in status[notification]["reason"]
    assert (status["own"]["status"], status["named"]["status"]) == ("sent", "sent")
    assert len(receiver.requests_to("/rule")) == 1  # the run's own notification naming the receiver

    # receiver="...": the rule's delivery and the run's own notification that names the receiver.
    expired = await invoke(worker, "silence", "expire", by_notification)
    assert expired.exit_code == 0 and expired.stdout == f"silence {by_notification} expired\n", expired.output
    by_receiver = await add_silence(worker, f'receiver="{target}"', f'project="{project}"')
    second = failing_run()
    await publish(worker, second)
    status = await settled(worker, project, second["metadata"]["uid"], "own", "named", notification)
    assert status[notification]["status"] == status["named"]["status"] == "skipped"
    assert by_receiver in status[notification]["reason"] and by_receiver in status["named"]["reason"]
    assert status["own"]["status"] == "sent"
    assert len(receiver.requests_to("/rule")) == 1 and len(receiver.requests_to("/own")) == 2

    code, body = await api(worker, "DELETE", f"/api/v1/silences/{by_receiver}")
    assert code == 200 and body["state"] == "expired" and body["already_expired"] is False
    third = failing_run()
    await publish(worker, third)
    status = await settled(worker, project, third["metadata"]["uid"], "own", "named", notification)
    assert {status[name]["status"] for name in ("own", "named", notification)} == {"sent"}
    await receiver.wait_for_requests(3, path="/rule")


async def test_silences_survive_a_worker_restart(start_worker: Any, receiver: WebhookReceiver) -> None:
    first: WorkerProcess = start_worker()
    project = unique("p")
    silence_id = await add_silence(first, f'project="{project}"', 'labels.team="vision"')
    first.stop()
    second = first.restarted()
    try:
        await asyncio.to_thread(second.wait_ready)
        code, body = await api(second, "GET", "/api/v1/silences")
        assert code == 200 and silence_id in [item["id"] for item in body["silences"]]
        run = run_dict(
            project,
            unique("u"),
            "error",
            [webhook("hook", receiver.url("/restart"), when=FAILED)],
            labels={"team": "vision"},
        )
        other = run_dict(
            project,
            unique("u"),
            "error",
            [webhook("hook", receiver.url("/restart-other"), when=FAILED)],
            labels={"team": "nlp"},
        )
        await publish(second, run, other)
        status = await settled(second, project, run["metadata"]["uid"], "hook")
        assert status["hook"]["status"] == "skipped" and silence_id in status["hook"]["reason"]
        await receiver.wait_for_requests(1, path="/restart-other", within=20)
        assert receiver.requests_to("/restart") == []
    finally:
        second.stop()


async def test_silence_list_get_expire_and_bad_input(worker: WorkerProcess) -> None:
    project = unique("p")
    ids = []
    for team in ("vision", "nlp"):
        added = await invoke(
            worker,
            "silence",
            "add",
            f'project="{project}"',
            f'labels.team="{team}"',
            "--duration",
            "2h",
            "--comment",
            f"upgrade of {team}",
            "--author",
            "alice",
        )
        assert added.exit_code == 0, added.output
        ids.append(added.stdout.strip())
    listed = await invoke(worker, "silence", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATE", "ENDS", "MATCHERS", "AUTHOR", "COMMENT"]
    mine = {line.split()[0]: line for line in lines[1:] if line.split()[0] in ids}
    assert set(mine) == set(ids)
    assert mine[ids[0]].split()[1] == "active"
    assert re.search(f'project="{project}" labels.team="vision" +alice +upgrade of vision$', mine[ids[0]])

    expired = await invoke(worker, "silence", "expire", ids[0])
    assert expired.exit_code == 0 and expired.stdout == f"silence {ids[0]} expired\n"
    again = await invoke(worker, "silence", "expire", ids[0])
    assert again.exit_code == 0 and again.stdout.startswith(f"silence {ids[0]} was already expired")
    active = await invoke(worker, "silence", "list", "-o", "json")
    shown = {item["id"]: item for item in json.loads(active.stdout)}
    assert ids[1] in shown and ids[0] not in shown and shown[ids[1]]["author"] == "alice"
    gone = await invoke(worker, "silence", "list", "--expired")
    assert gone.exit_code == 0
    expired_rows = [line.split() for line in gone.stdout.splitlines() if line.startswith(ids[0])]
    assert expired_rows and expired_rows[0][1] == "expired"
    assert ids[1] not in gone.stdout
    got = await invoke(worker, "silence", "get", ids[0], "-o", "json")
    assert json.loads(got.stdout)["state"] == "expired"
    table = await invoke(worker, "silence", "get", ids[1])
    assert re.search(r"^STATE: +active$", table.stdout, re.M)
    assert re.search(f'^MATCHERS: +project="{project}" labels.team="nlp"$', table.stdout, re.M)
    missing = await invoke(worker, "silence", "expire", "no-such-silence")
    assert missing.exit_code == 1 and "silence no-such-silence not found" in missing.stderr

    # A silence to come is pending, and can be expired before it starts.
    start = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
    pending = await invoke(
        worker,
        "silence",
        "add",
        f'project="{project}"',
        "--duration",
        "1h",
        "--comment",
        "later",
        "--start",
        start,
    )
    assert pending.exit_code == 0, pending.output
    code, body = await api(worker, "GET", f"/api/v1/silences/{pending.stdout.strip()}")
    assert code == 200 and body["state"] == "pending"
    code, body = await api(worker, "DELETE", f"/api/v1/silences/{pending.stdout.strip()}")
    assert code == 200 and body["state"] == "expired"

    for args, path in [
        (['project~"x"', "--duration", "1h", "--comment", "c"], "silence.matchers[0]"),
        (['colour="red"', "--duration", "1h", "--comment", "c"], "silence.matchers[0]"),
        (['project="x"', "--duration", "1h"], "silence.comment"),
        (['project="x"', "--duration", "2x", "--comment", "c"], "silence.duration"),
        (['project="x"', "--comment", "c"], "silence.duration"),
        (["--duration", "1h", "--comment", "c"], "silence.matchers"),
        (['project="x"', "--duration", "1h", "--comment", "c", "--author", "a b"], "silence.author"),
    ]:
        refused = await invoke(worker, "silence", "add", *args)
        assert refused.exit_code == 2, (args, refused.output)
        assert refused.stderr.startswith("runherald silence add: the silence has 1 problem"), refused.stderr
        assert f"\n{path}: " in refused.stderr, refused.stderr

    # What only the API can tell (the clock): a silence that has already ended; fields set by it.
    past = datetime.fromtimestamp(time.time() - 7200, UTC).isoformat()
    code, body = await api(
        worker,
        "POST",
        "/api/v1/silences",
        {"matchers": ['project="x"'], "starts_at": past, "duration": "1h", "comment": "c", "id": "mine"},
    )
    assert code == 400 and body["error"] == "the silence has 2 problems; not added"
    assert [problem["path"] for problem in body["problems"]] == ["silence.id", "silence.ends_at"]
    assert (await api(worker, "GET", "/api/v1/silences?expired=maybe"))[0] == 400
    refused = await invoke(
        worker, "silence", "add", 'project="x"', "--duration", "1h", "--comment", "c", "--start", past
    )
    assert refused.exit_code == 2 and "the silence has 1 problem" in refused.stderr, refused.output


async def test_silences_expired_over_five_days_ago_are_deleted(worker: WorkerProcess) -> None:
    old, recent = unique("old-"), unique("recent-")
    now = time.time()

    def record(silence_id: str, ended: float) -> tuple[str, dict[str, Any]]:
        iso = [datetime.fromtimestamp(t, UTC).isoformat() for t in (ended - 3600, ended)]
        value = {"id": silence_id, "matchers": ['project="x"'], "starts_at": iso[0], "ends_at": iso[1]}
        return f"silence/{silence_id}", {**value, "author": "bob", "comment": "old", "created_at": iso[0]}

    await write_records(worker.settings, record(old, now - 6 * 86400), record(recent, now - 4 * 86400))

    async def loaded() -> bool:
        return (await api(worker, "GET", f"/api/v1/silences/{recent}"))[0] == 200

    await wait_for(loaded)
    code, body = await api(worker, "GET", "/api/v1/silences?expired=true")
    shown = [item["id"] for item in body["silences"]]
    assert code == 200 and recent in shown and old not in shown

    async def deleted() -> bool:
        return (await api(worker, "GET", f"/api/v1/silences/{old}"))[0] == 404

    await wait_for(deleted)
    records = await read_topic(worker.settings, "rules")
    assert (f"silence/{old}".encode(), None) in records  # a tombstone: compaction removes it
    assert (await api(worker, "GET", f"/api/v1/silences/{recent}"))[0] == 200
