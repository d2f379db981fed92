"""The HTTP API: publishing, reading runs, health, metrics; and `runherald dev` as a user starts it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from runherald.broker import free_port
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, run_dict, unique, wait_for, webhook


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_post_runs_publishes_and_rejects_bad_input(
    worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    project = unique("p")
    runs = [
        run_dict(project, unique("u"), "completed", [webhook("hook", receiver.url("/api"))]) for _ in range(3)
    ]
    code, body = _post(worker.api + "/api/v1/runs", json.dumps(runs).encode())
    assert code == 202 and body["accepted"] == 3
    assert body["runs"] == [f"{project}/{r['metadata']['uid']}" for r in runs]
    code, body = _post(worker.api + "/api/v1/runs", json.dumps(runs[0]).encode())
    assert code == 202 and body["accepted"] == 1
    await receiver.wait_for_requests(3, path="/api", within=15)

    assert _post(worker.api + "/api/v1/runs", b"{oops")[0] == 400
    code, body = _post(worker.api + "/api/v1/runs", json.dumps({"metadata": {"project": project}}).encode())
    assert code == 400 and body["problems"][0] == {
        "path": "metadata.uid",
        "message": "missing or not a non-empty string",
    }
    code, body = _post(worker.api + "/api/v1/runs", b"[1]")
    assert code == 400 and "not a run object" in body["error"]


async def test_health_and_metrics(worker: WorkerProcess, receiver: WebhookReceiver) -> None:
    code, health = worker.get("/healthz")
    assert code == 200 and health["status"] == "ok" and health["assigned_partitions"] > 0
    code, ready = worker.get("/readyz")
    assert code == 200 and ready["ledger_view_caught_up"] is True
    project, uid = unique("p"), unique("u")
    _post(
        worker.api + "/api/v1/runs",
        json.dumps(run_dict(project, uid, "completed", [webhook("h", receiver.url("/m"))])).encode(),
    )
    await receiver.wait_for_requests(1, path="/m", within=15)

    def metrics() -> str:
        with urllib.request.urlopen(worker.api + "/metrics", timeout=5) as response:
            return response.read().decode()

    text = await wait_for(
        lambda: 'runherald_deliveries_total{kind="webhook",status="sent"}' in metrics() and metrics()
    )
    assert "runherald_events_consumed_total" in text
    assert 'runherald_delivery_latency_seconds_bucket{kind="webhook"' in text


async def test_unknown_run_is_404(worker: WorkerProcess) -> None:
    assert worker.get("/api/v1/runs/nope/nope") == (404, {"error": "run nope/nope not found"})
    assert worker.get("/api/v1/runs/nope/nope/notifications")[0] == 404
    assert worker.get("/api/v1/nope") == (404, {"error": "no such resource: /api/v1/nope"})


async def test_runherald_dev_end_to_end(receiver: WebhookReceiver, tmp_path) -> None:
    web_port, broker_port = free_port(), free_port()
    env = {**os.environ, "RUNHERALD_TOPIC_PREFIX": unique("d") + "."}
    log = open(tmp_path / "dev.log", "wb")
    dev = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runherald.cli",
            "dev",
            "--web-port",
            str(web_port),
            "--broker-port",
            str(broker_port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{web_port}"
    try:

        def ready() -> bool:
            try:
                with urllib.request.urlopen(api + "/healthz", timeout=2) as response:
                    return json.loads(response.read())["assigned_partitions"] > 0
            except (OSError, ValueError):
                return False

        await wait_for(ready, timeout=60)
        # A few lines: where the API and the broker are, and how to stop; not faust's log.
        broker = f"kafka://127.0.0.1:{broker_port}"
        lines = (tmp_path / "dev.log").read_text().splitlines()
        assert [line for line in lines if not line.startswith("runherald: warning:")] == [
            f"runherald API listening on {api}",
            f"runherald dev: broker {broker} (embedded, memory only: nothing survives a restart)",
            f"runherald dev: dashboard {api}/ui",
            f"runherald dev: try: RUNHERALD_BROKER={broker} runherald publish run.json",
            "runherald dev: Ctrl-C stops it (--verbose shows the worker's log)",
        ]
        run_file = tmp_path / "run.json"
        project, uid = unique("p"), unique("u")
        run_file.write_text(
            json.dumps(run_dict(project, uid, "completed", [webhook("hook", receiver.url("/dev"))]))
        )
        published = subprocess.run(
            [sys.executable, "-m", "runherald.cli", "publish", str(run_file)],
            env={**env, "RUNHERALD_BROKER": f"kafka://127.0.0.1:{broker_port}"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert published.returncode == 0, published.stderr
        assert published.stdout.strip() == f"{project}/{uid}"
        await receiver.wait_for_requests(1, path="/dev", within=20)

        def sent() -> str:
            out = subprocess.run(
                [sys.executable, "-m", "runherald.cli", "status", f"{project}/{uid}", "--api", api],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
            return out if " sent " in out else ""

        assert "completed" in await wait_for(sent)
    finally:
        dev.send_signal(signal.SIGTERM)
        code = dev.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "dev.log").read_text()[-3000:]
    time.sleep(0.5)
    # The embedded broker went with it.
    import socket

    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", broker_port)) != 0
