"""The SDK without a worker: defaults from the environment as the CLI's, a light import, what it sends
for a run object, and the errors of an API that does not answer or does not know a run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

import runherald
from runherald import client as client_module
from runherald.broker import free_port
from runherald.client import Client, _subscribe_params, run_key
from runherald.errors import (
    ApiNotFound,
    ApiUnavailable,
    InvalidArgumentError,
    MLRunNotFoundError,
    PublishError,
)
from runherald.model import RunObject
from runherald.testing import Reply, WebhookReceiver


def _json(status: int, body: object) -> Reply:
    return Reply(status=status, body=json.dumps(body), content_type="application/json")


def test_url_and_token_default_to_the_clis_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNHERALD_API", raising=False)
    monkeypatch.delenv("RUNHERALD_TOKEN", raising=False)
    assert Client().url == "http://127.0.0.1:6066"
    monkeypatch.setenv("RUNHERALD_API", "https://herald.example:8443/")
    monkeypatch.setenv("RUNHERALD_TOKEN", "rh_secret-token")
    found = Client()
    assert found.url == "https://herald.example:8443"
    assert "rh_secret-token" not in repr(found)
    assert Client("http://other:1", "").url == "http://other:1"
    with pytest.raises(InvalidArgumentError, match="http:// or https://"):
        Client("ftp://herald")


def test_importing_the_sdk_imports_neither_kafka_nor_faust_nor_aiohttp() -> None:
    code = (
        "import sys\nfrom runherald import Client\nClient('http://127.0.0.1:1')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('faust', 'mode', 'aiokafka', 'aiohttp', 'jinja2', 'yaml', 'orjson', 'asyncio')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert runherald.Client is Client


def test_run_keys_from_each_way_of_naming_a_run() -> None:
    run = RunObject.from_dict({"metadata": {"project": "p", "uid": "u1"}})
    assert run_key("p", "u1") == run_key("p/u1") == run_key(run) == run_key(run.to_dict()) == ("p", "u1")
    with pytest.raises(InvalidArgumentError, match="project and a uid"):
        run_key({"metadata": {"project": "p"}})
    with pytest.raises(InvalidArgumentError, match="project and a uid"):
        run_key("p/")


def test_the_subscription_query_repeats_states_and_labels() -> None:
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert _subscribe_params("prod-*", ["error", "aborted"], {"team": "vision"}, since) == [
        ("project", "prod-*"),
        ("state", "error"),
        ("state", "aborted"),
        ("label", "team=vision"),
        ("since", "2026-01-02T03:04:05+00:00"),
    ]
    assert _subscribe_params(None, "error", "team=vision", timedelta(minutes=15)) == [
        ("state", "error"),
        ("label", "team=vision"),
        ("since", "900s"),
    ]


async def test_a_run_object_is_published_as_its_dict_with_datetimes_as_iso_text() -> None:
    async with WebhookReceiver() as receiver:
        receiver.reply("/api/v1/runs", _json(202, {"accepted": 1, "runs": ["p/u1"]}))
        run = RunObject.from_dict({"metadata": {"project": "p", "uid": "u1"}, "status": {"state": "running"}})
        run.status.last_update = datetime(2026, 1, 2, tzinfo=UTC)  # type: ignore[assignment]
        sdk = Client(receiver.url(""), "rh_token")
        assert await asyncio.to_thread(sdk.publish, run) == ["p/u1"]
        sent = receiver.requests_to("/api/v1/runs")[0]
        assert json.loads(sent.body)["status"] == {
            "state": "running",
            "last_update": "2026-01-02T00:00:00+00:00",
        }
        assert sent.headers["Authorization"] == "Bearer rh_token"
        with pytest.raises(PublishError, match="expected a run dict or a RunObject"):
            sdk.publish(42)  # type: ignore[arg-type]


def test_an_unreachable_api_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    sdk = Client(url)
    with pytest.raises(ApiUnavailable, match=f"cannot reach the API at {url}: connection refused"):
        sdk.status("p", "u")
    run = RunObject.from_dict({"metadata": {"project": "p", "uid": "u"}})
    with pytest.raises(ApiUnavailable):
        run.refresh(sdk)
    with pytest.raises(ApiUnavailable):
        run.wait_for_completion(timeout=5, client=sdk)


async def test_subscribing_to_an_unreachable_api_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ApiUnavailable, match=f"cannot reach the API at {url}"):
        async for _ in Client(url).subscribe(project="p"):
            pass


async def test_waiting_for_a_run_the_api_never_sees_ends_with_not_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "UNSEEN_GRACE", 0.5)
    async with WebhookReceiver() as receiver:
        receiver.reply("/api/v1/runs/p/u", _json(404, {"error": "run p/u not found"}))
        with pytest.raises(
            ApiNotFound, match=r"run p/u is not known to the API .* \(waited 0.5s for it\)"
        ) as raised:
            await asyncio.to_thread(Client(receiver.url("")).wait, "p", "u", sleep=0.1)
        assert isinstance(raised.value, MLRunNotFoundError)
        assert len(receiver.requests_to("/api/v1/runs/p/u")) >= 3  # it looked again, then gave up
