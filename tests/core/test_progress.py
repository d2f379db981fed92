"""Progress on stderr (runherald.progress): a line rewritten in place on a terminal, nothing on a file or
pipe unless RUNHERALD_PROGRESS=always, nothing with --quiet whatever the mode."""

from __future__ import annotations

import io
import time

import pytest

from runherald.progress import PROGRESS_ENV, Progress, Waiting, announce, progress_mode


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def count_to(progress: Progress, total: int) -> None:
    with progress:
        for _ in range(total):
            progress.advance()


def test_nothing_on_a_stream_that_is_not_a_terminal() -> None:
    stream = io.StringIO()
    count_to(Progress("replayed", 500, stream=stream, mode="auto"), 500)
    announce("phase 1/2: raw", stream=stream, mode="auto")
    with Waiting("applying 3 objects", stream=stream, mode="auto"):
        pass
    assert stream.getvalue() == ""


def test_a_terminal_gets_one_line_rewritten_in_place_ending_on_the_total() -> None:
    stream = Terminal()
    count_to(Progress("replayed", 500, stream=stream, mode="auto"), 500)
    text = stream.getvalue()
    assert text.startswith("\rreplayed 1/500") and text.endswith("\rreplayed 500/500\n")
    assert text.count("\n") == 1  # one line, rewritten
    assert text.count("\r") < 50  # throttled, not a write per item


def test_quiet_silences_every_mode_and_never_silences_a_terminal() -> None:
    for mode, quiet in (("always", True), ("auto", True), ("never", False)):
        stream = Terminal()
        count_to(Progress("replayed", 10, stream=stream, mode=mode, quiet=quiet), 10)
        announce("phase 1/1: raw", stream=stream, mode=mode, quiet=quiet)
        with Waiting("applying", stream=stream, mode=mode, quiet=quiet):
            pass
        assert stream.getvalue() == "", (mode, quiet)


def test_forced_on_a_pipe_prints_plain_lines_and_the_last_count_once() -> None:
    stream = io.StringIO()
    count_to(Progress("replayed", 3000, stream=stream, mode="always"), 3000)
    announce("phase 2/9: faust", stream=stream, mode="always")
    with Waiting("applying 3 objects", stream=stream, mode="always"):
        pass
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0] == "replayed 1/3000" and lines[-3] == "replayed 3000/3000"
    assert lines[-2:] == ["phase 2/9: faust", "applying 3 objects"]
    assert len(lines) < 10  # at most one a second, and the last


def test_a_failure_ends_the_line_without_claiming_a_count() -> None:
    stream = Terminal()
    with pytest.raises(RuntimeError), Progress("applied", 3, stream=stream, mode="auto") as progress:
        progress.update(1)
        raise RuntimeError("the API is down")
    assert stream.getvalue() == "\rapplied 1/3\n"


def test_waiting_on_a_terminal_shows_the_seconds_then_clears_its_line() -> None:
    stream = Terminal()
    with Waiting("applying 3 objects", stream=stream, mode="auto"):
        time.sleep(0.05)
    text = stream.getvalue()
    assert text.startswith("\rapplying 3 objects 0s") and text.endswith("\r")
    assert text.rstrip(" \r").endswith("0s")


def test_the_mode_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROGRESS_ENV, "Always")
    assert progress_mode() == "always"
    stream = io.StringIO()
    announce("shown", stream=stream)
    monkeypatch.setenv(PROGRESS_ENV, "sometimes")  # not a mode: auto
    assert progress_mode() == "auto"
    announce("not shown", stream=stream)
    assert stream.getvalue() == "shown\n"
