"""Seal literal secret_params values with a Fernet key, so no secret value sits in a Kafka topic.

A sealed value is ``{"sealed": "<fernet token>"}``; the token holds the JSON of the original value.
References (``${ENV}`` strings, ``{"secret": name}``) and sealed values are left as they are: only
the worker that resolves them (runherald.secrets) sees a plaintext. The key comes from
``RUNHERALD_SEAL_KEY`` (one key, or several comma-separated: the first seals, all open, for
rotation), else the file named by ``RUNHERALD_SEAL_KEY_FILE``, else ``~/.runherald/seal.key``,
created with mode 0600 on first use.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from runherald.secret_values import SEALED, SecretResolutionError, is_reference, is_sealed

KEY_ENV = "RUNHERALD_SEAL_KEY"
KEY_FILE_ENV = "RUNHERALD_SEAL_KEY_FILE"


class SealKeyError(ValueError):
    """The seal key is missing or malformed; the message says where it was looked for, never the key."""


def default_key_path() -> Path:
    """``~/.runherald/seal.key``: the key used when neither environment variable is set."""
    return Path.home() / ".runherald" / "seal.key"


def _create_key_file(path: Path) -> None:
    # Written under a temporary name and linked into place, so a concurrent reader never sees a
    # half-written key and two first users cannot end up with different keys.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(prefix=".seal-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, Fernet.generate_key() + b"\n")
        os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(temp)


def _key_material(env: Mapping[str, str]) -> tuple[str, str]:
    """(the key text, where it came from) for these environment variables."""
    if env.get(KEY_ENV):
        return env[KEY_ENV], KEY_ENV
    if env.get(KEY_FILE_ENV):
        path = Path(env[KEY_FILE_ENV]).expanduser()
        source = f"{KEY_FILE_ENV} ({path})"
    else:
        path = default_key_path()
        source = str(path)
        if not path.exists():
            _create_key_file(path)
    try:
        return path.read_text(encoding="ascii").strip(), source
    except (OSError, UnicodeDecodeError) as exc:
        raise SealKeyError(f"cannot read the seal key from {source}: {type(exc).__name__}") from None


@functools.lru_cache(maxsize=16)
def _fernet(material: str, source: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(part.strip()) for part in material.split(",") if part.strip()])
    except ValueError:
        raise SealKeyError(f"the seal key from {source} is not a urlsafe base64 Fernet key") from None


def seal_key(env: Mapping[str, str] | None = None) -> MultiFernet:
    """The Fernet key(s) configured by the environment (creating the default key file if needed)."""
    material, source = _key_material(os.environ if env is None else env)
    return _fernet(material, source)


def seal_value(value: Any, key: MultiFernet | None = None) -> dict[str, str]:
    """``{"sealed": token}`` holding the JSON of one value."""
    token = (key or seal_key()).encrypt(json.dumps(value, separators=(",", ":")).encode("utf-8"))
    return {SEALED: token.decode("ascii")}


def open_sealed(value: Mapping[str, Any], key: MultiFernet | None = None) -> Any:
    """The value inside a sealed value; SecretResolutionError, never showing the token, if it cannot."""
    token = value.get(SEALED)
    if not isinstance(token, str):
        raise SecretResolutionError("sealed secret cannot be opened with this worker's key: not a token")
    try:
        plaintext = (key or seal_key()).decrypt(token.encode("ascii"))
    except SealKeyError as exc:
        raise SecretResolutionError(f"sealed secret cannot be opened with this worker's key: {exc}") from None
    except (InvalidToken, UnicodeEncodeError):
        raise SecretResolutionError(
            "sealed secret cannot be opened with this worker's key: it was sealed with another key "
            f"or is damaged (set {KEY_ENV} or {KEY_FILE_ENV} to the publisher's key)"
        ) from None
    try:
        return json.loads(plaintext)
    except ValueError:
        raise SecretResolutionError(
            "sealed secret cannot be opened with this worker's key: its content is not JSON"
        ) from None


def seal_notification(notification: Mapping[str, Any], key: MultiFernet | None = None) -> dict[str, Any]:
    """A copy of the notification with every literal secret_params value sealed; references kept."""
    result = dict(notification)
    secret_params = notification.get("secret_params")
    if not isinstance(secret_params, Mapping) or not secret_params:
        return result
    if set(secret_params) == {"secret"} and isinstance(secret_params["secret"], str):
        return result  # the whole-dict reference form
    literal = [name for name, value in secret_params.items() if not is_reference(value)]
    if literal:
        key = key or seal_key()
        result["secret_params"] = {
            name: seal_value(value, key) if name in literal else value
            for name, value in secret_params.items()
        }
    return result


def seal_run(run: Mapping[str, Any], key: MultiFernet | None = None) -> dict[str, Any]:
    """A copy of a run dict with every ``spec.notifications[*]`` sealed (other shapes are left alone)."""
    result = dict(run)
    spec = run.get("spec")
    notifications = spec.get("notifications") if isinstance(spec, Mapping) else None
    if not isinstance(notifications, list) or not notifications:
        return result
    result["spec"] = {
        **spec,  # type: ignore[dict-item]
        "notifications": [
            seal_notification(item, key) if isinstance(item, Mapping) else item for item in notifications
        ],
    }
    return result


__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "SealKeyError",
    "default_key_path",
    "is_sealed",
    "open_sealed",
    "seal_key",
    "seal_notification",
    "seal_run",
    "seal_value",
]
