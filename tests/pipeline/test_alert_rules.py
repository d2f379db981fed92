"""Alert rules and receivers applied with `runherald rules apply -f`, through a real worker's API: they
notify the runs they match (each matcher operator) and no others, survive a restart, reach the other
worker within a second, refuse bad documents with their paths (applying nothing of them), apply
idempotently, prune, keep secrets out of every answer, and need the admin scope to change."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runherald.auth import new_token
from runherald.broker import EmbeddedBroker
from runherald.publish import Publisher
from runherald.testing.webhook import WebhookReceiver

from .harness import (
    WorkerProcess,
    fast_worker,
    own_worker,
    read_topic,
    request,
    run_cli,
    run_dict,
    tokens_file,
    unique,
    wait_for,
    webhook,
)

SECRET = "s3cr3t-receiver-token-value"


def write(tmp_path: Path, document: dict[str, Any]) -> str:
    path = tmp_path / f"{unique('config')}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(path)


async def apply(worker: WorkerProcess, file: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await run_cli("rules", "apply", "-f", file, *args, "--api", worker.api)


def changes(done: subprocess.CompletedProcess[str]) -> list[tuple[str, str, str]]:
    assert done.returncode == 0, done.stderr
    return [(c["type"], c["name"], c["action"]) for c in json.loads(done.stdout)["changes"]]


@pytest.fixture(scope="module")
def alerting(broker: EmbeddedBroker, worker_logs: Path) -> Iterator[WorkerProcess]:
    """A worker of this module's own: its rules must not notify other modules' runs."""
    with own_worker(broker.url, worker_logs) as process:
        yield process


async def test_a_rule_applied_with_the_cli_notifies_matching_runs_on_each_operator(
    alerting: WorkerProcess, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    project, other = unique("p"), unique("p")
    hook = f"/rules-{project}"
    where = f'project="{project}"'
    document = {
        "receivers": [{"name": "hook", "kind": "webhook", "params": {"url": receiver.url(hook)}}],
        "rules": [
            {"name": f"{project}-eq", "matchers": [where, 'name="train"'], "receivers": ["hook"]},
            {"name": f"{project}-ne", "matchers": [where, 'name!="train"'], "receivers": ["hook"]},
            {"name": f"{project}-re", "matchers": [where, 'name=~"tr.*"'], "receivers": ["hook"]},
            {"name": f"{project}-nre", "matchers": [where, 'name!~"tr.*"'], "receivers": ["hook"]},
            {"name": f"{project}-label", "matchers": [where, 'labels.team="vision"'], "receivers": ["hook"]},
        ],
    }
    done = await apply(alerting, write(tmp_path, document), "-o", "json")
    assert changes(done) == [("receiver", "hook", "created")] + [
        ("rule", rule["name"], "created") for rule in document["rules"]
    ]

    train, evaluation, elsewhere = unique("u"), unique("u"), unique("u")
    own = webhook("own", receiver.url(f"/own-{project}"))
    async with Publisher(alerting.settings) as publisher:
        await publisher.publish(run_dict(other, elsewhere, "completed", [own], labels={"team": "vision"}))
        await publisher.publish(run_dict(project, train, "completed", [], labels={"team": "vision"}))
        await publisher.publish(run_dict(project, evaluation, "completed", [own], name="eval"))

    await receiver.wait_for_requests(5, path=hook, within=20)
    await receiver.wait_for_requests(2, path=f"/own-{project}", within=20)
    by_uid: dict[str, int] = {}
    for sent in receiver.requests_to(hook):
        runs = sent.json()["runs"]
        assert len(runs) == 1
        by_uid[runs[0]["metadata"]["uid"]] = by_uid.get(runs[0]["metadata"]["uid"], 0) + 1
    assert by_uid == {train: 3, evaluation: 2}

    async def view(uid: str, key: str) -> dict[str, Any]:
        code, body = await request(alerting, "GET", f"/api/v1/runs/{key}/{uid}/notifications")
        return body if code == 200 and all(v["status"] == "sent" for v in body.values()) else {}

    expected = {
        train: {f"{project}-{op}/hook" for op in ("eq", "re", "label")},
        evaluation: {"own", *(f"{project}-{op}/hook" for op in ("ne", "nre"))},
    }
    for uid, names in expected.items():
        found = await wait_for(lambda uid=uid: view(uid, project), timeout=20)
        assert set(found) == names and {item["kind"] for item in found.values()} == {"webhook"}
    # The run in another project: its own notification only, decided with (and not by) the rules.
    found = await wait_for(lambda: view(elsewhere, other), timeout=20)
    assert set(found) == {"own"}
    assert len(receiver.requests_to(hook)) == 5
    # A run only rules notify is tracked: the API answers for it, its statuses filled from the ledger.
    code, run = await request(alerting, "GET", f"/api/v1/runs/{project}/{train}")
    assert code == 200 and run["metadata"]["uid"] == train
    assert set(run["status"]["notifications"]) == expected[train]


async def test_rules_survive_a_worker_restart(
    start_worker: Any, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    first: WorkerProcess = start_worker()
    project = unique("p")
    document = {
        "receivers": [{"name": "hook", "kind": "webhook", "params": {"url": receiver.url("/restart")}}],
        "rules": [{"name": "failures", "matchers": [f'project="{project}"'], "when": ["error"],
                   "receivers": ["hook"]}],
    }  # fmt: skip
    assert changes(await apply(first, write(tmp_path, document), "-o", "json"))[-1][2] == "created"
    first.stop()
    second = first.restarted()
    try:
        second.wait_ready()
        assert (await request(second, "GET", "/api/v1/rules/failures"))[1]["receivers"] == ["hook"]
        uid = unique("u")
        async with Publisher(second.settings) as publisher:
            await publisher.publish(run_dict(project, uid, "error", []))
        await receiver.wait_for_requests(1, path="/restart", within=20)
        assert receiver.requests_to("/restart")[0].json()["runs"][0]["metadata"]["uid"] == uid
    finally:
        second.stop()


async def test_a_rule_applied_on_one_worker_is_in_force_on_the_other_within_a_second(
    start_worker: Any, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    prefix, group = unique("t") + ".", unique("g")
    one: WorkerProcess = start_worker(prefix, group)
    other: WorkerProcess = start_worker(prefix, group)
    project = unique("p")
    assert (await request(other, "GET", "/api/v1/rules/spread"))[0] == 404
    document = {
        "receivers": [{"name": "hook", "kind": "webhook", "params": {"url": receiver.url("/spread")}}],
        "rules": [{"name": "spread", "matchers": [f'project="{project}"'], "receivers": ["hook"]}],
    }
    started = time.monotonic()  # from before the write: what is measured includes it
    code, body = await request(one, "PUT", "/api/v1/config", {"document": document})
    assert code == 200 and body["changes"][-1] == {"type": "rule", "name": "spread", "action": "created"}

    async def in_force() -> bool:
        return (await request(other, "GET", "/api/v1/rules/spread"))[0] == 200

    await wait_for(in_force, timeout=5, interval=0.01)
    took = time.monotonic() - started
    assert took < 1.0, f"in force on the other worker {took:.2f}s after the write was sent"
    print(f"\nthe rule was in force on the other worker {took * 1000:.0f} ms after the write was sent")

    # The other worker alone evaluates the next run: the rule it read fires there.
    await asyncio.to_thread(one.stop)
    uid = unique("u")
    async with Publisher(other.settings) as publisher:
        await publisher.publish(run_dict(project, uid, "completed", []))
    await receiver.wait_for_requests(1, path="/spread", within=40)  # after the rebalance
    code, body = await request(other, "GET", f"/api/v1/runs/{project}/{uid}/notifications")
    assert code == 200 and set(body) == {"spread/hook"}


MAIL = {
    "name": "mail",
    "kind": "mail",
    "params": {"server_host": "127.0.0.1", "server_port": 25, "sender_address": "ci@example.com",
               "email_addresses": ["ops@example.com", "not an address"]},
}  # fmt: skip
GOOD = {"name": "good", "kind": "webhook", "params": {"url": "http://127.0.0.1:9/good"}}


def _rule(**fields: Any) -> dict[str, Any]:
    return {"name": "r", "matchers": ['project="x"'], "receivers": ["good"], **fields}


# Each bad document beside a good receiver and rule: (case, document, path, what the problem says).
BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("bad matcher", {"rules": [_rule(matchers=["project"])]}, "rules.r.matchers[0]", ""),
    ("bad regex", {"rules": [_rule(matchers=['name=~"("'])]}, "rules.r.matchers[0]", "regular expression"),
    ("unknown field", {"rules": [_rule(colour="red")]}, "rules.r.colour", "unknown field 'colour'"),
    ("unknown matcher field", {"rules": [_rule(matchers=['colour="red"'])]}, "rules.r.matchers[0]", "colour"),
    ("unknown state", {"rules": [_rule(when=["exploded"])]}, "rules.r.when[0]", "unknown state 'exploded'"),
    ("condition", {"rules": [_rule(condition="{{ run.x < }}")]}, "rules.r.condition", "does not compile"),
    (
        "channel params",
        {"receivers": [{"name": "chat", "kind": "slack", "params": {}}]},
        "receivers.chat.params.webhook",
        "required",
    ),
    ("mail params", {"receivers": [MAIL]}, "receivers.mail.params.email_addresses", "Invalid email address"),
    ("duplicate rule", {"rules": [_rule(), _rule()]}, "rules.r.name", "defined twice"),
    ("duplicate receiver", {"receivers": [GOOD]}, "receivers.good.name", "defined twice"),
]


def _bad_document(case: dict[str, Any], tag: str) -> dict[str, Any]:
    good_rule = {"name": f"good-{tag}", "matchers": [f'project="{tag}"'], "receivers": ["good"]}
    return {
        "receivers": [GOOD, *case.get("receivers", [])],
        "rules": [good_rule, *case.get("rules", [])],
    }


async def _nothing_applied(worker: WorkerProcess, tag: str) -> None:
    assert (await request(worker, "GET", f"/api/v1/rules/good-{tag}"))[0] == 404
    assert (await request(worker, "GET", "/api/v1/receivers/good"))[0] == 404


@pytest.mark.parametrize(("case", "document", "path", "said"), BAD, ids=[case[0] for case in BAD])
async def test_check_config_and_apply_refuse_bad_input_with_its_path(
    alerting: WorkerProcess, tmp_path: Path, case: str, document: dict[str, Any], path: str, said: str
) -> None:
    worker = alerting
    tag = unique("x")
    file = write(tmp_path, _bad_document(document, tag))
    expected = f"{path}: "
    for args in (("check-config", file), ("rules", "apply", "-f", file, "--api", worker.api)):
        done = await run_cli(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        lines = done.stderr.splitlines()
        assert any(line.startswith(expected) and said in line for line in lines), done.stderr
        assert done.stdout == ""
    # The worker checks it too, whoever sends it, and applies nothing of it.
    code, body = await request(worker, "PUT", "/api/v1/config", {"document": _bad_document(document, tag)})
    assert code == 400 and any(p["path"] == path and said in p["message"] for p in body["problems"]), body
    await _nothing_applied(worker, tag)


async def test_a_receiver_that_does_not_exist_is_a_warning_offline_and_refused_on_apply(
    alerting: WorkerProcess, tmp_path: Path
) -> None:
    tag = unique("x")
    rule = {"name": f"lonely-{tag}", "matchers": [f'project="{tag}"'], "receivers": ["nowhere"]}
    file = write(tmp_path, {"rules": [rule]})
    done = await run_cli("check-config", file)
    assert done.returncode == 0 and done.stdout == "0 receivers, 1 rule: OK\n"
    assert done.stderr.startswith(f"warning: rules.lonely-{tag}.receivers[0]: no receiver 'nowhere'")
    done = await apply(alerting, file)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines()[1].startswith(f"rules.lonely-{tag}.receivers[0]: no receiver 'nowhere'")
    assert (await request(alerting, "GET", f"/api/v1/rules/lonely-{tag}"))[0] == 404


async def test_apply_is_idempotent_prunes_and_keeps_secrets_out_of_every_answer(
    start_worker: Any, tmp_path: Path
) -> None:
    worker: WorkerProcess = start_worker()
    api = ("--api", worker.api)
    secret_hook = {"name": "signed", "kind": "webhook", "params": {"url": "http://127.0.0.1:9/signed"},
                   "secret_params": {"token": SECRET}}  # fmt: skip
    plain = {"name": "plain", "kind": "console"}
    rule_a = {"name": "a", "matchers": ['project="a"'], "when": ["error"], "receivers": ["signed"]}
    rule_b = {"name": "b", "matchers": ['labels.team!="sandbox"', 'project=~"b-.*"'], "receivers": ["plain"]}
    full = write(tmp_path, {"receivers": [secret_hook, plain], "rules": [rule_a, rule_b]})
    created = [("receiver", "signed", "created"), ("receiver", "plain", "created"),
               ("rule", "a", "created"), ("rule", "b", "created")]  # fmt: skip
    assert changes(await apply(worker, full, "-o", "json")) == created
    again = await apply(worker, full)
    assert again.returncode == 0 and again.stdout.split("\n")[1:5] == [
        f"{kind:<8}  {name:<6}  unchanged" for kind, name, _ in created
    ]
    records = await read_topic(worker.settings, "rules")
    assert len(records) == 4 and all(SECRET.encode() not in (value or b"") for _, value in records)

    # What the API and the CLI show of the receiver: never the secret, and the same as before.
    shown = [await run_cli(*args, *api, "-o", "json") for args in (("receivers", "list"),
             ("receivers", "get", "signed"), ("rules", "list"))]  # fmt: skip
    assert all(done.returncode == 0 and SECRET not in done.stdout for done in shown)
    assert json.loads(shown[1].stdout)["params"] == secret_hook["params"]
    assert [rule["name"] for rule in json.loads(shown[2].stdout)["rules"]] == ["a", "b"]
    table = await run_cli("rules", "list", *api)
    assert table.stdout.splitlines()[2].split() == ["b", 'labels.team!="sandbox",', 'project=~"b-.*"',
                                                    "completed", "plain"]  # fmt: skip

    # A dry run says what would change and changes nothing; a receiver a rule names is not deleted.
    smaller = write(
        tmp_path, {"receivers": [secret_hook], "rules": [{**rule_a, "when": ["error", "aborted"]}]}
    )
    pruned = [("receiver", "signed", "unchanged"), ("rule", "a", "updated"),
              ("rule", "b", "deleted"), ("receiver", "plain", "deleted")]  # fmt: skip
    assert changes(await apply(worker, smaller, "--prune", "--dry-run", "-o", "json")) == pruned
    assert (await request(worker, "GET", "/api/v1/rules/a"))[1]["when"] == ["error"]
    done = await run_cli("receivers", "delete", "plain", *api)
    assert done.returncode == 1 and "named by the rules b" in done.stderr
    assert (await request(worker, "DELETE", "/api/v1/receivers/plain"))[0] == 409

    # --prune deletes what the file no longer holds: the rules first, then the receivers.
    assert changes(await apply(worker, smaller, "--prune", "-o", "json")) == pruned
    code, listed = await request(worker, "GET", "/api/v1/rules")
    assert code == 200 and [(r["name"], r["when"]) for r in listed["rules"]] == [("a", ["error", "aborted"])]
    code, listed = await request(worker, "GET", "/api/v1/receivers")
    assert [r["name"] for r in listed["receivers"]] == ["signed"]
    assert changes(await apply(worker, smaller, "--prune", "-o", "json")) == [
        ("receiver", "signed", "unchanged"),
        ("rule", "a", "unchanged"),
    ]
    # With prune, a rule may not name a stored receiver the document leaves out: prune would delete it.
    code, body = await request(
        worker, "PUT", "/api/v1/config", {"document": {"rules": [rule_a]}, "prune": True}
    )
    assert code == 400 and body["problems"] == [
        {
            "path": "rules.a.receivers[0]",
            "message": "receiver 'signed' is stored, but prune deletes every receiver the document does"
            " not define",
        }
    ]
    assert (await request(worker, "GET", "/api/v1/receivers/signed"))[0] == 200
    log = worker.log_path.read_text(errors="replace")
    assert SECRET not in log and "Traceback" not in log


async def test_changes_need_the_admin_scope_and_reading_needs_read(
    broker: EmbeddedBroker, worker_logs: Path, tmp_path: Path
) -> None:
    tokens = {"reader": new_token(), "ops": new_token()}
    path = tokens_file(tmp_path, ("reader", tokens["reader"], ["read"]), ("ops", tokens["ops"], ["admin"]))
    secured = fast_worker(
        broker.url, unique("t") + ".", unique("g"), worker_logs, RUNHERALD_API_TOKENS_FILE=str(path)
    ).start()
    try:
        await asyncio.to_thread(secured.wait_ready)
        rule = {"matchers": ['project="x"'], "receivers": ["plain"]}
        receiver = {"kind": "console"}
        for method, where, body in [
            ("PUT", "/api/v1/receivers/plain", receiver),
            ("PUT", "/api/v1/rules/r", rule),
            ("PUT", "/api/v1/config", {"document": {}}),
            ("DELETE", "/api/v1/rules/r", None),
            ("DELETE", "/api/v1/receivers/plain", None),
        ]:
            code, answer = await request(secured, method, where, body, tokens["reader"])
            assert code == 403 and "lacks the 'admin' scope" in answer["error"], (method, where, answer)
            assert (await request(secured, method, where, body))[0] == 401
        for where in ("/api/v1/rules", "/api/v1/receivers"):
            assert await request(secured, "GET", where, token=tokens["reader"]) == (
                200,
                {where.rsplit("/", 1)[1]: []},
            )

        file = write(
            tmp_path, {"receivers": [{"name": "plain", **receiver}], "rules": [{"name": "r", **rule}]}
        )
        api = ("--api", secured.api)
        done = await run_cli("rules", "apply", "-f", file, *api, "--token", tokens["reader"])
        assert done.returncode == 1 and "refused (403)" in done.stderr and tokens["reader"] not in done.stderr
        done = await run_cli("rules", "apply", "-f", file, *api, RUNHERALD_TOKEN=tokens["ops"])
        assert done.returncode == 0 and done.stdout.splitlines()[1:] == [
            "receiver  plain  created",
            "rule      r      created",
        ]
        done = await run_cli("rules", "get", "r", *api, "--token", tokens["reader"])
        assert done.returncode == 0 and done.stdout.splitlines()[1].split() == ["name", "r"]
        code, answer = await request(secured, "PUT", "/api/v1/rules/r", rule, tokens["ops"])
        assert (code, answer) == (200, {"name": "r", "action": "unchanged"})
    finally:
        await asyncio.to_thread(secured.stop)


async def test_rules_and_receivers_one_by_one_through_the_api(alerting: WorkerProcess) -> None:
    tag = unique("x")
    rule, hook = f"{tag}-rule", f"{tag}-hook"
    receiver = {"kind": "webhook", "params": {"url": "http://127.0.0.1:9/one"}}
    for kind in ("rules", "receivers"):
        assert await request(alerting, "GET", f"/api/v1/{kind}/{tag}") == (
            404,
            {"error": f"no {kind[:-1]} named {tag!r}"},
        )
        assert (await request(alerting, "DELETE", f"/api/v1/{kind}/{tag}"))[0] == 404
    assert await request(alerting, "PUT", f"/api/v1/receivers/{hook}", receiver) == (
        200,
        {"name": hook, "action": "created"},
    )
    assert (await request(alerting, "PUT", f"/api/v1/receivers/{hook}", {**receiver, "name": hook}))[1][
        "action"
    ] == "unchanged"
    code, body = await request(alerting, "PUT", f"/api/v1/receivers/{hook}", {**receiver, "name": "other"})
    assert code == 400 and body["problems"][0]["path"] == f"receivers.{hook}.name"

    body_of_rule = {"matchers": [f'project="{tag}"'], "receivers": [hook, "missing"]}
    code, body = await request(alerting, "PUT", f"/api/v1/rules/{rule}", body_of_rule)
    assert code == 400 and [p["path"] for p in body["problems"]] == [f"rules.{rule}.receivers[1]"]
    assert (await request(alerting, "GET", f"/api/v1/rules/{rule}"))[0] == 404
    body_of_rule["receivers"] = [hook]
    assert (await request(alerting, "PUT", f"/api/v1/rules/{rule}", body_of_rule))[1]["action"] == "created"
    code, listed = await request(alerting, "GET", "/api/v1/rules")
    assert code == 200 and {"name": rule, "when": ["completed"], **body_of_rule} in listed["rules"]
    assert [r["name"] for r in listed["rules"]] == sorted(r["name"] for r in listed["rules"])
    code, body = await request(alerting, "DELETE", f"/api/v1/receivers/{hook}")
    assert code == 409 and body["rules"] == [rule] and rule in body["error"]

    for bad, paths in [
        ({"document": [], "extra": 1}, ["extra", "document"]),
        ({"document": {}, "prune": "yes"}, ["prune"]),
    ]:
        code, body = await request(alerting, "PUT", "/api/v1/config", bad)
        assert code == 400 and [p["path"] for p in body["problems"]] == paths
    assert (await request(alerting, "DELETE", f"/api/v1/rules/{rule}"))[1] == {
        "name": rule,
        "action": "deleted",
    }
    assert (await request(alerting, "DELETE", f"/api/v1/receivers/{hook}"))[0] == 200
    assert (await request(alerting, "GET", f"/api/v1/receivers/{hook}"))[0] == 404
