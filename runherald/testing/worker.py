"""`runherald worker` as a child process, for the tests, the benchmark and the crash stress script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runherald.broker import free_port
from runherald.config import Settings
from runherald.sealing import PRIVATE_KEYS_ENV, PUBLIC_KEY_ENV, generate_key_pair

# One seal key pair per test (or bench) process: workers started here open with the private key unless
# their env names other keys, and this process's publishers seal with the public key (`seal_env`).
TEST_SEAL_PRIVATE_KEY, TEST_SEAL_PUBLIC_KEY = generate_key_pair()


def seal_env() -> dict[str, str]:
    """The seal key variables of the test key pair: a worker's private key, a publisher's public key."""
    return {PRIVATE_KEYS_ENV: TEST_SEAL_PRIVATE_KEY, PUBLIC_KEY_ENV: TEST_SEAL_PUBLIC_KEY}


def unique(prefix: str = "") -> str:
    """A name no other test or bench phase uses (topic prefixes, groups, projects)."""
    return prefix + uuid.uuid4().hex[:10]


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> None:
    """SIGTERM one child we started, SIGKILL it if it does not go in time."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class WorkerProcess:
    """One `runherald worker` child process with its own topic prefix, group and web port.

    Its environment is this process's without any RUNHERALD_* variable, then the test seal private
    key (unless `env` names private keys), then `env` (the settings the caller chose), then the broker,
    prefix, group and port. Its output goes to a log file in
    `log_dir` (appended to when the same worker is started again).
    """

    broker_url: str
    prefix: str
    group: str
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    web_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def environment(self) -> dict[str, str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("RUNHERALD_")}
        if not any(name.startswith(PRIVATE_KEYS_ENV) for name in self.env):
            environment[PRIVATE_KEYS_ENV] = TEST_SEAL_PRIVATE_KEY
        # A data directory of its own (the SQL ledger), the same again when restarted in its place.
        environment["RUNHERALD_DATA_DIR"] = str(
            self.log_dir / f"data-{self.prefix.rstrip('.')}-{self.web_port}"
        )
        environment.update(self.env)
        environment.update(
            {
                "RUNHERALD_BROKER": self.broker_url,
                "RUNHERALD_TOPIC_PREFIX": self.prefix,
                "RUNHERALD_GROUP_ID": self.group,
                "RUNHERALD_WEB_PORT": str(self.web_port),
            }
        )
        return environment

    @property
    def settings(self) -> Settings:
        """The settings the worker runs with."""
        return Settings.from_env({k: v for k, v in self.environment.items() if k.startswith("RUNHERALD_")})

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"worker-{self.prefix.rstrip('.')}-{self.web_port}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> WorkerProcess:
        """Start the worker (a free web port unless one was given); returns self."""
        if not self.web_port:
            self.web_port = free_port()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "runherald.cli", "worker"],
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def restarted(self) -> WorkerProcess:
        """A new worker in this one's place: same prefix, group, port and environment."""
        return WorkerProcess(
            self.broker_url, self.prefix, self.group, self.log_dir, dict(self.env), self.web_port
        ).start()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        """Raise with the log's tail if the worker has exited."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.tail()}")

    def get(self, path: str) -> tuple[int, Any]:
        """GET a JSON resource of the worker's API: (status, body)."""
        try:
            with urllib.request.urlopen(self.api + path, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get_text(self, path: str) -> tuple[int, str]:
        """A GET whose body is text (e.g. /metrics)."""
        try:
            with urllib.request.urlopen(self.api + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, timeout: float = 60.0, min_partitions: int = 1) -> float:
        """Block until the worker is ready and owns partitions; returns how long that took."""
        started = time.monotonic()
        last: Any = None
        while time.monotonic() - started < timeout:
            self.check_alive()
            try:
                code, body = self.get("/readyz")
                last = body
                if code == 200 and body.get("assigned_partitions", 0) >= min_partitions:
                    return time.monotonic() - started
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"worker on {self.api} not ready after {timeout}s (last {last}):\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the worker (SIGKILL by default: no clean shutdown, no final commit)."""
        if self.alive:
            assert self.process is not None
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop the worker (SIGTERM, then SIGKILL)."""
        stop_process(self.process)
