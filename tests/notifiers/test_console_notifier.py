"""Console: MLRun's printed text, written once per delivery to a stream or logger."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from runherald.notifiers import ConsoleNotifier, NotifierSettings
from runherald.notifiers.console import render_console_text

from runherald.delivery import OutcomeKind
from runherald.templating import format_table


def test_text_equals_mlrun(console_case: dict) -> None:
    text = render_console_text(console_case["message"], console_case["severity"], console_case["runs"])
    assert text + "\n" == console_case["printed"]


async def test_writes_one_record_to_stream(delivery_for: Any) -> None:
    stream = io.StringIO()
    notifier = ConsoleNotifier(NotifierSettings(), stream=stream)
    outcome = await notifier.send(delivery_for("console", message="hello", severity="warning"), {})
    assert outcome.kind is OutcomeKind.SENT
    assert stream.getvalue() == "[warning] hello\n"


async def test_writes_to_logger(delivery_for: Any, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("runherald.test.console")
    notifier = ConsoleNotifier(NotifierSettings(console_logger=logger))
    with caplog.at_level(logging.INFO, logger="runherald.test.console"):
        await notifier.send(delivery_for("console", message="logged"), {})
    assert [r.getMessage() for r in caplog.records] == ["[info] logged"]


def test_table_aligns_decimal_columns_like_tabulate() -> None:
    table = format_table(
        ["status", "name", "uid", "results"], [["a", "n", "..1", "1.5"], ["b", "45", "..2", "10"]]
    )
    # Expected lines produced by tabulate 0.8.10 (mlrun's console dependency) for the same rows.
    assert table.splitlines()[2:] == [
        "a         n       ..1          1.5",
        "b         45      ..2         10",
    ]
