"""API tokens without a server: the tokens file's checks, digests, scopes, where tokens are required."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from runherald.auth import (
    ApiToken,
    TokenTable,
    api_tokens,
    hash_token,
    is_loopback,
    load_tokens_file,
    new_token,
    tokens_file_entry,
    tokens_file_line,
)
from runherald.config import Settings
from runherald.errors import ConfigError

DIGEST = hashlib.sha256(b"secret-token").hexdigest()


def test_a_token_is_found_by_its_digest_and_admin_implies_every_scope() -> None:
    assert hash_token("secret-token") == DIGEST
    table = TokenTable(
        [ApiToken("ci", DIGEST, frozenset({"publish"})), ApiToken("ops", "0" * 64, frozenset())]
    )
    found = table.find("secret-token")
    assert found is not None and found.name == "ci"
    assert table.find("secret-tokeN") is None and table.find("") is None
    assert found.allows("publish") and not found.allows("read")
    admin = ApiToken("root", DIGEST, frozenset({"admin"}))
    assert all(admin.allows(scope) for scope in ("publish", "read", "admin"))


def test_new_tokens_are_random_and_their_line_loads_back() -> None:
    token = new_token()
    assert token.startswith("rh_") and len(token) > 40 and token != new_token()
    entry = tokens_file_entry("1.0", token, ["read", "publish"])
    assert entry == {"name": "1.0", "sha256": hash_token(token), "scopes": ["publish", "read"]}
    # The name is quoted: "1.0" stays a string, not a float.
    assert yaml.safe_load("tokens:\n" + tokens_file_line(entry)) == {"tokens": [entry]}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    return path


def test_a_good_tokens_file_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, f"tokens:\n  - {{name: ci, sha256: '{DIGEST}', scopes: [publish, read]}}\n")
    table = load_tokens_file(path)
    assert len(table) == 1 and table.source == str(path)
    assert table.tokens[0] == ApiToken("ci", DIGEST, frozenset({"publish", "read"}))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tokens: [\n", "not valid YAML (line 2)"),
        ("- a\n", "expected a mapping with one key, tokens"),
        ("tokens: []\n", "tokens: expected a non-empty list"),
        ("tokens: [ci]\n", "tokens[0]: expected a mapping"),
        (f"tokens: [{{name: ci, sha256: '{DIGEST}', scopes: [read], x: 1}}]", "tokens[0]: unknown key 'x'"),
        (f"tokens: [{{name: ci, sha256: '{DIGEST}'}}]", "tokens[0]: scopes is missing"),
        (f"tokens: [{{name: 'a/b', sha256: '{DIGEST}', scopes: [read]}}]", "tokens[0].name: expected a name"),
        ("tokens: [{name: ci, sha256: rh_plain_token_here, scopes: [read]}]", "tokens[0].sha256: expected"),
        (f"tokens: [{{name: ci, sha256: '{DIGEST.upper()}', scopes: [read]}}]", "64 lowercase hex digits"),
        (f"tokens: [{{name: ci, sha256: '{DIGEST}', scopes: []}}]", "tokens[0].scopes: expected a non-empty"),
        (f"tokens: [{{name: ci, sha256: '{DIGEST}', scopes: [write]}}]", "'write' is not a scope"),
        (
            f"tokens: [{{name: a, sha256: '{DIGEST}', scopes: [read]}}, {{name: a, sha256: '{'1' * 64}',"
            " scopes: [read]}]",
            "tokens[1].name: 'a' is used twice",
        ),
        (
            f"tokens: [{{name: a, sha256: '{DIGEST}', scopes: [read]}}, {{name: b, sha256: '{DIGEST}',"
            " scopes: [read]}]",
            "tokens[1].sha256: the same token as 'a'",
        ),
    ],
)
def test_a_malformed_tokens_file_is_one_line_naming_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_tokens_file(path)
    message = str(raised.value)
    assert message.startswith(f"tokens file {path}: ") and problem in message
    assert "\n" not in message and "rh_plain_token_here" not in message


def test_a_missing_tokens_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tokens file .*nope.yaml: cannot read it"):
        load_tokens_file(tmp_path / "nope.yaml")


def test_tokens_are_required_off_loopback_only() -> None:
    assert api_tokens(Settings()) is None
    assert api_tokens(Settings(web_host="::1")) is None and api_tokens(Settings(web_host="localhost")) is None
    with pytest.raises(ConfigError) as raised:
        api_tokens(Settings.from_env({"RUNHERALD_WEB_HOST": "0.0.0.0"}))
    message = str(raised.value)
    assert message.startswith("RUNHERALD_WEB_HOST: the API would listen on 0.0.0.0")
    assert "runherald token create" in message and "RUNHERALD_API_TOKENS_FILE" in message


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        *[("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("[::1]", True), ("localhost", True)],
        *[("0.0.0.0", False), ("", False), ("::", False), ("10.0.0.1", False), ("example.com", False)],
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
