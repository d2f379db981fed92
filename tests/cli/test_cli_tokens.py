"""`runherald token create`, and a worker that refuses to start without the tokens it needs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from runherald.auth import hash_token, load_tokens_file

from .test_cli import invoke


def test_token_create_prints_the_token_once_and_the_line_for_the_tokens_file(tmp_path: Path) -> None:
    result = invoke("token", "create", "--name", "ci", "--scope", "read", "--scope", "publish")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    token = lines[0].removeprefix("token: ")
    assert lines[0].startswith("token: rh_") and result.stdout.count(token) == 1
    line = lines[-1]
    assert line == f'  - {{name: "ci", sha256: "{hash_token(token)}", scopes: [publish, read]}}'
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens:\n" + line + "\n")
    found = load_tokens_file(path).find(token)
    assert found is not None and found.name == "ci" and found.scopes == {"publish", "read"}


def test_token_create_as_json_and_yaml() -> None:
    for args in [("-o", "json"), ("--output", "yaml")]:
        for before in [False, True]:
            command = [*args, "token", "create"] if before else ["token", "create", *args]
            result = invoke(*command, "--name", "ops", "--scope", "admin")
            assert result.exit_code == 0, result.output
            created = yaml.safe_load(result.stdout)  # JSON is YAML too
            assert set(created) == {"token", "name", "sha256", "scopes", "line"}
            assert created["sha256"] == hash_token(created["token"]) and created["scopes"] == ["admin"]
            assert yaml.safe_load(created["line"]) == [{k: created[k] for k in ("name", "sha256", "scopes")}]


def test_token_create_rejects_bad_names_and_scopes() -> None:
    result = invoke("token", "create", "--name", "a/b", "--scope", "read")
    assert result.exit_code == 2 and "--name" in result.stderr
    result = invoke("token", "create", "--name", "a", "--scope", "write")
    assert result.exit_code == 2 and "'write' is not one of 'publish', 'read', 'admin'" in result.stderr
    assert invoke("token", "create", "--name", "a").exit_code == 2  # a scope is required


def _worker(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RUNHERALD_")}
    # No broker listens there: the worker must stop before it would need one.
    environment.update({"RUNHERALD_BROKER": "kafka://127.0.0.1:9", **env})
    return subprocess.run(
        [sys.executable, "-m", "runherald.cli", "worker"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_a_worker_off_loopback_without_tokens_refuses_to_start(tmp_path: Path) -> None:
    done = _worker(tmp_path, RUNHERALD_WEB_HOST="0.0.0.0")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "runherald worker: RUNHERALD_WEB_HOST: the API would listen on 0.0.0.0, not a loopback address,"
        " without tokens: make one with `runherald token create --name NAME --scope admin`, put the line"
        " it prints under `tokens:` in a file and name that file in RUNHERALD_API_TOKENS_FILE"
    ]


def test_a_worker_with_a_malformed_tokens_file_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens:\n  - {name: ci, sha256: rh_oops_the_token_itself, scopes: [read]}\n")
    done = _worker(tmp_path, RUNHERALD_API_TOKENS_FILE=str(path))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"runherald worker: tokens file {path}: tokens[0].sha256: expected the token's SHA-256 as 64"
        " lowercase hex digits (`runherald token create` prints the line), not the token itself"
    ]
    done = _worker(tmp_path, RUNHERALD_API_TOKENS_FILE=str(tmp_path / "missing.yaml"))
    assert done.returncode == 2 and "missing.yaml: cannot read it" in done.stderr


def test_token_create_adds_the_line_to_a_tokens_file_only_when_the_result_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    first = invoke("token", "create", "--name", "ci", "--scope", "publish", "--file", str(path), "-o", "json")
    second = invoke("token", "create", "--name", "ops", "--scope", "admin", "--file", str(path), "-o", "json")
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    table = load_tokens_file(path)
    for result, name in [(first, "ci"), (second, "ops")]:
        found = table.find(yaml.safe_load(result.stdout)["token"])
        assert found is not None and found.name == name
    before = path.read_text()
    again = invoke("token", "create", "--name", "ci", "--scope", "read", "--file", str(path))
    assert again.exit_code == 2 and "not changed" in again.stderr and "'ci' is used twice" in again.stderr
    assert again.stdout == "" and path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.yaml"]
