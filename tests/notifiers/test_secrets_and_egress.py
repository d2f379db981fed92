"""Secret resolution and scrubbing; the egress policy; Retry-After parsing."""

from __future__ import annotations

import json
import logging
import time
from email.utils import formatdate
from pathlib import Path

import pytest
from runherald.notifiers._http import parse_retry_after

from runherald.egress import EgressPolicy
from runherald.secrets import (
    REDACTED,
    SecretLogFilter,
    SecretResolutionError,
    SecretScrubber,
    redact_secret_params,
    redact_url,
    resolve_params,
    resolve_params_and_secrets,
)


def test_env_references_resolve_in_secret_params_only_and_params_win() -> None:
    notification = {
        "params": {"url": "https://hooks.example.com/${RUNHERALD_SECRET_HOOK_PATH}", "method": "put"},
        "secret_params": {"method": "post", "headers": {"Authorization": "Bearer ${RUNHERALD_SECRET_TOKEN}"}},
    }
    env = {"RUNHERALD_SECRET_HOOK_PATH": "abc", "RUNHERALD_SECRET_TOKEN": "t0ken-value"}
    params, seen = resolve_params_and_secrets(notification, env=env)
    assert params == {
        # A reference in params is literal text: the worker's environment never reaches a URL.
        "url": "https://hooks.example.com/${RUNHERALD_SECRET_HOOK_PATH}",
        "method": "put",
        "headers": {"Authorization": "Bearer t0ken-value"},
    }
    assert "t0ken-value" in seen and "abc" not in seen


def test_params_keep_secret_references_literal(tmp_path: Path) -> None:
    (tmp_path / "slack-hook").write_text("https://hooks.slack.com/services/T/B/X")
    notification = {"params": {"webhook": {"secret": "slack-hook"}, "body": "${RUNHERALD_SECRET_X}"}}
    params = resolve_params(notification, env={"RUNHERALD_SECRET_X": "x-value"}, secrets_dir=tmp_path)
    assert params == notification["params"]


def test_secret_reference_from_secrets_dir_then_prefixed_env_then_allow_list(tmp_path: Path) -> None:
    (tmp_path / "slack-hook").write_text("https://hooks.slack.com/services/T/B/X\n")
    notification = {
        "secret_params": {
            "webhook": {"secret": "slack-hook"},
            "token": {"secret": "ml-oncall-webhook"},
            "channel": {"secret": "PAGER_CHANNEL"},
        }
    }
    env = {
        "slack-hook": "env-loses-to-the-file",
        "RUNHERALD_SECRET_ML_ONCALL_WEBHOOK": "xoxb-9",
        "ml-oncall-webhook": "not-this-one",
        "PAGER_CHANNEL": "#pager",
    }
    params = resolve_params(notification, env=env, secrets_dir=tmp_path, env_allow={"PAGER_CHANNEL"})
    assert params == {
        "webhook": "https://hooks.slack.com/services/T/B/X",
        "token": "xoxb-9",
        "channel": "#pager",
    }
    allowed = resolve_params(
        {"secret_params": {"a": "${PAGER_CHANNEL}", "b": "${RUNHERALD_SECRET_ML_ONCALL_WEBHOOK}"}},
        env=env,
        env_allow={"PAGER_CHANNEL"},
    )
    assert allowed == {"a": "#pager", "b": "xoxb-9"}


@pytest.mark.parametrize(
    ("secret_params", "reference"),
    [
        ({"url": "https://r.example/?k=${RUNHERALD_SEAL_KEY}"}, "${RUNHERALD_SEAL_KEY}"),
        ({"headers": {"X": "${RUNHERALD_SEAL_PRIVATE_KEYS}"}}, "${RUNHERALD_SEAL_PRIVATE_KEYS}"),
        ({"token": "${HOME}"}, "${HOME}"),
        ({"token": {"secret": "HOME"}}, "secret 'HOME'"),
        ({"token": {"secret": "RUNHERALD_SEAL_KEY"}}, "secret 'RUNHERALD_SEAL_KEY'"),
        ({"secret": "RUNHERALD_SEAL_KEY"}, "secret 'RUNHERALD_SEAL_KEY'"),
    ],
)
def test_variables_outside_the_allow_list_are_never_read(
    secret_params: dict[str, object], reference: str, tmp_path: Path
) -> None:
    env = {
        "RUNHERALD_SEAL_KEY": "seal-key-value",
        "RUNHERALD_SEAL_PRIVATE_KEYS": "private-keys-value",
        "HOME": "/home/value",
    }
    with pytest.raises(SecretResolutionError) as info:
        resolve_params({"secret_params": secret_params}, env=env, secrets_dir=tmp_path, env_allow={"OTHER"})
    message = str(info.value)
    assert reference in message
    assert not any(value in message for value in env.values())


