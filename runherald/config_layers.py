"""How settings are read: the settings file's layer, building the object with one-line errors, and
redacting a value fit to print (runherald.config uses these; see its docstring for the order)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from runherald.errors import ConfigError

ENV_PREFIX = "RUNHERALD_"
_SECRET_NAME_PARTS = frozenset({"key", "password", "passwd", "token", "secret", "webhook", "credentials"})
_URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]+):[^/@\s]+@")
REDACTED = "REDACTED"

Layer = dict[str, tuple[Any, str]]  # setting name -> (value, where it came from)
S = TypeVar("S", bound=BaseModel)


def redact(name: str, value: Any) -> Any:
    """A setting's value fit to print: secrets (by their name) and passwords in URLs redacted."""
    if not isinstance(value, str) or not value:
        return value
    if _SECRET_NAME_PARTS & set(name.lower().split("_")):
        return REDACTED
    return _URL_PASSWORD.sub(rf"\1:{REDACTED}@", value)


def from_file(path: Path, fields: list[str]) -> Layer:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"settings file {path}: cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or "not YAML"
        raise ConfigError(f"settings file {path}: not valid YAML{line}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"settings file {path}: expected a mapping of setting names to values")
    for key in data:
        if key not in fields:
            guess = str(key).lower().removeprefix(ENV_PREFIX.lower())
            close = difflib.get_close_matches(guess, fields, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"settings file {path}: {key!r} is not a setting{hint}")
    return {name: (value, f"file {path}") for name, value in data.items() if value is not None}


_TYPE_MESSAGES = {
    "bool_parsing": "expected a boolean (true or false)",
    "bool_type": "expected a boolean (true or false)",
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "string_type": "expected text",
}


def build(cls: type[S], values: dict[str, Any], sources: Mapping[str, str]) -> S:
    """cls(**values), or ConfigError naming where the first bad value came from, on one line."""
    try:
        return cls(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        if not name:  # a check across settings (a model validator): its message names them
            raise ConfigError(str(error.get("ctx", {}).get("error", error["msg"]))) from None
        source = sources.get(name, "default")
        kind, _, origin = source.partition(" ")
        where = {"env": origin, "flag": origin, "file": f"settings file {origin}: {name}"}.get(kind, name)
        if error["type"] == "value_error":
            message = str(error.get("ctx", {}).get("error", error["msg"]))
        else:
            message = _TYPE_MESSAGES.get(error["type"], error["msg"])
        if kind == "file" and message.startswith(f"{name} "):
            where = f"settings file {origin}"
        shown = redact(name, values.get(name))
        raise ConfigError(f"{where}: {message}, got {shown!r}") from None
