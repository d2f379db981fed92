"""Seal literal secret_params values for the workers' private keys, so no secret value sits in a Kafka topic.

A sealed value is ``{"sealed": "<token>"}``; the token holds the JSON of the original value. Publishers
hold only a public key: they can seal but never open, not even what they sealed themselves. Workers hold
the private keys. References (``${ENV}`` strings, ``{"secret": name}``) and sealed values are left as they
are: only the worker that resolves them (runherald.secrets) sees a plaintext.

The token is a sealed box: ``rhs1.<key id>.<ephemeral public key>.<ciphertext>`` (base64url parts). Each
value gets a fresh X25519 key pair; its shared secret with the worker's public key, through HKDF-SHA256,
is the ChaCha20-Poly1305 key of that one value, and the key id (the first 8 bytes of SHA-256 of the
worker's public key) tells the worker which of its private keys opens it.

Keys, from the environment (not settings: they are secrets, and publishers and workers need different
ones), each variable or its ``_FILE`` twin naming a file:

- ``RUNHERALD_SEAL_PUBLIC_KEY``: the key publishers seal with; a worker without it seals with the public
  key of its newest private key.
- ``RUNHERALD_SEAL_PRIVATE_KEYS``: the workers' private keys, newest first (comma- or newline-separated;
  ``#`` starts a comment in a file); any of them opens, the newest seals.
- ``RUNHERALD_SEAL_KEY``: the old shared Fernet key(s): values sealed with it before still open while it
  is set. Nothing is sealed with it any more.

No key is ever made silently: `generate_key_pair` (``runherald keys create``) makes them, and a process
with no key in the environment may `use_keys` (``runherald dev`` does, for itself only).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from runherald.errors import ConfigError
from runherald.secret_values import SEALED, SecretResolutionError, is_reference, is_sealed

PUBLIC_KEY_ENV = "RUNHERALD_SEAL_PUBLIC_KEY"
PRIVATE_KEYS_ENV = "RUNHERALD_SEAL_PRIVATE_KEYS"
KEY_ENV = "RUNHERALD_SEAL_KEY"  # the old shared Fernet key: opens what was sealed with it, seals nothing
FILE_SUFFIX = "_FILE"
KEY_FILE_ENV = KEY_ENV + FILE_SUFFIX
PUBLIC_PREFIX = "rhpk_"
PRIVATE_PREFIX = "rhsk_"
TOKEN_VERSION = "rhs1"
_INFO = b"runherald sealed secret v1"
# Each value's key is used once (a fresh ephemeral key pair per value), so a fixed nonce is safe.
_NONCE = bytes(12)


class SealKeyError(ConfigError):
    """A seal key is missing or malformed; the message says where it was looked for, never the key."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_key_text(key: X25519PublicKey) -> str:
    """``rhpk_<base64url>``: a public key as RUNHERALD_SEAL_PUBLIC_KEY holds it."""
    return PUBLIC_PREFIX + _b64(key.public_bytes_raw())


def private_key_text(key: X25519PrivateKey) -> str:
    """``rhsk_<base64url>``: a private key as RUNHERALD_SEAL_PRIVATE_KEYS holds it."""
    return PRIVATE_PREFIX + _b64(key.private_bytes_raw())


def key_id(key: X25519PublicKey) -> str:
    """The id a sealed value names its key by: hex of the first 8 bytes of SHA-256 of the public key."""
    return hashlib.sha256(key.public_bytes_raw()).hexdigest()[:16]


def generate_key_pair() -> tuple[str, str]:
    """A new (private key text, public key text)."""
    private = X25519PrivateKey.generate()
    return private_key_text(private), public_key_text(private.public_key())


def _parse_key(text: str, prefix: str, source: str) -> bytes:
    other = PRIVATE_PREFIX if prefix == PUBLIC_PREFIX else PUBLIC_PREFIX
    if text.startswith(other):
        wanted = "public" if prefix == PUBLIC_PREFIX else "private"
        raise SealKeyError(f"{source} holds a key of the wrong kind: expected a {wanted} key ({prefix}...)")
    try:
        raw = _unb64(text.removeprefix(prefix)) if text.startswith(prefix) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise SealKeyError(f"{source} is not a runherald seal key ({prefix}... from `runherald keys create`)")
    return raw


