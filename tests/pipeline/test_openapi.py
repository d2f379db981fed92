"""The API fuzzed against its own OpenAPI document (schemathesis): a worker with a tokens file, on the
embedded broker, answers every generated request, valid or not, without a 5xx, with JSON errors,
and as the document says (status codes, bodies, content types, which requests need a token)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error, positive_data_acceptance
from schemathesis.schemas import BaseSchema

from runherald.auth import new_token
from runherald.broker import EmbeddedBroker
from runherald.openapi import OPENAPI

from .harness import WorkerProcess, own_worker, tokens_file

TOKEN = new_token()
EXAMPLES = 30  # per operation: keeps the whole fuzz well under a minute on a small machine


@pytest.fixture(scope="module")
def fuzzed(
    broker: EmbeddedBroker, worker_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    path = tokens_file(tmp_path_factory.mktemp("fuzz"), ("fuzz", TOKEN, ["admin"]))
    with own_worker(broker.url, worker_logs, RUNHERALD_API_TOKENS_FILE=str(path)) as process:
        yield process


# A stream (Server-Sent Events) never ends, so the fuzz would wait on it for ever: its queries and
# answers are checked in tests/pipeline/test_subscribe.py instead.
STREAMS = [
    path
    for path, item in OPENAPI["paths"].items()
    if "text/event-stream" in item.get("get", {}).get("responses", {}).get("200", {}).get("content", {})
]

# (path, method, generation mode): invalid requests too where there is input to make invalid.
CASES = [
    (path, method.upper(), mode)
    for path, item in OPENAPI["paths"].items()
    if path not in STREAMS
    for method in item
    if method != "parameters"
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or "{" in path or "requestBody" in item[method]
]


@pytest.fixture(scope="module")
def served_schema(fuzzed: WorkerProcess) -> BaseSchema:
    """The document as the worker serves it (so what is fuzzed is what clients read)."""
    return schemathesis.openapi.from_url(fuzzed.api + "/api/v1/openapi.json")


@pytest.mark.parametrize(("path", "method", "mode"), CASES, ids=lambda value: str(value))
def test_the_api_keeps_to_its_openapi_document(
    fuzzed: WorkerProcess, served_schema: BaseSchema, path: str, method: str, mode: GenerationMode
) -> None:
    operation = served_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def answers_as_documented(case: Case) -> None:
        response = case.call(base_url=fuzzed.api, headers={"Authorization": f"Bearer {TOKEN}"})
        # 508: POST /api/v1/runs refusing a loop (X-Runherald-Hops over max_hops), as documented.
        assert response.status_code < 500 or response.status_code == 508, (
            f"{case.method} {case.formatted_path}: {response.text}"
        )
        if response.status_code >= 400:
            assert response.headers["content-type"] == ["application/json"], response.headers
            assert isinstance(response.json()["error"], str)
        if mode is GenerationMode.POSITIVE:
            # Runs are checked at the door beyond what a JSON schema says (runherald.admission: known
            # kinds and states, each channel's params, conditions that compile): a schema-valid run
            # may be refused with 400 and its problems, so that check does not apply.
            # Server errors are checked above (508 allowed).
            case.validate_response(response, excluded_checks=[positive_data_acceptance, not_a_server_error])

    answers_as_documented()


def test_schemathesis_run_with_every_check_finds_nothing(fuzzed: WorkerProcess, tmp_path: Path) -> None:
    """`st run` as a user would: its coverage phase tries each constraint of the document one by one
    (it found the runs that stopped the evaluate stage), then random cases; every check, including
    that each operation needing a token refuses a request without one."""
    config = tmp_path / "schemathesis.toml"  # 508 refuses a loop (X-Runherald-Hops): not a server error
    config.write_text('[checks.not_a_server_error]\nexpected-statuses = ["2xx", "3xx", "4xx", "508"]\n')
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("st")),
            "--config-file",
            str(config),
            "run",
            fuzzed.api + "/api/v1/openapi.json",
            *("--header", f"Authorization: Bearer {TOKEN}"),
            *("--checks", "all", "--phases", "coverage,fuzzing", "--max-examples", str(EXAMPLES)),
            # A schema-valid run may still be refused at the door (see above).
            *("--exclude-checks", "positive_data_acceptance"),
            *(arg for path in STREAMS for arg in ("--exclude-path", path)),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,  # its report directory, if any
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_the_worker_took_every_accepted_run(fuzzed: WorkerProcess) -> None:
    """Run after the fuzzing: what the API accepted, the pipeline processed (nothing dead-lettered,
    no stage failed, the worker alive: a run the API lets through must not stop a worker)."""
    fuzzed.check_alive()
    assert fuzzed.get("/readyz")[0] == 200
    log = fuzzed.log_path.read_text(errors="replace")
    assert "dead-lettered" not in log and "Traceback" not in log, fuzzed.tail()
