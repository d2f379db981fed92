"""The dry-run preview: what every channel would send for a run and notification."""

from __future__ import annotations

import pytest
from runherald.notifiers import Notifiers

from runherald import channels
from runherald.preview import preview_notification, render_preview

RUN = {
    "metadata": {"name": "train", "uid": "abcdef123456", "project": "p1", "labels": {}},
    "status": {"state": "completed", "results": {"acc": 0.9}},
}


def test_render_preview_shows_every_channel() -> None:
    notification = {"kind": "slack", "name": "n1", "message": "hello", "severity": "warning", "params": {}}
    preview = render_preview(RUN, notification)
    assert preview["message"].startswith("Run completed in project p1")
    assert preview["message"].endswith(": hello")
    assert preview["slack"]["blocks"][0]["text"]["text"] == f"[warning] {preview['message']}"
    assert preview["mail"]["subject"] == f"[warning] {preview['message']}"
    assert '"severity":"warning"' in preview["webhook"]["body"]
    assert preview["console"].splitlines()[0] == f"[warning] {preview['message']}"


def test_every_supported_kind_previews_and_no_other() -> None:
    preview = render_preview(RUN, {"kind": "git", "name": "g", "params": {"repo": "r"}})
    assert preview["kind"] == "git"
    assert set(preview) - {"kind", "message", "severity"} == {
        name for name, kind in channels.KINDS.items() if kind.supported
    }


@pytest.mark.parametrize(
    ("kind", "first_lines"),
    [
        ("slack", ["slack blocks:", "["]),
        ("webhook", ["webhook body (application/json):", '{"message":"Run completed in project p1: hi",']),
        ("mail", ["mail subject: [info] Run completed in project p1: hi", "mail text:"]),
        ("console", ["console:", "[info] Run completed in project p1: hi"]),
        ("ipython", ["kind 'ipython' has no channel preview"]),
        ("carrier-pigeon", ["kind 'carrier-pigeon' has no channel preview"]),
    ],
)
def test_the_notifications_own_channel_shows_its_preview_as_text(kind: str, first_lines: list[str]) -> None:
    notification = {"kind": kind, "name": "n1", "message": "hi"}
    text = preview_notification(RUN, notification, Notifiers()).own_channel_text()
    lines = text.splitlines()
    assert [line[: len(first)] for line, first in zip(lines, first_lines, strict=False)] == first_lines
