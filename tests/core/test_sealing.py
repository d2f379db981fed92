"""Sealing literal secret_params: round trip, references kept, keys, rotation, the old Fernet key, errors
that show no secret."""

from __future__ import annotations

import copy
import stat
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from runherald import ledger
from runherald.cli import cli
from runherald.config import Settings
from runherald.evaluation import evaluate_event
from runherald.sealing import (
    KEY_ENV,
    KEY_FILE_ENV,
    PRIVATE_KEYS_ENV,
    PUBLIC_KEY_ENV,
    SealKeyError,
    generate_key_pair,
    seal_keys,
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
KEY_VARIABLES = (PUBLIC_KEY_ENV, PRIVATE_KEYS_ENV, KEY_ENV)


@pytest.fixture(autouse=True)
def pair(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A worker's environment: one private key (the public key is derived from it), nothing else."""
    for variable in KEY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(variable + "_FILE", raising=False)
    private, public = generate_key_pair()
    monkeypatch.setenv(PRIVATE_KEYS_ENV, private)
    return private, public


def notification() -> dict:
    return {
        "kind": "webhook",
        "name": "hook",
        "params": {"url": "http://127.0.0.1:9/hook"},
        "secret_params": {"token": TOKEN, "headers": {"Authorization": AUTH}, "retries": 3},
    }


def as_publisher(monkeypatch: pytest.MonkeyPatch, public: str) -> None:
    monkeypatch.delenv(PRIVATE_KEYS_ENV)
    monkeypatch.setenv(PUBLIC_KEY_ENV, public)


def test_round_trip_and_no_plaintext_in_the_sealed_value() -> None:
    original = notification()
    before = copy.deepcopy(original)
    sealed = seal_notification(original)
    assert original == before  # a copy: the caller's notification is untouched
    for value in sealed["secret_params"].values():
        assert set(value) == {"sealed"} and value["sealed"].startswith("rhs1.")
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
    # Sealing twice gives two different values (a fresh ephemeral key each time).
    assert seal_value(TOKEN) != seal_value(TOKEN)


def test_a_publisher_with_the_public_key_seals_but_cannot_open(
    monkeypatch: pytest.MonkeyPatch, pair: tuple[str, str]
) -> None:
    private, public = pair
    as_publisher(monkeypatch, public)
    sealed = seal_notification(notification())
    with pytest.raises(SecretResolutionError, match="not among its keys"):
        resolve_params_and_secrets(sealed)
    monkeypatch.setenv(PRIVATE_KEYS_ENV, private)  # the worker
    assert resolve_params_and_secrets(sealed)[0]["token"] == TOKEN


def test_no_public_key_fails_when_sealing_and_no_key_is_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(PRIVATE_KEYS_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(SealKeyError, match=f"no public key.*{PUBLIC_KEY_ENV}") as caught:
        seal_run({"metadata": {}, "spec": {"notifications": [notification()]}})
    assert caught.value.exit_code == 2  # a ConfigError: one line, exit 2 on the command line
    assert list(tmp_path.iterdir()) == []  # no key file made on the side
    # Nothing literal to seal: no key needed.
    refs = {"kind": "webhook", "secret_params": {"env": "${RUNHERALD_SECRET_HOOK_TOKEN}"}}
    assert seal_notification(refs) == refs


def test_references_and_sealed_values_are_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    already = seal_value("already-sealed-secret")
    refs = {
        "kind": "webhook",
        "name": "refs",
        "secret_params": {
            "env": "${RUNHERALD_SECRET_HOOK_TOKEN}",
            "named": {"secret": "hook-pass"},
            "done": already,
        },
    }
    assert seal_notification(refs) == refs
    whole = {"kind": "slack", "secret_params": {"secret": "slack-creds"}}
    assert seal_notification(whole) == whole
    # Text around a reference may be secret itself: it is sealed, and the reference still resolves.
    mixed = seal_notification({"secret_params": {"auth": "Bearer ${RUNHERALD_SECRET_HOOK_TOKEN}"}})
    assert set(mixed["secret_params"]["auth"]) == {"sealed"}
    (tmp_path / "hook-pass").write_text("from-the-secrets-dir\n")
    monkeypatch.setenv("RUNHERALD_SECRET_HOOK_TOKEN", "from-the-env")
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


def test_a_value_sealed_for_another_key_is_refused_with_a_reason_and_no_secret(
    monkeypatch: pytest.MonkeyPatch, pair: tuple[str, str]
) -> None:
    sealed = seal_notification(notification())
    token = sealed["secret_params"]["token"]["sealed"]
    monkeypatch.setenv(PRIVATE_KEYS_ENV, generate_key_pair()[0])  # key B only
    with pytest.raises(SecretResolutionError) as caught:
        resolve_params_and_secrets(sealed)
    message = str(caught.value)
    kid = token.split(".")[1]
    assert message.startswith(  # the secret_params key first, then why
        "secret_params.token: "
        f"sealed secret cannot be opened with this worker's keys: it was sealed for key {kid}"
    )
    assert PRIVATE_KEYS_ENV in message
    assert TOKEN not in message and token not in message and token.split(".")[3][:12] not in message
    damaged = {"secret_params": {"token": {"sealed": token[:-6] + "AAAAAA"}}}
    monkeypatch.setenv(PRIVATE_KEYS_ENV, pair[0])  # key A again
    with pytest.raises(SecretResolutionError, match="it is damaged"):
        resolve_params_and_secrets(damaged)


def test_rotation_opens_old_values_and_seals_with_the_newest(
    monkeypatch: pytest.MonkeyPatch, pair: tuple[str, str]
) -> None:
    old_private, _ = pair
    before = seal_notification(notification())
    new_private, _ = generate_key_pair()
    monkeypatch.setenv(PRIVATE_KEYS_ENV, f"{new_private},{old_private}")
    after = seal_notification(notification())
    assert resolve_params_and_secrets(before)[0]["token"] == TOKEN
    assert resolve_params_and_secrets(after)[0]["token"] == TOKEN
    monkeypatch.setenv(PRIVATE_KEYS_ENV, new_private)  # the old key dropped: only new values open
    assert resolve_params_and_secrets(after)[0]["token"] == TOKEN
    with pytest.raises(SecretResolutionError, match="not among its keys"):
        resolve_params_and_secrets(before)


def test_values_sealed_with_the_old_fernet_key_open_while_it_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    fernet_key = Fernet.generate_key()
    legacy = {"sealed": Fernet(fernet_key).encrypt(orjson.dumps(TOKEN)).decode()}
    sealed = {"secret_params": {"token": legacy}}
    with pytest.raises(SecretResolutionError, match=f"old shared key, and neither {KEY_ENV}") as caught:
        resolve_params_and_secrets(sealed)
    assert legacy["sealed"] not in str(caught.value)
    monkeypatch.setenv(KEY_ENV, fernet_key.decode())
    assert resolve_params_and_secrets(sealed)[0]["token"] == TOKEN
    # New values are never sealed with it.
    assert seal_value("x")["sealed"].startswith("rhs1.")
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    with pytest.raises(SecretResolutionError, match="another key or is damaged"):
        resolve_params_and_secrets(sealed)


def test_key_files_and_bad_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pair: tuple[str, str]
) -> None:
    private, _ = pair
    monkeypatch.delenv(PRIVATE_KEYS_ENV)
    keys_file = tmp_path / "workers.keys"
    monkeypatch.setenv(PRIVATE_KEYS_ENV + "_FILE", str(keys_file))
    with pytest.raises(SealKeyError, match=r"workers\.keys"):
        seal_keys()
    keys_file.write_text(f"# newest first\n{private}  # key one\n")
    sealed = seal_notification(notification())
    assert resolve_params_and_secrets(sealed)[0]["token"] == TOKEN
    monkeypatch.setenv(PUBLIC_KEY_ENV, private)  # a private key where the public one goes
    with pytest.raises(SealKeyError, match="wrong kind") as caught:
        seal_keys()
    assert private not in str(caught.value)
    monkeypatch.setenv(PUBLIC_KEY_ENV, "not-a-key-but-secret-ish")
    with pytest.raises(SealKeyError) as caught:
        seal_keys()
    assert "not-a-key" not in str(caught.value)
    monkeypatch.delenv(PUBLIC_KEY_ENV)
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "missing.key"))
    with pytest.raises(SecretResolutionError, match=r"missing\.key"):
        resolve_params_and_secrets(sealed)


