"""The built wheel, installed without extras in a fresh venv, runs every command it offers.

The wheel is built from exactly what the Dockerfile copies into the image, so this is also the image's
install (`pip install .`), short of Docker. Dependencies are pinned to the versions in the test venv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# One command of the CLI's help, under "positional arguments": `    name   help` (argparse's layout).
SUBCOMMAND = re.compile(r"^  ([a-z][a-z0-9-]*)(?: {2,}|$)")


def dockerfile_sources() -> list[str]:
    """What the Dockerfile copies into the image before `pip install .`."""
    sources = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            sources.extend(line.split()[1:-1])
    return sources


def subcommands(help_text: str) -> list[str]:
    """The subcommands a click help text lists under "Commands:" (none for a leaf command)."""
    found, listing = [], False
    for line in help_text.splitlines():
        if line and not line.startswith(" "):
            listing = line.startswith("Commands:")
        elif listing and (match := SUBCOMMAND.match(line)):
            found.append(match.group(1))
    return found


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


@pytest.mark.slow
def test_wheel_without_extras_runs_every_command_and_the_bench(tmp_path: Path) -> None:
    timings: dict[str, float] = {}
    started = time.monotonic()
    source = tmp_path / "source"
    source.mkdir()
    for name in dockerfile_sources():
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", "dist", str(source)],
        tmp_path,
        env,
        120,
    )
    (wheel,) = (tmp_path / "dist").glob("runherald-*.whl")
    timings["build"] = time.monotonic() - started

    started = time.monotonic()
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env, 60)
    python = venv / "bin" / "python"
    # The versions the tests ran with: no surprise upgrade, and pip's cache has them.
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(run([*pip, "freeze", "--exclude", "runherald"], tmp_path, env, 60))
    run(
        [*pip, "--python", str(python), "install", "-q", "-c", str(constraints), str(wheel)],
        tmp_path,
        env,
        600,
    )
    timings["install"] = time.monotonic() - started

    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    where = run([str(python), "-c", "import runherald; print(runherald.__file__)"], tmp_path, env, 60)
    assert Path(where.strip()).is_relative_to(venv), where
    for test_only in ("aiosmtpd", "pytest"):
        probe = subprocess.run(
            [str(python), "-c", f"import {test_only}"], cwd=tmp_path, env=env, stderr=subprocess.DEVNULL
        )
        assert probe.returncode != 0, f"{test_only} is installed without the test extra"
    # The dashboard's templates, script and stylesheet (package data) are installed beside runherald/ui.py.
    shipped = run(
        [str(python), "-c", "from runherald import ui; print(*sorted(p.name for p in ui.FILES.iterdir()))"],
        tmp_path,
        env,
        60,
    ).split()
    assert {path.name for path in (ROOT / "runherald" / "ui_files").iterdir()} <= set(shipped), shipped

    started = time.monotonic()
    runherald = str(venv / "bin" / "runherald")
    pending: list[list[str]] = [[]]
    seen: list[str] = []
    while pending:
        command = pending.pop()
        seen.append(" ".join(command) or "(top)")
        text = run([runherald, *command, "--help"], tmp_path, env, 60)
        # The bench parses its own options (argparse); every other command is click's.
        assert text.lower().startswith("usage: runherald"), text
        pending.extend([*command, name] for name in subcommands(text))
    assert {"dev", "worker", "publish", "status", "bench"} <= set(seen), seen
    timings["help"] = time.monotonic() - started

    started = time.monotonic()
    output = run([runherald, "bench", "--only", "evaluate", "--runs", "2000"], tmp_path, env, 240)
    assert re.search(r"^evaluate_no_match: [0-9.]+ events/s", output, re.MULTILINE), output
    output = run([runherald, "bench", "--only", "deliveries", "--deliveries", "300"], tmp_path, env, 240)
    assert re.search(r"^webhook_deliveries: [0-9.]+ deliveries/s", output, re.MULTILINE), output
    timings["bench"] = time.monotonic() - started
    print("wheel test: " + ", ".join(f"{step} {seconds:.1f}s" for step, seconds in timings.items()))
