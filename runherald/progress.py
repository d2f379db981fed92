"""Progress of long commands (``dead-letter replay --all``, ``rules apply -f``, ``bench``) on stderr.

Shown only where a person watches: when stderr is a terminal, as one line rewritten in place
(``replayed 1200/5000``). Nothing otherwise, so logs and pipes stay clean, and nothing with
``--quiet``. ``RUNHERALD_PROGRESS`` overrides the terminal check: ``always`` prints progress even to a
file or a pipe (a line per update, at most one a second, and the last), ``never`` prints none;
``auto`` (the default) is the terminal check.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

PROGRESS_ENV = "RUNHERALD_PROGRESS"
MODES = ("auto", "always", "never")
TTY_INTERVAL = 0.1  # seconds between rewrites of the line on a terminal
LOG_INTERVAL = 1.0  # seconds between lines when forced on to a file or pipe


def progress_mode() -> str:
    """RUNHERALD_PROGRESS, or auto when unset or not one of the modes."""
    mode = os.environ.get(PROGRESS_ENV, "auto").strip().lower()
    return mode if mode in MODES else "auto"


class Progress:
    """``{verb} {done}/{total}`` on a stream (stderr), throttled, or nothing when not enabled."""

    def __init__(
        self,
        verb: str,
        total: int,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        mode: str | None = None,
    ) -> None:
        self.verb = verb
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        mode = mode or progress_mode()
        self.tty = _isatty(self.stream)
        self.enabled = not quiet and (mode == "always" or (mode == "auto" and self.tty))
        self._shown_at = 0.0
        self._shown = -1
        self._width = 0

    def advance(self, count: int = 1) -> None:
        """Count `count` more items done; show the line if it is time to."""
        self.update(self.done + count)

    def update(self, done: int, total: int | None = None) -> None:
        """Set the count (and the total, when it changes); show the line if it is time to."""
        self.done = done
        if total is not None:
            self.total = total
        if not self.enabled:
            return
        now = time.monotonic()
        interval = TTY_INTERVAL if self.tty else LOG_INTERVAL
        if self.done >= self.total or now - self._shown_at >= interval:
            self._show(now)

    def finish(self) -> None:
        """Show the last count (once) and end the line."""
        if not self.enabled:
            return
        if self._shown != self.done:
            self._show(time.monotonic())
        if self.tty and self._shown >= 0:
            self.stream.write("\n")
            self.stream.flush()
        self._shown = self.done
        self.enabled = False  # a second finish() writes nothing

    def _show(self, now: float) -> None:
        if self._shown == self.done and not self.tty:
            return
        text = f"{self.verb} {self.done}/{self.total}"
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._shown_at = now
        self._shown = self.done

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.finish()
            return
        if self.enabled and self.tty and self._shown >= 0:  # failed: end the line, claim no count
            self.stream.write("\n")
            self.stream.flush()
        self.enabled = False


def announce(
    text: str, *, quiet: bool = False, stream: TextIO | None = None, mode: str | None = None
) -> None:
    """One line of progress (``phase 3/9: evaluate``) where progress is shown, nothing elsewhere."""
    stream = stream if stream is not None else sys.stderr
    mode = mode or progress_mode()
    if not quiet and (mode == "always" or (mode == "auto" and _isatty(stream))):
        stream.write(text + "\n")
        stream.flush()


class Waiting:
    """``{text}`` while one long step without a count runs (a request the server answers when done):
    on a terminal with the seconds so far, rewritten in place by a thread; when forced on to a file or
    pipe, the text once. Nothing when not enabled."""

    def __init__(
        self, text: str, *, quiet: bool = False, stream: TextIO | None = None, mode: str | None = None
    ) -> None:
        self.text = text
        self.stream = stream if stream is not None else sys.stderr
        mode = mode or progress_mode()
        self.tty = _isatty(self.stream)
        self.enabled = not quiet and (mode == "always" or (mode == "auto" and self.tty))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Waiting:
        if not self.enabled:
            return self
        if not self.tty:
            self.stream.write(self.text + "\n")
            self.stream.flush()
            return self
        self._thread = threading.Thread(target=self._tick, name="runherald-progress", daemon=True)
        self._thread.start()
        return self

    def _tick(self) -> None:
        started = time.monotonic()
        while True:
            self.stream.write(f"\r{self.text} {time.monotonic() - started:.0f}s")
            self.stream.flush()
            if self._stop.wait(0.5):
                break
        self.stream.write("\r" + " " * (len(self.text) + 8) + "\r")  # the line is the result's now
        self.stream.flush()

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream: not a terminal
        return False


__all__ = ["MODES", "PROGRESS_ENV", "Progress", "Waiting", "announce", "progress_mode"]
