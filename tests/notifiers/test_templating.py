"""Templates: user overrides by file name, sandboxing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jinja2.exceptions import SecurityError
from runherald.notifiers import ConsoleNotifier, NotifierSettings
from runherald.notifiers.slack import render_slack_blocks

from runherald.config import Settings
from runherald.delivery import OutcomeKind
from runherald.templating import TemplateRenderer


async def test_user_directory_overrides_a_template(tmp_path: Path, delivery_for: Any) -> None:
    import io

    (tmp_path / "console.txt.j2").write_text("custom {{ severity | upper }}: {{ message }}")
    stream = io.StringIO()
    notifier = ConsoleNotifier(NotifierSettings(templates_dir=tmp_path), stream=stream)
    outcome = await notifier.send(delivery_for("console", message="hi"), {})
    assert outcome.kind is OutcomeKind.SENT
    assert stream.getvalue() == "custom INFO: hi\n"


def test_env_variable_selects_user_directory(tmp_path: Path) -> None:
    (tmp_path / "slack_header.txt.j2").write_text(":rotating_light: {{ message }}")
    settings = NotifierSettings.from_settings(Settings.from_env({"RUNHERALD_TEMPLATES": str(tmp_path)}))
    blocks = render_slack_blocks("boom", "error", [], renderer=TemplateRenderer(settings.templates_dir))
    assert blocks[0]["text"]["text"] == ":rotating_light: boom"
    assert (
        TemplateRenderer(tmp_path).render("mail_subject.txt.j2", {"severity": "info", "message": "m"})
        == "[info] m"
    )


def test_sandbox_refuses_unsafe_attributes() -> None:
    renderer = TemplateRenderer()
    with pytest.raises(SecurityError):
        renderer.render_string("{{ ''.__class__.__mro__ }}", {})
    with pytest.raises(SecurityError):
        renderer.render_string("{% set x = [] %}{{ x.append(1) }}", {})


def test_html_is_autoescaped_text_is_not() -> None:
    renderer = TemplateRenderer()
    context = {"severity": "info", "message": "<b>", "rows": [], "name": ""}
    assert "&lt;b&gt;" in renderer.render("mail_body.html.j2", context)
    assert renderer.render("mail_subject.txt.j2", context) == "[info] <b>"
