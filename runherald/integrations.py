"""Named integrations: an inbound webhook's adapter, default project and own authentication.

An integration ``{name, adapter, project, auth}`` is one object of the configuration document
(``integrations:``), stored on the rules topic as ``integration/NAME`` and answered at
``POST /api/v1/integrations/{name}``. Its ``auth`` holds exactly one of:

- ``token_sha256``: the lowercase hex SHA-256 of a bearer token (as the tokens file holds it);
- ``hmac_secret``: a Standard Webhooks signing secret (``whsec_<base64>`` or any text);
- ``github_secret``: the secret of a GitHub webhook (``X-Hub-Signature-256``).

The two secrets are secret values like a receiver's secret_params: a reference (``${RUNHERALD_SECRET_X}``,
``{secret: NAME}``) or a literal, which is sealed (runherald.sealing) before it is written to a topic and
never shown (`Integration.public_dict`). Pure: parsing and checking here, the routes in
runherald.api_integrations, the checks of a request in runherald.integration_auth.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from runherald.admission import Problem, did_you_mean
from runherald.auth import NAME_PATTERN
from runherald.documents import NAME_RULE, literal_secret, shown_secret, stored_secret, unknown_keys
from runherald.sealing import open_sealed
from runherald.secret_values import SecretResolutionError, is_reference, is_sealed
from runherald.secrets import resolve_params
from runherald.signing import secret_bytes

ADAPTER_NAMES = ("mlrun-run", "mlrun-webhook", "cloudevents", "generic", "github-workflow-run")
GITHUB_ADAPTER = "github-workflow-run"
TOKEN_SHA256, HMAC_SECRET, GITHUB_SECRET = "token_sha256", "hmac_secret", "github_secret"
AUTH_KINDS = (TOKEN_SHA256, HMAC_SECRET, GITHUB_SECRET)
SECRET_KINDS = (HMAC_SECRET, GITHUB_SECRET)
INTEGRATION_KEYS = ("name", "adapter", "project", "auth")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Integration:
    """An inbound webhook: how its bodies become runs (adapter, project) and how it is authenticated."""

    name: str
    adapter: str
    auth: Mapping[str, Any] = field(default_factory=dict)  # exactly one of AUTH_KINDS
    project: str = ""  # the project of runs whose shape names none

    @property
    def auth_kind(self) -> str:
        return next(iter(self.auth))

    @property
    def auth_value(self) -> Any:
        return self.auth[self.auth_kind]

    def to_dict(self) -> dict[str, Any]:
        """As stored on the rules topic (a literal secret as given: sealed before it is written)."""
        data: dict[str, Any] = {"name": self.name, "adapter": self.adapter}
        if self.project:
            data["project"] = self.project
        return {**data, "auth": dict(self.auth)}

    def public_dict(self) -> dict[str, Any]:
        """As the API and CLI show it: a literal secret REDACTED; references, sealed values and the
        token's digest kept."""
        data = self.to_dict()
        kind, value = self.auth_kind, self.auth_value
        if kind in SECRET_KINDS:
            data["auth"] = {kind: shown_secret(value)}
        return data


def record_value(integration: Integration) -> dict[str, Any]:
    """What is written to the rules topic: `to_dict` with a literal secret sealed (SealKeyError when
    this process has no key to seal with)."""
    data = integration.to_dict()
    kind, value = integration.auth_kind, integration.auth_value
    if kind in SECRET_KINDS:
        data["auth"] = {kind: stored_secret(value)}
    return data


def _opened(auth: Any) -> Any:
    """An auth mapping with a sealed value opened, to compare what it holds (sealing is randomized);
    None when it does not open here."""
    if not isinstance(auth, Mapping):
        return auth
    try:
        return {key: open_sealed(value) if is_sealed(value) else value for key, value in auth.items()}
    except SecretResolutionError:
        return None


def same_integration(new: Mapping[str, Any], stored: Mapping[str, Any] | None) -> bool:
    """Whether a stored integration (its secret sealed) holds what `new` says."""
    if stored is None:
        return False
    if {k: v for k, v in new.items() if k != "auth"} != {k: v for k, v in stored.items() if k != "auth"}:
        return False
    mine, theirs = _opened(new.get("auth")), _opened(stored.get("auth"))
    return mine is not None and mine == theirs


def literal_secret_warnings(integrations: Collection[Integration]) -> list[Problem]:
    """An integration whose secret is a literal: stored sealed, but the file holds it."""
    return [
        literal_secret(f"integrations.{integration.name}.auth.{integration.auth_kind}")
        for integration in integrations
        if integration.auth_kind in SECRET_KINDS and not is_reference(integration.auth_value)
    ]


def resolve_secret(
    integration: Integration, *, secrets_dir: str | None = None, env_allow: Collection[str] = ()
) -> str:
    """The plaintext of an integration's secret, as a worker resolves secret_params (a sealed value
    opened, a reference read); SecretResolutionError naming the reference, never a value."""
    value = resolve_params(
        {"secret_params": {"value": integration.auth_value}},
        env=os.environ,
        secrets_dir=secrets_dir,
        env_allow=env_allow,
    )["value"]
    if not isinstance(value, str) or not value:
        raise SecretResolutionError(
            f"the {integration.auth_kind} of integration {integration.name!r} is empty"
        )
    return value


