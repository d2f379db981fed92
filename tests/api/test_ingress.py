"""`POST /api/v1/runs` in every shape (runherald.ingress), served on loopback: what would be published
(the publisher records instead of sending: the pipeline tests send for real), and every refusal a
JSON 4xx naming each adapter's reason, or 508 for a loop, with nothing published."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from runherald.api import create_api
from runherald.broker import free_port
from runherald.config import Settings
from runherald.publish import Publisher

MLRUN = orjson.loads(
    (Path(__file__).parents[1] / "fixtures" / "adapters" / "mlrun_webhook_body.json").read_bytes()
)
CE = {"specversion": "1.0", "id": "e1", "source": "ci", "type": "job.state"}
RUN = {"metadata": {"project": "p", "uid": "u1", "name": "train"}, "status": {"state": "completed"}}


class Recording(Publisher):
    """A publisher that keeps what it is asked to send."""

    def __init__(self) -> None:
        super().__init__(Settings(), create_topics=False)
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send_prepared(self, prepared: list[tuple[str, bytes]]) -> list[str]:
        self.sent += [(key, orjson.loads(value)) for key, value in prepared]
        return [key for key, _ in prepared]


class Served:
    def __init__(self) -> None:
        self.publisher = Recording()
        self.url = ""

    async def post(self, body: Any, path: str = "/api/v1/runs", **headers: str) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url + path, data=data, headers=headers) as response,
        ):
            assert response.content_type == "application/json"
            return response.status, await response.json()


async def no_run(record: Any) -> None:
    return None


@pytest.fixture
async def api() -> AsyncIterator[Served]:
    served = Served()
    app = create_api(
        publisher=served.publisher,
        record_for=lambda key: None,
        run_for=no_run,
        health=lambda: {},
        max_body_bytes=1 << 20,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    served.url = f"http://127.0.0.1:{port}"
    try:
        yield served
    finally:
        await runner.cleanup()


async def test_a_run_dict_and_ndjson_as_before(api: Served) -> None:
    assert await api.post(RUN) == (202, {"accepted": 1, "runs": ["p/u1"], "adapter": "mlrun-run"})
    second = {**RUN, "metadata": {**RUN["metadata"], "uid": "u2"}}
    code, body = await api.post(orjson.dumps(RUN) + b"\n" + orjson.dumps(second))
    assert (code, body["runs"]) == (202, ["p/u1", "p/u2"])
    assert [value for _, value in api.publisher.sent] == [RUN, RUN, second]


async def test_an_mlrun_webhook_body_publishes_its_runs_marked(api: Served) -> None:
    code, body = await api.post(MLRUN["body"])
    assert (code, body["adapter"]) == (202, "mlrun-webhook")
    ((key, run),) = api.publisher.sent
    assert key == "fraud-demo/8f2d6c1e4b7a4e0c9d3f5a1b2c3d4e5f"
    assert run["runherald"] == {"adapter": "mlrun-webhook", "notified_by_source": True}


async def test_cloudevents_structured_and_binary(api: Served) -> None:
    generic = {"project": "ci", "uid": "b1", "state": "running"}
    code, body = await api.post({**CE, "data": generic}, **{"Content-Type": "application/cloudevents+json"})
    assert (code, body["runs"], body["adapter"]) == (202, ["ci/b1"], "cloudevents")
    binary = {
        "ce-specversion": "1.0",
        "ce-id": "2",
        "ce-source": "ci",
        "ce-type": "t",
        "Content-Type": "application/json",
    }
    code, body = await api.post({**generic, "uid": "b2"}, **binary)
    assert (code, body["runs"], body["adapter"]) == (202, ["ci/b2"], "cloudevents")
    assert [run["metadata"]["uid"] for _, run in api.publisher.sent] == ["b1", "b2"]


async def test_the_generic_shape_with_a_default_project(api: Served) -> None:
    record = {"uid": "build-9", "state": "error", "error": "boom"}
    code, body = await api.post(record, "/api/v1/runs?project=ci")
    assert (code, body["runs"], body["adapter"]) == (202, ["ci/build-9"], "generic")
    code, body = await api.post(record)
    assert code == 400 and body["reasons"]["generic"] == "project is missing and there is no default project"
    code, body = await api.post(RUN, "/api/v1/runs?adapter=generic")
    assert code == 400 and list(body["reasons"]) == ["generic"]
    code, body = await api.post(RUN, "/api/v1/runs?project=a/b")
    assert (code, body) == (400, {"error": "project must not contain '/'"})
    code, body = await api.post(RUN, "/api/v1/runs?adapter=nope")
    assert code == 400 and body["error"].startswith("unknown adapter 'nope'")
    assert len(api.publisher.sent) == 1


async def test_an_unrecognised_body_names_each_adapters_reason_and_publishes_nothing(api: Served) -> None:
    code, body = await api.post([RUN, {"hello": "world"}])
    assert code == 400
    assert body["error"] == "item 1: no adapter recognised the body as runs"
    assert set(body["reasons"]) == {"cloudevents", "mlrun-webhook", "mlrun-run", "generic"}
    assert {"path": "item 1", "message": "generic: uid is missing or not a non-empty string"} in body[
        "problems"
    ]
    code, body = await api.post({**CE, "data": {"x": 1}}, **{"Content-Type": "application/cloudevents+json"})
    assert code == 400 and body["reasons"]["cloudevents"].startswith("data is no shape runherald knows")
    code, body = await api.post({"message": "cpu", "severity": "high"})  # an MLRun alert: no runs
    assert code == 400 and "without runs" in body["reasons"]["mlrun-webhook"]
    assert api.publisher.sent == []


async def test_admission_problems_keep_their_paths(api: Served) -> None:
    bad = {**RUN, "spec": {"notifications": [{"kind": "slak", "name": "n", "params": {"webhook": "x"}}]}}
    code, body = await api.post(bad)
    assert code == 400 and body["problems"][0]["path"] == "spec.notifications[0].kind"
    # Adapted runs meet the same admission: a run dict inside a CloudEvent.
    code, body = await api.post({**CE, "data": bad})
    assert code == 400 and body["problems"][0]["path"] == "spec.notifications[0].kind"
    assert api.publisher.sent == []


async def test_hops_are_stamped_and_a_loop_is_refused_with_508(api: Served) -> None:
    code, _ = await api.post(RUN, **{"X-Runherald-Hops": "2"})
    assert code == 202
    assert api.publisher.sent[-1][1]["runherald"] == {"hops": 2}
    code, body = await api.post(RUN, **{"X-Runherald-Hops": "4"})
    assert (code, body) == (
        508,
        {
            "error": "loop detected: X-Runherald-Hops is 4, over max_hops 3 (a notification that leads back "
            "into runherald's ingress)"
        },
    )
    carried = {**RUN, "runherald": {"hops": 9}}  # a run that says it has come back often
    assert (await api.post(carried))[0] == 508
    code, body = await api.post(RUN, **{"X-Runherald-Hops": "many"})
    assert code == 400 and body["error"] == "X-Runherald-Hops must be a non-negative integer, not 'many'"
    assert len(api.publisher.sent) == 1
