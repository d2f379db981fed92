"""Resolve a notification's secret references into params, and keep secret values out of text."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runherald.sealing import open_sealed
from runherald.secret_values import (
    ENV_REFERENCE,
    SECRET_ENV_PREFIX,
    SecretResolutionError,
    env_allowed,
    is_reference,
    is_sealed,
    secret_env_name,
)

REDACTED = "REDACTED"
# Keys whose values are secrets even when they were given in plain `params`.
SENSITIVE_KEYS = frozenset({"webhook", "token", "password", "signing_secret", "url", "headers"})
_SECRET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_MIN_SCRUB_LENGTH = 4


def resolve_params(
    notification: Mapping[str, Any],
    *,
    env: Mapping[str, str] = os.environ,
    secrets_dir: str | os.PathLike[str] | None = None,
    env_allow: Collection[str] = (),
) -> dict[str, Any]:
    """Return ``{**secret_params, **params}`` with the references in secret_params resolved."""
    return resolve_params_and_secrets(notification, env=env, secrets_dir=secrets_dir, env_allow=env_allow)[0]


def resolve_params_and_secrets(
    notification: Mapping[str, Any],
    *,
    env: Mapping[str, str] = os.environ,
    secrets_dir: str | os.PathLike[str] | None = None,
    env_allow: Collection[str] = (),
) -> tuple[dict[str, Any], set[str]]:
    """Like resolve_params, also returning every secret value met, for scrubbing logs and reasons.

    Only secret_params are resolved: ``${VAR}`` and ``{"secret": name}`` anywhere else (params, and so
    URLs, headers, bodies, templates) stay literal text. A reference reads only what an operator put
    there for secrets: a file in `secrets_dir`, a ``RUNHERALD_SECRET_*`` variable, or a variable named
    in `env_allow`; any other raises SecretResolutionError naming the reference, never a value.
    """
    resolver = _Resolver(env, Path(secrets_dir) if secrets_dir else None, frozenset(env_allow))
    secret_params = dict(notification.get("secret_params") or {})
    if "secret" in secret_params:
        if len(secret_params) > 1:
            raise SecretResolutionError(
                "When the 'secret' key is present, 'secret_params' should not contain any other keys."
            )
        secret_params = resolver.load_json_object(str(secret_params["secret"]))
    resolved_secret = {}
    for key, value in secret_params.items():
        try:
            resolved_secret[key] = resolver.resolve(value)
        except SecretResolutionError as exc:
            raise SecretResolutionError(f"secret_params.{key}: {exc}") from None
    for value in resolved_secret.values():
        resolver.remember(value)
    params = notification.get("params") or {}
    return {**resolved_secret, **params}, resolver.seen


class _Resolver:
    """Walks secret_params values, replacing references and remembering the secrets it read."""

    def __init__(
        self, env: Mapping[str, str], secrets_dir: Path | None, env_allow: frozenset[str] = frozenset()
    ) -> None:
        self.env = env
        self.secrets_dir = secrets_dir
        self.env_allow = env_allow
        self.seen: set[str] = set()

    def remember(self, value: Any) -> None:
        if isinstance(value, str):
            if value:
                self.seen.add(value)
        elif isinstance(value, Mapping):
            for item in value.values():
                self.remember(item)
        elif isinstance(value, list):
            for item in value:
                self.remember(item)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str):
            return ENV_REFERENCE.sub(lambda match: self.env_value(match.group(1)), value)
        if is_sealed(value):
            plaintext = open_sealed(value)
            self.remember(plaintext)
            return self.resolve(plaintext)  # a sealed literal may itself hold ${VAR} references
        if isinstance(value, Mapping):
            if set(value) == {"secret"} and isinstance(value["secret"], str):
                return self.load(value["secret"])
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value

    def env_value(self, name: str) -> str:
        if not env_allowed(name, self.env_allow):
            raise SecretResolutionError(
                f"${{{name}}} is not an environment variable secrets may come from "
                f"(only {SECRET_ENV_PREFIX}* and the names in RUNHERALD_SECRETS_ENV_ALLOW)"
            )
        if name not in self.env:
            raise SecretResolutionError(f"${{{name}}}: environment variable '{name}' is not set")
        value = self.env[name]
        self.remember(value)
        return value

    def load(self, name: str) -> str:
        if not _SECRET_NAME.match(name):
            raise SecretResolutionError(f"invalid secret name '{name}'")
        value: str | None = None
        if self.secrets_dir is not None:
            path = self.secrets_dir / name
            if path.is_file():
                value = path.read_text(encoding="utf-8").removesuffix("\n")
        if value is None:
            for candidate in (secret_env_name(name), name):
                if env_allowed(candidate, self.env_allow) and candidate in self.env:
                    value = self.env[candidate]
                    break
        if value is None:
            where = f"a file in {self.secrets_dir}, " if self.secrets_dir is not None else ""
            exact = secret_env_name(name) != name and env_allowed(name, self.env_allow)
            allowed = f" or {name}" if exact else ""
            raise SecretResolutionError(
                f"secret '{name}' not found: looked for {where}the environment variable "
                f"{secret_env_name(name)}{allowed}"
            )
        self.remember(value)
        return value

    def load_json_object(self, name: str) -> dict[str, Any]:
        raw = self.load(name)
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise SecretResolutionError(f"secret '{name}' is not a JSON object")
        return parsed


def redact_url(url: str) -> str:
    """Keep a URL's scheme and host only: paths and queries of webhook URLs often carry tokens."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return REDACTED
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/{REDACTED}"


def redact_secret_params(notification: Mapping[str, Any]) -> dict[str, Any]:
    """The notification with literal secret_params values REDACTED; references and sealed values kept."""
    result = dict(notification)
    secret_params = notification.get("secret_params")
    whole_reference = isinstance(secret_params, Mapping) and set(secret_params) == {"secret"}
    if isinstance(secret_params, Mapping) and not whole_reference:
        result["secret_params"] = {
            key: value if is_reference(value) else REDACTED for key, value in secret_params.items()
        }
    return result


def secret_values_of(params: Mapping[str, Any], notification: Mapping[str, Any] | None = None) -> set[str]:
    """Values in resolved params that must never be shown: secret_params keys and sensitive keys."""
    keys = set(SENSITIVE_KEYS)
    secret_params = (notification or {}).get("secret_params")
    if isinstance(secret_params, Mapping):
        keys.update(str(key) for key in secret_params)
    collector = _Resolver({}, None)
    for key in keys & set(params):
        collector.remember(params[key])
    return collector.seen


class SecretScrubber:
    """Replaces known secret values with REDACTED in any string."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: list[str] = []
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        """Remember more secret values (values shorter than 4 characters are ignored)."""
        known = set(self._values)
        known.update(v for v in values if isinstance(v, str) and len(v) >= _MIN_SCRUB_LENGTH)
        # Longest first, so a secret containing another is replaced whole.
        self._values = sorted(known, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """The text with every known secret value replaced by REDACTED."""
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def __bool__(self) -> bool:
        return bool(self._values)


class SecretLogFilter(logging.Filter):
    """Logging filter that scrubs known secret values from each record's message."""

    def __init__(self, scrubber: SecretScrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.scrubber:
            return True
        message = record.getMessage()
        scrubbed = self.scrubber.scrub(message)
        if scrubbed != message:
            record.msg = scrubbed
            record.args = None
        return True
