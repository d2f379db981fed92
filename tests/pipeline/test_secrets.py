"""No secret value in any topic, log line or API response, while the secrets are really used to send."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from runherald.deadletter import read_records
from runherald.publish import Publisher
from runherald.signing import verify
from runherald.testing._server import Reply
from runherald.testing.webhook import WebhookReceiver
from runherald.topics import TOPIC_NAMES

from .harness import WorkerProcess, run_dict, unique, wait_for, webhook

OK_HEADER = "scan-ok-header-3f9a1c"
SIGNING = "scan-signing-secret-b71e02"
API_HEADER = "scan-api-header-c4d8e6"
ENV_SIGNING = "scan-env-signing-9d2f47"
DIR_HEADER = "scan-dir-header-6a0b3e"
BAD_HEADER = "scan-bad-header-e81c5d"
RETRY_HEADER = "scan-retry-header-2b7f90"
FOREIGN_HEADER = "scan-foreign-header-71c3aa"
SECRETS = (OK_HEADER, SIGNING, API_HEADER, ENV_SIGNING, DIR_HEADER, BAD_HEADER, RETRY_HEADER, FOREIGN_HEADER)


def leaks(text: str | bytes, secrets: tuple[str, ...] = SECRETS) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [secret for secret in secrets if secret.encode() in data]


def status_of(worker: WorkerProcess, project: str, uid: str) -> dict[str, Any]:
    code, body = worker.get(f"/api/v1/runs/{project}/{uid}/notifications")
    return body if code == 200 else {}


def raw_get(worker: WorkerProcess, path: str) -> bytes:
    with urllib.request.urlopen(worker.api + path, timeout=5) as response:
        body: bytes = response.read()
        return body


async def test_no_secret_anywhere_while_secrets_are_used(
    start_worker: Any, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    # The Publisher here seals with the suite's public key (tests/conftest.py); the worker opens with
    # the matching private key (runherald.testing.worker).
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "scan-creds").write_text(json.dumps({"headers": {"X-Dir": DIR_HEADER}}))
    worker: WorkerProcess = start_worker(
        RUNHERALD_LOG_LEVEL="debug",
        RUNHERALD_RETRY_MAX_ATTEMPTS="2",
        RUNHERALD_SECRETS_DIR=str(secrets_dir),
        RUNHERALD_SECRET_SCAN_ENV_SIGNING=ENV_SIGNING,
    )
    project, by_sdk, by_api, foreign = unique("p"), unique("u"), unique("u"), unique("u")
    receiver.reply("/bad", Reply(status=400, body=f"rejected header {BAD_HEADER}"))
    receiver.reply("/retry", Reply(status=503, body=f"overloaded, header was {RETRY_HEADER}"))
    done = ["completed"]
    sdk_run = run_dict(
        project,
        by_sdk,
        "completed",
        [
            webhook(
                "ok",
                receiver.url("/ok"),
                when=done,
                secret_params={"headers": {"X-Auth": OK_HEADER}, "signing_secret": SIGNING},
            ),
            webhook("dir", receiver.url("/dir"), when=done, secret_params={"secret": "scan-creds"}),
            webhook(
                "bad", receiver.url("/bad"), when=done, secret_params={"headers": {"X-Auth": BAD_HEADER}}
            ),
        ],
    )
    api_run = run_dict(
        project,
        by_api,
        "completed",
        [
            webhook(
                "env",
                receiver.url("/env"),
                when=done,
                secret_params={
                    "headers": {"X-Auth": API_HEADER},
                    "signing_secret": "${RUNHERALD_SECRET_SCAN_ENV_SIGNING}",
                },
            ),
            webhook(
                "retry",
                receiver.url("/retry"),
                when=done,
                secret_params={"headers": {"X-Auth": RETRY_HEADER}},
            ),
        ],
    )
    foreign_run = run_dict(
        project,
        foreign,
        "completed",
        [
            webhook(
                "foreign",
                receiver.url("/foreign"),
                when=done,
                secret_params={"headers": {"X-Auth": FOREIGN_HEADER}},
            ),
        ],
    )

    async with Publisher(worker.settings) as publisher:
        await publisher.publish(sdk_run)
    request = urllib.request.Request(
        worker.api + "/api/v1/runs",
        data=orjson.dumps(api_run),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        responses = [response.read()]
    # A producer that is not runherald's puts literal secrets on the runs topic itself.
    producer = AIOKafkaProducer(bootstrap_servers=worker.settings.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(
            worker.settings.topic("runs"),
            value=orjson.dumps(foreign_run),
            key=f"{project}/{foreign}".encode(),
        )
    finally:
        await producer.stop()

    for path, count in {"/ok": 1, "/dir": 1, "/bad": 1, "/env": 1, "/retry": 2, "/foreign": 1}.items():
        await receiver.wait_for_requests(count, path=path, within=30)
    # The secrets were used: the right headers arrived and the signatures verify.
    ok, env = receiver.requests_to("/ok")[0], receiver.requests_to("/env")[0]
    assert ok.headers["X-Auth"] == OK_HEADER
    verify(SIGNING, ok.headers, ok.body)
    assert env.headers["X-Auth"] == API_HEADER
    verify(ENV_SIGNING, env.headers, env.body)
    assert receiver.requests_to("/dir")[0].headers["X-Dir"] == DIR_HEADER
    assert receiver.requests_to("/bad")[0].headers["X-Auth"] == BAD_HEADER
    assert receiver.requests_to("/retry")[0].headers["X-Auth"] == RETRY_HEADER
    assert receiver.requests_to("/foreign")[0].headers["X-Auth"] == FOREIGN_HEADER

    # Receivers see the run with secret_params REDACTED (a whole {"secret": name} reference is kept).
    for request_seen in receiver.requests:
        for notification in request_seen.json()["runs"][0]["spec"]["notifications"]:
            secret_params = notification["secret_params"]
            if secret_params == {"secret": "scan-creds"}:
                continue
            assert set(secret_params.values()) == {"REDACTED"}, notification["name"]

    def finished(uid: str, names: set[str]) -> dict[str, Any]:
        found = status_of(worker, project, uid)
        return found if all(found.get(n, {}).get("status") in {"sent", "error"} for n in names) else {}

    sdk_status = await wait_for(lambda: finished(by_sdk, {"ok", "dir", "bad"}), timeout=30)
    api_status = await wait_for(lambda: finished(by_api, {"env", "retry"}), timeout=30)
    assert {name: item["status"] for name, item in {**sdk_status, **api_status}.items()} == {
        "ok": "sent",
        "dir": "sent",
        "bad": "error",
        "env": "sent",
        "retry": "error",
    }
    assert "400" in sdk_status["bad"]["reason"] and "REDACTED" in sdk_status["bad"]["reason"]
    assert api_status["retry"]["attempts"] == 2 and "REDACTED" in api_status["retry"]["reason"]

    async def dead_letters() -> list[dict[str, Any]]:
        records = [orjson.loads(r.value or b"{}") for r in await read_records(worker.settings, "dead-letter")]
        ours = [r for r in records if r.get("source", {}).get("name") in {"bad", "retry"}]
        return ours if len(ours) >= 2 else []

    assert all(r["stage"] == "dispatch" for r in await wait_for(dead_letters, timeout=30))

    # Every topic of this prefix: no secret, except the foreign producer's own record on the runs topic.
    scanned = 0
    for name in TOPIC_NAMES:
        for record in await read_records(worker.settings, name):
            scanned += 1
            found = leaks((record.key or b"") + b"\0" + (record.value or b""))
            if name == "runs" and record.key == f"{project}/{foreign}".encode():
                assert found == [FOREIGN_HEADER]
                continue
            assert found == [], f"{found} on {name}[{record.partition}]@{record.offset}"
    assert scanned >= 10

    # Every API response.
    for uid in (by_sdk, by_api, foreign):
        responses.append(raw_get(worker, f"/api/v1/runs/{project}/{uid}"))
        responses.append(raw_get(worker, f"/api/v1/runs/{project}/{uid}/notifications"))
    responses.append(raw_get(worker, "/metrics"))
    responses.append(raw_get(worker, "/healthz"))
    for body in responses:
        assert leaks(body) == [], body[:300]

    # The worker's log, at debug level, through a clean shutdown.
    worker.stop()
    log = worker.log_path.read_bytes()
    assert b"[DEBUG]" in log
    assert leaks(log) == []