def unresolved_secret_problems(
    integrations: Collection[Integration], *, secrets_dir: str | None = None, env_allow: Collection[str] = ()
) -> list[Problem]:
    """An integration whose secret this worker cannot resolve (a reference to a secret it does not have,
    a value sealed for other keys): it could never check a request, so it is refused when applied."""
    problems = []
    for integration in integrations:
        if integration.auth_kind not in SECRET_KINDS:
            continue
        try:
            resolve_secret(integration, secrets_dir=secrets_dir, env_allow=env_allow)
        except SecretResolutionError as exc:
            where = f"integrations.{integration.name}.auth.{integration.auth_kind}"
            problems.append(Problem(where, f"cannot be resolved by this worker: {exc}"))
    return problems


def _secret_problems(kind: str, value: Any, path: str) -> list[Problem]:
    if is_reference(value):
        return []
    if not isinstance(value, str) or not value:
        return [
            Problem(
                path,
                "needs the secret: text, ${RUNHERALD_SECRET_NAME} or {secret: NAME} (a reference keeps"
                " it out of the document)",
            )
        ]
    if kind == HMAC_SECRET:
        try:
            secret_bytes(value)
        except ValueError as exc:  # the message names the form, never the value
            return [Problem(path, str(exc))]
    return []


def _auth_problems(auth: Any, adapter: Any, path: str) -> list[Problem]:
    if not isinstance(auth, Mapping) or not auth:
        return [Problem(path, f"needs exactly one of {', '.join(AUTH_KINDS)}")]
    problems = unknown_keys(auth, AUTH_KINDS, path)
    given = [kind for kind in AUTH_KINDS if kind in auth]
    if len(given) > 1:
        problems.append(Problem(path, f"holds {' and '.join(given)}: give exactly one"))
    if problems or not given:
        return problems or [Problem(path, f"needs exactly one of {', '.join(AUTH_KINDS)}")]
    kind, value = given[0], auth[given[0]]
    where = f"{path}.{kind}"
    if kind == TOKEN_SHA256:
        if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
            # Not echoed: it may be the token itself pasted where its digest belongs.
            problems.append(
                Problem(
                    where,
                    "expected the token's SHA-256 as 64 lowercase hex digits (`runherald token create`"
                    " prints it), not the token itself",
                )
            )
    else:
        problems += _secret_problems(kind, value, where)
    if adapter == GITHUB_ADAPTER and kind != GITHUB_SECRET:
        problems.append(
            Problem(where, "GitHub signs its webhooks with X-Hub-Signature-256: use auth.github_secret")
        )
    elif adapter != GITHUB_ADAPTER and kind == GITHUB_SECRET and isinstance(adapter, str):
        problems.append(
            Problem(where, f"github_secret checks GitHub's signature: only for the {GITHUB_ADAPTER} adapter")
        )
    return problems


def parse_integration(data: Any, path: str) -> tuple[Integration | None, list[Problem]]:
    """An integration from its dict, or the problems that keep it from being one."""
    if not isinstance(data, Mapping):
        return None, [Problem(path, "an integration must be an object with name, adapter, project, auth")]
    problems = unknown_keys(data, INTEGRATION_KEYS, path)
    name = data.get("name")
    if not isinstance(name, str) or not name:
        problems.append(Problem(f"{path}.name", "an integration needs a name"))
    elif not NAME_PATTERN.fullmatch(name):
        problems.append(Problem(f"{path}.name", f"{name!r} is not a valid name: {NAME_RULE}"))
    adapter = data.get("adapter")
    if not isinstance(adapter, str) or not adapter:
        problems.append(
            Problem(f"{path}.adapter", f"an integration needs an adapter ({', '.join(ADAPTER_NAMES)})")
        )
    elif adapter not in ADAPTER_NAMES:
        problems.append(
            Problem(f"{path}.adapter", f"unknown adapter {adapter!r}{did_you_mean(adapter, ADAPTER_NAMES)}")
        )
    project = data.get("project")
    if project is not None and (not isinstance(project, str) or not NAME_PATTERN.fullmatch(project)):
        problems.append(Problem(f"{path}.project", f"{project!r} is not a project name: {NAME_RULE}"))
    problems += _auth_problems(data.get("auth"), adapter, f"{path}.auth")
    if problems:
        return None, problems
    auth = data["auth"]
    kind = next(kind for kind in AUTH_KINDS if kind in auth)
    integration = Integration(
        name=data["name"], adapter=str(adapter), auth={kind: auth[kind]}, project=project or ""
    )
    return integration, []


def parse_integrations(items: Any, section: str = "integrations") -> tuple[list[Integration], list[Problem]]:
    """The integrations of a document's section (a list), each named once, or their problems."""
    if items is None:
        return [], []
    if not isinstance(items, list):
        return [], [Problem(section, f"{section} must be a list")]
    found: list[Integration] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, data in enumerate(items):
        name = data.get("name") if isinstance(data, Mapping) else None
        named = isinstance(name, str) and NAME_PATTERN.fullmatch(name)
        path = f"{section}.{name}" if named else f"{section}[{i}]"
        integration, wrong = parse_integration(data, path)
        problems += wrong
        if isinstance(name, str) and name in seen:
            problems.append(Problem(f"{path}.name", f"integration {name!r} is defined twice"))
        elif integration is not None:
            found.append(integration)
        if isinstance(name, str):
            seen.add(name)
    return found, problems


__all__ = [
    "ADAPTER_NAMES",
    "AUTH_KINDS",
    "GITHUB_ADAPTER",
    "GITHUB_SECRET",
    "HMAC_SECRET",
    "TOKEN_SHA256",
    "Integration",
    "literal_secret_warnings",
    "parse_integration",
    "parse_integrations",
    "record_value",
    "resolve_secret",
    "same_integration",
    "unresolved_secret_problems",
]
