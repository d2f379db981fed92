"""Transitions on a real worker: runs of one name (different uids) completed → error → error → completed
fire `regressed` once and `recovered` once, published in order and out of order (ordered by
last_update); `state_changed` from completed to error fires once, recorded under the state
`completed>error`; `runherald status` shows them beside the plain state's delivery, which is unchanged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from runherald.broker import EmbeddedBroker
from runherald.cli import cli
from runherald.publish import Publisher
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, own_worker, request, run_dict, unique, wait_for

SEQUENCE = ("completed", "error", "error", "completed")


@pytest.fixture(scope="module")
def transitions_worker(broker: EmbeddedBroker, worker_logs: Path) -> Iterator[WorkerProcess]:
    """A worker of this module's own: its rules must not notify other modules' runs."""
    with own_worker(broker.url, worker_logs) as process:
        yield process


async def configure(worker: WorkerProcess, receiver: WebhookReceiver, project: str) -> dict[str, str]:
    """Three rules for the project; returns each one's receiver path."""
    paths = {rule: f"/{rule}-{project}" for rule in ("flips", "changed", "plain")}
    document = {
        "receivers": [
            {"name": f"hook-{rule}", "kind": "webhook", "params": {"url": receiver.url(path)}}
            for rule, path in paths.items()
        ],
        "rules": [
            {"name": "flips", "matchers": [f'project="{project}"'],
             "when": ["error", "regressed", "recovered"], "receivers": ["hook-flips"]},
            {"name": "changed", "matchers": [f'project="{project}"'],
             "when": [{"state_changed": {"from": ["completed"], "to": ["error"]}}],
             "receivers": ["hook-changed"]},
            {"name": "plain", "matchers": [f'project="{project}"'], "when": ["completed", "error"],
             "receivers": ["hook-plain"]},
        ],
    }  # fmt: skip
    code, body = await request(worker, "PUT", "/api/v1/config", {"document": document})
    assert code == 200, body
    return paths


def runs_of(project: str, name: str) -> list[dict[str, Any]]:
    return [
        run_dict(project, unique("u"), state, [], name=name, last_update=f"2026-12-05T10:00:0{i}+00:00")
        for i, state in enumerate(SEQUENCE)
    ]


async def statuses(worker: WorkerProcess, project: str, uid: str) -> dict[str, Any]:
    code, body = await request(worker, "GET", f"/api/v1/runs/{project}/{uid}/notifications")
    return body if code == 200 else {}


def uids_of(requests: list[Any]) -> list[str]:
    return [sent.json()["runs"][0]["metadata"]["uid"] for sent in requests]


async def settled(receiver: WebhookReceiver, path: str, count: int) -> None:
    """`count` requests arrived, and no more within another 2 s."""
    await receiver.wait_for_requests(count, path=path, within=30)
    await asyncio.sleep(2)
    assert len(receiver.requests_to(path)) == count


