"""Settings from the environment, and the worker's event-loop choice."""

from __future__ import annotations

import asyncio

import pytest

from runherald.config import Settings
from runherald.worker import install_event_loop


def test_environment_overrides_defaults_with_typed_values() -> None:
    settings = Settings.from_env(
        {"RUNHERALD_PARTITIONS": "3", "RUNHERALD_CONSUMER_THREAD": "yes", "RUNHERALD_EVENT_LOOP": "asyncio"}
    )
    assert settings.partitions == 3
    assert settings.consumer_thread is True
    assert settings.event_loop == "asyncio"
    assert Settings.from_env({}).consumer_thread is False
    assert Settings.from_env({}).event_loop == "uvloop"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RUNHERALD_EVENT_LOOP": "trio"}, "event_loop must be 'uvloop' or 'asyncio'"),
        ({"RUNHERALD_CONSUMER_THREAD": "maybe"}, "RUNHERALD_CONSUMER_THREAD: expected a boolean"),
        ({"RUNHERALD_PARTITIONS": "0"}, "partitions must be at least 1"),
    ],
)
def test_bad_settings_name_the_problem(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_install_event_loop_sets_the_policy_new_loops_come_from() -> None:
    import uvloop

    try:
        assert install_event_loop("uvloop") == "uvloop"
        loop = asyncio.new_event_loop()
        assert isinstance(loop, uvloop.Loop)
        loop.close()
        assert install_event_loop("asyncio") == "asyncio"
        loop = asyncio.new_event_loop()
        assert not isinstance(loop, uvloop.Loop)
        loop.close()
    finally:
        asyncio.set_event_loop_policy(None)
