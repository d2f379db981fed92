"""Sealing literal secret_params: round trip, references kept, key handling, errors that show no secret."""

from __future__ import annotations

import copy
import stat
from pathlib import Path

import orjson
import pytest
from cryptography.fernet import Fernet

from runherald import ledger
from runherald.config import Settings
from runherald.evaluation import evaluate_event
from runherald.sealing import (
    KEY_ENV,
    KEY_FILE_ENV,
    SealKeyError,
    default_key_path,
    seal_key,
    seal_notification,
    seal_run,
    seal_value,
)
from runherald.secrets import (
    REDACTED,
    SecretResolutionError,
    redact_secret_params,
    resolve_params_and_secrets,
)

TOKEN = "xoxb-sealing-test-9f3c1d"
AUTH = "Bearer sealing-test-7ab2e4"


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = Fernet.generate_key().decode()
    monkeypatch.setenv(KEY_ENV, value)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    return value


def notification() -> dict:
    return {
        "kind": "webhook",
        "name": "hook",
        "params": {"url": "http://127.0.0.1:9/hook"},
        "secret_params": {"token": TOKEN, "headers": {"Authorization": AUTH}, "retries": 3},
    }


def test_literal_values_are_sealed_and_resolve_back() -> None:
    original = notification()
    before = copy.deepcopy(original)
    sealed = seal_notification(original)
    assert original == before  # a copy: the caller's notification is untouched
    for value in sealed["secret_params"].values():
        assert set(value) == {"sealed"}
    text = orjson.dumps(sealed).decode()
    assert TOKEN not in text and AUTH not in text and "sealing-test" not in text
    params, secrets = resolve_params_and_secrets(sealed)
    assert params == {
        "url": "http://127.0.0.1:9/hook",
        "token": TOKEN,
        "headers": {"Authorization": AUTH},
        "retries": 3,
    }
    assert {TOKEN, AUTH} <= secrets


def test_references_and_sealed_values_are_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    already = seal_value("already-sealed-secret")
    refs = {
        "kind": "webhook",
        "name": "refs",
        "secret_params": {"env": "${HOOK_TOKEN}", "named": {"secret": "hook-pass"}, "done": already},
    }
    assert seal_notification(refs) == refs
    whole = {"kind": "slack", "secret_params": {"secret": "slack-creds"}}
    assert seal_notification(whole) == whole
    # Text around a reference may be secret itself: it is sealed, and the reference still resolves.
    mixed = seal_notification({"secret_params": {"auth": "Bearer ${HOOK_TOKEN}"}})
    assert set(mixed["secret_params"]["auth"]) == {"sealed"}
    (tmp_path / "hook-pass").write_text("from-the-secrets-dir\n")
    monkeypatch.setenv("HOOK_TOKEN", "from-the-env")
    params, _ = resolve_params_and_secrets(
        {"secret_params": {**refs["secret_params"], **mixed["secret_params"]}}, secrets_dir=tmp_path
    )
    assert params == {
        "env": "from-the-env",
        "named": "from-the-secrets-dir",
        "done": "already-sealed-secret",
        "auth": "Bearer from-the-env",
    }


def test_seal_run_seals_every_notification_and_keeps_the_rest() -> None:
    run = {
        "metadata": {"project": "p", "uid": "u"},
        "spec": {
            "parameters": {"lr": 0.1},
            "notifications": [notification(), {**notification(), "name": "b"}],
        },
        "status": {"state": "completed"},
    }
    sealed = seal_run(run)
    assert sealed["spec"]["parameters"] == {"lr": 0.1}
    assert [n["name"] for n in sealed["spec"]["notifications"]] == ["hook", "b"]
    assert TOKEN not in orjson.dumps(sealed).decode()
    assert run["spec"]["notifications"][0]["secret_params"]["token"] == TOKEN  # the input is not changed
    assert seal_run({"metadata": {}, "spec": "odd"}) == {"metadata": {}, "spec": "odd"}


def test_wrong_key_error_names_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    sealed = seal_notification(notification())
    token = sealed["secret_params"]["token"]["sealed"]
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    with pytest.raises(SecretResolutionError) as caught:
        resolve_params_and_secrets(sealed)
    message = str(caught.value)
    assert message.startswith("sealed secret cannot be opened with this worker's key: ")
    assert TOKEN not in message and token not in message and token[:20] not in message
    damaged = {"secret_params": {"token": {"sealed": "gAAAA-not-a-token"}}}
    with pytest.raises(SecretResolutionError, match="cannot be opened") as caught:
        resolve_params_and_secrets(damaged)
    assert "gAAAA-not-a-token" not in str(caught.value)


def test_rotation_opens_values_sealed_with_an_older_key(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    sealed = seal_notification(notification())
    monkeypatch.setenv(KEY_ENV, f"{Fernet.generate_key().decode()},{key}")
    params, _ = resolve_params_and_secrets(sealed)
    assert params["token"] == TOKEN


def test_default_key_file_is_created_private_and_reused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    path = default_key_path()
    assert path == tmp_path / ".runherald" / "seal.key"
    assert not path.exists()
    sealed = seal_notification(notification())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    first = path.read_bytes()
    assert resolve_params_and_secrets(sealed)[0]["token"] == TOKEN
    assert path.read_bytes() == first  # reused, not replaced


def test_key_file_setting_and_bad_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(KEY_ENV)
    key_file = tmp_path / "team.key"
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    with pytest.raises(SealKeyError, match=r"team\.key"):
        seal_key()
    key_file.write_text(Fernet.generate_key().decode() + "\n")
    sealed = seal_notification(notification())
    assert resolve_params_and_secrets(sealed)[0]["token"] == TOKEN
    monkeypatch.setenv(KEY_ENV, "not-a-fernet-key-but-secret-ish")
    with pytest.raises(SealKeyError) as caught:
        seal_key()
    assert "not-a-fernet-key" not in str(caught.value)
    with pytest.raises(SecretResolutionError, match="not a urlsafe base64 Fernet key"):
        resolve_params_and_secrets(sealed)


def test_redaction_keeps_references_and_sealed_values() -> None:
    sealed = seal_notification(notification())
    sealed["secret_params"]["env"] = "${HOOK_TOKEN}"
    sealed["secret_params"]["plain"] = "literal-secret"
    redacted = redact_secret_params(sealed)["secret_params"]
    assert redacted["plain"] == REDACTED
    assert redacted["env"] == "${HOOK_TOKEN}"
    assert redacted["token"] == sealed["secret_params"]["token"]
    assert redact_secret_params(notification())["secret_params"] == dict.fromkeys(
        ("token", "headers", "retries"), REDACTED
    )


def test_evaluate_seals_deliveries_of_a_foreign_run() -> None:
    run = {
        "metadata": {"project": "p", "uid": "u1", "name": "train", "iteration": 0},
        "spec": {"notifications": [{**notification(), "when": ["completed"]}]},
        "status": {"state": "completed"},
    }
    result = evaluate_event(run, record=ledger.new_record("p", "u1"), source=(0, 0), settings=Settings())
    assert len(result.deliveries) == 1
    record = orjson.dumps(result.deliveries[0].to_record()).decode()
    assert TOKEN not in record and AUTH not in record
    assert set(result.deliveries[0].notification["secret_params"]["token"]) == {"sealed"}
    assert resolve_params_and_secrets(result.deliveries[0].notification)[0]["token"] == TOKEN
    assert TOKEN not in orjson.dumps(result.record).decode()
