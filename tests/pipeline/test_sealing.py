"""Sealed secret_params through a real worker: sealed for another key (an error that says so), sealed for
this worker's key, and sealed with the old shared Fernet key during a migration."""

from __future__ import annotations

from typing import Any

import orjson
from cryptography.fernet import Fernet

from runherald.publish import Publisher
from runherald.sealing import (
    KEY_ENV,
    PRIVATE_KEYS_ENV,
    PUBLIC_KEY_ENV,
    generate_key_pair,
    seal_keys,
    seal_run,
)
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, run_dict, unique, wait_for, webhook

SECRET = "sealed-pipeline-secret-4c2e91"


def hook_status(worker: WorkerProcess, project: str, uid: str) -> dict[str, Any]:
    code, body = worker.get(f"/api/v1/runs/{project}/{uid}/notifications")
    return body.get("hook", {}) if code == 200 else {}


def finished(worker: WorkerProcess, project: str, uid: str) -> Any:
    found = hook_status(worker, project, uid)
    return found if found.get("status") in {"sent", "error"} else None


async def test_keys_decide_which_sealed_values_a_worker_opens(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    worker_private, worker_public = generate_key_pair()  # key B: the worker's only private key
    fernet_key = Fernet.generate_key()
    worker: WorkerProcess = start_worker(
        **{PRIVATE_KEYS_ENV: worker_private, KEY_ENV: fernet_key.decode()}, RUNHERALD_RETRY_MAX_ATTEMPTS="2"
    )
    project = unique("p")
    uids = {"other-key": unique("u"), "own-key": unique("u"), "fernet": unique("u")}

    def run(label: str) -> dict[str, Any]:
        hook = webhook(
            "hook",
            receiver.url(f"/{label}"),
            when=["completed"],
            secret_params={"headers": {"X-Secret": f"{SECRET}-{label}"}},
        )
        return run_dict(project, uids[label], "completed", [hook])

    own = seal_run(run("own-key"), seal_keys({PUBLIC_KEY_ENV: worker_public}))
    legacy = run("fernet")
    legacy["spec"]["notifications"][0]["secret_params"]["headers"] = {
        "sealed": Fernet(fernet_key).encrypt(orjson.dumps({"X-Secret": f"{SECRET}-fernet"})).decode()
    }
    # This process seals with the suite's public key (key A, tests/conftest.py): not the worker's.
    async with Publisher(worker.settings) as publisher:
        await publisher.publish_many([run("other-key"), own, legacy])

    refused = await wait_for(lambda: finished(worker, project, uids["other-key"]), timeout=30)
    assert refused["status"] == "error" and refused["attempts"] == 1  # permanent: not retried
    assert "cannot be opened with this worker's keys: it was sealed for key" in refused["reason"]
    assert SECRET not in orjson.dumps(refused).decode()
    assert not receiver.requests_to("/other-key")

    for label in ("own-key", "fernet"):
        sent = await wait_for(lambda label=label: finished(worker, project, uids[label]), timeout=30)
        assert sent["status"] == "sent", sent
        [request] = receiver.requests_to(f"/{label}")
        assert request.headers["X-Secret"] == f"{SECRET}-{label}"
