"""A worker with a tokens file made by `runherald token create`, as a user sets one up: the printed
tokens work with the printed lines, scopes decide who may do what, the CLI sends its token, and no
token reaches the worker's log."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runherald.broker import EmbeddedBroker
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, own_worker, run_dict, unique, wait_for, webhook

WRONG = "rh_this-is-not-a-token-of-the-file"


def runherald(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RUNHERALD_")}
    return subprocess.run(
        [sys.executable, "-m", "runherald.cli", *args],
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def create_token(name: str, *scopes: str) -> tuple[str, str]:
    """(token, line) as `runherald token create` prints them (the table output, as a user reads it)."""
    done = runherald("token", "create", "--name", name, *[arg for s in scopes for arg in ("--scope", s)])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    return lines[0].removeprefix("token: "), lines[-1]


@pytest.fixture(scope="module")
def tokens() -> dict[str, str]:
    return {}


@pytest.fixture(scope="module")
def secured(
    broker: EmbeddedBroker,
    worker_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
    tokens: dict[str, str],
) -> Iterator[WorkerProcess]:
    lines = []
    for name, scopes in {
        "ci": ["publish", "read"],
        "reader": ["read"],
        "pub": ["publish"],
        "ops": ["admin"],
    }.items():
        tokens[name], line = create_token(name, *scopes)
        lines.append(line)
    path = tmp_path_factory.mktemp("tokens") / "tokens.yaml"
    path.write_text("tokens:\n" + "\n".join(lines) + "\n")
    with own_worker(broker.url, worker_logs, RUNHERALD_API_TOKENS_FILE=str(path)) as process:
        yield process


def request(
    worker: WorkerProcess, method: str, path: str, token: str | None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None if body is None else json.dumps(body).encode()
    sent = urllib.request.Request(worker.api + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(sent, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_printed_tokens_work_with_the_printed_lines_and_the_cli_sends_its_token(
    secured: WorkerProcess, tokens: dict[str, str], receiver: WebhookReceiver
) -> None:
    project, uid = unique("p"), unique("u")
    run = run_dict(project, uid, "completed", [webhook("hook", receiver.url("/auth"))])
    assert request(secured, "POST", "/api/v1/runs", tokens["ci"], run) == (
        202,
        {"accepted": 1, "runs": [f"{project}/{uid}"], "adapter": "mlrun-run"},
    )
    await receiver.wait_for_requests(1, path="/auth", within=15)
    api = {"RUNHERALD_API": secured.api}

    def sent() -> bool:
        done = runherald("status", f"{project}/{uid}", "--json", RUNHERALD_TOKEN=tokens["ci"], **api)
        return done.returncode == 0 and json.loads(done.stdout)["hook"]["status"] == "sent"

    await wait_for(sent, timeout=20, interval=0.5)
    done = runherald("status", f"{project}/{uid}", "--token", tokens["reader"], **api)
    assert done.returncode == 0 and "hook" in done.stdout

    # Without a token, with a wrong one, without the scope: one line each, exit 1, no token shown.
    for args, said in [
        ((), "needs a bearer token: give --token or set RUNHERALD_TOKEN"),
        (("--token", WRONG), "rejected the token given by --token / RUNHERALD_TOKEN"),
        (("--token", tokens["pub"]), "refused (403): token 'pub' lacks the 'read' scope"),
    ]:
        done = runherald("status", f"{project}/{uid}", *args, **api)
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.startswith(f"runherald status: the API at {secured.api} ") and said in done.stderr
        assert (
            len(done.stderr.splitlines()) == 1
            and WRONG not in done.stderr
            and tokens["pub"] not in done.stderr
        )


async def test_scopes_decide_who_may_do_what(secured: WorkerProcess, tokens: dict[str, str]) -> None:
    project, uid = unique("p"), unique("u")
    run = run_dict(project, uid, "completed", [])
    runs, read = "/api/v1/runs", f"/api/v1/runs/{project}/{uid}/notifications"
    assert request(secured, "POST", runs, None, run)[0] == 401
    assert request(secured, "POST", runs, WRONG, run)[0] == 401
    assert request(secured, "GET", read, WRONG)[0] == 401
    code, body = request(secured, "POST", runs, tokens["reader"], run)
    assert code == 403 and body == {
        "error": "token 'reader' lacks the 'publish' scope that POST /api/v1/runs needs"
    }
    code, body = request(secured, "GET", read, tokens["pub"])
    assert code == 403 and "'read' scope" in body["error"]
    # admin implies publish and read.
    assert request(secured, "POST", runs, tokens["ops"], run)[0] == 202
    assert request(secured, "GET", "/api/v1/runs/nope/nope", tokens["ops"]) == (
        404,
        {"error": "run nope/nope not found"},
    )
    for path in ["/healthz", "/readyz", "/api/v1/openapi.json"]:
        assert secured.get(path)[0] == 200
    assert secured.get_text("/metrics")[0] == 200


def test_no_token_reaches_the_worker_log(secured: WorkerProcess, tokens: dict[str, str]) -> None:
    request(secured, "GET", "/api/v1/runs/p/u", WRONG)
    request(secured, "POST", "/api/v1/runs", tokens["reader"], {})
    # A request aiohttp cannot parse is logged with its bad line: here the Authorization header.
    with socket.create_connection(("127.0.0.1", secured.web_port), timeout=5) as raw:
        raw.sendall(
            f"GET /api/v1/runs/p/u HTTP/1.1\r\nAuthorization: Bearer {tokens['ops']}\x00\r\n\r\n".encode()
        )
        assert raw.recv(4096).split(b"\r\n")[0].endswith(b" 400 Bad Request")
    time.sleep(0.5)
    log = secured.log_path.read_text(errors="replace")
    assert "GET /api/v1/runs/p/u: refused an unknown bearer token" in log
    assert "POST /api/v1/runs: token 'reader' lacks scope publish" in log
    for token in [WRONG, *tokens.values()]:
        assert token not in log
    assert "bearer tokens from" in log
    assert "malformed HTTP request refused (400): Invalid header value char" in log
