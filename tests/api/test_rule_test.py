"""POST /api/v1/rules/test and `runherald rules test`, served on loopback without a broker: the worker's
AlertStore is fed the records the rules topic would hold (nothing follows a topic here)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web
from click.testing import CliRunner, Result
from runherald.streams.alert_store import AlertStore

from runherald import api_rule_test
from runherald.alerting import check_document, record_key
from runherald.api import create_api
from runherald.auth import ApiToken, TokenTable, hash_token
from runherald.cli import cli
from runherald.config import Settings
from runherald.publish import Publisher

from .test_api import MAX_BODY, Api, call, serve

PATH = "/api/v1/rules/test"
SECRET = "https://hooks.slack.com/services/T0/B0/do-not-show"
DOCUMENT = {
    "receivers": [
        {"name": "ml-oncall", "kind": "slack", "secret_params": {"webhook": SECRET}},
        {"name": "log", "kind": "console"},
    ],
    "rules": [
        {
            "name": "prod-failures",
            "matchers": ['project=~"prod-.*"'],
            "when": ["error"],
            "receivers": ["ml-oncall", "log"],
        },
        {"name": "sandbox", "matchers": ['labels.team="sandbox"'], "receivers": ["log"]},
    ],
}
RUN = {
    "metadata": {"project": "prod-a", "uid": "u-1", "name": "train", "labels": {"team": "ml"}},
    "status": {"state": "error"},
}
TOKENS = {"reader": "rh_reader-token", "pub": "rh_publisher-token"}


def stored(document: dict[str, Any] = DOCUMENT) -> AlertStore:
    """An AlertStore holding what `rules apply` would have written for the document."""
    store = AlertStore(Settings(), "t.rules")
    doc = check_document(document)
    assert not doc.problems
    for receiver in doc.receivers:
        store._apply(record_key("receiver", receiver.name).encode(), orjson.dumps(receiver.to_dict()))
    for rule in doc.rules:
        store._apply(record_key("rule", rule.name).encode(), orjson.dumps(rule.to_dict()))
    return store


class RulesApi(Api):
    def __init__(self, store: AlertStore, tokens: TokenTable | None = None) -> None:
        super().__init__(tokens)
        self.store = store

    def app(self) -> web.Application:
        return create_api(
            publisher=Publisher(Settings(), create_topics=False),  # never started
            record_for=self.record_for,
            run_for=self.run_for,
            health=lambda: dict(self.info),
            max_body_bytes=MAX_BODY * 10,
            tokens=self.tokens,
            alerts=self.store,
        )


@pytest.fixture
async def api() -> AsyncIterator[RulesApi]:
    store = stored()
    store.ready.set()
    served = RulesApi(store)
    async with serve(served):
        yield served


async def test_the_answer_says_per_rule_and_receiver_what_would_happen(api: RulesApi) -> None:
    code, content_type, body, _ = await call(api, "POST", PATH, json={"run": RUN})
    assert (code, content_type) == (200, "application/json")
    prod, sandbox = body["rules"]
    assert (sandbox["rule"], sandbox["matched"], sandbox["failed_matcher"]) == (
        "sandbox",
        False,
        'labels.team="sandbox"',
    )
    assert prod["rule"] == "prod-failures" and prod["matched"] is True
    assert [(r["receiver"], r["send"], r["reason"]) for r in prod["receivers"]] == [
        ("ml-oncall", True, "state 'error' matched"),
        ("log", True, "state 'error' matched"),
    ]
    assert prod["receivers"][1]["rendered"]["data"].startswith("[info] Run failed in project prod-a")
    assert SECRET not in json.dumps(body)
    code, _, body, _ = await call(api, "POST", PATH, json={"run": RUN, "rules": ["sandbox"]})
    assert code == 200 and [item["rule"] for item in body["rules"]] == ["sandbox"]


@pytest.mark.parametrize(
    ("request_body", "error", "problems"),
    [
        (b"not json", "the body is not JSON", []),
        (b"[1]", 'the body must be an object: {"run": {...}, "rules": [names]}', []),
        (
            {"rules": "prod-failures", "runs": []},
            "the body has 3 problems",
            [
                ("runs", "unknown field 'runs' (fields: run, rules)"),
                ("run", "the run to test the rules against is missing"),
                ("rules", "must be a list of rule names"),
            ],
        ),
        ({"run": RUN, "rules": None}, "the body has 1 problem", [("rules", "must be a list of rule names")]),
        (
            {"run": {"metadata": {"project": "p/q", "uid": "u"}, "status": {"state": "error"}}},
            "the run has 1 problem",
            [("run.metadata.project", "must not contain '/'")],
        ),
        (
            {
                "run": {
                    **RUN,
                    "status": {"state": "error", "notifications": [None]},
                    "spec": {"notifications": [1]},
                }
            },
            "the run has 2 problems",
            [
                ("run.status.notifications", "must be an object"),
                ("run.spec.notifications[0]", "must be an object"),
            ],
        ),
        (
            {"run": RUN, "rules": ["prod-failures", "prod-failure", "nope"]},
            "2 unknown rule names; stored rules: prod-failures, sandbox",
            [
                ("rules[1]", "no rule named 'prod-failure' (did you mean 'prod-failures'?)"),
                ("rules[2]", "no rule named 'nope'"),
            ],
        ),
    ],
)
async def test_what_cannot_be_dry_run_is_400_with_problems(
    api: RulesApi, request_body: Any, error: str, problems: list[tuple[str, str]]
) -> None:
    data = request_body if isinstance(request_body, bytes) else orjson.dumps(request_body)
    code, content_type, body, _ = await call(api, "POST", PATH, data=data)
    assert (code, content_type) == (400, "application/json")
    assert body["error"].startswith(error)
    assert [(p["path"], p["message"]) for p in body["problems"]] == problems


async def test_a_worker_that_has_not_read_the_rules_topic_answers_503(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(api_rule_test, "READY_TIMEOUT", 0.2)
    async with serve(RulesApi(stored())) as served:
        code, _, body, _ = await call(served, "POST", PATH, json={"run": RUN})
    assert code == 503 and body == {"error": "this worker has not read the rules topic yet; try again"}


async def test_a_read_token_may_dry_run_a_publish_token_may_not() -> None:
    table = TokenTable(
        [
            ApiToken("reader", hash_token(TOKENS["reader"]), frozenset({"read"})),
            ApiToken("pub", hash_token(TOKENS["pub"]), frozenset({"publish"})),
        ]
    )
    store = stored()
    store.ready.set()
    async with serve(RulesApi(store, table)) as served:
        headers = {"Authorization": f"Bearer {TOKENS['reader']}"}
        assert (await call(served, "POST", PATH, json={"run": RUN}, headers=headers))[0] == 200
        headers = {"Authorization": f"Bearer {TOKENS['pub']}"}
        code, _, body, _ = await call(served, "POST", PATH, json={"run": RUN}, headers=headers)
        assert code == 403 and "'read'" in body["error"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"RUNHERALD_API": None, "RUNHERALD_TOKEN": None})


async def test_the_command_explains_each_decision(api: RulesApi, tmp_path: Path) -> None:
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump(RUN))
    result = await asyncio.to_thread(invoke, "rules", "test", "--run", str(run_file), "--api", api.url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split() for line in lines[:4]] == [
        ["RULE", "MATCHED", "RECEIVER", "DECISION", "REASON"],
        ["prod-failures", "matched", "ml-oncall", "send", "state", "'error'", "matched"],
        ["prod-failures", "matched", "log", "send", "state", "'error'", "matched"],
        ["sandbox", "not", "matched", "-", "-", 'labels.team="sandbox"', "does", "not", "hold"],
    ]
    assert "== prod-failures/log (console): would be sent" in lines
    assert "message: Run failed in project prod-a" in lines
    assert SECRET not in result.output
    # -o json is the API's answer; --rule picks rules.
    json_file = tmp_path / "run.json"
    json_file.write_text(json.dumps(RUN))
    argv = ["rules", "test", "--run", str(json_file), "--rule", "sandbox", "-o", "json", "--api", api.url]
    result = await asyncio.to_thread(invoke, *argv)
    assert result.exit_code == 0, result.output
    _, _, answer, _ = await call(api, "POST", PATH, json={"run": RUN, "rules": ["sandbox"]})
    assert json.loads(result.stdout) == answer


async def test_the_command_exits_2_for_an_unknown_rule_or_a_bad_run_file(
    api: RulesApi, tmp_path: Path
) -> None:
    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps(RUN))
    result = await asyncio.to_thread(
        invoke, "rules", "test", "--run", str(run_file), "--rule", "nope", "--api", api.url
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "runherald rules test: 1 unknown rule name; stored rules: prod-failures, sandbox\n"
        "rules[0]: no rule named 'nope'\n"
    )
    two = tmp_path / "two.json"
    two.write_text(json.dumps([RUN, RUN]))
    result = await asyncio.to_thread(invoke, "rules", "test", "--run", str(two), "--api", api.url)
    assert result.exit_code == 2
    assert result.stderr == f"runherald rules test: {two}: expected one run, found 2\n"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"metadata": {"project": "p"}, "status": {"state": "error"}}))
    result = await asyncio.to_thread(invoke, "rules", "test", "--run", str(broken), "--api", api.url)
    assert result.exit_code == 2
    assert result.stderr == (
        "runherald rules test: the run has 1 problem\nrun.metadata.uid: missing or not a non-empty string\n"
    )
