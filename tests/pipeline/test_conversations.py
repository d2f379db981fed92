"""One conversation per run through the pipeline: a worker SIGKILLed between a run's states leaves at most
one extra Slack parent, and every later update and reply is aimed at the parent the ledger recorded;
one run's mails thread in order."""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import orjson
import pytest

from runherald.publish import Publisher
from runherald.testing.slack import SlackServer
from runherald.testing.smtp import SmtpServer

from .harness import read_topic, run_dict, unique, wait_for

NAME = "chat"


def _notification(token: str) -> dict[str, Any]:
    return {
        "kind": "slack",
        "name": NAME,
        "message": "nightly",
        "severity": "info",
        "when": ["running", "completed", "error"],
        "params": {"channel": "#ml"},
        "secret_params": {"token": token},
    }


def _states(worker: Any, project: str, uid: str) -> dict[str, Any]:
    code, body = worker.get(f"/api/v1/runs/{project}/{uid}/notifications")
    return (body.get(NAME) or {}).get("states", {}) if code == 200 else {}


async def _recorded_thread(settings: Any, key: bytes) -> dict[str, Any] | None:
    """The conversation in the run's latest record on the status topic."""
    for record_key, value in reversed(await read_topic(settings, "status")):
        if record_key == key and value:
            thread: dict[str, Any] | None = (orjson.loads(value).get("conversations") or {}).get(NAME)
            return thread
    return None


@pytest.mark.parametrize(
    ("fault", "parent_count"),
    [
        ("after-send@1", {2}),  # the parent posted, never recorded: the next owner posts it again
        ("after-record@1", {1, 2}),  # recorded in memory, perhaps not yet on the status topic
        ("after-send@2", {1}),  # the second state waited for the parent's record on the topic
    ],
)
async def test_a_worker_killed_between_states_leaves_at_most_one_extra_parent(
    fault: str, parent_count: set[int], start_worker: Any
) -> None:
    async with SlackServer() as slack:
        prefix, group = unique("t") + ".", unique("g")
        first = start_worker(
            prefix=prefix, group=group, RUNHERALD_SLACK_BASE_URL=slack.api_url, RUNHERALD_FAULT_POINT=fault
        )
        project, uid = unique("p"), unique("u")
        notification = _notification(slack.token)
        async with Publisher(first.settings) as publisher:
            await publisher.publish(run_dict(project, uid, "running", [notification]))
            await publisher.publish(
                run_dict(project, uid, "error", [notification], extra_status={"error": "OOMKilled"})
            )
        await wait_for(lambda: not first.alive, timeout=30)  # the fault point killed it
        second = start_worker(prefix=prefix, group=group, RUNHERALD_SLACK_BASE_URL=slack.api_url)
        await wait_for(
            lambda: (
                {s.get("status") for s in _states(second, project, uid).values()} == {"sent"}
                and len(_states(second, project, uid)) == 2
            ),
            timeout=40,
        )
        key = f"{project}/{uid}".encode()
        thread = await wait_for(lambda: _recorded_thread(second.settings, key), timeout=10)
        await asyncio.sleep(0.5)  # nothing more is on its way
    parents = slack.parents()
    assert len(parents) in parent_count, [p.ts for p in parents]
    assert thread["ts"] == parents[-1].ts and thread["state"] == "error"
    assert slack.updates and all(u.ts == thread["ts"] for u in slack.updates)
    replies = [m for m in slack.messages if m.thread_ts]
    assert replies and all(r.thread_ts == thread["ts"] for r in replies)
    assert all(r.broadcast for r in replies)  # the error reply, sent once or twice
    assert "*OOMKilled*" in str(slack.current[thread["ts"]]["blocks"])


async def test_one_runs_mails_thread_in_order(start_worker: Any) -> None:
    async with SmtpServer("plain") as smtp:
        worker = start_worker()
        project, uid = unique("p"), unique("u")
        mail = {
            "kind": "mail",
            "name": "m",
            "message": "nightly",
            "severity": "info",
            "when": ["running", "completed", "error"],
            "params": {
                "server_host": smtp.host,
                "server_port": smtp.port,
                "sender_address": "herald@example.com",
                "email_addresses": ["a@example.com"],
                "use_tls": False,
                "start_tls": False,
                "validate_certs": False,
            },
        }
        async with Publisher(worker.settings) as publisher:
            for state in ("running", "completed"):
                await publisher.publish(run_dict(project, uid, state, [mail]))
            await wait_for(lambda: len(smtp.messages) >= 2, timeout=30)
    first, second = (received.message for received in smtp.messages)
    assert first["In-Reply-To"] is None and "started" in first["Subject"]
    assert (second["In-Reply-To"], second["References"]) == (first["Message-ID"], first["Message-ID"])
    assert second["Subject"] == f"Re: {first['Subject']}"
    assert second["Message-ID"] != first["Message-ID"]


def _slack_rules(base: str, token: str, **grouping: Any) -> dict[str, Any]:
    return {
        "receivers": [
            {"name": "team", "kind": "slack", "params": {"channel": "#ml"}, "secret_params": {"token": token}}
        ],
        "rules": [
            {
                "name": "failures",
                "matchers": [f'project=~"{base}-.*"'],
                "when": ["running", "error"],
                "receivers": ["team"],
                **grouping,
            }
        ],
    }


async def _configure(worker: Any, document: dict[str, Any]) -> None:
    def put() -> tuple[int, Any]:
        body = orjson.dumps({"document": document})
        sent = urllib.request.Request(worker.api + "/api/v1/config", data=body, method="PUT")
        with urllib.request.urlopen(sent, timeout=15) as response:
            return response.status, orjson.loads(response.read())

    code, answer = await asyncio.to_thread(put)
    assert code == 200, answer


async def test_an_alert_rules_notification_and_a_groups_digests_converse(start_worker: Any) -> None:
    async with SlackServer() as slack:
        worker = start_worker(RUNHERALD_SLACK_BASE_URL=slack.api_url)
        base = unique("p")
        await _configure(worker, _slack_rules(base, slack.token))
        async with Publisher(worker.settings) as publisher:
            await publisher.publish(run_dict(f"{base}-0", "u1", "running", []))
            await slack.wait_for_messages(1, within=20)
            await publisher.publish(
                run_dict(f"{base}-0", "u1", "error", [], extra_status={"error": "OOMKilled"})
            )
            await slack.wait_for_messages(2, within=20)
        (parent,) = slack.parents()
        assert [u.ts for u in slack.updates] == [parent.ts]
        (reply,) = slack.replies(str(parent.ts))
        assert reply.broadcast and (reply.metadata or {})["event_payload"]["notification"] == "failures/team"

        # Grouped: each window's digest of one group goes in the first digest's thread.
        grouped = unique("g")
        await _configure(
            worker,
            _slack_rules(grouped, slack.token, group_by=["project"], group_wait="1s", group_interval="1s"),
        )
        before = len(slack.messages)
        async with Publisher(worker.settings) as publisher:
            for i, uid in enumerate(("d1", "d2", "d3")):
                await publisher.publish(run_dict(f"{grouped}-0", uid, "error", []))
                await slack.wait_for_messages(before + i + 1, within=20)
    digests = slack.messages[before:]
    first = digests[0]
    assert first.thread_ts is None and [d.thread_ts for d in digests[1:]] == [first.ts, first.ts]
    assert [u.ts for u in slack.updates[1:]] == [first.ts, first.ts]
