"""Run sources on the embedded broker: topics other producers write (--run-topics, --run-topic-pattern),
in every shape runherald adapts, re-keyed through the runs topic so each run keeps its order, with
unrecognised and looping records dead-lettered while the stream goes on."""

from __future__ import annotations

import asyncio
import copy
import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from runherald.broker import EmbeddedBroker
from runherald.config import Settings
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, api_get, fast_worker, read_topic, run_dict, unique, wait_for, webhook

FIXTURES = Path(__file__).parents[1] / "fixtures" / "adapters"
MLRUN_BODY = orjson.loads((FIXTURES / "mlrun_webhook_body.json").read_bytes())["body"]


class Sources:
    """One worker reading a named topic of 3 partitions and a pattern, and a producer that writes them."""

    def __init__(self, worker: WorkerProcess, tag: str) -> None:
        self.worker = worker
        self.tag = tag
        self.topic = f"{tag}-src.jobs"

    @property
    def settings(self) -> Settings:
        return self.worker.settings


async def create_topics(settings: Settings, *topics: tuple[str, int]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name, partitions in topics])
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def sources(broker: EmbeddedBroker, worker_logs: Path) -> Iterator[Sources]:
    tag = unique("s")
    worker = fast_worker(
        broker.url,
        unique("t") + ".",
        unique("g"),
        worker_logs,
        RUNHERALD_RUN_TOPICS=f"{tag}-src.jobs,{tag}-absent",
        RUNHERALD_RUN_TOPIC_PATTERN=rf"{tag}-ci\..*",
    )
    asyncio.run(create_topics(worker.settings, (f"{tag}-src.jobs", 3)))
    worker.start()
    try:
        worker.wait_ready()
        yield Sources(worker, tag)
    finally:
        worker.stop()


