"""Named integrations, pure: the document section with its problems and paths, secrets sealed and never
shown, the rules-topic record, the ingress's authentication checks, and the GitHub adapter's mapping."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from runherald.adapters import Unrecognised, adapt
from runherald.adapters_github import workflow_run_to_run
from runherald.alerting import check_document
from runherald.auth import hash_token
from runherald.events import InvalidEvent
from runherald.integration_auth import (
    AuthRefused,
    ReplayGuard,
    authenticate,
    check_github,
    github_signature,
)
from runherald.integrations import (
    Integration,
    parse_integration,
    record_value,
    resolve_secret,
    same_integration,
)
from runherald.rule_index import AlertConfig, parse_record
from runherald.secrets import REDACTED
from runherald.signing import receiver_secret, signature_headers

FIXTURES = Path(__file__).parent.parent / "fixtures" / "github"
SECRET = "hmac-secret-value-for-tests"
TOKEN = "rh_integration-token-for-tests"


def github_payload(fixture: str = "workflow_run.completed.json", **run: Any) -> dict[str, Any]:
    payload = json.loads((FIXTURES / fixture).read_text())
    payload["workflow_run"].update(run)
    return payload


def problems_of(document: dict[str, Any]) -> dict[str, str]:
    return {problem.path: problem.message for problem in check_document(document).problems}


# -- the document section ----------------------------------------------------------------------------


def test_a_document_holds_integrations_of_each_auth() -> None:
    document = check_document(
        {
            "integrations": [
                {
                    "name": "ci",
                    "adapter": "generic",
                    "project": "ci",
                    "auth": {"token_sha256": hash_token(TOKEN)},
                },
                {
                    "name": "mlrun",
                    "adapter": "mlrun-webhook",
                    "auth": {"hmac_secret": {"secret": "mlrun-hook"}},
                },
                {
                    "name": "gh",
                    "adapter": "github-workflow-run",
                    "auth": {"github_secret": "${RUNHERALD_SECRET_GH}"},
                },
            ]
        }
    )
    assert document.problems == []
    assert [(i.name, i.adapter, i.project, i.auth_kind) for i in document.integrations] == [
        ("ci", "generic", "ci", "token_sha256"),
        ("mlrun", "mlrun-webhook", "", "hmac_secret"),
        ("gh", "github-workflow-run", "", "github_secret"),
    ]


def test_every_problem_of_an_integration_has_its_path_and_a_did_you_mean() -> None:
    found = problems_of(
        {
            "integrations": [
                {"name": "a", "adapter": "generik", "auth": {"token_sha256": TOKEN}, "projekt": "x"},
                {"name": "b", "adapter": "generic", "auth": {"hmac_secret": "x", "token_sha256": "0" * 64}},
                {"name": "c", "adapter": "generic", "auth": {"hmac_secrt": "x"}},
                {"name": "d", "adapter": "github-workflow-run", "auth": {"hmac_secret": "x"}},
                {"name": "e", "adapter": "generic", "auth": {"github_secret": "x"}},
                {"name": "f", "adapter": "generic", "project": "a/b", "auth": {"hmac_secret": "whsec_!!"}},
                {"name": "a", "adapter": "generic", "auth": {"token_sha256": "0" * 64}},
                {"adapter": "generic", "auth": {"token_sha256": "0" * 64}},
            ]
        }
    )
    assert "did you mean 'generic'" in found["integrations.a.adapter"]
    assert "did you mean 'project'" in found["integrations.a.projekt"]
    assert "not the token itself" in found["integrations.a.auth.token_sha256"]
    assert TOKEN not in json.dumps(found)  # a token pasted where its digest belongs is not echoed
    assert "give exactly one" in found["integrations.b.auth"]
    assert "did you mean 'hmac_secret'" in found["integrations.c.auth.hmac_secrt"]
    assert "use auth.github_secret" in found["integrations.d.auth.hmac_secret"]
    assert "only for the github-workflow-run adapter" in found["integrations.e.auth.github_secret"]
    assert "not a project name" in found["integrations.f.project"]
    assert "not valid base64" in found["integrations.f.auth.hmac_secret"]
    assert "defined twice" in found["integrations.a.name"]
    assert "needs a name" in found["integrations[7].name"]


def test_integrations_must_be_a_list() -> None:
    assert "must be a list" in problems_of({"integrations": {"a": 1}})["integrations"]


# -- secrets: sealed when stored, never shown ---------------------------------------------------------


def test_a_literal_secret_is_sealed_in_the_record_and_redacted_when_shown() -> None:
    integration, _ = parse_integration(
        {"name": "h", "adapter": "generic", "auth": {"hmac_secret": SECRET}}, "i"
    )
    assert integration is not None
    assert integration.public_dict()["auth"] == {"hmac_secret": REDACTED}
    stored = record_value(integration)
    assert SECRET not in json.dumps(stored) and "sealed" in stored["auth"]["hmac_secret"]
    assert same_integration(integration.to_dict(), stored)  # sealing is randomized; what it holds is not
    assert not same_integration({**integration.to_dict(), "auth": {"hmac_secret": "other"}}, stored)
    again = parse_record("integration/h", stored)
    assert isinstance(again, Integration)
    assert resolve_secret(again) == SECRET  # the worker opens it
    assert again.public_dict()["auth"] == stored["auth"]  # shown sealed, never in the clear
    config = AlertConfig.from_records({"integration/h": stored, "integration/x": {"name": "y"}})
    assert list(config.integrations) == ["h"]  # a record that does not parse is left out


def test_a_reference_is_kept_and_resolved_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNHERALD_SECRET_GH_HOOK", SECRET)
    integration, _ = parse_integration(
        {"name": "gh", "adapter": "github-workflow-run", "auth": {"github_secret": {"secret": "gh-hook"}}},
        "i",
    )
    assert integration is not None
    assert record_value(integration)["auth"] == {"github_secret": {"secret": "gh-hook"}}
    assert integration.public_dict()["auth"] == {"github_secret": {"secret": "gh-hook"}}
    assert resolve_secret(integration) == SECRET


# -- authentication ------------------------------------------------------------------------------------


def _integration(auth: dict[str, Any], adapter: str = "generic") -> Integration:
    integration, problems = parse_integration({"name": "i", "adapter": adapter, "auth": auth}, "i")
    assert integration is not None, problems
    return integration


def test_bearer_token_by_its_digest() -> None:
    integration = _integration({"token_sha256": hash_token(TOKEN)})
    guard = ReplayGuard()
    assert authenticate(integration, "", {"Authorization": f"Bearer {TOKEN}"}, b"{}", guard) == ("", "")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        with pytest.raises(AuthRefused) as refused:
            authenticate(integration, "", headers, b"{}", guard)
        assert refused.value.status == 401 and TOKEN not in refused.value.message


def test_standard_webhooks_signed_by_the_reference_library_and_a_replay_refused() -> None:
    integration = _integration({"hmac_secret": SECRET})
    body = b'{"uid": "u1", "state": "completed", "project": "p"}'
    now = time.time()
    signature = Webhook(receiver_secret(SECRET)).sign(
        "msg_1", datetime.fromtimestamp(now, tz=UTC), body.decode()
    )
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now)), "webhook-signature": signature}
    guard = ReplayGuard()
    assert authenticate(integration, SECRET, headers, body, guard, now)[0] == "msg_1"
    with pytest.raises(AuthRefused) as replay:
        authenticate(integration, SECRET, headers, body, guard, now + 1)
    assert replay.value.status == 409
    guard.release("i", "msg_1")  # a request not done: its retry is welcome
    assert authenticate(integration, SECRET, headers, body, guard, now + 2)[0] == "msg_1"
    refusals = {
        "stale": (signature_headers(SECRET, "msg_2", body, int(now) - 301), body),
        "future": (signature_headers(SECRET, "msg_3", body, int(now) + 301), body),
        "tampered": (signature_headers(SECRET, "msg_4", body, int(now)), body + b" "),
        "other secret": (signature_headers("another", "msg_5", body, int(now)), body),
        "unsigned": ({}, body),
    }
    for why, (sent, payload) in refusals.items():
        with pytest.raises(AuthRefused) as refused:
            authenticate(integration, SECRET, sent, payload, guard, now)
        assert refused.value.status == 401, why
        assert SECRET not in refused.value.message
    assert len(guard) == 1  # refused requests claim no id


def test_the_replay_guard_forgets_after_the_window_and_keeps_its_size() -> None:
    guard = ReplayGuard(window=300, capacity=3)
    assert guard.claim("i", "a", now=0) and not guard.claim("i", "a", now=10)
    assert guard.claim("other", "a", now=10)  # ids are per integration
    assert guard.claim("i", "a", now=601)  # past twice the window: a signature that old is refused anyway
    for n in range(10):
        guard.claim("i", f"id-{n}", now=700)
    assert len(guard) <= 4


def test_github_signature() -> None:
    body = json.dumps(github_payload()).encode()
    headers = {"X-Hub-Signature-256": github_signature(SECRET, body), "X-GitHub-Event": "workflow_run"}
    assert check_github(SECRET, headers, body) == "workflow_run"
    # GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature("It's a Secret to Everybody", b"Hello, World!") == expected
    for sent in (
        {},
        {"X-Hub-Signature-256": github_signature("wrong", body)},
        {"X-Hub-Signature": "sha1=00"},
    ):
        with pytest.raises(AuthRefused) as refused:
            check_github(SECRET, sent, body)
        assert refused.value.status == 401


# -- the GitHub adapter --------------------------------------------------------------------------------

MAPPING = [
    ("queued", None, "pending"),
    ("requested", None, "pending"),
    ("waiting", None, "pending"),
    ("pending", None, "pending"),
    ("in_progress", None, "running"),
    ("completed", "success", "completed"),
    ("completed", "failure", "error"),
    ("completed", "timed_out", "error"),
    ("completed", "startup_failure", "error"),
    ("completed", "action_required", "error"),
    ("completed", "cancelled", "aborted"),
    ("completed", "stale", "aborted"),
    ("completed", "skipped", "completed"),
    ("completed", "neutral", "completed"),
]


@pytest.mark.parametrize(("status", "conclusion", "state"), MAPPING)
def test_the_github_mapping(status: str, conclusion: str | None, state: str) -> None:
    run = workflow_run_to_run(github_payload(status=status, conclusion=conclusion))
    assert run["status"]["state"] == state
    assert run["metadata"]["project"] == "acme-ml-train.pipelines"
    assert run["metadata"]["uid"] == "9120034567-2"
    assert run["metadata"]["name"] == "nightly-train"
    labels = run["metadata"]["labels"]
    assert labels.get("conclusion") == conclusion
    assert {k: labels[k] for k in ("branch", "event", "actor", "repository")} == {
        "branch": "main",
        "event": "schedule",
        "actor": "octo-dev",
        "repository": "Acme-ML/Train.Pipelines",
    }
    assert run["status"]["last_update"] == "2026-12-05T08:41:17Z"
    assert (
        run["status"]["results"]["url"]
        == "https://github.com/Acme-ML/Train.Pipelines/actions/runs/9120034567"
    )
    if state == "error":
        assert conclusion in run["status"]["error"] and "actions/runs/9120034567" in run["status"]["error"]
    else:
        assert "error" not in run["status"]


@pytest.mark.parametrize("name", ["workflow_run.requested.json", "workflow_run.in_progress.json"])
def test_the_fixtures_of_each_action(name: str) -> None:
    run = workflow_run_to_run(github_payload(fixture=name))
    assert run["status"]["state"] == {"workflow_run.requested.json": "pending"}.get(name, "running")
    assert "conclusion" not in run["metadata"]["labels"]


def test_what_the_github_adapter_refuses() -> None:
    cases = {
        "status": github_payload(status="paused"),
        "conclusion": github_payload(status="completed", conclusion="exploded"),
        "id": github_payload(id="9120034567"),
        "run_attempt": github_payload(run_attempt=0),
    }
    for field, payload in cases.items():
        with pytest.raises(InvalidEvent, match=field):
            workflow_run_to_run(payload)
    no_repo = github_payload()
    del no_repo["repository"], no_repo["workflow_run"]["repository"]
    with pytest.raises(InvalidEvent, match="repository"):
        workflow_run_to_run(no_repo)
    old = github_payload(name="")  # payloads with an empty workflow_run.name: the workflow's name
    del old["workflow_run"]["run_attempt"]
    assert workflow_run_to_run(old)["metadata"] | {"labels": {}} == {
        "project": "acme-ml-train.pipelines",
        "uid": "9120034567-1",
        "name": "nightly-train",
        "iteration": 0,
        "labels": {},
    }


def test_the_github_adapter_is_registered_for_adapt() -> None:
    body = json.dumps(github_payload()).encode()
    adapted = adapt(body, {}, adapter="github-workflow-run", project="ignored")
    assert adapted.adapter == "github-workflow-run"
    assert [run["metadata"]["uid"] for run in adapted.runs] == ["9120034567-2"]
    with pytest.raises(Unrecognised) as unnamed:  # taken only where an integration names it
        adapt(body)
    assert "github-workflow-run" not in unnamed.value.reasons
    with pytest.raises(Unrecognised, match="github-workflow-run: not a GitHub workflow_run payload"):
        adapt(b'{"zen": "ping"}', {}, adapter="github-workflow-run")
