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


def test_env_references_and_params_win_over_secret_params() -> None:
    notification = {
        "params": {"url": "https://hooks.example.com/${HOOK_PATH}", "method": "put"},
        "secret_params": {"method": "post", "headers": {"Authorization": "Bearer ${TOKEN}"}},
    }
    env = {"HOOK_PATH": "abc", "TOKEN": "t0ken-value"}
    params, seen = resolve_params_and_secrets(notification, env=env)
    assert params == {
        "url": "https://hooks.example.com/abc",
        "method": "put",
        "headers": {"Authorization": "Bearer t0ken-value"},
    }
    assert "t0ken-value" in seen


def test_secret_reference_from_secrets_dir_and_env(tmp_path: Path) -> None:
    (tmp_path / "slack-hook").write_text("https://hooks.slack.com/services/T/B/X\n")
    notification = {"params": {"webhook": {"secret": "slack-hook"}, "token": {"secret": "bot-token"}}}
    params = resolve_params(notification, env={"BOT_TOKEN": "xoxb-9"}, secrets_dir=tmp_path)
    assert params == {"webhook": "https://hooks.slack.com/services/T/B/X", "token": "xoxb-9"}


def test_project_secret_json_object_expands_into_params(tmp_path: Path) -> None:
    (tmp_path / "notif").write_text(json.dumps({"webhook": "https://x/y", "channel": "#c"}))
    params = resolve_params(
        {"secret_params": {"secret": "notif"}, "params": {"channel": "#d"}}, secrets_dir=tmp_path
    )
    assert params == {"webhook": "https://x/y", "channel": "#d"}


def test_missing_secret_names_it_without_values(tmp_path: Path) -> None:
    with pytest.raises(SecretResolutionError, match="secret 'nope' not found") as info:
        resolve_params(
            {"params": {"a": {"secret": "nope"}, "b": "visible-value"}}, env={}, secrets_dir=tmp_path
        )
    assert "visible-value" not in str(info.value)
    with pytest.raises(SecretResolutionError, match="environment variable 'MISSING' is not set"):
        resolve_params({"params": {"a": "${MISSING}"}}, env={})


def test_non_json_project_secret_and_mixed_keys_are_errors(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("Hello")
    with pytest.raises(SecretResolutionError, match="not a JSON object"):
        resolve_params({"secret_params": {"secret": "plain"}}, secrets_dir=tmp_path)
    with pytest.raises(SecretResolutionError, match="should not contain any other keys"):
        resolve_params({"secret_params": {"secret": "plain", "webhook": "x"}}, secrets_dir=tmp_path)
    with pytest.raises(SecretResolutionError, match="invalid secret name"):
        resolve_params({"params": {"a": {"secret": "../etc/passwd"}}}, secrets_dir=tmp_path)


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
