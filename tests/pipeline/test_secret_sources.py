"""Secrets come only from where an operator put them: a publisher cannot make a worker send its keys.

Every field a publisher controls is tried, through a real worker to a loopback receiver.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.fernet import Fernet

from runherald.publish import Publisher
from runherald.testing.webhook import WebhookReceiver
from runherald.testing.worker import TEST_SEAL_PRIVATE_KEY

from .harness import WorkerProcess, run_dict, unique, wait_for, webhook

SEAL_KEY = Fernet.generate_key().decode()
OUTSIDE = "outside-allow-list-5c1e9a"
PREFIXED = "prefixed-secret-0b9d44"
ALLOWED = "allow-listed-secret-7e21f3"
NAMED = "named-secret-a4c6e0"
KEY_REFS = "${RUNHERALD_SEAL_KEY}${RUNHERALD_SEAL_PRIVATE_KEYS}"


def never_seen() -> list[str]:
    values = [SEAL_KEY, TEST_SEAL_PRIVATE_KEY, OUTSIDE]
    home = os.environ.get("HOME")
    return values + ([home] if home and len(home) > 4 else [])


async def test_references_resolve_only_in_secret_params_and_only_from_allowed_sources(
    start_worker: Any, receiver: WebhookReceiver
) -> None:
    worker: WorkerProcess = start_worker(
        RUNHERALD_SEAL_KEY=SEAL_KEY,
        RUNHERALD_SECRETS_ENV_ALLOW="H6_OPS_TOKEN",
        H6_OPS_TOKEN=ALLOWED,
        H6_OUTSIDE=OUTSIDE,
        RUNHERALD_SECRET_H6_TOKEN=PREFIXED,
        RUNHERALD_SECRET_ML_ONCALL_HOOK=NAMED,
    )
    project, uid = unique("p"), unique("u")

    def hook(name: str, **extra: Any) -> dict[str, Any]:
        return webhook(name, receiver.url(f"/{name}"), when=["completed"], **extra)

    def secret_hook(name: str, secret_params: dict[str, Any]) -> dict[str, Any]:
        return hook(name, params={"method": "post"}, secret_params=secret_params)

    literal = [
        # A reference outside secret_params is literal text, sent as it is.
        webhook("p-url", receiver.url("/p-url") + "?k=" + KEY_REFS, when=["completed"]),
        hook("p-headers", params={"url": receiver.url("/p-headers"), "headers": {"X-K": KEY_REFS}}),
        hook("p-body", params={"url": receiver.url("/p-body"), "override_body": {"k": KEY_REFS}}),
        hook(
            "p-template",
            params={"url": receiver.url("/p-template"), "body_template": '{"k": "' + KEY_REFS + '"}'},
        ),
        hook("p-message", message="key " + KEY_REFS),
    ]
    refused = {
        # secret_params that name a variable no operator allowed: the delivery is an error.
        "s-url": ({"url": receiver.url("/s-url") + "?k=${RUNHERALD_SEAL_KEY}"}, "${RUNHERALD_SEAL_KEY}"),
        "s-private": (
            {"url": receiver.url("/s-private"), "headers": {"X": "${RUNHERALD_SEAL_PRIVATE_KEYS}"}},
            "${RUNHERALD_SEAL_PRIVATE_KEYS}",
        ),
        "s-outside": (
            {"url": receiver.url("/s-outside"), "headers": {"X": "${H6_OUTSIDE}"}},
            "${H6_OUTSIDE}",
        ),
        "s-home": ({"url": receiver.url("/s-home"), "headers": {"X": {"secret": "HOME"}}}, "secret 'HOME'"),
        "s-whole": ({"secret": "RUNHERALD_SEAL_KEY"}, "secret 'RUNHERALD_SEAL_KEY'"),
    }
    allowed = [
        secret_hook(
            "s-ok",
            {
                "url": receiver.url("/s-ok"),
                "headers": {
                    "X-Prefixed": "${RUNHERALD_SECRET_H6_TOKEN}",
                    "X-Allowed": "Bearer ${H6_OPS_TOKEN}",
                    "X-Named": {"secret": "ml-oncall-hook"},
                },
            },
        )
    ]
    notifications = literal + [secret_hook(name, sp) for name, (sp, _) in refused.items()] + allowed
    async with Publisher(worker.settings) as publisher:
        await publisher.publish(run_dict(project, uid, "completed", notifications))

    names = {n["name"] for n in notifications}

    def finished() -> dict[str, Any]:
        code, body = worker.get(f"/api/v1/runs/{project}/{uid}/notifications")
        done = code == 200 and all(body.get(n, {}).get("status") in {"sent", "error"} for n in names)
        return body if done else {}

    status = await wait_for(finished, timeout=40)
    assert {n: status[n]["status"] for n in names} == {
        **{n["name"]: "sent" for n in literal},
        **dict.fromkeys(refused, "error"),
        "s-ok": "sent",
    }
    for name, (_, reference) in refused.items():
        reason = status[name]["reason"]
        assert reference in reason, reason
        assert status[name]["attempts"] == 1  # permanent: never retried
        assert not any(value in reason for value in never_seen()), reason

    # The allowed sources were used.
    ok = receiver.requests_to("/s-ok")[0]
    assert (ok.headers["X-Prefixed"], ok.headers["X-Allowed"], ok.headers["X-Named"]) == (
        PREFIXED,
        f"Bearer {ALLOWED}",
        NAMED,
    )
    # The literal references arrived as text; no refused one reached the receiver at all.
    assert "${RUNHERALD_SEAL_KEY}" in receiver.requests_to("/p-headers")[0].headers["X-K"]
    assert KEY_REFS.encode() in receiver.requests_to("/p-body")[0].body
    assert KEY_REFS.encode() in receiver.requests_to("/p-template")[0].body
    assert KEY_REFS.encode() in receiver.requests_to("/p-message")[0].body
    assert len(receiver.requests_to("/p-url")) == 1
    for name in refused:
        assert receiver.requests_to(f"/{name}") == []
    for request in receiver.requests:
        seen = (request.path + repr(request.query) + repr(request.headers)).encode() + request.body
        leaked = [value for value in never_seen() if value.encode() in seen]
        assert leaked == [], request.path