def _put(api: str, path: str, body: Any) -> tuple[int, Any]:
    sent = urllib.request.Request(
        api + path, data=json.dumps(body).encode(), method="PUT", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(sent, timeout=15) as response:
        return response.status, json.loads(response.read())


async def rule_for(worker: WorkerProcess, project: str, url: str, when: list[str]) -> None:
    """A rule notifying every run of `project` in these states through a webhook receiver."""
    name = f"r-{project}"
    document = {
        "receivers": [{"name": name, "kind": "webhook", "params": {"url": url}}],
        "rules": [{"name": name, "matchers": [f'project="{project}"'], "receivers": [name], "when": when}],
    }
    code, _ = await asyncio.to_thread(_put, worker.api, "/api/v1/config", {"document": document})
    assert code == 200


async def produce(
    settings: Settings, topic: str, *records: tuple[bytes | None, Any, list[tuple[str, bytes]]]
) -> None:
    """Write (key, value, headers) records one after the other, each acknowledged before the next."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for key, value, headers in records:
            raw = value if isinstance(value, bytes) else orjson.dumps(value)
            await producer.send_and_wait(topic, value=raw, key=key, headers=headers)
    finally:
        await producer.stop()


def notified(receiver: WebhookReceiver, path: str) -> list[tuple[str, str]]:
    """(uid, state) of each run notified to a path, in arrival order."""
    found = []
    for request in receiver.requests_to(path):
        for run in request.json().get("runs", []):
            found.append((run["metadata"]["uid"], run["status"]["state"]))
    return found


def generic(project: str, uid: str, state: str = "completed") -> dict[str, Any]:
    return {"project": project, "uid": uid, "name": "nightly", "state": state, "results": {"passed": 12}}


CE = {"specversion": "1.0", "source": "ci.example", "type": "job.state"}


async def test_each_shape_over_kafka_becomes_a_run_whose_rules_notify(
    sources: Sources, receiver: WebhookReceiver
) -> None:
    project = unique("p")
    await rule_for(sources.worker, project, receiver.url("/rule"), ["completed"])
    own = run_dict(project, "own-run", "completed", [webhook("mine", receiver.url("/own"))])
    mlrun = copy.deepcopy(MLRUN_BODY)
    mlrun_run = mlrun["runs"][0]
    mlrun_run["metadata"].update(project=project, uid="mlrun-run")
    mlrun_run["spec"]["notifications"][0]["params"]["url"] = receiver.url("/mlrun-own")
    binary = [
        (name, value.encode())
        for name, value in [
            ("ce_specversion", "1.0"),
            ("ce_id", "b1"),
            ("ce_source", "ci"),
            ("ce_type", "job.state"),
            ("content-type", "application/json"),
        ]
    ]
    await produce(
        sources.settings,
        sources.topic,
        (uuid.uuid4().bytes, own, []),  # keyed randomly
        (project.encode(), mlrun, []),  # keyed by project
        (None, generic(project, "generic-run"), []),
        (b"x", {**CE, "id": "s1", "data": generic(project, "ce-structured")}, []),
        (b"y", generic(project, "ce-binary"), binary),
    )
    expected = {"own-run", "mlrun-run", "generic-run", "ce-structured", "ce-binary"}
    await wait_for(lambda: {uid for uid, _ in notified(receiver, "/rule")} == expected, timeout=30)
    await receiver.wait_for_requests(1, path="/own", within=10)
    assert notified(receiver, "/own") == [("own-run", "completed")]
    # The MLRun run's own webhook was sent by MLRun: runherald does not send it again.
    await asyncio.sleep(1.0)
    assert receiver.requests_to("/mlrun-own") == []
    assert sorted(notified(receiver, "/rule")) == sorted((uid, "completed") for uid in expected)
    (mlrun_notice,) = [r for r in receiver.requests_to("/rule") if "mlrun-run" in r.text]
    assert mlrun_notice.json()["runs"][0]["status"]["results"] == {"accuracy": 0.97}
    # Each run went through runherald's runs topic under its own key.
    keys = {key for key, _ in await read_topic(sources.settings, "runs")}
    assert {f"{project}/{uid}".encode() for uid in expected} <= keys


@pytest.mark.parametrize("keying", ["project", "random"])
async def test_a_foreign_topic_keyed_differently_keeps_each_runs_order(
    sources: Sources, receiver: WebhookReceiver, keying: str
) -> None:
    """Keyed by project, a run's states reach the runs topic under the run's own key in the order the
    source holds them. Keyed at random (a run's states on different partitions of the source, which
    Kafka does not order against each other), each state is still notified once and the run ends in
    its latest state, by last_update. Deliveries are sent concurrently, so the receiver's arrival order
    is not what is checked."""
    project = unique("p")
    await rule_for(sources.worker, project, receiver.url("/order"), ["running", "completed", "error"])
    uids = [f"run-{i}" for i in range(6)]
    final = {uid: "error" if uid == "run-5" else "completed" for uid in uids}
    records = []
    for step, state in enumerate(("running", "completed")):
        for uid in uids:
            key = project.encode() if keying == "project" else uuid.uuid4().bytes
            event = generic(project, uid, final[uid] if step else state)
            event["last_update"] = f"2026-12-05T08:00:0{step}+00:00"
            records.append((key, event, []))
    await produce(sources.settings, sources.topic, *records)
    expected = sorted((uid, state) for uid in uids for state in ("running", final[uid]))
    finals = sorted(final.items())
    await wait_for(lambda: set(finals) <= set(notified(receiver, "/order")), timeout=30)
    await asyncio.sleep(1.0)  # nothing more arrives
    got = sorted(notified(receiver, "/order"))
    if keying == "project":
        assert got == expected
    else:  # a running state read after its run's final one is older by last_update: dropped, not sent
        assert set(got) <= set(expected) and len(got) == len(set(got)), got
        assert sorted(pair for pair in got if pair[1] != "running") == finals
    for uid in uids:
        status, run = await api_get(sources.worker, f"/api/v1/runs/{project}/{uid}")
        assert (status, run["status"]["state"]) == (200, final[uid]), uid
    if keying == "project":
        republished: dict[str, list[str]] = {}
        for key, value in await read_topic(sources.settings, "runs"):
            run = orjson.loads(value) if value else {}
            meta = run.get("metadata") or {}
            if key == f"{project}/{meta.get('uid')}".encode():
                republished.setdefault(meta["uid"], []).append(run["status"]["state"])
        assert republished == {uid: ["running", final[uid]] for uid in uids}


async def test_an_unrecognised_record_is_dead_lettered_with_each_reason_and_the_next_goes_on(
    sources: Sources, receiver: WebhookReceiver
) -> None:
    project = unique("p")
    await rule_for(sources.worker, project, receiver.url("/next"), ["completed"])
    marker = unique("bad")
    looping = [("X-Runherald-Hops", b"4")]
    await produce(
        sources.settings,
        sources.topic,
        (b"k", {"marker": marker, "hello": "world"}, []),
        (b"k", generic(project, f"{marker}-loop"), looping),
        (b"k", generic(project, "after-the-bad-ones"), []),
    )
    await wait_for(lambda: notified(receiver, "/next") == [("after-the-bad-ones", "completed")], timeout=30)

    async def dead_letters() -> list[dict[str, Any]]:
        letters = [
            orjson.loads(value) for _, value in await read_topic(sources.settings, "dead-letter") if value
        ]
        return [letter for letter in letters if marker in orjson.dumps(letter.get("payload")).decode()]

    unrecognised, loop = await wait_for(dead_letters, timeout=10)
    assert unrecognised["stage"] == "source"
    assert unrecognised["source"]["topic"] == sources.topic
    assert set(unrecognised["reasons"]) == {"cloudevents", "mlrun-webhook", "mlrun-run", "generic"}
    assert unrecognised["reasons"]["generic"] == "uid is missing or not a non-empty string"
    assert "no adapter recognised the record" in unrecognised["reason"]
    assert unrecognised["payload"] == {"marker": marker, "hello": "world"}
    assert loop["reason"].startswith("loop detected: X-Runherald-Hops is 4, over max_hops 3")
    assert all(uid != f"{marker}-loop" for uid, _ in notified(receiver, "/next"))


async def test_a_topic_created_later_that_matches_the_pattern_is_read(
    sources: Sources, receiver: WebhookReceiver
) -> None:
    project = unique("p")
    await rule_for(sources.worker, project, receiver.url("/pattern"), ["completed"])
    matching, other = f"{sources.tag}-ci.{unique('new')}", f"{sources.tag}-cix-{unique('other')}"
    await create_topics(sources.settings, (matching, 2), (other, 1))
    await produce(sources.settings, other, (None, generic(project, "not-a-source"), []))
    await produce(sources.settings, matching, (None, generic(project, "from-a-new-topic"), []))
    await wait_for(lambda: notified(receiver, "/pattern"), timeout=40)
    await asyncio.sleep(1.0)
    assert notified(receiver, "/pattern") == [("from-a-new-topic", "completed")]