def test_project_secret_json_object_expands_into_params(tmp_path: Path) -> None:
    (tmp_path / "notif").write_text(json.dumps({"webhook": "https://x/y", "channel": "#c"}))
    params = resolve_params(
        {"secret_params": {"secret": "notif"}, "params": {"channel": "#d"}}, secrets_dir=tmp_path
    )
    assert params == {"webhook": "https://x/y", "channel": "#d"}


def test_missing_secret_names_it_without_values(tmp_path: Path) -> None:
    with pytest.raises(SecretResolutionError, match="secret 'nope' not found") as info:
        resolve_params(
            {"secret_params": {"a": {"secret": "nope"}}, "params": {"b": "visible-value"}},
            env={},
            secrets_dir=tmp_path,
        )
    assert "visible-value" not in str(info.value)
    assert "RUNHERALD_SECRET_NOPE" in str(info.value) and "secret_params.a" in str(info.value)
    with pytest.raises(
        SecretResolutionError, match="environment variable 'RUNHERALD_SECRET_MISSING' is not set"
    ):
        resolve_params({"secret_params": {"a": "${RUNHERALD_SECRET_MISSING}"}}, env={})


def test_non_json_project_secret_and_mixed_keys_are_errors(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("Hello")
    with pytest.raises(SecretResolutionError, match="not a JSON object"):
        resolve_params({"secret_params": {"secret": "plain"}}, secrets_dir=tmp_path)
    with pytest.raises(SecretResolutionError, match="should not contain any other keys"):
        resolve_params({"secret_params": {"secret": "plain", "webhook": "x"}}, secrets_dir=tmp_path)
    with pytest.raises(SecretResolutionError, match="invalid secret name"):
        resolve_params({"secret_params": {"a": {"secret": "../etc/passwd"}}}, secrets_dir=tmp_path)


def test_scrubber_and_log_filter(caplog: pytest.LogCaptureFixture) -> None:
    scrubber = SecretScrubber(["hunter22", "hunter2222", "ab"])
    assert scrubber.scrub("pw=hunter2222 and hunter22 and ab") == f"pw={REDACTED} and {REDACTED} and ab"
    logger = logging.getLogger("runherald.test.scrub")
    logger.addFilter(SecretLogFilter(scrubber))
    with caplog.at_level(logging.INFO, logger="runherald.test.scrub"):
        logger.info("sending with %s", "hunter22")
    assert caplog.records[0].getMessage() == f"sending with {REDACTED}"


def test_redact_helpers() -> None:
    assert redact_url("https://hooks.slack.com/services/T/B/secret?x=1") == "https://hooks.slack.com/REDACTED"
    notification = {"secret_params": {"webhook": "w", "other": "o"}, "params": {"a": 1}}
    assert redact_secret_params(notification)["secret_params"] == {"webhook": REDACTED, "other": REDACTED}
    assert redact_secret_params({"secret_params": {"secret": "k"}})["secret_params"] == {"secret": "k"}


@pytest.mark.parametrize(
    ("address", "policy", "refused"),
    [
        ("169.254.169.254", EgressPolicy(allow_private=True, allow_loopback=True), "metadata"),
        ("fd00:ec2::254", EgressPolicy(allow_private=True, allow_loopback=True), "metadata"),
        ("169.254.1.1", EgressPolicy(allow_private=True), "link-local"),
        ("fe80::1", EgressPolicy(allow_private=True), "link-local"),
        ("::ffff:169.254.169.254", EgressPolicy(allow_private=True), "metadata"),
        ("10.0.0.1", EgressPolicy(), "private"),
        ("10.0.0.1", EgressPolicy(allow_private=True), None),
        ("127.0.0.1", EgressPolicy(), "loopback"),
        ("127.0.0.1", EgressPolicy(allow_loopback=True), None),
        ("93.184.216.34", EgressPolicy(), None),
    ],
)
def test_egress_policy(address: str, policy: EgressPolicy, refused: str | None) -> None:
    reason = policy.refusal(address)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


def test_metadata_hostname_refused_before_lookup() -> None:
    assert "metadata" in (EgressPolicy(allow_private=True).host_refusal("metadata.google.internal.") or "")


def test_retry_after_parsing() -> None:
    now = time.time()
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(formatdate(now + 60, usegmt=True), now=now) == pytest.approx(60, abs=1)
    assert parse_retry_after(formatdate(now - 60, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