def parse_private_keys(text: str, source: str) -> tuple[X25519PrivateKey, ...]:
    """Private keys from text: comma- or newline-separated, ``#`` comments; SealKeyError if one is bad."""
    items = [part.strip() for line in text.splitlines() for part in line.split("#", 1)[0].split(",")]
    keys = [
        X25519PrivateKey.from_private_bytes(_parse_key(item, PRIVATE_PREFIX, source))
        for item in items
        if item
    ]
    if not keys:
        raise SealKeyError(f"{source} holds no private key")
    return tuple(keys)


@dataclass(frozen=True)
class SealKeys:
    """What one process seals with (a public key) and opens with (private keys, the old Fernet key)."""

    public: X25519PublicKey | None = None
    private: tuple[X25519PrivateKey, ...] = ()
    fernet: MultiFernet | None = None

    @property
    def sealing_key(self) -> X25519PublicKey | None:
        """The public key values are sealed for: the configured one, else the newest private key's."""
        if self.public is not None:
            return self.public
        return self.private[0].public_key() if self.private else None

    def seal(self, plaintext: bytes) -> str:
        """A token only a holder of the matching private key can open."""
        recipient = self.sealing_key
        if recipient is None:
            raise SealKeyError(
                f"no public key to seal secret_params with: set {PUBLIC_KEY_ENV} or "
                f"{PUBLIC_KEY_ENV}{FILE_SUFFIX} (`runherald keys create` makes a key pair)"
            )
        ephemeral = X25519PrivateKey.generate()
        ephemeral_public = ephemeral.public_key().public_bytes_raw()
        header = f"{TOKEN_VERSION}.{key_id(recipient)}"
        box = _box(ephemeral.exchange(recipient), ephemeral_public, recipient.public_bytes_raw())
        ciphertext = box.encrypt(_NONCE, plaintext, header.encode("ascii"))
        return f"{header}.{_b64(ephemeral_public)}.{_b64(ciphertext)}"

    def open(self, token: str) -> bytes:
        """The plaintext of a token; SecretResolutionError saying why not (never showing the token)."""
        if not token.startswith(TOKEN_VERSION + "."):
            return self._open_fernet(token)
        parts = token.split(".")
        if len(parts) != 4:
            raise _cannot_open("it is damaged")
        _, kid, ephemeral_text, ciphertext_text = parts
        private = next((key for key in self.private if key_id(key.public_key()) == kid), None)
        if private is None:
            where = f"{PRIVATE_KEYS_ENV} or {PRIVATE_KEYS_ENV}{FILE_SUFFIX}"
            have = ", ".join(key_id(key.public_key()) for key in self.private) or "none"
            raise _cannot_open(
                f"it was sealed for key {kid}, which is not among its keys in {where} ({have})"
            )
        try:
            ephemeral_public = _unb64(ephemeral_text)
            ciphertext = _unb64(ciphertext_text)
            shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
            box = _box(shared, ephemeral_public, private.public_key().public_bytes_raw())
            return box.decrypt(_NONCE, ciphertext, f"{TOKEN_VERSION}.{kid}".encode("ascii"))
        except (ValueError, InvalidTag):
            raise _cannot_open("it is damaged") from None

    def _open_fernet(self, token: str) -> bytes:
        if self.fernet is None:
            raise _cannot_open(
                f"it was sealed with the old shared key, and neither {KEY_ENV} nor {KEY_FILE_ENV} is set"
            )
        try:
            return self.fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            where = f"{KEY_ENV} or {KEY_FILE_ENV}"
            raise _cannot_open(
                f"it was sealed with another key or is damaged (not the shared key in {where})"
            ) from None


def _box(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> ChaCha20Poly1305:
    # Both public keys go into the derivation, so a value opens only as the box it was sealed in.
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient_public, info=_INFO)
    return ChaCha20Poly1305(kdf.derive(shared))


def _cannot_open(why: str) -> SecretResolutionError:
    return SecretResolutionError(f"sealed secret cannot be opened with this worker's keys: {why}")


def _material(env: Mapping[str, str], variable: str) -> tuple[str, str] | None:
    """(text, where it came from) of a key variable or the file its _FILE twin names; None if neither."""
    if env.get(variable):
        return env[variable], variable
    file_variable = variable + FILE_SUFFIX
    if not env.get(file_variable):
        return None
    path = Path(env[file_variable]).expanduser()
    source = f"{file_variable} ({path})"
    try:
        return path.read_text(encoding="ascii"), source
    except (OSError, UnicodeDecodeError) as exc:
        raise SealKeyError(f"cannot read the seal key from {source}: {type(exc).__name__}") from None


