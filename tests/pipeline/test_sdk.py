"""The Python SDK against a real worker (with bearer tokens): `runherald.Client` publishes and reads
statuses, `RunObject.refresh()` and `RunObject.wait_for_completion()` follow a run through the API,
with or without notifications (completed, error with its text, raise_on_failure=False, timeout),
refusals carry the API's problems, rules and silences are managed through it, and `subscribe`
streams a run's states in order."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runherald import Client
from runherald.api_client import ApiProblems
from runherald.auth import new_token
from runherald.broker import EmbeddedBroker
from runherald.errors import (
    ApiError,
    ApiNotFound,
    MLRunRuntimeError,
    MLRunTimeoutError,
    RunFailedError,
    RunTimeoutError,
)
from runherald.model import RunObject
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, own_worker, run_dict, tokens_file, unique, wait_for, webhook

ADMIN = new_token()
READER = new_token()


@pytest.fixture(scope="module")
def sdk_worker(
    broker: EmbeddedBroker, worker_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A worker of this module's own (its rules and silences touch no other module's runs), with tokens."""
    path = tokens_file(
        tmp_path_factory.mktemp("sdk"), ("sdk-admin", ADMIN, ["admin"]), ("sdk-reader", READER, ["read"])
    )
    with own_worker(broker.url, worker_logs, RUNHERALD_API_TOKENS_FILE=str(path)) as process:
        yield process


@pytest.fixture
def client(sdk_worker: WorkerProcess) -> Client:
    return Client(sdk_worker.api, ADMIN)


def a_run(project: str, uid: str, state: str, receiver: WebhookReceiver, **extra: Any) -> RunObject:
    hook = webhook("hook", receiver.url(f"/{project}/{uid}"))
    return RunObject.from_dict(run_dict(project, uid, state, [hook], **extra))


async def test_publish_then_status_shows_the_notification_sent(
    client: Client, receiver: WebhookReceiver
) -> None:
    project, uid = unique("p"), unique("u")
    keys = await asyncio.to_thread(client.publish, a_run(project, uid, "completed", receiver))
    assert keys == [f"{project}/{uid}"]

    def sent() -> Any:
        try:
            return client.status(project, uid)["hook"]["status"] == "sent"
        except ApiNotFound:
            return False

    await wait_for(lambda: asyncio.to_thread(sent))
    assert len(receiver.requests_to(f"/{project}/{uid}")) == 1
    view = await asyncio.to_thread(client.status, f"{project}/{uid}")
    assert view["hook"]["states"]["completed"]["status"] == "sent"
    assert await asyncio.to_thread(client.status, run_dict(project, uid, "completed", [])) == view
    run = await asyncio.to_thread(client.run, project, uid)
    assert run["status"]["state"] == "completed"
    assert run["status"]["notifications"]["hook"]["status"] == "sent"


async def test_wait_for_completion_returns_completed_once_a_later_event_completes_the_run(
    client: Client, receiver: WebhookReceiver
) -> None:
    project, uid = unique("p"), unique("u")
    run = a_run(project, uid, "running", receiver)
    await asyncio.to_thread(client.publish, run)
    waiting = asyncio.create_task(asyncio.to_thread(run.wait_for_completion, timeout=30, client=client))
    await wait_for(lambda: asyncio.to_thread(_state_or_none, client, project, uid))
    await asyncio.sleep(0.5)
    assert not waiting.done()  # still running: it waits

    await asyncio.to_thread(client.publish, a_run(project, uid, "completed", receiver, results={"acc": 0.9}))
    assert await asyncio.wait_for(waiting, 30) == "completed"
    assert run.status.state == "completed"
    assert run.status.results == {"acc": 0.9}
    assert run.status.notifications["hook"]["status"] in ("pending", "sent")


async def test_wait_for_completion_raises_with_the_error_text_unless_told_not_to(
    client: Client, receiver: WebhookReceiver
) -> None:
    project, uid = unique("p"), unique("u")
    failing = a_run(project, uid, "error", receiver, extra_status={"error": "CUDA out of memory"})
    await asyncio.to_thread(client.publish, failing)
    run = a_run(project, uid, "running", receiver)  # the caller's copy, from before it failed

    with pytest.raises(RunFailedError) as raised:
        await asyncio.to_thread(run.wait_for_completion, timeout=30, client=client)
    assert isinstance(raised.value, MLRunRuntimeError)
    assert "CUDA out of memory" in str(raised.value)
    assert "state=error" in str(raised.value)
    assert raised.value.run["status"]["state"] == "error"
    assert run.status.state == "error"  # the object followed, even though it raised
    assert run.error == "CUDA out of memory"

    again = a_run(project, uid, "running", receiver)
    state = await asyncio.to_thread(
        again.wait_for_completion, timeout=30, raise_on_failure=False, client=client
    )
    assert state == "error"
    assert again.status.error == "CUDA out of memory"


