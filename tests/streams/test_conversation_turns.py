"""The dispatcher's side of one conversation per run: states of one run and notification are sent one at
a time, in order, each reading the conversation the previous one recorded (and waited to see written),
with the real Slack channel against the loopback Slack server; ledger kept in a dict."""

from __future__ import annotations

import asyncio

import pytest
from runherald.notifiers import NotifierSettings, SlackNotifier
from runherald.streams.dispatch import Dispatcher

from runherald import conversation, grouping, ledger
from runherald.delivery import Delivery, OutcomeKind, delivery_id
from runherald.egress import EgressPolicy
from runherald.retry import RetryPolicy
from runherald.testing import SlackServer

PARAMS = {"token": "xoxb-1", "channel": "#runs"}


def slack_delivery(project: str, uid: str, name: str, state: str, at: float, did: str = "") -> Delivery:
    run = {"metadata": {"name": "train", "uid": uid, "project": project}, "status": {"state": state}}
    return Delivery(
        id=did or delivery_id(project, uid, name, state),
        project=project,
        uid=uid,
        name=name,
        state=state,
        kind="slack",
        message="run changed",
        severity="info",
        runs=[run],
        notification={"kind": "slack", "name": name, "params": PARAMS},
        created_at=at,
    )


async def dispatch_all(slack: SlackServer, deliveries: list[Delivery]) -> tuple[dict[str, bytes], list[str]]:
    """Submit every delivery at once (as one fetch of a partition does) and wait for all outcomes."""
    records: dict[str, bytes] = {}
    events: list[str] = []
    notifier = SlackNotifier(
        NotifierSettings(egress=EgressPolicy(allow_loopback=True), timeout=2.0, slack_base_url=slack.api_url)
    )

    async def write_record(delivery: Delivery, partition: int, record: ledger.Record) -> None:
        records[Dispatcher.key_of(delivery)] = ledger.dump(record)

    async def wait_written(key: str) -> None:
        events.append(f"written-wait {key}")
        await asyncio.sleep(0.05)  # the broker acknowledging the status record
        events.append(f"written {key}")

    async def no_dead_letter(delivery: Delivery, reason: str, outcome: OutcomeKind) -> None:
        raise AssertionError(reason)

    async def no_fetch(partition: int, offset: int) -> Delivery:
        raise AssertionError("nothing to fetch")

    dispatcher = Dispatcher(
        notifier_for=lambda kind: notifier,
        read_record=lambda key: ledger.load(records.get(key), *key.split("/", 1)),
        write_record=write_record,
        dead_letter=no_dead_letter,
        fetch_delivery=no_fetch,
        policy=RetryPolicy(max_attempts=3, base_delay=0.02, max_delay=0.05),
        send_timeout=5,
        max_in_flight=2,  # fewer slots than sends waiting for their turn: waiting gives the slot back
        secrets_dir=None,
        wait_written=wait_written,
    )
    acknowledged: list[str] = []
    all_acknowledged = asyncio.Event()

    def acknowledge(delivery: Delivery) -> None:
        acknowledged.append(delivery.id)
        if len(acknowledged) == len(deliveries):
            all_acknowledged.set()

    for offset, delivery in enumerate(deliveries):
        await dispatcher.submit(delivery, 0, offset, lambda d=delivery: acknowledge(d))
    try:
        await asyncio.wait_for(all_acknowledged.wait(), 10)
    finally:
        await notifier.close()
    assert len(dispatcher.turns) == 0  # no lock left behind
    return records, events


@pytest.mark.parametrize(
    ("project", "uid", "name"),
    [
        ("p1", "uid-1", "on-change"),  # a run's notification
        ("p1", "uid-2", "failures/team-slack"),  # an alert rule's ({rule}/{receiver})
    ],
)
async def test_states_sent_together_make_one_parent_updated_and_replied(
    project: str, uid: str, name: str
) -> None:
    states = ["running", "completed", "error"]
    deliveries = [slack_delivery(project, uid, name, state, at) for at, state in enumerate(states, 1)]
    async with SlackServer(token="xoxb-1") as slack:
        records, events = await dispatch_all(slack, deliveries)
    (parent,) = slack.parents()
    record = ledger.load(records[f"{project}/{uid}"])
    thread = conversation.thread_of(record, name)
    assert thread is not None and thread["ts"] == parent.ts and thread["state"] == "error"
    assert [u.ts for u in slack.updates] == [parent.ts] * 2
    replies = slack.replies(str(parent.ts))
    assert [(r.metadata or {})["event_payload"]["state"] for r in replies] == ["completed", "error"]
    assert [r.broadcast for r in replies] == [False, True]
    assert all(e["status"] == ledger.SENT for e in record["deliveries"].values())
    # Each later state waited for the record holding the conversation to be written before it was sent.
    assert events == [f"written-wait {project}/{uid}", f"written {project}/{uid}"] * 2


async def test_digests_of_one_group_are_one_conversation() -> None:
    group = grouping.group_hash("failures", "team-slack", ["p1"])
    digests = [
        slack_delivery(grouping.GROUP_PROJECT, group, "failures/team-slack", "error", at, did=f"digest-{at}")
        for at in (1, 2, 3)
    ]
    async with SlackServer(token="xoxb-1") as slack:
        records, _ = await dispatch_all(slack, digests)
    (parent,) = slack.parents()
    assert len(slack.replies(str(parent.ts))) == 2 and len(slack.updates) == 2
    thread = conversation.thread_of(ledger.load(records[grouping.group_key(group)]), "failures/team-slack")
    assert thread is not None and thread["ts"] == parent.ts and thread["latest"] == 3


async def test_other_runs_do_not_share_a_conversation() -> None:
    deliveries = [slack_delivery("p1", f"uid-{i}", "n", "running", 1) for i in range(4)]
    async with SlackServer(token="xoxb-1") as slack:
        _, events = await dispatch_all(slack, deliveries)
    assert len(slack.parents()) == 4 and not slack.updates
    assert not events  # nothing to continue: nothing to wait for
