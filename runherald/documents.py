"""What every object of the configuration document shares: names, unknown fields, record keys, the
refusal, `InvalidConfig`, and a secret as it is stored (a literal sealed), shown (REDACTED) and warned of.

Below `runherald.alerting`, `runherald.subscriptions`, `runherald.integrations` and
`runherald.silences`, so that alerting's `check_document` can parse each section with its own module
while those modules use these helpers (alerting re-exports them by their old names).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from runherald.admission import Problem, did_you_mean
from runherald.errors import RunheraldError
from runherald.matchers import Matcher, MatcherError, parse_matcher
from runherald.sealing import seal_value
from runherald.secret_values import is_reference
from runherald.secrets import REDACTED

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
NAME_RULE = "1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit (no '/')"


class InvalidConfig(RunheraldError):
    """A configuration document (or one object of it) refused; `problems` says each thing and where."""

    exit_code = 2

    def __init__(self, problems: list[Problem], warnings: list[Problem] | None = None) -> None:
        self.problems = problems
        self.warnings = warnings or []
        count = len(problems)
        self.summary = (
            f"the configuration has {count} problem{'s' if count != 1 else ''}; nothing was applied"
        )
        super().__init__("\n".join([self.summary, *(str(problem) for problem in problems)]))


def name_problem(kind: str, name: Any, path: str) -> Problem | None:
    """What is wrong with the name of an object of a kind at `path` (missing, or not a valid name)."""
    if not isinstance(name, str) or not name:
        return Problem(f"{path}.name", f"a {kind} needs a name")
    if not NAME.match(name):
        return Problem(f"{path}.name", f"{name!r} is not a valid name: {NAME_RULE}")
    return None


def record_key(kind: str, name: str) -> str:
    """The key of an object on the rules topic: ``"{type}/{name}"``."""
    return f"{kind}/{name}"


def unknown_keys(
    data: Mapping[str, Any], known: Collection[str], path: str, later: Collection[str] = ()
) -> list[Problem]:
    """A problem for each key of `data` that is not `known` (with a did-you-mean); one a later version
    takes (`later`) is refused as such, never ignored."""
    problems = []
    for key in data:
        if key in known:
            continue
        if key in later:
            problems.append(Problem(f"{path}.{key}", "is not supported by this version of runherald yet"))
        else:
            close = did_you_mean(str(key), list(known))
            problems.append(Problem(f"{path}.{key}", f"unknown field {key!r}{close}"))
    return problems


def stored_secret(value: Any) -> Any:
    """A secret as it is written to the rules topic: a literal sealed (SealKeyError when this process has
    no key to seal with); a reference or a sealed value as it is."""
    return value if is_reference(value) else seal_value(value)


def shown_secret(value: Any) -> Any:
    """A secret as the API and the CLI show it: a literal REDACTED; a reference or a sealed value kept."""
    return value if is_reference(value) else REDACTED


def literal_secret(path: str) -> Problem:
    """The warning of a document that holds a literal secret at `path`."""
    return Problem(
        path,
        "a literal secret: sealed before it is stored, but the file holds it"
        " (a reference, {secret: NAME}, keeps it out of the file)",
    )


def matcher_list(
    values: list[Any], path: str, allowed: Collection[str], problems: list[Problem]
) -> tuple[Matcher, ...]:
    """Each text of a list parsed as a matcher over `allowed`; a problem at `path[i]` for each that is not."""
    parsed = []
    for i, text in enumerate(values):
        try:
            parsed.append(parse_matcher(text, allowed))
        except MatcherError as exc:
            problems.append(Problem(f"{path}[{i}]", str(exc)))
    return tuple(parsed)


__all__ = [
    "NAME",
    "NAME_RULE",
    "InvalidConfig",
    "literal_secret",
    "matcher_list",
    "name_problem",
    "record_key",
    "shown_secret",
    "stored_secret",
    "unknown_keys",
]