async def test_in_order_regressed_and_recovered_fire_once_each_and_state_changed_once(
    transitions_worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    project = unique("p")
    paths = await configure(transitions_worker, receiver, project)
    runs = runs_of(project, "train")
    async with Publisher(transitions_worker.settings) as publisher:
        for i, run in enumerate(runs):
            await publisher.publish(run)
            # The plain rule sends every run: the next is published once this one is evaluated.
            await receiver.wait_for_requests(i + 1, path=paths["plain"], within=30)
    uid = [run["metadata"]["uid"] for run in runs]

    # flips: error for both failed runs, regressed for the first of them, recovered for the last run.
    await settled(receiver, paths["flips"], 4)
    assert sorted(uids_of(receiver.requests_to(paths["flips"]))) == sorted([uid[1], uid[1], uid[2], uid[3]])
    await settled(receiver, paths["changed"], 1)
    assert uids_of(receiver.requests_to(paths["changed"])) == [uid[1]]
    keys = {sent.headers["Idempotency-Key"] for sent in receiver.requests_to(paths["flips"])}
    assert len(keys) == 4  # the regressed delivery is not the error delivery of the same run
    # The plain rule's deliveries are unaffected: one per run, for its state.
    assert uids_of(receiver.requests_to(paths["plain"])) == uid

    async def recorded(key: str, states: set[str]) -> dict[str, Any]:
        found = await statuses(transitions_worker, project, key)
        shown = {state for item in found.values() for state in item["states"]}
        done = all(s["status"] == "sent" for item in found.values() for s in item["states"].values())
        return found if shown == states and done else {}

    second = await wait_for(lambda: recorded(uid[1], {"error", "regressed", "completed>error"}), timeout=20)
    assert set(second["flips/hook-flips"]["states"]) == {"error", "regressed"}
    assert set(second["changed/hook-changed"]["states"]) == {"completed>error"}
    assert set(second["plain/hook-plain"]["states"]) == {"error"}
    fourth = await wait_for(lambda: recorded(uid[3], {"completed", "recovered"}), timeout=20)
    assert set(fourth["flips/hook-flips"]["states"]) == {"recovered"}

    # `runherald status` shows the transitions' entries.
    env = {
        "RUNHERALD_TOPIC_PREFIX": transitions_worker.prefix,
        "RUNHERALD_BROKER": None,
        "RUNHERALD_API": None,
    }
    args = ["status", f"{project}/{uid[1]}", "--json", "--api", transitions_worker.api]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["flips/hook-flips"]["states"]["regressed"]["status"] == "sent"
    assert shown["changed/hook-changed"]["states"]["completed>error"]["status"] == "sent"


async def test_out_of_order_arrival_still_fires_each_transition_once(
    transitions_worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    project = unique("p")
    paths = await configure(transitions_worker, receiver, project)
    runs = runs_of(project, "nightly")
    uid = [run["metadata"]["uid"] for run in runs]
    async with Publisher(transitions_worker.settings) as publisher:
        # last_update order is 0, 1, 2, 3; they arrive 3, 1, 0, 2 (the recovery first).
        for i, index in enumerate((3, 1, 0, 2)):
            await publisher.publish(runs[index])
            await receiver.wait_for_requests(i + 1, path=paths["plain"], within=30)

    await settled(receiver, paths["flips"], 4)
    flips: dict[str, list[str]] = {}
    for key in uid:
        found = await wait_for(lambda key=key: statuses(transitions_worker, project, key), timeout=20)
        flips[key] = sorted(found.get("flips/hook-flips", {}).get("states", {}))
    labels = [label for states in flips.values() for label in states]
    assert labels.count("regressed") == 1 and labels.count("recovered") == 1 and labels.count("error") == 2
    assert flips[uid[0]] == [] and "recovered" in flips[uid[3]]
    await settled(receiver, paths["changed"], 1)


async def test_two_workers_each_name_regresses_and_recovers_once(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    # A name's history and its runs live on different partitions: with six names on four partitions
    # shared by two workers, some histories are kept by one worker and their runs owned by the other.
    prefix, group = unique("t") + ".", unique("g")
    one: WorkerProcess = start_worker(prefix, group)
    start_worker(prefix, group)
    project = unique("p")
    paths = await configure(one, receiver, project)
    names = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")
    runs = {name: runs_of(project, name) for name in names}
    async with Publisher(one.settings) as publisher:
        for i in range(len(SEQUENCE)):
            for name in names:
                await publisher.publish(runs[name][i])
            await receiver.wait_for_requests(len(names) * (i + 1), path=paths["plain"], within=60)

    await settled(receiver, paths["flips"], 4 * len(names))
    # Per name: error twice (the plain state), regressed on the first failure, recovered on the last run.
    expected = [runs[name][i]["metadata"]["uid"] for name in names for i in (1, 1, 2, 3)]
    assert sorted(uids_of(receiver.requests_to(paths["flips"]))) == sorted(expected)
    await settled(receiver, paths["changed"], len(names))
    assert sorted(uids_of(receiver.requests_to(paths["changed"]))) == sorted(
        runs[name][1]["metadata"]["uid"] for name in names
    )
