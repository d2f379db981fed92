"""`runherald bench` shows its progress on stderr only where asked: nothing when stderr is a pipe, the
phases and the counts with RUNHERALD_PROGRESS=always. Its figures on stdout are the same either way."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

RUNS = 400
SMALL = ["--only", "evaluate,deliveries", "--runs", str(RUNS), "--deliveries", "50", "--partitions", "2"]


def bench(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "RUNHERALD_PROGRESS"}
    return subprocess.run(
        [sys.executable, "-m", "runherald.benchmarks.pipeline", *SMALL, *args],
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.slow
def test_bench_progress_is_silent_on_a_pipe_and_shown_when_forced() -> None:
    piped = bench()
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert re.search(r"^evaluate_no_match: \S+ events/s", piped.stdout, re.MULTILINE)
    assert piped.stderr == ""

    forced = bench(RUNHERALD_PROGRESS="always")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert re.search(r"^webhook_deliveries: \S+ deliveries/s", forced.stdout, re.MULTILINE)
    lines = forced.stderr.splitlines()
    assert lines[0] == "phase 1/2: evaluate"
    assert lines.index("phase 2/2: deliveries") < len(lines) - 1
    assert f"consumed {RUNS}/{RUNS}" in lines[: lines.index("phase 2/2: deliveries")]
    assert lines[-1] == "delivered 50/50"
    assert "consumed" not in forced.stdout and "phase" not in forced.stdout

    quiet = bench("--quiet", "--only", "evaluate", RUNHERALD_PROGRESS="always")
    assert quiet.returncode == 0 and quiet.stderr == ""
