"""Message templates: packaged defaults, user overrides by file name, all rendered in a sandbox."""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, TemplateNotFound
from jinja2.sandbox import ImmutableSandboxedEnvironment

TABLE_HEADERS = ("status", "name", "uid", "results")


class _PackageLoader(BaseLoader):
    """Loads the default templates shipped in ``runherald.templates``."""

    def get_source(self, environment: Any, template: str) -> tuple[str, str | None, Any]:
        resource = importlib.resources.files("runherald.templates").joinpath(template)
        if not resource.is_file():
            raise TemplateNotFound(template)
        return resource.read_text(encoding="utf-8"), None, lambda: True


def _autoescape(name: str | None) -> bool:
    return bool(name) and str(name).endswith((".html.j2", ".html"))


def to_json(value: Any) -> str:
    """JSON text as runherald sends it (orjson, sorted keys)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


class TemplateRenderer:
    """Renders named templates (user directory first, then defaults) and ad-hoc strings, sandboxed."""

    def __init__(self, user_dir: str | os.PathLike[str] | None = None) -> None:
        # The directory comes from the settings (RUNHERALD_TEMPLATES), through NotifierSettings.
        self.user_dir = Path(user_dir) if user_dir else None
        loaders: list[BaseLoader] = [_PackageLoader()]
        if self.user_dir is not None:
            loaders.insert(0, FileSystemLoader(str(self.user_dir)))
        self.env = ImmutableSandboxedEnvironment(
            loader=ChoiceLoader(loaders), autoescape=_autoescape, keep_trailing_newline=False
        )
        self.env.filters["json"] = to_json
        # Ad-hoc templates (a webhook's body_template) produce JSON, never HTML: no autoescape.
        self.string_env = ImmutableSandboxedEnvironment(autoescape=False)
        self.string_env.filters["json"] = to_json

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        """Render a named template (e.g. ``mail_subject.txt.j2``) with the given context."""
        return self.env.get_template(name).render(**context)

    def render_string(self, source: str, context: Mapping[str, Any]) -> str:
        """Render a user-supplied template string in the sandbox."""
        return self.string_env.from_string(source).render(**context)


def run_result(run: Mapping[str, Any], sep: str = ",") -> str:
    """A run's result text as MLRun shows it: the error for failed runs, else ``k=v`` pairs."""
    status = run.get("status") or {}
    if status.get("state", "") == "error":
        return str(status.get("error", "") or "")
    results = status.get("results") or {}
    return sep.join(f"{key}={value}" for key, value in results.items())


def runs_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """The runs as MLRun's console table (status, name, short uid, results), in tabulate's simple style."""
    rows = []
    for run in runs:
        metadata = run.get("metadata") or {}
        state = str((run.get("status") or {}).get("state", ""))
        uid = str(metadata.get("uid", ""))
        rows.append([state, str(metadata.get("name", "")), ".." + uid[-6:], run_result(run)])
    return format_table(list(TABLE_HEADERS), rows)


def run_url(ui_url: str | None, project: str, name: str, uid: str, projects_prefix: str = "projects") -> str:
    """MLRun UI link to a run's overview, or "" when no UI URL is configured."""
    if not ui_url:
        return ""
    return f"{ui_url}/{projects_prefix}/{project}/jobs/monitor-jobs/{name}/{uid}/overview"


def message_context(
    message: str,
    severity: str,
    runs: Sequence[Mapping[str, Any]],
    *,
    name: str = "",
    ui_url: str | None = None,
    delivery_id: str = "",
) -> dict[str, Any]:
    """The variables every channel template sees."""
    rows = []
    for run in runs:
        metadata = run.get("metadata") or {}
        uid = str(metadata.get("uid", ""))
        run_name = str(metadata.get("name", ""))
        rows.append(
            {
                "state": str((run.get("status") or {}).get("state", "")),
                "name": run_name,
                "uid": uid,
                "short_uid": ".." + uid[-6:],
                "result": run_result(run),
                "url": run_url(ui_url, str(metadata.get("project", "")), run_name, uid),
            }
        )
    return {
        "message": message,
        "severity": severity,
        "name": name,
        "runs": list(runs),
        "rows": rows,
        "runs_table": runs_table(runs) if runs else "",
        "delivery_id": delivery_id,
    }


def _number_kind(value: str) -> type | None:
    for kind in (int, float):
        try:
            kind(value)
        except ValueError:
            continue
        return kind
    return None


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table laid out like tabulate's default ``simple`` format."""
    columns = [[row[i] for row in rows] for i in range(len(headers))]
    kinds: list[type] = []
    for column in columns:
        found = {_number_kind(cell) for cell in column}
        kinds.append(str if not column or None in found else (float if float in found else int))
    formatted = [
        [_format_number(cell, kind) for cell in column] for column, kind in zip(columns, kinds, strict=True)
    ]
    formatted = [
        _decimal_pad(column) if kind is float else column
        for column, kind in zip(formatted, kinds, strict=True)
    ]
    widths = [
        max([len(header) + 2] + [len(line) for cell in column for line in cell.split("\n")])
        for header, column in zip(headers, formatted, strict=True)
    ]

    def align(text: str, width: int, kind: type) -> str:
        return text.ljust(width) if kind is str else text.rjust(width)

    lines = ["  ".join(align(h, w, k) for h, w, k in zip(headers, widths, kinds, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row_index in range(len(rows)):
        cells = [column[row_index].split("\n") for column in formatted]
        height = max(len(cell) for cell in cells)
        for line_index in range(height):
            parts = [
                align(cell[line_index] if line_index < len(cell) else "", w, k)
                for cell, w, k in zip(cells, widths, kinds, strict=True)
            ]
            lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _format_number(cell: str, kind: type) -> str:
    if kind is int:
        return str(int(cell))
    if kind is float:
        return format(float(cell), "g")
    return cell


def _decimal_pad(column: list[str]) -> list[str]:
    def fraction(cell: str) -> int:
        return len(cell) - cell.index(".") if "." in cell else 0

    width = max(fraction(cell) for cell in column)
    return [cell + " " * (width - fraction(cell)) for cell in column]