def test_keys_create_and_rotate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    keys_file = tmp_path / "keys" / "workers.keys"
    created = runner.invoke(cli, ["keys", "create", "--private-keys-file", str(keys_file)])
    assert created.exit_code == 0, created.output
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    first_public = created.stdout.strip().removeprefix(f"{PUBLIC_KEY_ENV}=")
    assert first_public.startswith("rhpk_") and "rhsk_" not in created.stdout
    again = runner.invoke(cli, ["keys", "create", "--private-keys-file", str(keys_file)])
    assert again.exit_code == 2 and "not overwritten" in again.stderr

    monkeypatch.delenv(PRIVATE_KEYS_ENV)
    monkeypatch.setenv(PUBLIC_KEY_ENV, first_public)
    before = seal_notification(notification())
    rotated = runner.invoke(cli, ["keys", "rotate", "--private-keys-file", str(keys_file)])
    assert rotated.exit_code == 0, rotated.output
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    second_public = rotated.stdout.strip().removeprefix(f"{PUBLIC_KEY_ENV}=")
    assert second_public != first_public
    lines = [line for line in keys_file.read_text().splitlines() if line.startswith("rhsk_")]
    assert len(lines) == 2
    shown = runner.invoke(cli, ["keys", "public", "--private-keys-file", str(keys_file)])
    assert shown.stdout.strip() == f"{PUBLIC_KEY_ENV}={second_public}"

    monkeypatch.delenv(PUBLIC_KEY_ENV)
    monkeypatch.setenv(PRIVATE_KEYS_ENV + "_FILE", str(keys_file))  # a worker after the rotation
    after = seal_notification(notification())
    assert (
        after["secret_params"]["token"]["sealed"].split(".")[1]
        != before["secret_params"]["token"]["sealed"].split(".")[1]
    )
    assert resolve_params_and_secrets(before)[0]["token"] == TOKEN
    assert resolve_params_and_secrets(after)[0]["token"] == TOKEN
    printed = runner.invoke(cli, ["keys", "create"])
    assert printed.stdout.startswith(f"{PRIVATE_KEYS_ENV}=rhsk_")


def test_redaction_keeps_references_and_sealed_values() -> None:
    sealed = seal_notification(notification())
    sealed["secret_params"]["env"] = "${RUNHERALD_SECRET_HOOK_TOKEN}"
    sealed["secret_params"]["plain"] = "literal-secret"
    redacted = redact_secret_params(sealed)["secret_params"]
    assert redacted["plain"] == REDACTED
    assert redacted["env"] == "${RUNHERALD_SECRET_HOOK_TOKEN}"
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
