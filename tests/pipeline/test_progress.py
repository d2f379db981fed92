"""Progress of `runherald dead-letter replay --all` against a real worker's dead letters: a line rewritten
in place when stderr is a terminal (a real pseudo-terminal here), nothing when it is a pipe, plain lines
with RUNHERALD_PROGRESS=always, nothing with --quiet."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from runherald.deadletter import read_dead_letters

from .harness import WorkerProcess, run_dict, unique, wait_for

JUNK = 20  # not JSON: dead-lettered, not replayable
BAD_RUNS = 15  # a run dict with a bad `when`: dead-lettered, replayable (and dead-lettered again)
COMMAND = [sys.executable, "-m", "runherald.cli", "dead-letter", "replay", "--all"]


def replay_all(worker: WorkerProcess, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        env={**worker.environment, **env},
        capture_output=True,
        text=True,
        timeout=90,
    )


def replay_all_on_a_terminal(worker: WorkerProcess) -> tuple[int, str]:
    """Run it with stderr on a pseudo-terminal; (exit code, what the terminal got)."""
    master, slave = pty.openpty()
    env = {key: value for key, value in worker.environment.items() if key != "RUNHERALD_PROGRESS"}
    process = subprocess.Popen(COMMAND, env=env, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    received = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 90)
            if not ready:
                raise TimeoutError(f"no output for 90s; so far {received!r}")
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the process closed the terminal's other end
                break
            if not chunk:
                break
            received += chunk
    finally:
        os.close(master)
        code = process.wait(timeout=30)
    return code, received.decode()


async def test_replay_all_shows_progress_only_where_asked(start_worker: Any) -> None:
    worker: WorkerProcess = start_worker()
    settings = worker.settings
    project = unique("p")
    bad_when = [{"kind": "webhook", "name": "x", "when": "completed"}]
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for i in range(JUNK):
            await producer.send(settings.topic("runs"), value=b"{nope", key=f"{project}/junk{i}".encode())
        for i in range(BAD_RUNS):
            run = orjson.dumps(run_dict(project, f"w{i}", "completed", bad_when))
            await producer.send(settings.topic("runs"), value=run, key=f"{project}/w{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()

    async def all_letters() -> int:
        found = len(await read_dead_letters(settings))
        return found if found >= JUNK + BAD_RUNS else 0

    await wait_for(all_letters, timeout=30)

    piped = replay_all(worker)
    assert piped.returncode == 1  # the junk cannot be replayed
    assert "not replayed" in piped.stdout and f"replayed {project}" not in piped.stderr
    assert piped.stderr == ""  # a pipe: no progress

    forced = replay_all(worker, RUNHERALD_PROGRESS="always")
    lines = forced.stderr.splitlines()
    assert lines[0] == f"reading {settings.topic('dead-letter')}", forced.stderr
    done = re.fullmatch(r"replayed (\d+)/(\d+)", lines[-1])
    assert done and done.group(1) == done.group(2) and int(done.group(1)) >= JUNK + BAD_RUNS, lines
    assert "\r" not in forced.stderr

    quiet = replay_all(worker, "--quiet", RUNHERALD_PROGRESS="always")
    assert quiet.returncode == 1 and "not replayed" in quiet.stdout and quiet.stderr == ""

    code, terminal = replay_all_on_a_terminal(worker)
    assert code == 1
    assert re.search(r"\rreplayed (\d+)/\1\r?\n$", terminal), repr(terminal)
    assert terminal.startswith(f"\rreading {settings.topic('dead-letter')} 0s"), repr(terminal)
    assert "\n" not in terminal[:-2]  # one line, rewritten in place
