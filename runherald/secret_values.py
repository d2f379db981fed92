"""The forms a secret_params value takes: a reference, a sealed value, or a literal secret.

runherald.sealing seals literals and runherald.secrets resolves references and opens sealed values;
both build on these definitions, which import neither.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

SEALED = "sealed"  # {"sealed": "<token>"}: a secret_params value sealed by runherald.sealing
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # ${VAR}: an environment variable's value
# The environment variables a secret reference may read without being allow-listed by name.
SECRET_ENV_PREFIX = "RUNHERALD_SECRET_"


class SecretResolutionError(ValueError):
    """A secret reference could not be resolved; the message names the secret, never a value."""


def secret_env_name(name: str) -> str:
    """The variable ``{"secret": name}`` reads: ``RUNHERALD_SECRET_`` + the name upper-cased, every
    character other than a letter, digit or ``_`` as ``_`` (``ml-oncall-webhook`` →
    ``RUNHERALD_SECRET_ML_ONCALL_WEBHOOK``)."""
    return SECRET_ENV_PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


def env_allowed(name: str, allow: Collection[str] = ()) -> bool:
    """Whether a secret reference may read the environment variable `name`: it starts with
    ``RUNHERALD_SECRET_`` or an operator allow-listed it by its exact name."""
    return name.startswith(SECRET_ENV_PREFIX) or name in allow


def is_sealed(value: Any) -> bool:
    """Whether a value is ``{"sealed": token}`` (see runherald.sealing)."""
    return isinstance(value, Mapping) and set(value) == {SEALED} and isinstance(value[SEALED], str)


def is_reference(value: Any) -> bool:
    """Whether a secret_params value holds no secret: exactly ``${VAR}``, ``{"secret": name}``, or sealed."""
    if isinstance(value, str):
        # Only a whole reference: text around one ("Bearer ${TOKEN}") may itself be secret.
        return ENV_REFERENCE.fullmatch(value) is not None
    if isinstance(value, Mapping) and set(value) == {"secret"}:
        return isinstance(value["secret"], str)
    return is_sealed(value)
