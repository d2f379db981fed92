"""Named integrations on a real worker with a tokens file: managed through the API and the CLI (admin to
change, secrets never shown), and each one's inbound webhook authenticated by its own auth, not by the
tokens file: a bearer token, a Standard Webhooks signature made by the reference library (a replay
refused), GitHub's X-Hub-Signature-256. Every refusal is a JSON 4xx, logged without the secret, and
nothing of it reaches Kafka; a signed GitHub workflow_run becomes a run the API shows and a rule
notifies."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from standardwebhooks import Webhook

from runherald.auth import hash_token, new_token
from runherald.broker import EmbeddedBroker
from runherald.integration_auth import github_signature
from runherald.signing import receiver_secret, signature_headers
from runherald.testing.webhook import WebhookReceiver

from .harness import WorkerProcess, cli, own_worker, read_topic, tokens_file, unique, wait_for

ADMIN = new_token()
PUBLISHER = new_token()
INGRESS_TOKEN = "rh_ingress-token-of-one-integration"
HMAC_SECRET = "hmac-literal-secret-never-shown"
GITHUB_SECRET = "github-webhook-secret-by-reference"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "github"


@pytest.fixture(scope="module")
def integrating(
    broker: EmbeddedBroker, worker_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    path = tokens_file(
        tmp_path_factory.mktemp("integrations"),
        ("admin", ADMIN, ["admin"]),
        ("ci", PUBLISHER, ["publish", "read"]),
    )
    env = {"RUNHERALD_API_TOKENS_FILE": str(path), "RUNHERALD_SECRET_GH_HOOK": GITHUB_SECRET}
    with own_worker(broker.url, worker_logs, **env) as process:
        yield process


async def call(
    worker: WorkerProcess,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = ADMIN,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    if data is None and body is not None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, worker.api + path, data=data, headers=sent) as response,
    ):
        assert response.content_type == "application/json", (response.status, await response.text())
        return response.status, await response.json()


async def runherald(
    worker: WorkerProcess, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return await cli(worker, *args, stdin=stdin, RUNHERALD_TOKEN=ADMIN)


def github_payload(uid_run: int, status: str, conclusion: str | None, repo: str) -> bytes:
    payload = json.loads((FIXTURES / "workflow_run.completed.json").read_text())
    payload["repository"]["name"] = repo
    url = f"https://github.com/acme-ml/{repo}/actions/runs/{uid_run}"
    payload["workflow_run"].update(
        id=uid_run, status=status, conclusion=conclusion, run_attempt=1, html_url=url
    )
    return json.dumps(payload).encode()


def github_headers(body: bytes, event: str = "workflow_run", secret: str = GITHUB_SECRET) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": unique("delivery"),
        "X-Hub-Signature-256": github_signature(secret, body),
        "Content-Type": "application/json",
    }


async def runs_on_topic(worker: WorkerProcess) -> set[str]:
    return {key.decode() for key, _ in await read_topic(worker.settings, "runs") if key}


async def test_integrations_are_managed_through_the_api_and_the_cli_and_never_show_a_secret(
    integrating: WorkerProcess, tmp_path: Path
) -> None:
    name = unique("int")
    document = {
        "integrations": [
            {"name": name, "adapter": "generic", "project": "ci", "auth": {"hmac_secret": HMAC_SECRET}},
            {
                "name": name + "-gh",
                "adapter": "github-workflow-run",
                "auth": {"github_secret": {"secret": "gh-hook"}},
            },
        ]
    }
    file = tmp_path / "integrations.yaml"
    file.write_text(yaml.safe_dump(document))
    checked = await runherald(integrating, "check-config", str(file))
    assert checked.returncode == 0 and "2 integrations: OK" in checked.stdout
    done = await runherald(integrating, "rules", "apply", "-f", str(file), "-o", "json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert [(c["type"], c["action"]) for c in answer["changes"]] == [("integration", "created")] * 2
    assert any(w["path"] == f"integrations.{name}.auth.hmac_secret" for w in answer["warnings"])
    again = await runherald(integrating, "rules", "apply", "-f", str(file), "-o", "json")
    assert [c["action"] for c in json.loads(again.stdout)["changes"]] == ["unchanged", "unchanged"]

    code, listed = await call(integrating, "GET", "/api/v1/integrations")
    assert code == 200 and HMAC_SECRET not in json.dumps(listed)
    shown = {item["name"]: item for item in listed["integrations"]}
    assert set(shown[name]["auth"]["hmac_secret"]) == {"sealed"}  # sealed, never the value
    assert shown[name + "-gh"]["auth"] == {"github_secret": {"secret": "gh-hook"}}
    table = await runherald(integrating, "integrations", "list")
    assert table.returncode == 0 and name in table.stdout and "sealed" in table.stdout
    assert HMAC_SECRET not in table.stdout
    got = await runherald(integrating, "integrations", "get", name, "-o", "json")
    assert json.loads(got.stdout)["adapter"] == "generic" and HMAC_SECRET not in got.stdout

    # Changing needs admin; a publish token is refused, and so is no token.
    body = {"adapter": "generic", "auth": {"token_sha256": hash_token(INGRESS_TOKEN)}}
    assert (await call(integrating, "PUT", f"/api/v1/integrations/{name}", body, token=PUBLISHER))[0] == 403
    assert (await call(integrating, "PUT", f"/api/v1/integrations/{name}", body, token=None))[0] == 401
    code, bad = await call(
        integrating, "PUT", f"/api/v1/integrations/{name}", {"adapter": "gitub", "auth": {}}
    )
    assert code == 400 and {p["path"] for p in bad["problems"]} == {
        f"integrations.{name}.adapter",
        f"integrations.{name}.auth",
    }
    missing = {"adapter": "generic", "auth": {"hmac_secret": {"secret": "nowhere-to-be-found"}}}
    code, bad = await call(integrating, "PUT", f"/api/v1/integrations/{name}", missing)
    assert code == 400 and "cannot be resolved by this worker" in bad["problems"][0]["message"]
    assert (await call(integrating, "PUT", f"/api/v1/integrations/{name}", body))[1]["action"] == "updated"

    # Pruning deletes what the document no longer holds; the CLI deletes one.
    (tmp_path / "rest.yaml").write_text(yaml.safe_dump({"integrations": document["integrations"][1:]}))
    pruned = await runherald(
        integrating, "rules", "apply", "-f", str(tmp_path / "rest.yaml"), "--prune", "-o", "json"
    )
    assert {"type": "integration", "name": name, "action": "deleted"} in json.loads(pruned.stdout)["changes"]
    assert (await call(integrating, "GET", f"/api/v1/integrations/{name}"))[0] == 404
    deleted = await runherald(integrating, "integrations", "delete", name + "-gh")
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    assert (await runherald(integrating, "integrations", "get", name + "-gh")).returncode != 0
    assert HMAC_SECRET not in integrating.log_path.read_text(errors="replace")


async def test_each_authentication_and_refusal_and_nothing_refused_reaches_kafka(
    integrating: WorkerProcess,
) -> None:
    project = unique("p")
    token, hmac, github = unique("tok"), unique("hmac"), unique("gh")
    for name, body in (
        (
            token,
            {"adapter": "generic", "project": project, "auth": {"token_sha256": hash_token(INGRESS_TOKEN)}},
        ),
        (hmac, {"adapter": "generic", "project": project, "auth": {"hmac_secret": HMAC_SECRET}}),
        (github, {"adapter": "github-workflow-run", "auth": {"github_secret": {"secret": "gh-hook"}}}),
    ):
        assert (await call(integrating, "PUT", f"/api/v1/integrations/{name}", body))[0] == 200
    refused_uids: list[str] = []

    def generic(state: str = "completed") -> bytes:
        uid = unique("u")
        refused_uids.append(uid)
        return json.dumps({"uid": uid, "state": state, "name": "job"}).encode()

    async def refused(name: str, data: bytes, headers: dict[str, str], status: int, said: str) -> None:
        code, body = await call(
            integrating, "POST", f"/api/v1/integrations/{name}", token=None, data=data, headers=headers
        )
        assert code == status and said in body["error"], (code, body)

    # Bearer token: the integration's own, not the tokens file's.
    bearer = {"Authorization": f"Bearer {INGRESS_TOKEN}"}
    await refused(token, generic(), {}, 401, "needs a bearer token")
    await refused(token, generic(), {"Authorization": "Bearer nope"}, 401, "not this integration's")
    await refused(token, generic(), {"Authorization": f"Bearer {ADMIN}"}, 401, "not this integration's")
    await refused(token, b'{"shape": "unknown"}', bearer, 422, "no adapter recognised")
    await refused(token, b"x" * 250_000, bearer, 413, "larger than")
    await refused(unique("nobody"), generic(), bearer, 404, "no integration named")
    await refused(token, generic(), {**bearer, "X-Runherald-Hops": "4"}, 422, "loop detected")
    uid = unique("u")
    code, accepted = await call(
        integrating, "POST", f"/api/v1/integrations/{token}", token=None, headers=bearer,
        data=json.dumps({"uid": uid, "state": "running", "name": "job"}).encode(),
    )  # fmt: skip
    assert (code, accepted) == (202, {"accepted": 1, "runs": [f"{project}/{uid}"]})

    # Standard Webhooks, signed by the reference library; a replay refused, a stale or wrong one too.
    signed_uid = unique("u")
    body = json.dumps({"uid": signed_uid, "state": "completed", "name": "job"})
    now = datetime.now(tz=UTC)
    signature = Webhook(receiver_secret(HMAC_SECRET)).sign("msg_" + signed_uid, now, body)
    headers = {
        "webhook-id": "msg_" + signed_uid,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    code, accepted = await call(
        integrating, "POST", f"/api/v1/integrations/{hmac}", token=None, data=body.encode(), headers=headers
    )
    assert (code, accepted["runs"]) == (202, [f"{project}/{signed_uid}"])
    await refused(hmac, body.encode(), headers, 409, "already received")
    stale = generic()
    await refused(
        hmac,
        stale,
        signature_headers(HMAC_SECRET, unique("m"), stale, int(time.time()) - 600),
        401,
        "tolerance",
    )
    wrong = generic()
    await refused(
        hmac,
        wrong,
        signature_headers("not-the-secret", unique("m"), wrong),
        401,
        "no webhook-signature matches",
    )
    await refused(hmac, generic(), bearer, 401, "missing webhook-id")

    # GitHub: X-Hub-Signature-256 over the raw body; ping answered, other events refused.
    repo = unique("repo")
    payload = github_payload(7001, "completed", "success", repo)
    await refused(github, payload, {"X-GitHub-Event": "workflow_run"}, 401, "X-Hub-Signature-256")
    await refused(github, payload, github_headers(payload, secret="wrong"), 401, "does not match")
    await refused(github, payload, github_headers(payload, event="push"), 400, "workflow_run")
    ping = (FIXTURES / "ping.json").read_bytes()
    code, answer = await call(
        integrating,
        "POST",
        f"/api/v1/integrations/{github}",
        token=None,
        data=ping,
        headers=github_headers(ping, event="ping"),
    )
    assert (code, answer["accepted"]) == (200, 0)
    code, accepted = await call(
        integrating,
        "POST",
        f"/api/v1/integrations/{github}",
        token=None,
        data=payload,
        headers=github_headers(payload),
    )
    assert (code, accepted["runs"]) == (202, [f"acme-ml-{repo}/7001-1"])

    wanted = {f"{project}/{uid}", f"{project}/{signed_uid}", f"acme-ml-{repo}/7001-1"}
    published = await wait_for(lambda: _has(integrating, wanted), timeout=20)
    assert not {key for key in published if key.split("/")[-1] in refused_uids}
    assert not any(
        key.startswith(f"acme-ml-{repo}/") and key != f"acme-ml-{repo}/7001-1" for key in published
    )
    log = integrating.log_path.read_text(errors="replace")
    assert f"POST /api/v1/integrations/{hmac} refused (409)" in log
    for secret in (HMAC_SECRET, GITHUB_SECRET, INGRESS_TOKEN, signature):
        assert secret not in log


async def _has(worker: WorkerProcess, wanted: set[str]) -> set[str] | None:
    found = await runs_on_topic(worker)
    return found if wanted <= found else None


async def test_a_signed_github_workflow_run_becomes_a_run_a_rule_notifies(
    integrating: WorkerProcess, receiver: WebhookReceiver
) -> None:
    repo, name = unique("repo"), unique("gh")
    project = f"acme-ml-{repo}"
    hook = f"/github-{repo}"
    document = {
        "receivers": [{"name": f"{name}-hook", "kind": "webhook", "params": {"url": receiver.url(hook)}}],
        "rules": [
            {
                "name": f"{name}-failed",
                "matchers": [f'project="{project}"', 'labels.branch="main"'],
                "when": ["error"],
                "receivers": [f"{name}-hook"],
            }
        ],
        "integrations": [
            {"name": name, "adapter": "github-workflow-run", "auth": {"github_secret": {"secret": "gh-hook"}}}
        ],
    }
    code, applied = await call(integrating, "PUT", "/api/v1/config", {"document": document})
    assert code == 200, applied
    for status, conclusion in (("in_progress", None), ("completed", "failure")):
        payload = github_payload(8123, status, conclusion, repo)
        code, accepted = await call(
            integrating, "POST", f"/api/v1/integrations/{name}", token=None, data=payload,
            headers=github_headers(payload),
        )  # fmt: skip
        assert (code, accepted["runs"]) == (202, [f"{project}/8123-1"])
    await receiver.wait_for_requests(1, path=hook, within=20)
    sent = receiver.requests_to(hook)
    assert len(sent) == 1
    run = sent[0].json()["runs"][0]
    assert run["metadata"]["uid"] == "8123-1" and run["status"]["state"] == "error"

    async def stored() -> dict[str, Any] | None:
        code, body = await call(integrating, "GET", f"/api/v1/runs/{project}/8123-1")
        if code != 200:
            return None
        sent = body["status"].get("notifications", {}).get(f"{name}-failed/{name}-hook", {})
        return body if body["status"]["state"] == "error" and sent.get("status") == "sent" else None

    found = await wait_for(stored, timeout=20)
    assert found["metadata"]["name"] == "nightly-train"
    assert found["metadata"]["labels"]["conclusion"] == "failure"
    assert found["status"]["results"]["url"].endswith("/actions/runs/8123")
    assert found["status"]["notifications"][f"{name}-failed/{name}-hook"]["status"] == "sent"
    assert GITHUB_SECRET not in integrating.log_path.read_text(errors="replace")
