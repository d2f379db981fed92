"""Settings from flags, the environment and a settings file; the worker's event-loop choice."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from runherald.notifiers import NotifierSettings

from runherald.config import Settings, SettingsWarning, redact
from runherald.errors import ConfigError, InvalidArgumentError
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


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_flag_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    settings_file = write(
        tmp_path / "settings.yaml",
        "broker: kafka://file:9092\npartitions: 3\nweb_port: 7001\ngroup_id: from-file\n",
    )
    env = {
        "RUNHERALD_CONFIG": str(settings_file),
        "RUNHERALD_BROKER": "kafka://env:9092",
        "RUNHERALD_PARTITIONS": "4",
    }
    settings = Settings.load(flags={"broker": "kafka://flag:9092", "web_port": None}, env=env)
    assert (settings.broker, settings.source_of("broker")) == ("kafka://flag:9092", "flag --broker")
    assert (settings.partitions, settings.source_of("partitions")) == (4, "env RUNHERALD_PARTITIONS")
    assert (settings.web_port, settings.source_of("web_port")) == (7001, f"file {settings_file}")
    assert (settings.topic_prefix, settings.source_of("topic_prefix")) == ("runherald.", "default")
    # --config beats RUNHERALD_CONFIG; an empty variable counts as unset.
    other = write(tmp_path / "other.yaml", "group_id: other-file\n")
    settings = Settings.load(env={**env, "RUNHERALD_GROUP_ID": ""}, config_file=other)
    assert (settings.group_id, settings.source_of("group_id")) == ("other-file", f"file {other}")
    assert settings.web_port == 6066


def test_mlrun_variables_fill_in_only_when_runherald_says_nothing(tmp_path: Path) -> None:
    env = {"MLRUN_UI__URL": "http://mlrun-ui", "SLACK_WEBHOOK": "https://hooks.example/T/B/x"}
    settings = Settings.from_env(env)
    assert (settings.ui_url, settings.source_of("ui_url")) == ("http://mlrun-ui", "env MLRUN_UI__URL")
    assert settings.slack_webhook == "https://hooks.example/T/B/x"
    settings_file = write(tmp_path / "s.yaml", "ui_url: http://from-file\n")
    assert Settings.load(env=env, config_file=settings_file).ui_url == "http://from-file"
    assert Settings.from_env({**env, "RUNHERALD_UI_URL": "http://ours"}).ui_url == "http://ours"


@pytest.mark.parametrize(
    ("old", "new", "field", "value", "expected"),
    [
        (
            "RUNHERALD_EGRESS_ALLOW_PRIVATE",
            "RUNHERALD_ALLOW_PRIVATE_EGRESS",
            "allow_private_egress",
            "1",
            True,
        ),
        (
            "RUNHERALD_EGRESS_ALLOW_LOOPBACK",
            "RUNHERALD_ALLOW_LOOPBACK_EGRESS",
            "allow_loopback_egress",
            "on",
            True,
        ),
        ("RUNHERALD_NOTIFY_TIMEOUT", "RUNHERALD_SEND_TIMEOUT", "send_timeout", "3.5", 3.5),
        ("RUNHERALD_TEMPLATES_DIR", "RUNHERALD_TEMPLATES", "templates_dir", "/t", "/t"),
    ],
)
def test_old_spellings_still_work_with_a_warning_naming_the_new_one(
    old: str, new: str, field: str, value: str, expected: Any
) -> None:
    with pytest.warns(SettingsWarning, match=f"^{old} is deprecated: use {new}$"):
        settings = Settings.from_env({old: value})
    assert getattr(settings, field) == expected
    assert settings.source_of(field) == f"env {old}"
    # Both set: the new name wins, and the warning says the old one is ignored.
    with pytest.warns(SettingsWarning, match=f"ignored, as {new} is set"):
        settings = Settings.from_env({old: value, new: value})
    assert settings.source_of(field) == f"env {new}"


def test_worker_and_notifiers_read_one_name_per_setting() -> None:
    """The names the README gives reach the notifiers: no second reader overrides them."""
    env = {
        "RUNHERALD_ALLOW_PRIVATE_EGRESS": "true",
        "RUNHERALD_ALLOW_LOOPBACK_EGRESS": "true",
        "RUNHERALD_SEND_TIMEOUT": "3",
        "RUNHERALD_SLACK_BASE_URL": "http://127.0.0.1:9/api/",
        "RUNHERALD_UI_URL": "http://ui",
        "RUNHERALD_TEMPLATES": "/templates",
    }
    notifier = NotifierSettings.from_settings(Settings.from_env(env))
    assert notifier.egress.allow_private and notifier.egress.allow_loopback
    assert notifier.timeout == 3.0
    assert notifier.slack_base_url == "http://127.0.0.1:9/api/"
    assert notifier.ui_url == "http://ui"
    assert notifier.templates_dir == Path("/templates")
    defaults = NotifierSettings.from_settings(Settings())
    assert not defaults.egress.allow_private and defaults.timeout == 10.0 and defaults.ui_url is None


def test_unknown_variables_are_warned_about_with_a_suggestion() -> None:
    env = {
        "RUNHERALD_BROKR": "kafka://x:1",
        "RUNHERALD_TOTALLY_UNRELATED": "1",
        # Not settings, read elsewhere on purpose: no warning.
        "RUNHERALD_API": "http://127.0.0.1:6066",
        "RUNHERALD_TOKEN": "t",
        "RUNHERALD_SEAL_KEY": "k",
        "RUNHERALD_FAULT_POINT": "dispatch",
        "RUNHERALD_SECRET_SLACK": "s",
        "RUNHERALD_TEST_POSTGRES_URL": "postgresql+psycopg://runherald@127.0.0.1:5432/t",
        "OTHER_TOOL_VARIABLE": "x",
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        settings = Settings.from_env(env)
    assert settings.broker == "kafka://127.0.0.1:9092"
    assert [str(w.message) for w in caught] == [
        "RUNHERALD_BROKR is not a runherald setting (did you mean RUNHERALD_BROKER?)",
        "RUNHERALD_TOTALLY_UNRELATED is not a runherald setting (`runherald config show` lists the settings)",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("brokr: kafka://x:1\n", r"settings\.yaml: 'brokr' is not a setting \(did you mean broker\?\)$"),
        (
            "RUNHERALD_BROKER: kafka://x:1\n",
            r"'RUNHERALD_BROKER' is not a setting \(did you mean broker\?\)$",
        ),
        ("partitions: [1\n", r"settings\.yaml: not valid YAML \(line 2\)"),
        ("- broker\n", r"settings\.yaml: expected a mapping of setting names to values$"),
        ("partitions: many\n", r"settings\.yaml: partitions: expected a whole number, got 'many'$"),
        ("event_loop: trio\n", r"settings\.yaml: event_loop must be 'uvloop' or 'asyncio', got 'trio'$"),
    ],
)
def test_settings_file_problems_are_one_line_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "settings.yaml", text)
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.load(env={}, config_file=path)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, InvalidArgumentError) and caught.value.exit_code == 2


def test_missing_settings_file_names_the_variable_that_named_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"settings file .*nope\.yaml: cannot read it: No such file"):
        Settings.from_env({"RUNHERALD_CONFIG": str(tmp_path / "nope.yaml")})


def test_settings_are_frozen_and_replace_validates() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.partitions = 3  # type: ignore[misc]
    changed = settings.replace(partitions=3)
    assert (changed.partitions, settings.partitions) == (3, 8)
    with pytest.raises(ConfigError, match="partitions must be at least 1"):
        settings.replace(partitions=0)


def test_redact_hides_secret_names_and_url_passwords() -> None:
    assert redact("slack_webhook", "https://hooks.slack.com/services/T/B/x") == "REDACTED"
    assert redact("slack_webhook", "") == ""
    assert redact("broker", "kafka://user:hunter2@host:9092") == "kafka://user:REDACTED@host:9092"
    assert redact("secrets_dir", "/run/secrets") == "/run/secrets"
    assert redact("partitions", 8) == 8
