"""API tokens: the tokens file, the scopes, and finding the token a request presents.

A token is a random string the client sends as ``Authorization: Bearer <token>``. The server keeps
only its SHA-256 (the tokens file, ``RUNHERALD_API_TOKENS_FILE``)::

    tokens:
      - {name: ci, sha256: "<64 lowercase hex digits>", scopes: [publish]}

Scopes: ``publish`` (post runs), ``read`` (every GET), ``admin`` (configuration changes, replay),
which implies the other two. A presented token is hashed and compared with every stored digest in
constant time, so neither its value nor how much of it matched leaks; it is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runherald.config import Settings, env_name
from runherald.errors import ConfigError

SCOPES = ("publish", "read", "admin")
TOKEN_PREFIX = "rh_"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_ENTRY_KEYS = {"name", "sha256", "scopes"}


@dataclass(frozen=True)
class ApiToken:
    """One entry of the tokens file: who (name), the token's digest, and what it may do."""

    name: str
    sha256: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        """Whether this token may do what `scope` covers (admin covers everything)."""
        return scope in self.scopes or "admin" in self.scopes


class TokenTable:
    """The tokens a worker accepts; `find` the one a request presents."""

    def __init__(self, tokens: Iterable[ApiToken], source: str = "") -> None:
        self.tokens = tuple(tokens)
        self.source = source

    def __len__(self) -> int:
        return len(self.tokens)

    def find(self, presented: str) -> ApiToken | None:
        """The entry whose digest is the presented token's, or None; every entry is compared."""
        digest = hash_token(presented).encode()
        found = None
        for token in self.tokens:
            if hmac.compare_digest(digest, token.sha256.encode()):
                found = token
        return found


def hash_token(token: str) -> str:
    """The lowercase hex SHA-256 of a token's UTF-8 bytes: what the tokens file stores."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_token(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header's value, "" for any other value."""
    kind, _, presented = authorization.partition(" ")
    return presented.strip() if kind.lower() == "bearer" else ""


def new_token() -> str:
    """A fresh random token (256 bits from the system's CSPRNG)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def tokens_file_entry(name: str, token: str, scopes: Iterable[str]) -> dict[str, Any]:
    """The tokens file entry for a token: its name, digest and scopes (in SCOPES order)."""
    wanted = set(scopes)
    return {"name": name, "sha256": hash_token(token), "scopes": [s for s in SCOPES if s in wanted]}


def tokens_file_line(entry: dict[str, Any]) -> str:
    """One YAML line to add under ``tokens:`` (flow style, the digest quoted)."""
    scopes = ", ".join(entry["scopes"])
    return f'  - {{name: "{entry["name"]}", sha256: "{entry["sha256"]}", scopes: [{scopes}]}}'


def is_loopback(host: str) -> bool:
    """Whether a listen address reaches this machine only ("" or a host name other than localhost: no)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def api_tokens(settings: Settings) -> TokenTable | None:
    """The tokens the API accepts (None: no tokens file, loopback only), or ConfigError saying why a
    worker cannot start: a malformed tokens file, or a non-loopback address without one."""
    if settings.api_tokens_file:
        return load_tokens_file(settings.api_tokens_file)
    if is_loopback(settings.web_host):
        return None
    source = settings.source_of("web_host").replace("env ", "").replace("default", env_name("web_host"))
    raise ConfigError(
        f"{source}: the API would listen on {settings.web_host}, not a loopback address, without tokens:"
        f" make one with `runherald token create --name NAME --scope admin`, put the line it prints under"
        f" `tokens:` in a file and name that file in {env_name('api_tokens_file')}"
    )


def load_tokens_file(path: str | Path) -> TokenTable:
    """Read and check a tokens file; ConfigError names the file and the first problem, on one line."""
    where = f"tokens file {path}"
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML{line}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict) or set(data) != {"tokens"}:
        raise ConfigError(f"{where}: expected a mapping with one key, tokens: [{{name, sha256, scopes}}]")
    entries = data["tokens"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: tokens: expected a non-empty list of {{name, sha256, scopes}}")
    tokens: list[ApiToken] = []
    for index, entry in enumerate(entries):
        token = _entry(entry, f"{where}: tokens[{index}]")
        for seen in tokens:
            if seen.name == token.name:
                raise ConfigError(f"{where}: tokens[{index}].name: {token.name!r} is used twice")
            if seen.sha256 == token.sha256:
                raise ConfigError(f"{where}: tokens[{index}].sha256: the same token as {seen.name!r}")
        tokens.append(token)
    return TokenTable(tokens, str(path))


def _entry(entry: Any, where: str) -> ApiToken:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping {{name, sha256, scopes}}")
    unknown = sorted(str(key) for key in set(entry) - _ENTRY_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (expected name, sha256, scopes)")
    missing = [key for key in ("name", "sha256", "scopes") if key not in entry]
    if missing:
        raise ConfigError(f"{where}: {missing[0]} is missing")
    name, digest, scopes = entry["name"], entry["sha256"], entry["scopes"]
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"{where}.name: expected a name of letters, digits, '.', '_', '-', got {name!r}")
    if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
        # The value is not echoed: it may be a token pasted where its digest belongs.
        raise ConfigError(
            f"{where}.sha256: expected the token's SHA-256 as 64 lowercase hex digits"
            " (`runherald token create` prints the line), not the token itself"
        )
    if not isinstance(scopes, list) or not scopes:
        raise ConfigError(f"{where}.scopes: expected a non-empty list of {', '.join(SCOPES)}")
    for scope in scopes:
        if scope not in SCOPES:
            raise ConfigError(f"{where}.scopes: {scope!r} is not a scope ({', '.join(SCOPES)})")
    return ApiToken(name, digest, frozenset(scopes))


__all__ = [
    "SCOPES",
    "ApiToken",
    "TokenTable",
    "api_tokens",
    "bearer_token",
    "hash_token",
    "is_loopback",
    "load_tokens_file",
    "new_token",
    "tokens_file_entry",
    "tokens_file_line",
]