async def test_wait_and_refresh_follow_a_run_without_notifications(client: Client) -> None:
    project, uid = unique("p"), unique("u")
    run = RunObject.from_dict(run_dict(project, uid, "running", []))
    await asyncio.to_thread(client.publish, run)
    await wait_for(lambda: asyncio.to_thread(_state_or_none, client, project, uid))
    assert (await asyncio.to_thread(run.refresh, client)).state() == "running"

    waiting = asyncio.create_task(asyncio.to_thread(run.wait_for_completion, timeout=30, client=client))
    await asyncio.to_thread(client.publish, run_dict(project, uid, "completed", [], results={"rows": 7}))
    assert await asyncio.wait_for(waiting, 30) == "completed"
    assert run.status.results == {"rows": 7}
    assert await asyncio.to_thread(client.status, project, uid) == {}


async def test_wait_for_completion_times_out_with_the_last_state(
    client: Client, receiver: WebhookReceiver
) -> None:
    project, uid = unique("p"), unique("u")
    run = a_run(project, uid, "running", receiver)
    await asyncio.to_thread(client.publish, run)
    with pytest.raises(RunTimeoutError) as raised:
        await asyncio.to_thread(run.wait_for_completion, sleep=0.2, timeout=3, client=client)
    assert isinstance(raised.value, MLRunTimeoutError)
    assert isinstance(raised.value, TimeoutError)
    assert f"run {project}/{uid} did not reach a terminal state within 3s" in str(raised.value)
    assert "its last state was running" in str(raised.value)


async def test_refresh_picks_up_a_new_state(client: Client, receiver: WebhookReceiver) -> None:
    project, uid = unique("p"), unique("u")
    run = a_run(project, uid, "running", receiver)
    run.status.artifacts = [{"metadata": {"key": "model"}, "spec": {"target_path": "s3://b/model.pkl"}}]
    await asyncio.to_thread(client.publish, a_run(project, uid, "running", receiver))
    await wait_for(lambda: asyncio.to_thread(_state_or_none, client, project, uid))

    await asyncio.to_thread(client.publish, a_run(project, uid, "completed", receiver, results={"loss": 0.1}))

    async def refreshed() -> bool:
        await asyncio.to_thread(run.refresh, client)
        return run.state() == "completed"

    await wait_for(refreshed)
    assert run.status.results == {"loss": 0.1}
    assert run.status.artifacts[0]["metadata"]["key"] == "model"  # kept, as MLRun's refresh keeps them


def _state_or_none(client: Client, project: str, uid: str) -> str | None:
    try:
        return str(client.run(project, uid)["status"]["state"])
    except ApiNotFound:
        return None


async def test_a_refused_publish_raises_with_the_problems_and_publishes_nothing(
    client: Client, receiver: WebhookReceiver
) -> None:
    project, good, bad = unique("p"), unique("u"), unique("u")
    wrong = run_dict(project, bad, "completed", [webhook("hook", receiver.url("/x"), kind="slak")])
    fine = run_dict(project, good, "completed", [webhook("hook", receiver.url("/x"))])
    with pytest.raises(ApiProblems) as raised:
        await asyncio.to_thread(client.publish, [fine, wrong])
    paths = [problem.path for problem in raised.value.problems]
    assert "[1].spec.notifications[0].kind" in paths
    assert raised.value.status == 400
    await asyncio.sleep(1)
    with pytest.raises(ApiNotFound):
        await asyncio.to_thread(client.run, project, good)


async def test_a_missing_or_weak_token_is_a_clear_error(sdk_worker: WorkerProcess) -> None:
    with pytest.raises(ApiError) as raised:
        await asyncio.to_thread(Client(sdk_worker.api, "").rules.list)
    assert raised.value.status == 401
    assert "RUNHERALD_TOKEN" in str(raised.value)
    with pytest.raises(ApiError) as refused:
        await asyncio.to_thread(Client(sdk_worker.api, READER).publish, run_dict("p", "u", "running", []))
    assert refused.value.status == 403
    assert READER not in str(refused.value)


