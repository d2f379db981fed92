"""The dry-run preview: what every channel would send for a run and notification."""

from __future__ import annotations

from runherald.preview import render_preview

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