@functools.lru_cache(maxsize=16)
def _keys(
    public: tuple[str, str] | None, private: tuple[str, str] | None, fernet: tuple[str, str] | None
) -> SealKeys:
    public_key = None
    if public is not None:
        public_key = X25519PublicKey.from_public_bytes(
            _parse_key(public[0].strip(), PUBLIC_PREFIX, public[1])
        )
    private_keys = parse_private_keys(*private) if private is not None else ()
    fernet_keys = None
    if fernet is not None:
        try:
            fernet_keys = MultiFernet([Fernet(part.strip()) for part in fernet[0].split(",") if part.strip()])
        except ValueError:
            raise SealKeyError(f"the seal key from {fernet[1]} is not a urlsafe base64 Fernet key") from None
    return SealKeys(public_key, private_keys, fernet_keys)


_installed: SealKeys | None = None


def use_keys(keys: SealKeys | None) -> None:
    """Make this process seal and open with these keys whatever the environment says (None: read it)."""
    global _installed
    _installed = keys


def seal_keys(env: Mapping[str, str] | None = None) -> SealKeys:
    """This process's keys: those given to `use_keys`, else the environment's (none may be set)."""
    if _installed is not None and env is None:
        return _installed
    env = os.environ if env is None else env
    return _keys(_material(env, PUBLIC_KEY_ENV), _material(env, PRIVATE_KEYS_ENV), _material(env, KEY_ENV))


def seal_value(value: Any, keys: SealKeys | None = None) -> dict[str, str]:
    """``{"sealed": token}`` holding the JSON of one value."""
    plaintext = json.dumps(value, separators=(",", ":")).encode("utf-8")
    return {SEALED: (keys or seal_keys()).seal(plaintext)}


def open_sealed(value: Mapping[str, Any], keys: SealKeys | None = None) -> Any:
    """The value inside a sealed value; SecretResolutionError, never showing the token, if it cannot."""
    token = value.get(SEALED)
    if not isinstance(token, str):
        raise _cannot_open("not a token")
    try:
        plaintext = (keys or seal_keys()).open(token)
    except SealKeyError as exc:
        raise _cannot_open(str(exc)) from None
    try:
        return json.loads(plaintext)
    except ValueError:
        raise _cannot_open("its content is not JSON") from None


def seal_notification(notification: Mapping[str, Any], keys: SealKeys | None = None) -> dict[str, Any]:
    """A copy of the notification with every literal secret_params value sealed; references kept."""
    result = dict(notification)
    secret_params = notification.get("secret_params")
    if not isinstance(secret_params, Mapping) or not secret_params:
        return result
    if set(secret_params) == {"secret"} and isinstance(secret_params["secret"], str):
        return result  # the whole-dict reference form
    literal = [name for name, value in secret_params.items() if not is_reference(value)]
    if literal:
        keys = keys or seal_keys()
        result["secret_params"] = {
            name: seal_value(value, keys) if name in literal else value
            for name, value in secret_params.items()
        }
    return result


def seal_run(run: Mapping[str, Any], keys: SealKeys | None = None) -> dict[str, Any]:
    """A copy of a run dict with every ``spec.notifications[*]`` sealed (other shapes are left alone)."""
    result = dict(run)
    spec = run.get("spec")
    notifications = spec.get("notifications") if isinstance(spec, Mapping) else None
    if not isinstance(notifications, list) or not notifications:
        return result
    result["spec"] = {
        **spec,  # type: ignore[dict-item]
        "notifications": [
            seal_notification(item, keys) if isinstance(item, Mapping) else item for item in notifications
        ],
    }
    return result


__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "PRIVATE_KEYS_ENV",
    "PUBLIC_KEY_ENV",
    "SealKeyError",
    "SealKeys",
    "generate_key_pair",
    "is_sealed",
    "key_id",
    "open_sealed",
    "parse_private_keys",
    "private_key_text",
    "public_key_text",
    "seal_keys",
    "seal_notification",
    "seal_run",
    "seal_value",
    "use_keys",
]