async def test_rules_applied_through_the_client_notify_and_can_be_read_and_deleted(
    client: Client, receiver: WebhookReceiver
) -> None:
    project = unique("p")
    rule = f"{project}-failures"
    document = {
        "receivers": [
            {"name": f"{project}-hook", "kind": "webhook", "params": {"url": receiver.url(f"/{rule}")}}
        ],
        "rules": [
            {
                "name": rule,
                "matchers": [f'project="{project}"'],
                "when": ["error"],
                "receivers": [f"{project}-hook"],
            }
        ],
    }
    applied = await asyncio.to_thread(client.rules.apply, yaml.safe_dump(document))
    assert [(c["type"], c["action"]) for c in applied["changes"]] == [
        ("receiver", "created"),
        ("rule", "created"),
    ]
    assert rule in [found["name"] for found in await asyncio.to_thread(client.rules.list)]
    assert (await asyncio.to_thread(client.rules.get, rule))["matchers"] == [f'project="{project}"']
    again = await asyncio.to_thread(client.rules.apply, document)
    assert {c["action"] for c in again["changes"]} == {"unchanged"}

    uid = unique("u")
    await asyncio.to_thread(client.publish, run_dict(project, uid, "error", []))
    await wait_for(lambda: receiver.requests_to(f"/{rule}"))

    with pytest.raises(ApiProblems) as refused:
        await asyncio.to_thread(client.rules.apply, {"rules": [{"name": "x", "receivers": ["nowhere"]}]})
    assert any(p.path.startswith("rules.x") for p in refused.value.problems)

    deleted = await asyncio.to_thread(client.rules.delete, rule)
    assert deleted == {"name": rule, "action": "deleted"}
    with pytest.raises(ApiNotFound):
        await asyncio.to_thread(client.rules.get, rule)


async def test_silences_added_listed_and_expired_through_the_client(client: Client) -> None:
    project = unique("p")
    added = await asyncio.to_thread(
        client.silences.add, f'project="{project}"', duration="1h", comment="maintenance", author="sdk"
    )
    assert added["matchers"] == [f'project="{project}"']
    assert added["id"] in [s["id"] for s in await asyncio.to_thread(client.silences.list)]
    expired = await asyncio.to_thread(client.silences.expire, added["id"])
    assert expired["already_expired"] is False
    assert added["id"] not in [s["id"] for s in await asyncio.to_thread(client.silences.list)]

    with pytest.raises(ApiProblems) as refused:
        await asyncio.to_thread(client.silences.add, ['project=="x"'], duration="1h", comment="bad")
    assert [p.path for p in refused.value.problems] == ["silence.matchers[0]"]


async def test_subscriptions_added_listed_and_deleted_through_the_client(
    client: Client, receiver: WebhookReceiver
) -> None:
    name = unique("sub")
    added = await asyncio.to_thread(
        client.subscriptions.add,
        receiver.url("/events"),
        name=name,
        matchers=['project="alpha"'],
        states=["error"],
        secret="whsec_" + "A" * 32,
    )
    assert added["name"] == name
    assert "whsec_" not in str(added)
    assert name in [found["name"] for found in await asyncio.to_thread(client.subscriptions.list)]
    generated = await asyncio.to_thread(client.subscriptions.add, receiver.url("/events"))
    assert generated["name"]
    assert (await asyncio.to_thread(client.subscriptions.delete, name))["action"] == "deleted"
    await asyncio.to_thread(client.subscriptions.delete, generated["name"])
    assert name not in [found["name"] for found in await asyncio.to_thread(client.subscriptions.list)]


async def test_subscribe_streams_a_runs_states_in_order(client: Client, receiver: WebhookReceiver) -> None:
    project, uid, other = unique("p"), unique("u"), unique("u")
    seen: list[tuple[str, str]] = []

    async def follow() -> None:
        async for run in client.subscribe(project=project, state=["running", "completed"]):
            seen.append((run["metadata"]["uid"], run["status"]["state"]))
            if run["status"]["state"] == "completed":
                return

    following = asyncio.create_task(follow())
    await asyncio.sleep(1)  # the stream is open before the runs are published
    for state in ("running", "error", "completed"):
        await asyncio.to_thread(client.publish, a_run(project, uid, state, receiver))
    await asyncio.to_thread(client.publish, a_run(unique("p"), other, "running", receiver))
    await asyncio.wait_for(following, 30)
    assert seen == [(uid, "running"), (uid, "completed")]

    with pytest.raises(ApiProblems) as refused:
        async for _ in client.subscribe(state="finished"):
            pass
    assert [p.path for p in refused.value.problems] == ["state"]
