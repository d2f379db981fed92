"""Shared helpers for the notifier tests: mlrun reference fixtures and delivery construction."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from runherald.notifiers import NotifierSettings

from runherald.delivery import Delivery, delivery_id
from runherald.egress import EgressPolicy

REFERENCE_PATH = Path(__file__).parents[1] / "fixtures" / "notifiers" / "mlrun_reference.json"


def load_reference() -> dict[str, Any]:
    """mlrun 1.12.1's outputs, written by tests/fixtures/notifiers/generate.py."""
    return json.loads(REFERENCE_PATH.read_text(encoding="utf-8"))


REFERENCE = load_reference()


def make_delivery(
    kind: str,
    *,
    message: str = "test-message",
    severity: str = "info",
    runs: list[dict[str, Any]] | None = None,
    name: str = "",
    secret_params: Iterable[str] = (),
    state: str = "completed",
) -> Delivery:
    """A delivery as the pipeline would hand it to a notifier (its params are passed beside it); the
    notification names `secret_params` (the keys whose values came from secrets) as the pipeline's do."""
    notification = {"kind": kind, "name": name, "message": message, "severity": severity, "params": {}}
    if secret_params:
        notification["secret_params"] = {key: "REDACTED" for key in secret_params}
    return Delivery(
        id=delivery_id("p1", "uid-1", name or kind, state),
        project="p1",
        uid="uid-1",
        name=name,
        state=state,
        kind=kind,
        message=message,
        severity=severity,
        runs=list(runs or []),
        notification=notification,
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``<channel>_case`` arguments with mlrun's reference cases for that channel."""
    for channel in ("slack", "webhook", "console"):
        argument = f"{channel}_case"
        if argument in metafunc.fixturenames:
            cases = REFERENCE[channel]
            metafunc.parametrize(argument, cases, ids=[case["id"] for case in cases])


@pytest.fixture
def reference() -> dict[str, Any]:
    """mlrun 1.12.1's reference outputs."""
    return REFERENCE


@pytest.fixture
def delivery_for() -> Any:
    """The make_delivery helper, as a fixture."""
    return make_delivery


@pytest.fixture
def settings() -> NotifierSettings:
    """Settings for loopback peers: loopback egress allowed, short timeout."""
    return NotifierSettings(egress=EgressPolicy(allow_loopback=True), timeout=2.0)
